//! `rgp openapi`: an OpenAPI 3.0 document of the REST surface the filter serves.

use std::collections::BTreeMap;
use std::path::Path;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use transcoder::path_template::{PathTemplate, Segment};
use transcoder::routes::{resolve_field_path, HTTP_BODY};
use transcoder::surface::{self, Binding, Body};
use transcoder::TranscoderConfig;

use crate::load;
use crate::Failure;

const STATUS: &str = "google.rpc.Status";

pub fn run(
    set_path: &Path,
    services: &[String],
    title: Option<&str>,
    proto_names: bool,
    out: &Path,
) -> Result<(), Failure> {
    let set = match load::load_set(set_path)? {
        Ok(set) => set,
        Err(problems) => {
            load::report(&problems);
            return Err(Failure::Problems);
        }
    };
    let analysis = surface::analyze(&set.pool, services, &TranscoderConfig::default());
    if !analysis.problems.is_empty() {
        load::report(&analysis.problems);
        eprintln!(
            "{}: {} problem(s); no document written (rgp check shows them)",
            set_path.display(),
            analysis.problems.len()
        );
        return Err(Failure::Problems);
    }
    let services = if services.is_empty() { surface::all_services(&set.pool) } else { services.to_vec() };
    let sha: String = Sha256::digest(&set.bytes).iter().map(|b| format!("{b:02x}")).collect();
    let mut doc = Document { proto_names, schemas: BTreeMap::new(), pending: Vec::new() };
    let document = doc.build(&analysis.bindings, &services, title, &sha[..12]);
    let mut text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
    text.push('\n');
    if out.as_os_str() == "-" {
        print!("{text}");
    } else {
        load::write(out, text.as_bytes())?;
    }
    Ok(())
}

struct Document {
    proto_names: bool,
    /// Component schemas by name.
    schemas: BTreeMap<String, Value>,
    /// Messages and enums referenced but not yet written.
    pending: Vec<Kind>,
}

