//! The HTTP surface of a descriptor set, for tools (`rgp check`, `diff`,
//! `openapi`): every `google.api.http` binding of the chosen services, with
//! every problem found in it, named by proto file and method.
//!
//! [`crate::routes::RouteTable::build`] stops at the first binding it cannot
//! load and keeps the others' problems as log lines; here every binding is
//! looked at with the same pieces of the engine (the template parser, the field
//! resolution, the route matcher's duplicate check), so a tool can list all of
//! them at once. Nothing here is used while serving requests.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};

use crate::config::TranscoderConfig;
use crate::path_matcher::{MatchOptions, PathMatcher};
use crate::path_template::PathTemplate;
use crate::routes::{http_rule, resolve_field_path, HttpRule};

/// What kind of problem a binding or a set has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// A file imports a file that is not in the set (built without `--include_imports`).
    MissingImport,
    /// The set does not decode into a descriptor pool.
    BadDescriptorSet,
    /// A service asked for is not in the set.
    MissingService,
    /// A path template does not parse.
    TemplateSyntax,
    /// A template variable, `body` or `response_body` names a field that does not exist.
    UnknownField,
    /// A field is repeated or a map where a single value is needed.
    RepeatedField,
    /// A path variable names a message field, which one URL segment cannot set.
    NotScalar,
    /// Two bindings have the same HTTP method and path pattern.
    DuplicateRoute,
    /// A custom pattern without a method, or a rule with no pattern at all.
    EmptyRule,
}

impl ProblemKind {
    /// A short stable name, for machine-readable output and tests.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::MissingImport => "missing-import",
            ProblemKind::BadDescriptorSet => "bad-descriptor-set",
            ProblemKind::MissingService => "missing-service",
            ProblemKind::TemplateSyntax => "template-syntax",
            ProblemKind::UnknownField => "unknown-field",
            ProblemKind::RepeatedField => "repeated-field",
            ProblemKind::NotScalar => "not-scalar",
            ProblemKind::DuplicateRoute => "duplicate-route",
            ProblemKind::EmptyRule => "empty-rule",
        }
    }
}

/// One problem, located as precisely as the set allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The proto file (as named in the set), when known.
    pub file: Option<String>,
    /// `package.Service/Method` (or `package.Service`), when known.
    pub method: Option<String>,
    /// What is wrong, and where in the binding.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, &self.method) {
            (Some(file), Some(method)) => write!(f, "{file}: {method}: {}", self.message),
            (Some(file), None) => write!(f, "{file}: {}", self.message),
            (None, Some(method)) => write!(f, "{method}: {}", self.message),
            (None, None) => write!(f, "{}", self.message),
        }
    }
}

/// Where a binding's HTTP body goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body.
    None,
    /// `body: "*"`.
    Whole,
    /// `body: "field.path"` (as written).
    Field(String),
}

/// One HTTP binding of a method.
#[derive(Debug, Clone)]
pub struct Binding {
    /// `package.Service`.
    pub service: String,
    /// The method's simple name.
    pub method: String,
    /// The proto file that declares the service.
    pub file: String,
    /// GET, POST, ... or a custom method.
    pub http_method: String,
    /// The template as written.
    pub template: String,
    /// The template in canonical form (variable names kept), when it parses.
    pub canonical: Option<String>,
    /// The template's variables (field paths as written), in order.
    pub variables: Vec<Vec<String>>,
    /// Where the body goes.
    pub body: Body,
    /// The response field that is the HTTP body, as written.
    pub response_body: Option<String>,
    /// Request message.
    pub input: MessageDescriptor,
    /// Response message.
    pub output: MessageDescriptor,
    /// Client streaming.
    pub client_streaming: bool,
    /// Server streaming.
    pub server_streaming: bool,
    /// Made by `auto_mapping`, not by an annotation.
    pub auto: bool,
    /// Whether the filter will serve it (no problem in it and not a duplicate).
    pub usable: bool,
    /// An earlier binding has the same HTTP method and path pattern: the filter drops this one.
    pub duplicate: bool,
}

impl Binding {
    /// `package.Service/Method`.
    pub fn full_method(&self) -> String {
        format!("{}/{}", self.service, self.method)
    }

    /// The resolved fields of a template variable (empty when they do not resolve).
    pub fn variable_fields(&self, variable: &[String]) -> Vec<FieldDescriptor> {
        resolve_field_path(&self.input, variable).unwrap_or_default()
    }
}

/// The HTTP surface of the chosen services of a set.
#[derive(Debug, Clone, Default)]
pub struct Surface {
    /// Every binding, in the order the filter loads them.
    pub bindings: Vec<Binding>,
    /// Every problem found.
    pub problems: Vec<Problem>,
    /// Methods with no binding at all (no annotation, no auto_mapping): `package.Service/Method`.
    pub unbound: Vec<String>,
}

