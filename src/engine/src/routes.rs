//! The route table: every HTTP binding of every configured method, read from
//! the `google.api.http` annotations (and auto-mapping) once at load time, with
//! field paths resolved against the descriptors so requests only look them up.

use std::sync::Arc;

use prost::Message;
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor, Value};

use crate::config::TranscoderConfig;
use crate::error::ConfigError;
use crate::path_matcher::{MatchOptions, PathMatcher};
use crate::path_template::PathTemplate;

/// Full name of the message that carries raw HTTP bodies.
pub const HTTP_BODY: &str = "google.api.HttpBody";

/// `google.api.HttpRule`, decoded from the method options.
#[derive(Clone, PartialEq, Message)]
pub struct HttpRule {
    /// Selects the method the rule applies to (service config only; unused here).
    #[prost(string, tag = "1")]
    pub selector: String,
    /// GET path template.
    #[prost(string, optional, tag = "2")]
    pub get: Option<String>,
    /// PUT path template.
    #[prost(string, optional, tag = "3")]
    pub put: Option<String>,
    /// POST path template.
    #[prost(string, optional, tag = "4")]
    pub post: Option<String>,
    /// DELETE path template.
    #[prost(string, optional, tag = "5")]
    pub delete: Option<String>,
    /// PATCH path template.
    #[prost(string, optional, tag = "6")]
    pub patch: Option<String>,
    /// Which request field the HTTP body maps to: "*", a field path, or none.
    #[prost(string, tag = "7")]
    pub body: String,
    /// Any other HTTP method.
    #[prost(message, optional, tag = "8")]
    pub custom: Option<CustomHttpPattern>,
    /// More bindings of the same method.
    #[prost(message, repeated, tag = "11")]
    pub additional_bindings: Vec<HttpRule>,
    /// Which response field becomes the HTTP body.
    #[prost(string, tag = "12")]
    pub response_body: String,
}

impl HttpRule {
    /// The HTTP method and path template this rule binds, if it has a pattern.
    pub fn pattern(&self) -> Option<(&str, &str)> {
        match self {
            HttpRule { get: Some(t), .. } => Some(("GET", t)),
            HttpRule { put: Some(t), .. } => Some(("PUT", t)),
            HttpRule { post: Some(t), .. } => Some(("POST", t)),
            HttpRule { delete: Some(t), .. } => Some(("DELETE", t)),
            HttpRule { patch: Some(t), .. } => Some(("PATCH", t)),
            HttpRule { custom: Some(c), .. } => Some((&c.kind, &c.path)),
            _ => None,
        }
    }
}

/// `google.api.CustomHttpPattern`.
#[derive(Clone, PartialEq, Message)]
pub struct CustomHttpPattern {
    /// The HTTP method.
    #[prost(string, tag = "1")]
    pub kind: String,
    /// The path template.
    #[prost(string, tag = "2")]
    pub path: String,
}

/// A gRPC method the filter can call.
#[derive(Debug)]
pub struct MethodInfo {
    /// `/package.Service/Method`, the gRPC request path.
    pub grpc_path: String,
    /// `package.Service`.
    pub service: String,
    /// `Method`.
    pub name: String,
    /// Request message type.
    pub input: MessageDescriptor,
    /// Response message type.
    pub output: MessageDescriptor,
    /// The client sends a stream of messages.
    pub client_streaming: bool,
    /// The server answers with a stream of messages.
    pub server_streaming: bool,
}

/// Where the HTTP body goes in the request message.
#[derive(Debug, Clone)]
pub enum BodyRule {
    /// `body: "*"`, or no `body:` at all: the body is the whole request
    /// message. Envoy's transcoder gives both the same (empty) body field path,
    /// so a body sent on a rule without `body:` is read, not dropped.
    Whole,
    /// `body: "a.b"`: the body is this (resolved) field.
    Field(Vec<FieldDescriptor>),
}

