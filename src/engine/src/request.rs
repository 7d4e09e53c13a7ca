//! Request translation: path variables, query parameters and the JSON body
//! become one protobuf request message.
//!
//! The body and the bindings are encoded separately and concatenated, which
//! protobuf defines as merging: bindings come last, so they win over the body
//! for singular fields, as in Envoy's transcoder.

use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use serde_json::{Map, Value as Json};

use crate::routes::{resolve_query_field_path, BodyRule, HttpBody, Route, HTTP_BODY};
use crate::status::Status;

/// Where a binding came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A path template variable.
    Path,
    /// A query parameter.
    Query,
}

/// One value bound to a request field from the URL.
#[derive(Debug, Clone)]
pub struct FieldBinding {
    /// The field, resolved from the request type down.
    pub fields: Vec<FieldDescriptor>,
    /// For `m[key]=value` on a map field, the key.
    pub map_key: Option<String>,
    /// The decoded value.
    pub value: String,
    /// Path variable or query parameter.
    pub source: Source,
    /// The name as the client wrote it.
    pub name: String,
}

/// What a query parameter turned out to be.
#[derive(Debug)]
pub enum QueryParam {
    /// It binds to a field.
    Bound(FieldBinding),
    /// It names no field of the request message.
    Unknown {
        /// The parameter's name.
        name: String,
        /// Why it does not resolve.
        reason: String,
    },
}

/// How request JSON is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// Accept enum names in any letter case.
    pub case_insensitive_enums: bool,
    /// Refuse bindings that contradict the body.
    pub reject_binding_body_collisions: bool,
}

/// Well-known messages a single URL string can set (their JSON form is a scalar).
pub fn is_scalar_like(message: &MessageDescriptor) -> bool {
    matches!(
        message.full_name(),
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
            | "google.protobuf.Value"
    )
}

/// Resolves one decoded query parameter (`a.b`, `a.b[key]`) against the request type.
pub fn resolve_query_param(input: &MessageDescriptor, name: String, value: String) -> QueryParam {
    let (path, map_key) = match name.split_once('[') {
        Some((path, rest)) if rest.ends_with(']') => (path, Some(rest[..rest.len() - 1].to_string())),
        _ => (name.as_str(), None),
    };
    let names: Vec<&str> = path.split('.').collect();
    match resolve_query_field_path(input, &names) {
        Ok(fields) => {
            let binding = FieldBinding {
                fields,
                map_key,
                value,
                source: Source::Query,
                name: name.clone(),
            };
            QueryParam::Bound(binding)
        }
        Err(reason) => QueryParam::Unknown { name, reason },
    }
}

/// Builds the request message bytes (not yet framed) for a matched route.
pub fn build_request(
    route: &Route,
    bindings: &[FieldBinding],
    content_type: Option<&str>,
    body: &[u8],
    options: ParseOptions,
) -> Result<Vec<u8>, Status> {
    let input = &route.method.input;
    let (mut out, body_message) = match &route.body {
        BodyRule::None => (Vec::new(), None),
        BodyRule::Whole if input.full_name() == HTTP_BODY => (http_body(content_type, body), None),
        BodyRule::Whole => {
            let message = json_to_message(input, body, options)?;
            (message.encode_to_vec(), Some((&[][..], message)))
        }
        BodyRule::Field(fields) => body_field(fields, content_type, body, options)?,
    };
    if !bindings.is_empty() {
        let bound = bindings_to_message(input, bindings, options)?;
        if options.reject_binding_body_collisions {
            if let Some((prefix, body_message)) = &body_message {
                check_collisions(prefix, body_message, &bound, bindings)?;
            }
        }
        bound.encode(&mut out).map_err(|e| Status::internal(format!("could not encode the request: {e}")))?;
    }
    Ok(out)
}

type BodyParts<'a> = (Vec<u8>, Option<(&'a [FieldDescriptor], DynamicMessage)>);

fn body_field<'a>(
    fields: &'a [FieldDescriptor],
    content_type: Option<&str>,
    body: &[u8],
    options: ParseOptions,
) -> Result<BodyParts<'a>, Status> {
    let Some((leaf, parents)) = fields.split_last() else {
        return Ok((Vec::new(), None));
    };
    match leaf.kind() {
        Kind::Message(m) if !leaf.is_list() && !leaf.is_map() => {
            if m.full_name() != HTTP_BODY && is_blank(body) {
                // No body leaves the field unset rather than set to an empty message.
                return Ok((Vec::new(), None));
            }
            if m.full_name() == HTTP_BODY {
                return Ok((wrap_in_fields(fields, http_body(content_type, body)), None));
            }
            let message = json_to_message(&m, body, options)?;
            Ok((wrap_in_fields(fields, message.encode_to_vec()), Some((fields, message))))
        }
        _ => {
            // A scalar, repeated or map body field: read it as the JSON value of
            // that field inside its parent message.
            if is_blank(body) {
                return Ok((Vec::new(), None));
            }
            let value: Json = serde_json::from_slice(body)
                .map_err(|e| Status::invalid_argument(format!("the request body is not valid JSON: {e}")))?;
            let mut object = Map::new();
            object.insert(leaf.json_name().to_string(), value);
            let parent = leaf.parent_message().clone();
            let message = value_to_message(&parent, Json::Object(object), options, |path, e| {
                format!("invalid request body: {}{e}", field_prefix(path))
            })?;
            Ok((wrap_in_fields(parents, message.encode_to_vec()), Some((parents, message))))
        }
    }
}

