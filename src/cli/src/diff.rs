//! `rgp diff OLD NEW`: what changed on the HTTP surface, and what breaks JSON clients.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use transcoder::path_template::{PathTemplate, Segment};
use transcoder::surface::{self, Binding, Body};
use transcoder::TranscoderConfig;

use crate::load;
use crate::Failure;

/// One change, breaking or not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub breaking: bool,
    pub text: String,
}

pub fn run(old: &Path, new: &Path, services: &[String], allow_breaking: bool) -> Result<(), Failure> {
    let old_surface = load_surface(old, services)?;
    let new_surface = load_surface(new, services)?;
    let changes = compare(&old_surface, &new_surface);
    let breaking = changes.iter().filter(|c| c.breaking).count();
    for c in &changes {
        println!("{}: {}", if c.breaking { "breaking" } else { "compatible" }, c.text);
    }
    eprintln!(
        "{breaking} breaking, {} compatible change(s){}",
        changes.len() - breaking,
        if breaking > 0 && allow_breaking { " (breaking changes allowed)" } else { "" }
    );
    if breaking > 0 && !allow_breaking {
        Err(Failure::Problems)
    } else {
        Ok(())
    }
}

fn load_surface(path: &Path, services: &[String]) -> Result<Vec<Binding>, Failure> {
    let set = match load::load_set(path)? {
        Ok(set) => set,
        Err(problems) => {
            load::report(&problems);
            return Err(Failure::Usage(format!("{} does not load; run rgp check on it", path.display())));
        }
    };
    // A service asked for but absent from one side simply has no routes there.
    let present: Vec<String> = if services.is_empty() {
        surface::all_services(&set.pool)
    } else {
        services.iter().filter(|s| set.pool.get_service_by_name(s).is_some()).cloned().collect()
    };
    if present.is_empty() {
        return Ok(Vec::new());
    }
    let analysis = surface::analyze(&set.pool, &present, &TranscoderConfig::default());
    Ok(analysis.bindings.into_iter().filter(|b| !b.duplicate).collect())
}

/// The route a binding answers: HTTP method and path shape (variable names do not matter).
fn route_key(b: &Binding) -> (String, String) {
    let shape = match PathTemplate::parse(&b.template) {
        Ok(t) => {
            let segments: Vec<&str> = t
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(l) => l.as_str(),
                    Segment::Wildcard => "*",
                    Segment::DoubleWildcard => "**",
                })
                .collect();
            let verb = t.verb.map(|v| format!(":{v}")).unwrap_or_default();
            format!("/{}{verb}", segments.join("/"))
        }
        Err(_) => b.template.clone(),
    };
    (b.http_method.clone(), shape)
}

fn describe(b: &Binding) -> String {
    format!("{} {} -> {}", b.http_method, b.template, b.full_method())
}

fn body_text(body: &Body) -> String {
    match body {
        Body::None => "none".into(),
        Body::Whole => "\"*\"".into(),
        Body::Field(f) => format!("{f:?}"),
    }
}