/// One HTTP binding of a method.
#[derive(Debug)]
pub struct Route {
    /// The method called.
    pub method: Arc<MethodInfo>,
    /// The HTTP method (GET, POST, ..., or a custom one).
    pub http_method: String,
    /// The path template, as written.
    pub template: String,
    /// Template variables: field path as written, and the fields it resolves to.
    pub variables: Vec<(Vec<String>, Vec<FieldDescriptor>)>,
    /// Where the body goes.
    pub body: BodyRule,
    /// The response field that becomes the HTTP body, if any.
    pub response_body: Option<Vec<FieldDescriptor>>,
    /// Why this binding cannot work (a field it names does not exist, ...).
    /// Envoy accepts such a configuration and fails the requests, so do we.
    pub problem: Option<String>,
}

/// Every route of the configured services, and the matcher that finds them.
pub struct RouteTable {
    /// The routes, indexed by the matcher's values.
    pub routes: Vec<Route>,
    /// Path templates to route indexes.
    pub matcher: PathMatcher<usize>,
    /// Problems found in bindings, for the load-time log.
    pub warnings: Vec<String>,
}

impl RouteTable {
    /// Reads the routes of `config.services` from the pool; refuses what Envoy refuses.
    pub fn build(pool: &DescriptorPool, config: &TranscoderConfig) -> Result<RouteTable, ConfigError> {
        let mut table = RouteTable {
            routes: Vec::new(),
            matcher: PathMatcher::new(MatchOptions {
                url_unescape_spec: config.url_unescape_spec,
                match_unregistered_custom_verb: config.match_unregistered_custom_verb,
            }),
            warnings: Vec::new(),
        };
        for service_name in &config.services {
            let service = pool.get_service_by_name(service_name).ok_or_else(|| {
                let known: Vec<String> = pool.services().map(|s| s.full_name().to_string()).collect();
                ConfigError::field(
                    "services",
                    format!(
                        "service {service_name:?} is not in proto_descriptor_bin (it has: {})",
                        if known.is_empty() { "no services".to_string() } else { known.join(", ") }
                    ),
                )
            })?;
            for method in service.methods() {
                let info = Arc::new(MethodInfo {
                    grpc_path: format!("/{}/{}", service.full_name(), method.name()),
                    service: service.full_name().to_string(),
                    name: method.name().to_string(),
                    input: method.input(),
                    output: method.output(),
                    client_streaming: method.is_client_streaming(),
                    server_streaming: method.is_server_streaming(),
                });
                let rule = http_rule(&method);
                match rule {
                    Some(rule) => {
                        table.add_rule(&info, &rule)?;
                        for extra in &rule.additional_bindings {
                            table.add_rule(&info, extra)?;
                        }
                    }
                    None if config.auto_mapping => {
                        let auto =
                            HttpRule { post: Some(info.grpc_path.clone()), body: "*".into(), ..Default::default() };
                        table.add_rule(&info, &auto)?;
                    }
                    None => {}
                }
            }
        }
        Ok(table)
    }

    fn add_rule(&mut self, info: &Arc<MethodInfo>, rule: &HttpRule) -> Result<(), ConfigError> {
        // A rule with no pattern (only additional_bindings) binds nothing itself.
        let Some((http_method, template)) = rule.pattern() else {
            return Ok(());
        };
        let where_ = || format!("{} {http_method} {template:?}", info.grpc_path);
        let parsed =
            PathTemplate::parse(template).map_err(|e| ConfigError::field("services", format!("{}: {e}", where_())))?;
        let mut problems = Vec::new();
        let mut variables = Vec::with_capacity(parsed.variables.len());
        for v in &parsed.variables {
            match resolve_field_path(&info.input, &v.field_path).and_then(|f| check_binding_target(&f).map(|()| f)) {
                Ok(fields) => variables.push((v.field_path.clone(), fields)),
                Err(e) => problems.push(format!("path variable {:?}: {e}", v.field_path.join("."))),
            }
        }
        let body = match rule.body.as_str() {
            "" | "*" => BodyRule::Whole,
            path => match resolve_field_path(&info.input, &split_path(path)) {
                Ok(fields) => BodyRule::Field(fields),
                Err(e) => {
                    problems.push(format!("body {path:?}: {e}"));
                    // Never used: a route with a problem refuses every request.
                    BodyRule::Whole
                }
            },
        };
        let response_body = match rule.response_body.as_str() {
            "" => None,
            path => match resolve_field_path(&info.output, &split_path(path)) {
                Ok(fields) => Some(fields),
                Err(e) => {
                    problems.push(format!("response_body {path:?}: {e}"));
                    None
                }
            },
        };
        let problem = (!problems.is_empty()).then(|| format!("{}: {}", where_(), problems.join("; ")));
        if let Some(p) = &problem {
            self.warnings.push(p.clone());
        }
        let index = self.routes.len();
        if let Err(duplicate) = self.matcher.insert(http_method, &parsed, index) {
            // Envoy loads such a set too; the first binding keeps the route.
            self.warnings.push(format!("{}: {duplicate}; this binding is ignored", where_()));
            return Ok(());
        }
        self.routes.push(Route {
            method: info.clone(),
            http_method: http_method.to_string(),
            template: template.to_string(),
            variables,
            body,
            response_body,
            problem,
        });
        Ok(())
    }
}