/// Files of a raw `FileDescriptorSet` that import files the set does not contain:
/// `(file, missing import)`. A set built without `--include_imports` has some.
pub fn missing_imports(set: &[u8]) -> Result<Vec<(String, String)>, prost::DecodeError> {
    let set = prost_types::FileDescriptorSet::decode(set)?;
    let names: BTreeSet<&str> = set.file.iter().map(|f| f.name()).collect();
    let mut missing = Vec::new();
    for file in &set.file {
        for dep in &file.dependency {
            if !names.contains(dep.as_str()) {
                missing.push((file.name().to_string(), dep.clone()));
            }
        }
    }
    Ok(missing)
}

/// Every service in the pool, by full name, in file order.
pub fn all_services(pool: &DescriptorPool) -> Vec<String> {
    pool.services().map(|s| s.full_name().to_string()).collect()
}

/// Reads the bindings of `services` (all services when empty) with the options
/// of `config` that change routing (`auto_mapping`, `url_unescape_spec`,
/// `match_unregistered_custom_verb`).
pub fn analyze(pool: &DescriptorPool, services: &[String], config: &TranscoderConfig) -> Surface {
    let services = if services.is_empty() { all_services(pool) } else { services.to_vec() };
    let mut surface = Surface::default();
    let mut matcher: PathMatcher<usize> = PathMatcher::new(MatchOptions {
        url_unescape_spec: config.url_unescape_spec,
        match_unregistered_custom_verb: config.match_unregistered_custom_verb,
    });
    for name in &services {
        let Some(service) = pool.get_service_by_name(name) else {
            let known = all_services(pool);
            surface.problems.push(Problem {
                kind: ProblemKind::MissingService,
                file: None,
                method: Some(name.clone()),
                message: format!(
                    "service {name:?} is not in the descriptor set (it has: {}); the filter refuses this configuration",
                    if known.is_empty() { "no services".to_string() } else { known.join(", ") }
                ),
            });
            continue;
        };
        let file = service.parent_file().name().to_string();
        for method in service.methods() {
            let base = Binding {
                service: service.full_name().to_string(),
                method: method.name().to_string(),
                file: file.clone(),
                http_method: String::new(),
                template: String::new(),
                canonical: None,
                variables: Vec::new(),
                body: Body::None,
                response_body: None,
                input: method.input(),
                output: method.output(),
                client_streaming: method.is_client_streaming(),
                server_streaming: method.is_server_streaming(),
                auto: false,
                usable: false,
                duplicate: false,
            };
            match http_rule(&method) {
                Some(rule) => {
                    let mut rules = vec![rule.clone()];
                    rules.extend(rule.additional_bindings.iter().cloned());
                    for (i, r) in rules.iter().enumerate() {
                        add_rule(&mut surface, &mut matcher, &base, r, i == 0);
                    }
                }
                None if config.auto_mapping => {
                    let auto = HttpRule {
                        post: Some(format!("/{}", base.full_method())),
                        body: "*".into(),
                        ..Default::default()
                    };
                    let mut b = base.clone();
                    b.auto = true;
                    add_rule(&mut surface, &mut matcher, &b, &auto, true);
                }
                None => surface.unbound.push(base.full_method()),
            }
        }
    }
    surface
}