impl Document {
    fn build(&mut self, bindings: &[Binding], services: &[String], title: Option<&str>, version: &str) -> Value {
        let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        let mut operation_ids: BTreeMap<String, usize> = BTreeMap::new();
        for b in bindings.iter().filter(|b| b.usable) {
            let method = b.http_method.to_ascii_lowercase();
            if !matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch") {
                eprintln!(
                    "note: {} {} -> {}: OpenAPI 3.0 has no {} operations; left out",
                    b.http_method,
                    b.template,
                    b.full_method(),
                    b.http_method
                );
                continue;
            }
            let Some(path) = openapi_path(&b.template) else {
                eprintln!(
                    "note: {} {} -> {}: a wildcard outside a variable cannot be written as an OpenAPI path; left out",
                    b.http_method,
                    b.template,
                    b.full_method()
                );
                continue;
            };
            let entry = paths.entry(path.clone()).or_default();
            if entry.contains_key(&method) {
                eprintln!(
                    "note: {} {} -> {}: OpenAPI path {path} already has a {method} operation; left out",
                    b.http_method,
                    b.template,
                    b.full_method()
                );
                continue;
            }
            let base = format!("{}_{}", b.service.replace('.', "_"), b.method);
            let n = operation_ids.entry(base.clone()).or_insert(0);
            let id = if *n == 0 { base } else { format!("{base}_{n}") };
            *n += 1;
            let operation = self.operation(b, id);
            entry.insert(method, operation);
        }
        self.schemas.entry(STATUS.into()).or_insert_with(status_schema);
        while let Some(kind) = self.pending.pop() {
            self.component(&kind);
        }
        json!({
            "openapi": "3.0.3",
            "info": {
                "title": title.map(str::to_string).unwrap_or_else(|| format!("REST API of {}", services.join(", "))),
                "description": "JSON/REST surface served by the rust-grpc-proxy filter (google.api.http bindings), written by rgp openapi.",
                "version": version,
            },
            "tags": services.iter().map(|s| json!({"name": s})).collect::<Vec<_>>(),
            "paths": paths,
            "components": { "schemas": self.schemas },
        })
    }

    fn operation(&mut self, b: &Binding, id: String) -> Value {
        let mut parameters = Vec::new();
        let mut bound: Vec<String> = Vec::new();
        for variable in &b.variables {
            let name = variable.join(".");
            let fields = b.variable_fields(variable);
            let schema = fields.last().map(|f| self.single_schema(f)).unwrap_or_else(|| json!({"type": "string"}));
            let mut p = json!({"name": name, "in": "path", "required": true, "schema": schema});
            if let Some(pattern) = variable_pattern(&b.template, &name) {
                p["description"] = json!(format!(
                    "Matches the path pattern `{pattern}`; its slashes are sent as they are, not percent-encoded."
                ));
            }
            parameters.push(p);
            bound.push(name);
        }
        let body_field = match &b.body {
            Body::Field(f) => Some(f.clone()),
            _ => None,
        };
        if b.body != Body::Whole {
            let mut query = Vec::new();
            self.query_params(&b.input, "", &bound, body_field.as_deref(), &mut query, 0);
            parameters.extend(query);
        }
        let mut op = json!({
            "operationId": id,
            "tags": [b.service],
            "summary": format!("{} (gRPC {})", b.method, b.full_method()),
        });
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        match &b.body {
            Body::None => {}
            Body::Whole => op["requestBody"] = self.body_for_message(&b.input),
            Body::Field(path) => {
                let names: Vec<&str> = path.split('.').collect();
                if let Some(f) = resolve_field_path(&b.input, &names).ok().and_then(|f| f.last().cloned()) {
                    op["requestBody"] = match f.kind() {
                        Kind::Message(m) if m.full_name() == HTTP_BODY && !f.is_list() => raw_body(),
                        _ => {
                            json!({"required": true, "content": {"application/json": {"schema": self.field_schema(&f)}}})
                        }
                    };
                }
            }
        }
        let ok = match &b.response_body {
            Some(path) => {
                let names: Vec<&str> = path.split('.').collect();
                match resolve_field_path(&b.output, &names).ok().and_then(|f| f.last().cloned()) {
                    Some(f) => match f.kind() {
                        Kind::Message(m) if m.full_name() == HTTP_BODY && !f.is_list() => raw_response(),
                        _ => {
                            json!({"description": "OK", "content": {"application/json": {"schema": self.field_schema(&f)}}})
                        }
                    },
                    None => json!({"description": "OK"}),
                }
            }
            None if b.output.full_name() == HTTP_BODY => raw_response(),
            None => {
                let mut schema = self.message_schema(&b.output);
                if b.server_streaming {
                    schema = json!({"type": "array", "items": schema, "description": "The stream's messages, as one JSON array."});
                }
                json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
            }
        };
        op["responses"] = json!({
            "200": ok,
            "default": {
                "description": "An error, as a google.rpc.Status (convert_grpc_status, or an error found by the filter).",
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{STATUS}")}}}
            }
        });
        op
    }

    fn body_for_message(&mut self, message: &MessageDescriptor) -> Value {
        if message.full_name() == HTTP_BODY {
            return raw_body();
        }
        json!({"required": true, "content": {"application/json": {"schema": self.message_schema(message)}}})
    }

    /// Query parameters: fields not bound by the path nor the body, by proto name, dotted into messages.
    fn query_params(
        &mut self,
        message: &MessageDescriptor,
        prefix: &str,
        bound: &[String],
        body: Option<&str>,
        out: &mut Vec<Value>,
        depth: usize,
    ) {
        for f in surface::json_fields(message) {
            let name = format!("{prefix}{}", f.name());
            let json_name = format!("{prefix}{}", f.json_name());
            if bound.contains(&name)
                || bound.contains(&json_name)
                || body == Some(name.as_str())
                || body == Some(json_name.as_str())
            {
                continue;
            }
            if f.is_map() {
                continue; // `?labels[key]=v` has no OpenAPI 3.0 form.
            }
            match f.kind() {
                // The filter reads these parameters as JSON (`?struct_value={"a":1}`), as grpc-gateway does.
                Kind::Message(m) if is_json_valued(&m) => {
                    if !f.is_list() {
                        let schema = self.field_schema(&f);
                        out.push(
                            json!({"name": name, "in": "query", "content": {"application/json": {"schema": schema}}}),
                        );
                    }
                }
                Kind::Message(m) if m.full_name() == "google.protobuf.FieldMask" => {
                    let schema = json!({
                        "type": "string",
                        "description": "Comma-separated field paths, in proto (snake_case) or lowerCamelCase names.",
                        "example": "title,author.name"
                    });
                    out.push(json!({"name": name, "in": "query", "schema": schema}));
                }
                // No query form: set them in a body.
                Kind::Message(m) if matches!(m.full_name(), "google.protobuf.Any" | "google.protobuf.Empty") => {}
                Kind::Message(m) if !is_scalar_wkt(&m) => {
                    // Singular messages only (repeated ones have no query form), and not endlessly into recursive types.
                    if !f.is_list() && depth < 3 {
                        self.query_params(&m, &format!("{name}."), bound, body, out, depth + 1);
                    }
                }
                _ => {
                    let schema = self.field_schema(&f);
                    let mut p = json!({"name": name, "in": "query", "schema": schema});
                    if f.is_list() {
                        p["style"] = json!("form");
                        p["explode"] = json!(true);
                    }
                    out.push(p);
                }
            }
        }
    }

    /// The schema of a field's value, repeated and map included.
    fn field_schema(&mut self, f: &FieldDescriptor) -> Value {
        if f.is_map() {
            if let Kind::Message(entry) = f.kind() {
                let value = entry.map_entry_value_field();
                return json!({"type": "object", "additionalProperties": self.single_schema(&value)});
            }
        }
        let single = self.single_schema(f);
        if f.is_list() {
            json!({"type": "array", "items": single})
        } else {
            single
        }
    }

    /// The schema of one value of a field's kind.
    fn single_schema(&mut self, f: &FieldDescriptor) -> Value {
        self.kind_schema(&f.kind())
    }

    fn kind_schema(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double => json!({"type": "number", "format": "double"}),
            Kind::Float => json!({"type": "number", "format": "float"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({"type": "integer", "format": "int32"}),
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295u64})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({"type": "string", "format": "int64"}),
            Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "format": "uint64"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "format": "byte"}),
            Kind::Enum(e) => {
                self.pending.push(kind.clone());
                json!({"$ref": format!("#/components/schemas/{}", e.full_name())})
            }
            Kind::Message(m) => self.message_schema(m),
        }
    }

    /// A reference to a message's component, or the inline JSON form of a well-known type.
    fn message_schema(&mut self, m: &MessageDescriptor) -> Value {
        if let Some(wkt) = wkt_schema(m) {
            return wkt;
        }
        if !self.schemas.contains_key(m.full_name()) {
            self.pending.push(Kind::Message(m.clone()));
        }
        json!({"$ref": format!("#/components/schemas/{}", m.full_name())})
    }

    fn component(&mut self, kind: &Kind) {
        match kind {
            Kind::Enum(e) => {
                if self.schemas.contains_key(e.full_name()) {
                    return;
                }
                let names: Vec<String> = e.values().map(|v| v.name().to_string()).collect();
                self.schemas.insert(
                    e.full_name().to_string(),
                    json!({"type": "string", "enum": names, "description": format!("Enum {} (the filter also accepts the numbers).", e.full_name())}),
                );
            }
            Kind::Message(m) => {
                if self.schemas.contains_key(m.full_name()) {
                    return;
                }
                // Placeholder first, so recursive messages terminate.
                self.schemas.insert(m.full_name().to_string(), Value::Null);
                let mut properties = Map::new();
                for f in surface::json_fields(m) {
                    let name = if self.proto_names { f.name().to_string() } else { f.json_name().to_string() };
                    properties.insert(name, self.field_schema(&f));
                }
                let mut schema = json!({"type": "object", "properties": properties});
                schema["description"] = json!(format!("Message {}.", m.full_name()));
                self.schemas.insert(m.full_name().to_string(), schema);
            }
            _ => {}
        }
    }
}