/// All changes between two surfaces, routes first, then messages and enums by name.
pub fn compare(old: &[Binding], new: &[Binding]) -> Vec<Change> {
    let old_routes: BTreeMap<_, &Binding> = old.iter().map(|b| (route_key(b), b)).collect();
    let new_routes: BTreeMap<_, &Binding> = new.iter().map(|b| (route_key(b), b)).collect();
    let mut routes = Vec::new();
    let mut pairs: Vec<(MessageDescriptor, MessageDescriptor)> = Vec::new();
    for (key, o) in &old_routes {
        let Some(n) = new_routes.get(key) else {
            routes.push(Change { breaking: true, text: format!("route removed: {}", describe(o)) });
            continue;
        };
        let mut what = Vec::new();
        if o.full_method() != n.full_method() {
            what.push(format!("calls {} instead of {}", n.full_method(), o.full_method()));
        }
        if o.variables != n.variables {
            let show = |b: &Binding| b.variables.iter().map(|v| v.join(".")).collect::<Vec<_>>().join(", ");
            what.push(format!("path variables bind [{}] instead of [{}]", show(n), show(o)));
        }
        if o.body != n.body {
            what.push(format!("body {} instead of {}", body_text(&n.body), body_text(&o.body)));
        }
        if o.response_body != n.response_body {
            what.push(format!(
                "response_body {:?} instead of {:?}",
                n.response_body.as_deref().unwrap_or(""),
                o.response_body.as_deref().unwrap_or("")
            ));
        }
        if o.usable && !n.usable {
            what.push("the binding is now broken (run rgp check)".into());
        }
        if !what.is_empty() {
            routes.push(Change {
                breaking: true,
                text: format!("route changed: {} {}: {}", key.0, o.template, what.join("; ")),
            });
        }
        pairs.push((o.input.clone(), n.input.clone()));
        pairs.push((o.output.clone(), n.output.clone()));
    }
    for (key, n) in &new_routes {
        if !old_routes.contains_key(key) {
            routes.push(Change { breaking: false, text: format!("route added: {}", describe(n)) });
        }
    }

    let mut types = TypeDiff::default();
    for (o, n) in pairs {
        types.messages(&o, &n);
    }
    routes.extend(types.changes.into_values().flatten());
    routes
}

/// Compares message and enum pairs once each, recursively.
#[derive(Default)]
struct TypeDiff {
    seen: BTreeSet<(String, String)>,
    /// Changes by type name, so the output is sorted and stable.
    changes: BTreeMap<String, Vec<Change>>,
}

impl TypeDiff {
    fn push(&mut self, owner: &str, breaking: bool, text: String) {
        self.changes.entry(owner.to_string()).or_default().push(Change { breaking, text: format!("{owner}: {text}") });
    }

    fn messages(&mut self, old: &MessageDescriptor, new: &MessageDescriptor) {
        if !self.seen.insert((old.full_name().into(), new.full_name().into())) {
            return;
        }
        let owner = if old.full_name() == new.full_name() {
            format!("message {}", old.full_name())
        } else {
            format!("message {} (now {})", old.full_name(), new.full_name())
        };
        // Well-known types have fixed JSON forms.
        if old.full_name().starts_with("google.protobuf.") || new.full_name().starts_with("google.protobuf.") {
            if old.full_name() != new.full_name() {
                self.push(&owner, true, format!("JSON form changes from {} to {}", old.full_name(), new.full_name()));
            }
            return;
        }
        for of in old.fields() {
            match new.get_field(of.number()) {
                None => match new.get_field_by_json_name(of.json_name()) {
                    Some(nf) => {
                        self.push(
                            &owner,
                            false,
                            format!(
                                "field {:?} renumbered {} -> {} (same JSON)",
                                of.json_name(),
                                of.number(),
                                nf.number()
                            ),
                        );
                        self.fields(&owner, &of, &nf);
                    }
                    None => self.push(&owner, true, format!("field {:?} ({}) removed", of.json_name(), of.number())),
                },
                Some(nf) => self.fields(&owner, &of, &nf),
            }
        }
        for nf in new.fields() {
            if old.get_field(nf.number()).is_none() && old.get_field_by_json_name(nf.json_name()).is_none() {
                self.push(
                    &owner,
                    false,
                    format!("field {:?} ({}) added: {}", nf.json_name(), nf.number(), surface::field_type_name(&nf)),
                );
            }
        }
    }