fn split_path(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

/// The `google.api.http` rule of a method, if it has one (the option is read
/// through the pool, so a set without google/api/annotations.proto has none).
pub fn http_rule(method: &MethodDescriptor) -> Option<HttpRule> {
    let ext = method.parent_pool().get_extension_by_name("google.api.http")?;
    let options = method.options();
    if !options.has_extension(&ext) {
        return None;
    }
    match options.get_extension(&ext).as_ref() {
        Value::Message(m) => HttpRule::decode(m.encode_to_vec().as_slice()).ok(),
        _ => None,
    }
}

/// Resolves `a.b.c` against a message type: every step but the last must be a
/// singular message field. Names match the proto name first, then the JSON name.
pub fn resolve_field_path<S: AsRef<str>>(
    message: &MessageDescriptor,
    names: &[S],
) -> Result<Vec<FieldDescriptor>, String> {
    resolve_path(message, names, false)
}

/// As [`resolve_field_path`], for query parameters: a step may also be a
/// repeated message field (not a map), as Envoy's transcoder allows.
pub fn resolve_query_field_path<S: AsRef<str>>(
    message: &MessageDescriptor,
    names: &[S],
) -> Result<Vec<FieldDescriptor>, String> {
    resolve_path(message, names, true)
}

fn resolve_path<S: AsRef<str>>(
    message: &MessageDescriptor,
    names: &[S],
    through_lists: bool,
) -> Result<Vec<FieldDescriptor>, String> {
    let mut fields = Vec::with_capacity(names.len());
    let mut current = message.clone();
    for (i, name) in names.iter().enumerate() {
        let name = name.as_ref();
        let field = current
            .get_field_by_name(name)
            .or_else(|| current.get_field_by_json_name(name))
            .ok_or_else(|| format!("no field {name:?} in message {}", current.full_name()))?;
        if i + 1 < names.len() {
            match field.kind() {
                Kind::Message(next) if !field.is_map() && (through_lists || !field.is_list()) => current = next,
                _ => {
                    return Err(format!(
                        "field {name:?} of {} is not a {}message, so {:?} cannot go inside it",
                        current.full_name(),
                        if through_lists { "" } else { "singular " },
                        names.get(i + 1).map(|n| n.as_ref()).unwrap_or_default()
                    ))
                }
            }
        }
        fields.push(field);
    }
    if fields.is_empty() {
        return Err("empty field path".to_string());
    }
    Ok(fields)
}

/// Path variables must end on a field a single string can set.
fn check_binding_target(fields: &[FieldDescriptor]) -> Result<(), String> {
    let Some(leaf) = fields.last() else {
        return Err("empty field path".to_string());
    };
    if leaf.is_map() {
        return Err(format!("field {:?} is a map; a path variable cannot set it", leaf.name()));
    }
    match leaf.kind() {
        Kind::Message(m) if !crate::request::is_scalar_like(&m) => {
            Err(format!("field {:?} is a message ({}); bind one of its fields instead", leaf.name(), m.full_name()))
        }
        _ => Ok(()),
    }
}

/// `google.api.HttpBody`: a raw HTTP body and its content type.
#[derive(Clone, PartialEq, Message)]
pub struct HttpBody {
    /// The body's content type.
    #[prost(string, tag = "1")]
    pub content_type: String,
    /// The raw body.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    /// Application-specific metadata.
    #[prost(message, repeated, tag = "3")]
    pub extensions: Vec<prost_types::Any>,
}