/// `/v1/{name=shelves/*/books/*}:archive` -> `/v1/{name}:archive`; None for bare wildcards.
fn openapi_path(template: &str) -> Option<String> {
    let t = PathTemplate::parse(template).ok()?;
    let mut parts = Vec::new();
    let mut i = 0;
    while i < t.segments.len() {
        if let Some(v) = t.variables.iter().find(|v| v.start_segment == i) {
            parts.push(format!("{{{}}}", v.field_path.join(".")));
            i = v.end_segment.max(i + 1);
            continue;
        }
        match &t.segments[i] {
            Segment::Literal(l) => parts.push(l.clone()),
            _ => return None,
        }
        i += 1;
    }
    let verb = t.verb.map(|v| format!(":{v}")).unwrap_or_default();
    Some(format!("/{}{verb}", parts.join("/")))
}

/// The pattern of `{name=pattern}` when it is not a single `*`.
fn variable_pattern(template: &str, name: &str) -> Option<String> {
    let start = template.find(&format!("{{{name}="))? + name.len() + 2;
    let end = start + template[start..].find('}')?;
    let pattern = &template[start..end];
    (pattern != "*").then(|| pattern.to_string())
}

/// Well-known types whose query parameter is a JSON document.
fn is_json_valued(m: &MessageDescriptor) -> bool {
    matches!(m.full_name(), "google.protobuf.Struct" | "google.protobuf.Value" | "google.protobuf.ListValue")
}