fn add_rule(surface: &mut Surface, matcher: &mut PathMatcher<usize>, base: &Binding, rule: &HttpRule, primary: bool) {
    let problem = |kind, message: String| Problem {
        kind,
        file: Some(base.file.clone()),
        method: Some(base.full_method()),
        message,
    };
    let (http_method, template) = match rule.pattern() {
        Some(pattern) => pattern,
        None => {
            // The main rule may hold only additional_bindings; an empty additional binding is a mistake.
            if !primary || rule.additional_bindings.is_empty() {
                surface.problems.push(problem(
                    ProblemKind::EmptyRule,
                    "a google.api.http rule without a pattern (get, post, ...) binds nothing".into(),
                ));
            }
            return;
        }
    };
    let mut binding = base.clone();
    binding.http_method = http_method.to_string();
    binding.template = template.to_string();
    binding.body = match rule.body.as_str() {
        "" => Body::None,
        "*" => Body::Whole,
        path => Body::Field(path.to_string()),
    };
    binding.response_body = (!rule.response_body.is_empty()).then(|| rule.response_body.clone());
    let at = format!("{http_method} {template:?}");
    let before = surface.problems.len();
    if http_method.is_empty() {
        surface
            .problems
            .push(problem(ProblemKind::EmptyRule, format!("{at}: custom pattern without a kind (HTTP method)")));
    }
    let parsed = match PathTemplate::parse(template) {
        Ok(parsed) => parsed,
        Err(e) => {
            surface.problems.push(problem(ProblemKind::TemplateSyntax, format!("{at}: template does not parse: {e}")));
            surface.bindings.push(binding);
            return;
        }
    };
    binding.canonical = Some(parsed.to_string());
    binding.variables = parsed.variables.iter().map(|v| v.field_path.clone()).collect();
    for v in &parsed.variables {
        let name = v.field_path.join(".");
        match resolve_field_path(&base.input, &v.field_path) {
            Err(e) => {
                surface.problems.push(problem(field_error_kind(&e), format!("{at}: path variable {name:?}: {e}")))
            }
            Ok(fields) => {
                let Some(leaf) = fields.last() else { continue };
                if leaf.is_map() || leaf.is_list() {
                    surface.problems.push(problem(
                        ProblemKind::RepeatedField,
                        format!(
                            "{at}: path variable {name:?}: field {:?} is {}; a path variable must name a singular field",
                            leaf.name(),
                            if leaf.is_map() { "a map" } else { "repeated" }
                        ),
                    ));
                } else if let Kind::Message(m) = leaf.kind() {
                    if !crate::request::is_scalar_like(&m) {
                        surface.problems.push(problem(
                            ProblemKind::NotScalar,
                            format!(
                                "{at}: path variable {name:?}: field {:?} is a message ({}); bind one of its fields instead",
                                leaf.name(),
                                m.full_name()
                            ),
                        ));
                    }
                }
            }
        }
    }
    if let Body::Field(path) = &binding.body {
        let names: Vec<&str> = path.split('.').collect();
        if let Err(e) = resolve_field_path(&base.input, &names) {
            surface.problems.push(problem(field_error_kind(&e), format!("{at}: body {path:?}: {e}")));
        }
    }
    if let Some(path) = &binding.response_body {
        let names: Vec<&str> = path.split('.').collect();
        if let Err(e) = resolve_field_path(&base.output, &names) {
            surface.problems.push(problem(field_error_kind(&e), format!("{at}: response_body {path:?}: {e}")));
        }
    }
    let index = surface.bindings.len();
    let inserted = match matcher.insert(http_method, &parsed, index) {
        Ok(()) => true,
        Err(duplicate) => {
            let first = surface
                .bindings
                .iter()
                .find(|b| b.http_method == http_method && b.canonical.as_deref() == Some(duplicate.existing.as_str()))
                .map(|b| format!("{} ({})", b.full_method(), b.file))
                .unwrap_or_else(|| "an earlier binding".to_string());
            surface.problems.push(problem(
                ProblemKind::DuplicateRoute,
                format!("{at}: {http_method} {} is already bound to {first}; the filter keeps the first and ignores this one", duplicate.existing),
            ));
            false
        }
    };
    binding.duplicate = !inserted;
    binding.usable = inserted && surface.problems.len() == before;
    surface.bindings.push(binding);
}

fn field_error_kind(message: &str) -> ProblemKind {
    if message.contains("is not a singular message") {
        ProblemKind::RepeatedField
    } else {
        ProblemKind::UnknownField
    }
}

/// The JSON shape of a message, for surface comparisons and schemas: field JSON
/// name -> (field, its type name). Ordered by field number.
pub fn json_fields(message: &MessageDescriptor) -> Vec<FieldDescriptor> {
    let mut fields: Vec<FieldDescriptor> = message.fields().collect();
    fields.sort_by_key(|f| f.number());
    fields
}

/// A readable type name for a field: `string`, `repeated int64`, `map<string, Book>`, `bookstore.v1.Book`.
pub fn field_type_name(field: &FieldDescriptor) -> String {
    if field.is_map() {
        if let Kind::Message(entry) = field.kind() {
            let key = entry.map_entry_key_field();
            let value = entry.map_entry_value_field();
            return format!("map<{}, {}>", kind_name(&key.kind()), kind_name(&value.kind()));
        }
    }
    let base = kind_name(&field.kind());
    if field.is_list() {
        format!("repeated {base}")
    } else {
        base
    }
}

/// The name of a kind: scalar names, or the full name of a message or enum.
pub fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Double => "double".into(),
        Kind::Float => "float".into(),
        Kind::Int32 => "int32".into(),
        Kind::Int64 => "int64".into(),
        Kind::Uint32 => "uint32".into(),
        Kind::Uint64 => "uint64".into(),
        Kind::Sint32 => "sint32".into(),
        Kind::Sint64 => "sint64".into(),
        Kind::Fixed32 => "fixed32".into(),
        Kind::Fixed64 => "fixed64".into(),
        Kind::Sfixed32 => "sfixed32".into(),
        Kind::Sfixed64 => "sfixed64".into(),
        Kind::Bool => "bool".into(),
        Kind::String => "string".into(),
        Kind::Bytes => "bytes".into(),
        Kind::Message(m) => m.full_name().into(),
        Kind::Enum(e) => e.full_name().into(),
    }
}

/// Message types reachable from `roots` through fields (roots included), by full name.
pub fn reachable_messages(roots: &[MessageDescriptor]) -> BTreeMap<String, MessageDescriptor> {
    let mut seen = BTreeMap::new();
    let mut stack: Vec<MessageDescriptor> = roots.to_vec();
    while let Some(m) = stack.pop() {
        if seen.contains_key(m.full_name()) {
            continue;
        }
        seen.insert(m.full_name().to_string(), m.clone());
        for f in m.fields() {
            if let Kind::Message(next) = f.kind() {
                stack.push(next);
            }
        }
    }
    seen
}