fn http_body(content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    HttpBody {
        content_type: content_type.unwrap_or_default().to_string(),
        data: body.to_vec(),
        extensions: Vec::new(),
    }
    .encode_to_vec()
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

const DESERIALIZE: DeserializeOptions = DeserializeOptions::new().deny_unknown_fields(true);

fn field_prefix(path: &str) -> String {
    // serde_path_to_error writes "." for the root and "?" where the key itself is broken.
    if path.is_empty() || path == "." || path == "?" {
        String::new()
    } else {
        format!("field `{path}`: ")
    }
}

/// Parses a JSON object body into a message of the given type.
pub fn json_to_message(desc: &MessageDescriptor, body: &[u8], options: ParseOptions) -> Result<DynamicMessage, Status> {
    if is_blank(body) {
        return Ok(DynamicMessage::new(desc.clone()));
    }
    let describe = |path: &str, e: &dyn std::fmt::Display| format!("invalid request body: {}{e}", field_prefix(path));
    if options.case_insensitive_enums {
        let mut value: Json = serde_json::from_slice(body)
            .map_err(|e| Status::invalid_argument(format!("the request body is not valid JSON: {e}")))?;
        normalize_enum_case(desc, &mut value);
        return value_to_message(desc, value, options, describe);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let result = DynamicMessage::deserialize_with_options(
        desc.clone(),
        serde_path_to_error::Deserializer::new(&mut de, &mut track),
        &DESERIALIZE,
    );
    let message = result.map_err(|e| Status::invalid_argument(describe(&track.path().to_string(), &e)))?;
    de.end()
        .map_err(|e| Status::invalid_argument(format!("invalid request body: trailing characters after the JSON object: {e}")))?;
    Ok(message)
}

fn value_to_message(
    desc: &MessageDescriptor,
    value: Json,
    _options: ParseOptions,
    describe: impl Fn(&str, &dyn std::fmt::Display) -> String,
) -> Result<DynamicMessage, Status> {
    let mut track = serde_path_to_error::Track::new();
    let result = DynamicMessage::deserialize_with_options(
        desc.clone(),
        serde_path_to_error::Deserializer::new(value, &mut track),
        &DESERIALIZE,
    );
    result.map_err(|e| Status::invalid_argument(describe(&track.path().to_string(), &e)))
}

/// Rewrites enum names to their declared spelling where they match ignoring case.
fn normalize_enum_case(desc: &MessageDescriptor, value: &mut Json) {
    let Json::Object(object) = value else { return };
    for (key, item) in object.iter_mut() {
        let Some(field) = desc.get_field_by_json_name(key).or_else(|| desc.get_field_by_name(key)) else {
            continue;
        };
        if field.is_map() {
            if let (Kind::Message(entry), Json::Object(entries)) = (field.kind(), &mut *item) {
                let value_field = entry.map_entry_value_field();
                for v in entries.values_mut() {
                    normalize_value(&value_field.kind(), v);
                }
            }
        } else if let Json::Array(items) = item {
            for v in items {
                normalize_value(&field.kind(), v);
            }
        } else {
            normalize_value(&field.kind(), item);
        }
    }
}

fn normalize_value(kind: &Kind, value: &mut Json) {
    match (kind, value) {
        (Kind::Enum(e), Json::String(name)) if e.get_value_by_name(name).is_none() => {
            if let Some(v) = e.values().find(|v| v.name().eq_ignore_ascii_case(name)) {
                *name = v.name().to_string();
            }
        }
        (Kind::Message(m), v @ Json::Object(_)) => normalize_enum_case(m, v),
        _ => {}
    }
}

fn bindings_to_message(
    input: &MessageDescriptor,
    bindings: &[FieldBinding],
    options: ParseOptions,
) -> Result<DynamicMessage, Status> {
    let mut root = Map::new();
    for binding in bindings {
        insert_binding(&mut root, binding, options).map_err(|reason| Status::invalid_argument(describe_binding(binding, &reason)))?;
    }
    value_to_message(input, Json::Object(root), options, |path, e| {
        // Name the binding the failing field came from, with its value.
        let culprit = bindings.iter().find(|b| {
            let json_path: Vec<&str> = b.fields.iter().map(|f| f.json_name()).collect();
            let json_path = json_path.join(".");
            path == json_path || path.starts_with(&format!("{json_path}.")) || path.starts_with(&format!("{json_path}["))
        });
        match culprit {
            Some(binding) => describe_binding(binding, &e.to_string()),
            None => format!("invalid value in the URL: {}{e}", field_prefix(path)),
        }
    })
}

fn describe_binding(binding: &FieldBinding, reason: &str) -> String {
    match binding.source {
        Source::Path => format!("path variable `{}` = {:?}: {reason}", binding.name, binding.value),
        Source::Query => format!("query parameter `{}` = {:?}: {reason}", binding.name, binding.value),
    }
}

fn insert_binding(root: &mut Map<String, Json>, binding: &FieldBinding, options: ParseOptions) -> Result<(), String> {
    let Some((leaf, parents)) = binding.fields.split_last() else {
        return Err("empty field path".into());
    };
    let mut object = root;
    for field in parents {
        let slot = if field.is_list() {
            // A repeated message on the way (`items.name=x`): the URL builds one
            // element, whose fields later parameters overwrite, as Envoy does.
            let list = object.entry(field.json_name().to_string()).or_insert_with(|| Json::Array(Vec::new()));
            let Json::Array(items) = list else {
                return Err(format!("field `{}` is set twice in different ways", field.name()));
            };
            if items.is_empty() {
                items.push(Json::Object(Map::new()));
            }
            let last = items.len() - 1;
            &mut items[last]
        } else {
            object.entry(field.json_name().to_string()).or_insert_with(|| Json::Object(Map::new()))
        };
        object = match slot {
            Json::Object(o) => o,
            _ => return Err(format!("field `{}` is set twice in different ways", field.name())),
        };
    }
    let key = leaf.json_name().to_string();
    match (&binding.map_key, leaf.is_map()) {
        (Some(map_key), true) => {
            let Kind::Message(entry) = leaf.kind() else {
                return Err("map field without an entry type".into());
            };
            let value = scalar_json(&entry.map_entry_value_field().kind(), &binding.value, options)?;
            let slot = object.entry(key).or_insert_with(|| Json::Object(Map::new()));
            match slot {
                Json::Object(entries) => {
                    entries.insert(map_key.clone(), value);
                    Ok(())
                }
                _ => Err(format!("field `{}` is set twice in different ways", leaf.name())),
            }
        }
        (Some(_), false) => Err(format!("field `{}` is not a map, so `[key]` cannot follow it", leaf.name())),
        (None, true) => Err(format!(
            "field `{}` is a map: set its entries as `{}[key]=value`",
            leaf.name(),
            binding.name
        )),
        (None, false) => {
            let value = scalar_json(&leaf.kind(), &binding.value, options)?;
            if leaf.is_list() {
                let slot = object.entry(key).or_insert_with(|| Json::Array(Vec::new()));
                match slot {
                    Json::Array(items) => items.push(value),
                    other => *other = Json::Array(vec![value]),
                }
            } else {
                object.insert(key, value);
            }
            Ok(())
        }
    }
}

/// The JSON a URL string stands for in a field of this kind, so that the
/// proto3 JSON parser checks and converts it exactly as it would in a body.
fn scalar_json(kind: &Kind, raw: &str, options: ParseOptions) -> Result<Json, String> {
    Ok(match kind {
        Kind::Bool => Json::Bool(parse_bool(raw).ok_or_else(|| format!("{raw:?} is not a boolean (true/false, t/f, yes/no, y/n or 1/0)"))?),
        Kind::Enum(e) => match raw.parse::<i32>() {
            Ok(n) => Json::from(n),
            Err(_) => {
                let by_case = options
                    .case_insensitive_enums
                    .then(|| e.values().find(|v| v.name().eq_ignore_ascii_case(raw)))
                    .flatten();
                match (e.get_value_by_name(raw), by_case) {
                    (Some(v), _) | (None, Some(v)) => Json::String(v.name().to_string()),
                    (None, None) => return Err(format!("{raw:?} is not a value of enum {}", e.full_name())),
                }
            }
        },
        Kind::Double => url_float_json(raw, false)?,
        Kind::Float => url_float_json(raw, true)?,
        Kind::Message(m) if m.full_name() == "google.protobuf.BoolValue" => {
            Json::Bool(parse_bool(raw).ok_or_else(|| format!("{raw:?} is not a boolean (true/false, t/f, yes/no, y/n or 1/0)"))?)
        }
        Kind::Message(m) if m.full_name() == "google.protobuf.DoubleValue" => url_float_json(raw, false)?,
        Kind::Message(m) if m.full_name() == "google.protobuf.FloatValue" => url_float_json(raw, true)?,
        Kind::Message(m) if !is_scalar_like(m) => {
            return Err(format!(
                "the field is a message ({}); set its fields instead, as `name.field=value`",
                m.full_name()
            ))
        }
        // Integers, strings, bytes (base64) and the scalar-like well-known types
        // all accept a JSON string in proto3 JSON; a google.protobuf.Value from
        // the URL is a string value, as in Envoy.
        _ => Json::String(raw.to_string()),
    })
}

/// Booleans as Envoy's transcoding library reads them from URLs
/// (`absl::SimpleAtob`): true/t/yes/y/1 and false/f/no/n/0, in any letter case.
fn parse_bool(raw: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["true", "t", "yes", "y", "1"];
    const FALSE: [&str; 5] = ["false", "f", "no", "n", "0"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(raw)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(raw)) {
        Some(false)
    } else {
        None
    }
}

/// A floating-point URL value as protobuf's converter reads it (`DataPiece::ToDouble`
/// / `ToFloat`): exactly `NaN`, `Infinity` or `-Infinity`, or a number C's
/// `strtod` reads whole (decimal or hexadecimal) that fits the type; `inf`,
/// `nan` and values that overflow are refused.
fn url_float_json(raw: &str, float: bool) -> Result<Json, String> {
    if matches!(raw, "NaN" | "Infinity" | "-Infinity") {
        return Ok(Json::String(raw.to_string()));
    }
    let value = parse_strtod(raw).ok_or_else(|| format!("{raw:?} is not a number"))?;
    let type_name = if float { "float" } else { "double" };
    if !value.is_finite() || (float && value.abs() > f64::from(f32::MAX)) {
        return Err(format!(
            "{raw:?} is not a finite {type_name} (use NaN, Infinity or -Infinity for those values)"
        ));
    }
    serde_json::Number::from_f64(value)
        .map(Json::Number)
        .ok_or_else(|| format!("{raw:?} is not a finite {type_name}"))
}

/// `strtod` over the whole string: decimal via Rust's parser, `0x` hexadecimal
/// floats by hand; no surrounding whitespace.
fn parse_strtod(raw: &str) -> Option<f64> {
    let (negative, unsigned) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    let Some(hex) = unsigned.strip_prefix("0x").or_else(|| unsigned.strip_prefix("0X")) else {
        if raw.starts_with(|c: char| c.is_ascii_whitespace()) || raw.ends_with(|c: char| c.is_ascii_whitespace()) {
            return None;
        }
        return raw.parse::<f64>().ok();
    };
    let (digits, exponent) = match hex.find(['p', 'P']) {
        Some(i) => (&hex[..i], hex[i + 1..].parse::<i32>().ok()?),
        None => (hex, 0),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut mantissa = 0f64;
    for c in int_part.chars() {
        mantissa = mantissa * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        mantissa += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let value = mantissa * 2f64.powi(exponent);
    Some(if negative { -value } else { value })
}

/// Encodes `inner` as the value of the nested message fields `path`.
fn wrap_in_fields(path: &[FieldDescriptor], mut inner: Vec<u8>) -> Vec<u8> {
    for field in path.iter().rev() {
        let mut out = Vec::with_capacity(inner.len() + 12);
        encode_key(field.number(), WireType::LengthDelimited, &mut out);
        encode_varint(inner.len() as u64, &mut out);
        out.extend_from_slice(&inner);
        inner = out;
    }
    inner
}

fn check_collisions(
    body_prefix: &[FieldDescriptor],
    body: &DynamicMessage,
    bound: &DynamicMessage,
    bindings: &[FieldBinding],
) -> Result<(), Status> {
    for binding in bindings {
        let inside_body = binding.fields.len() > body_prefix.len()
            && binding.fields.iter().zip(body_prefix).all(|(a, b)| a.full_name() == b.full_name());
        if !inside_body {
            continue;
        }
        let in_body = field_value(body, &binding.fields[body_prefix.len()..]);
        let in_url = field_value(bound, &binding.fields);
        if let (Some(a), Some(b)) = (in_body, in_url) {
            if a != b {
                return Err(Status::invalid_argument(format!(
                    "{} conflicts with the value the request body gives the same field",
                    describe_binding(binding, "").trim_end_matches(": ")
                )));
            }
        }
    }
    Ok(())
}

fn field_value(message: &DynamicMessage, path: &[FieldDescriptor]) -> Option<Value> {
    let (leaf, parents) = path.split_last()?;
    let mut current = message.clone();
    for field in parents {
        if !current.has_field(field) {
            return None;
        }
        current = current.get_field(field).as_message()?.clone();
    }
    current.has_field(leaf).then(|| current.get_field(leaf).into_owned())
}