fn is_scalar_wkt(m: &MessageDescriptor) -> bool {
    transcoder::request::is_scalar_like(m)
}

/// JSON forms of the well-known types (proto3 JSON mapping).
fn wkt_schema(m: &MessageDescriptor) -> Option<Value> {
    let nullable = |t: Value| {
        let mut t = t;
        t["nullable"] = json!(true);
        t
    };
    Some(match m.full_name() {
        "google.protobuf.Timestamp" => {
            json!({"type": "string", "format": "date-time", "example": "1972-01-01T10:00:20.021Z"})
        }
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$", "example": "1.5s"})
        }
        "google.protobuf.FieldMask" => {
            json!({"type": "string", "description": "Comma-separated field paths (lowerCamelCase).", "example": "title,author.name"})
        }
        "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
        "google.protobuf.Value" => json!({"nullable": true, "description": "Any JSON value."}),
        "google.protobuf.ListValue" => json!({"type": "array", "items": {}}),
        "google.protobuf.Empty" => json!({"type": "object", "additionalProperties": false}),
        "google.protobuf.Any" => json!({
            "type": "object",
            "required": ["@type"],
            "properties": {"@type": {"type": "string", "description": "type.googleapis.com/<full message name>"}},
            "additionalProperties": true
        }),
        "google.protobuf.DoubleValue" => nullable(json!({"type": "number", "format": "double"})),
        "google.protobuf.FloatValue" => nullable(json!({"type": "number", "format": "float"})),
        "google.protobuf.Int64Value" => nullable(json!({"type": "string", "format": "int64"})),
        "google.protobuf.UInt64Value" => nullable(json!({"type": "string", "format": "uint64"})),
        "google.protobuf.Int32Value" => nullable(json!({"type": "integer", "format": "int32"})),
        "google.protobuf.UInt32Value" => {
            nullable(json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295u64}))
        }
        "google.protobuf.BoolValue" => nullable(json!({"type": "boolean"})),
        "google.protobuf.StringValue" => nullable(json!({"type": "string"})),
        "google.protobuf.BytesValue" => nullable(json!({"type": "string", "format": "byte"})),
        _ => return None,
    })
}

/// The error body: google.rpc.Status in its JSON form, details as Any.
fn status_schema() -> Value {
    json!({
        "type": "object",
        "description": "google.rpc.Status: the error body of the filter (and of the backend with convert_grpc_status).",
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "gRPC status code."},
            "message": {"type": "string"},
            "details": {"type": "array", "items": wkt_schema_any()}
        }
    })
}

fn wkt_schema_any() -> Value {
    json!({
        "type": "object",
        "required": ["@type"],
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": true
    })
}

fn raw_body() -> Value {
    json!({"required": true, "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}, "description": "The raw body (google.api.HttpBody)."})
}

fn raw_response() -> Value {
    json!({"description": "The raw body (google.api.HttpBody), with its own content type.", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}})
}