    fn fields(&mut self, owner: &str, of: &FieldDescriptor, nf: &FieldDescriptor) {
        let name = of.json_name();
        if of.json_name() != nf.json_name() {
            self.push(
                owner,
                true,
                format!("field {} renamed: JSON name {:?} -> {:?}", of.number(), of.json_name(), nf.json_name()),
            );
        } else if of.name() != nf.name() {
            self.push(
                owner,
                true,
                format!(
                    "field {name:?} renamed: proto name {:?} -> {:?} (query parameters and preserve_proto_field_names use it)",
                    of.name(),
                    nf.name()
                ),
            );
        }
        let (oc, nc) = (cardinality(of), cardinality(nf));
        if oc != nc {
            self.push(
                owner,
                true,
                format!("field {name:?} retyped: {} -> {}", surface::field_type_name(of), surface::field_type_name(nf)),
            );
            return;
        }
        let (ok, nk) = (value_kind(of), value_kind(nf));
        let (ojc, njc) = (json_class(&ok), json_class(&nk));
        if ojc != njc {
            self.push(
                owner,
                true,
                format!("field {name:?} retyped: {} -> {}", surface::field_type_name(of), surface::field_type_name(nf)),
            );
            return;
        }
        if surface::kind_name(&ok) != surface::kind_name(&nk) && !matches!(ok, Kind::Message(_) | Kind::Enum(_)) {
            self.push(
                owner,
                false,
                format!(
                    "field {name:?} retyped with the same JSON: {} -> {}",
                    surface::field_type_name(of),
                    surface::field_type_name(nf)
                ),
            );
        }
        if of.is_map() {
            if let (Kind::Message(om), Kind::Message(nm)) = (of.kind(), nf.kind()) {
                let (okey, nkey) = (om.map_entry_key_field(), nm.map_entry_key_field());
                if json_class(&okey.kind()) != json_class(&nkey.kind()) {
                    self.push(
                        owner,
                        true,
                        format!(
                            "field {name:?} retyped: {} -> {}",
                            surface::field_type_name(of),
                            surface::field_type_name(nf)
                        ),
                    );
                }
            }
        }
        match (ok, nk) {
            (Kind::Message(o), Kind::Message(n)) => self.messages(&o, &n),
            (Kind::Enum(o), Kind::Enum(n)) => self.enums(&o, &n),
            _ => {}
        }
    }

    fn enums(&mut self, old: &EnumDescriptor, new: &EnumDescriptor) {
        if !self.seen.insert((old.full_name().into(), new.full_name().into())) {
            return;
        }
        let owner = format!("enum {}", old.full_name());
        for ov in old.values() {
            match new.get_value_by_name(ov.name()) {
                None => self.push(&owner, true, format!("value {} ({}) removed", ov.name(), ov.number())),
                Some(nv) if nv.number() != ov.number() => self.push(
                    &owner,
                    false,
                    format!("value {} renumbered {} -> {} (JSON uses the name)", ov.name(), ov.number(), nv.number()),
                ),
                Some(_) => {}
            }
        }
        for nv in new.values() {
            if old.get_value_by_name(nv.name()).is_none() {
                self.push(&owner, false, format!("value {} ({}) added", nv.name(), nv.number()));
            }
        }
    }
}

fn cardinality(f: &FieldDescriptor) -> &'static str {
    if f.is_map() {
        "map"
    } else if f.is_list() {
        "repeated"
    } else {
        "singular"
    }
}

/// The kind of a field's values (a map's value type for maps).
fn value_kind(f: &FieldDescriptor) -> Kind {
    match f.kind() {
        Kind::Message(entry) if f.is_map() => entry.map_entry_value_field().kind(),
        kind => kind,
    }
}

/// Kinds with the same JSON form are in the same class.
fn json_class(kind: &Kind) -> String {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => "int32".into(),
        Kind::Uint32 | Kind::Fixed32 => "uint32".into(),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => "int64".into(),
        Kind::Uint64 | Kind::Fixed64 => "uint64".into(),
        Kind::Float | Kind::Double => "number".into(),
        Kind::Bool => "bool".into(),
        Kind::String => "string".into(),
        Kind::Bytes => "bytes".into(),
        Kind::Enum(_) => "enum".into(),
        Kind::Message(m) if m.full_name().starts_with("google.protobuf.") => m.full_name().into(),
        Kind::Message(_) => "message".into(),
    }
}
