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

use crate::query;
use crate::routes::{BodyRule, HttpBody, Route, HTTP_BODY};
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

impl FieldBinding {
    /// Whether `other` binds the same field (and the same map entry, if any).
    pub fn same_target(&self, other: &FieldBinding) -> bool {
        self.map_key == other.map_key
            && self.fields.len() == other.fields.len()
            && self.fields.iter().zip(&other.fields).all(|(a, b)| a.full_name() == b.full_name())
    }

    /// Whether the bound field holds one value (a singular field or a map entry), so a second binding replaces it.
    pub fn is_singular(&self) -> bool {
        self.fields.last().is_some_and(|leaf| !leaf.is_list())
    }
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
    query::settable_inside(message)
        || matches!(message.full_name(), "google.protobuf.FieldMask" | "google.protobuf.Value")
}

/// Builds the request message bytes (not yet framed) for a matched route.
///
/// The body is encoded first, then the URL bindings, so a binding is merged
/// after the body (it wins for singular fields, repeated values are appended).
/// Bindings the body already sets are dropped first, as Envoy's transcoder
/// (its `RequestWeaver`) does; see [`weave`].
pub fn build_request(
    route: &Route,
    bindings: &[FieldBinding],
    content_type: Option<&str>,
    body: &[u8],
    options: ParseOptions,
) -> Result<Vec<u8>, Status> {
    let input = &route.method.input;
    let BodyParts { bytes: mut out, parsed } = match &route.body {
        BodyRule::Whole if input.full_name() == HTTP_BODY => {
            BodyParts { bytes: http_body(content_type, body), parsed: None }
        }
        BodyRule::Whole => {
            let (message, json) = parse_json_body(input, body, options)?;
            BodyParts { bytes: message.encode_to_vec(), parsed: Some(ParsedBody { prefix: &[], message, json }) }
        }
        BodyRule::Field(fields) => body_field(fields, content_type, body, options)?,
    };
    if bindings.is_empty() {
        return Ok(out);
    }
    let mut kept = Vec::with_capacity(bindings.len());
    let mut dropped = Vec::new();
    for binding in bindings {
        match parsed.as_ref().map_or(Weave::Keep, |body| weave(body, binding)) {
            Weave::Keep => kept.push(binding.clone()),
            Weave::Drop => dropped.push(binding.clone()),
            Weave::OneofConflict { oneof, set_by_body } => {
                return Err(Status::invalid_argument(format!(
                    "{}: the request body already sets `{set_by_body}` of oneof `{oneof}`, so the URL cannot set another value of it",
                    describe_binding(binding, "").trim_end_matches(": ")
                )))
            }
        }
    }
    if options.reject_binding_body_collisions && !dropped.is_empty() {
        if let Some(body) = &parsed {
            let bound = bindings_to_message(input, &dropped, options)?;
            check_collisions(body.prefix, &body.message, &bound, &dropped)?;
        }
    }
    if !kept.is_empty() {
        let bound = bindings_to_message(input, &kept, options)?;
        bound.encode(&mut out).map_err(|e| Status::internal(format!("could not encode the request: {e}")))?;
    }
    Ok(out)
}

/// The encoded body and, for a JSON body, what it set.
struct BodyParts<'a> {
    bytes: Vec<u8>,
    parsed: Option<ParsedBody<'a>>,
}

/// A JSON body: where it sits in the request message and what it holds.
struct ParsedBody<'a> {
    /// The fields the body is nested in (`body: "a.b"`), empty for `body: "*"`.
    prefix: &'a [FieldDescriptor],
    /// The body as parsed, relative to `prefix`.
    message: DynamicMessage,
    /// The body's JSON, keys as the client wrote them (unknown ones dropped).
    json: Json,
}

/// What happens to a URL binding given the JSON body.
#[derive(Debug, PartialEq, Eq)]
enum Weave {
    /// Merged after the body.
    Keep,
    /// The body sets the field: the body's value stands.
    Drop,
    /// The binding would set a oneof the body already set.
    OneofConflict { oneof: String, set_by_body: String },
}

/// Envoy's rule for a binding whose field the body may also set (its
/// `RequestWeaver`): the binding is dropped when the body holds the field under
/// its proto name (`int32_value`, following objects by proto names too) with a
/// non-null value and the field is not repeated; otherwise it is merged after
/// the body, and it is an error for it to set a oneof (real or the synthetic
/// one of a proto3 `optional`) the body already set under any spelling. A body
/// key in JSON-name spelling (`int32Value`) therefore does not stop the binding.
fn weave(body: &ParsedBody<'_>, binding: &FieldBinding) -> Weave {
    let json = &body.json;
    if binding.map_key.is_some() || binding.fields.len() <= body.prefix.len() {
        return Weave::Keep;
    }
    let inside = binding.fields.iter().zip(body.prefix).all(|(a, b)| a.full_name() == b.full_name());
    if !inside {
        return Weave::Keep;
    }
    let Json::Object(object) = json else { return Weave::Keep };
    let mut object: &Map<String, Json> = object;
    let relative = &binding.fields[body.prefix.len()..];
    for (i, field) in relative.iter().enumerate() {
        let entry = object.get(field.name()).filter(|v| !v.is_null());
        let last = i + 1 == relative.len();
        match entry {
            Some(Json::Object(next)) if !last => {
                object = next;
                continue;
            }
            Some(_) if last && !field.is_list() => return Weave::Drop,
            _ => {}
        }
        // The binding creates `field` at this level of the body.
        if let Some(oneof) = field.containing_oneof() {
            for member in oneof.fields() {
                let set = [member.name(), member.json_name()]
                    .iter()
                    .any(|key| object.get(*key).is_some_and(|v| !v.is_null()));
                if set {
                    return Weave::OneofConflict {
                        oneof: oneof.name().to_string(),
                        set_by_body: member.name().to_string(),
                    };
                }
            }
        }
        return Weave::Keep;
    }
    Weave::Keep
}

fn body_field<'a>(
    fields: &'a [FieldDescriptor],
    content_type: Option<&str>,
    body: &[u8],
    options: ParseOptions,
) -> Result<BodyParts<'a>, Status> {
    let Some((leaf, parents)) = fields.split_last() else {
        return Ok(BodyParts { bytes: Vec::new(), parsed: None });
    };
    match leaf.kind() {
        Kind::Message(m) if !leaf.is_list() && !leaf.is_map() => {
            if m.full_name() == HTTP_BODY {
                return Ok(BodyParts { bytes: wrap_in_fields(fields, http_body(content_type, body)), parsed: None });
            }
            // An empty body sets the field to an empty message, as Envoy does.
            let (message, json) = parse_json_body(&m, body, options)?;
            Ok(BodyParts {
                bytes: wrap_in_fields(fields, message.encode_to_vec()),
                parsed: Some(ParsedBody { prefix: fields, message, json }),
            })
        }
        _ => {
            // A scalar, repeated or map body field: read it as the JSON value of
            // that field inside its parent message.
            if body.is_empty() {
                return Ok(BodyParts { bytes: Vec::new(), parsed: None });
            }
            let value: Json = serde_json::from_slice(body)
                .map_err(|e| Status::invalid_argument(format!("the request body is not valid JSON: {e}")))?;
            let mut by_proto_name = Map::new();
            by_proto_name.insert(leaf.name().to_string(), value);
            let mut json = Json::Object(by_proto_name);
            let parent = leaf.parent_message().clone();
            conform(&parent, &mut json, options, "")
                .map_err(|e| Status::invalid_argument(format!("invalid request body: {e}")))?;
            let message = value_to_message(&parent, &json, options, |path, e| {
                format!("invalid request body: {}{e}", field_prefix(path))
            })?;
            Ok(BodyParts {
                bytes: wrap_in_fields(parents, message.encode_to_vec()),
                parsed: Some(ParsedBody { prefix: parents, message, json }),
            })
        }
    }
}

fn http_body(content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    HttpBody { content_type: content_type.unwrap_or_default().to_string(), data: body.to_vec(), extensions: Vec::new() }
        .encode_to_vec()
}

/// Strict: [`conform`] has already dropped the unknown keys Envoy ignores, so
/// what is left unknown (an enum name) is an error, as in Envoy.
const DESERIALIZE: DeserializeOptions = DeserializeOptions::new().deny_unknown_fields(true);

fn field_prefix(path: &str) -> String {
    // serde_path_to_error writes "." for the root and "?" where the key itself is broken.
    if path.is_empty() || path == "." || path == "?" {
        String::new()
    } else {
        format!("field `{path}`: ")
    }
}

/// Parses a JSON object body into a message of the given type. Only an empty
/// body is an empty message: whitespace alone is not JSON, as for Envoy.
pub fn json_to_message(desc: &MessageDescriptor, body: &[u8], options: ParseOptions) -> Result<DynamicMessage, Status> {
    parse_json_body(desc, body, options).map(|(message, _)| message)
}

/// [`json_to_message`], also returning the body's JSON (unknown keys dropped).
fn parse_json_body(
    desc: &MessageDescriptor,
    body: &[u8],
    options: ParseOptions,
) -> Result<(DynamicMessage, Json), Status> {
    if body.is_empty() {
        return Ok((DynamicMessage::new(desc.clone()), Json::Object(Map::new())));
    }
    let mut value: Json = serde_json::from_slice(body)
        .map_err(|e| Status::invalid_argument(format!("the request body is not valid JSON: {e}")))?;
    conform(desc, &mut value, options, "")
        .map_err(|e| Status::invalid_argument(format!("invalid request body: {e}")))?;
    let message =
        value_to_message(desc, &value, options, |path, e| format!("invalid request body: {}{e}", field_prefix(path)))?;
    Ok((message, value))
}

fn value_to_message(
    desc: &MessageDescriptor,
    value: &Json,
    _options: ParseOptions,
    describe: impl Fn(&str, &dyn std::fmt::Display) -> String,
) -> Result<DynamicMessage, Status> {
    let mut track = serde_path_to_error::Track::new();
    let result = DynamicMessage::deserialize_with_options(
        desc.clone(),
        serde_path_to_error::Deserializer::new(value, &mut track),
        &DESERIALIZE,
    );
    result.map_err(|e| {
        // prost-reflect reads Struct/Value/Any by way of protobuf, whose decoder stops at 100 levels.
        let e = e.to_string();
        let e = if e.contains("recursion limit reached") {
            "the value nests deeper than protobuf's limit of 100 message levels (a Struct level counts twice)".into()
        } else {
            e
        };
        Status::invalid_argument(describe(&track.path().to_string(), &e))
    })
}

/// Brings a parsed JSON body in line with what Envoy's transcoder accepts
/// before the strict proto3 JSON parser reads it: keys that name no field are
/// dropped (Envoy ignores unknown fields; unknown enum names still fail), with
/// `case_insensitive_enum_parsing` enum names get their declared spelling, and
/// the strings protobuf refuses where the parser here would not (`"nan"`,
/// `"1e400"` for a double, a timestamp with more than nine fractional digits)
/// are refused. Well-known types with their own JSON form are left as they are.
/// `path` names the value in error messages.
fn conform(desc: &MessageDescriptor, value: &mut Json, options: ParseOptions, path: &str) -> Result<(), String> {
    match desc.full_name() {
        "google.protobuf.DoubleValue" => return conform_float(value, false, path),
        "google.protobuf.FloatValue" => return conform_float(value, true, path),
        "google.protobuf.Timestamp" => return conform_timestamp(value, path),
        "google.protobuf.Empty" => {}
        name if name.starts_with("google.protobuf.") => return Ok(()),
        _ => {}
    }
    let Json::Object(object) = value else { return Ok(()) };
    object.retain(|key, _| desc.get_field_by_json_name(key).or_else(|| desc.get_field_by_name(key)).is_some());
    for (key, item) in object.iter_mut() {
        let Some(field) = desc.get_field_by_json_name(key).or_else(|| desc.get_field_by_name(key)) else {
            continue;
        };
        let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        if field.is_map() {
            if let (Kind::Message(entry), Json::Object(entries)) = (field.kind(), &mut *item) {
                let value_field = entry.map_entry_value_field();
                for (k, v) in entries.iter_mut() {
                    conform_value(&value_field.kind(), v, options, &format!("{here}[{k}]"))?;
                }
            }
        } else if let Json::Array(items) = item {
            for (i, v) in items.iter_mut().enumerate() {
                conform_value(&field.kind(), v, options, &format!("{here}[{i}]"))?;
            }
        } else {
            conform_value(&field.kind(), item, options, &here)?;
        }
    }
    Ok(())
}

fn conform_value(kind: &Kind, value: &mut Json, options: ParseOptions, path: &str) -> Result<(), String> {
    match (kind, value) {
        (Kind::Enum(e), Json::String(name))
            if options.case_insensitive_enums && e.get_value_by_name(name).is_none() =>
        {
            if let Some(v) = e.values().find(|v| v.name().eq_ignore_ascii_case(name)) {
                *name = v.name().to_string();
            }
            Ok(())
        }
        (Kind::Double, v) => conform_float(v, false, path),
        (Kind::Float, v) => conform_float(v, true, path),
        (Kind::Message(m), v) => conform(m, v, options, path),
        _ => Ok(()),
    }
}

/// A float given as a JSON string must read as protobuf reads it (see
/// [`url_float_json`]); valid ones become numbers (hexadecimal included).
fn conform_float(value: &mut Json, float: bool, path: &str) -> Result<(), String> {
    if let Json::String(text) = value {
        *value = url_float_json(text, float).map_err(|e| format!("field `{path}`: {e}"))?;
    }
    Ok(())
}

/// protobuf refuses timestamps with more than nine fractional digits (the
/// parser here would cut them to nanoseconds).
fn conform_timestamp(value: &Json, path: &str) -> Result<(), String> {
    if let Json::String(text) = value {
        if let Some((_, fraction)) = text.split_once('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 9 {
                return Err(format!(
                    "field `{path}`: {text:?} has {digits} fractional digits; a timestamp has at most 9 (nanoseconds)"
                ));
            }
        }
    }
    Ok(())
}

fn bindings_to_message(
    input: &MessageDescriptor,
    bindings: &[FieldBinding],
    options: ParseOptions,
) -> Result<DynamicMessage, Status> {
    let mut root = Map::new();
    for binding in bindings.iter().filter(|b| !query::is_direct(b)) {
        insert_binding(&mut root, binding, options)
            .map_err(|reason| Status::invalid_argument(describe_binding(binding, &reason)))?;
    }
    let mut message = value_to_message(input, &Json::Object(root), options, |path, e| {
        // Name the binding the failing field came from, with its value.
        let culprit = bindings.iter().find(|b| {
            let json_path: Vec<&str> = b.fields.iter().map(|f| f.json_name()).collect();
            let json_path = json_path.join(".");
            path == json_path
                || path.starts_with(&format!("{json_path}."))
                || path.starts_with(&format!("{json_path}["))
        });
        match culprit {
            Some(binding) => describe_binding(binding, &e.to_string()),
            None => format!("invalid value in the URL: {}{e}", field_prefix(path)),
        }
    })?;
    for binding in bindings.iter().filter(|b| query::is_direct(b)) {
        query::apply_direct(&mut message, binding)
            .map_err(|reason| Status::invalid_argument(describe_binding(binding, &reason)))?;
    }
    Ok(message)
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
        (None, true) => {
            Err(format!("field `{}` is a map: set its entries as `{}[key]=value`", leaf.name(), binding.name))
        }
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
        Kind::Bool => Json::Bool(
            parse_bool(raw).ok_or_else(|| format!("{raw:?} is not a boolean (true/false, t/f, yes/no, y/n or 1/0)"))?,
        ),
        Kind::Enum(e) => match raw.parse::<i32>() {
            // In a URL only declared numbers are accepted, as in Envoy (a body
            // may carry any number: proto3 enums are open).
            Ok(n) if e.get_value(n).is_some() => Json::from(n),
            Ok(n) => return Err(format!("{n} is not a number of enum {}", e.full_name())),
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
        Kind::Message(m) if m.full_name() == "google.protobuf.BoolValue" => Json::Bool(
            parse_bool(raw).ok_or_else(|| format!("{raw:?} is not a boolean (true/false, t/f, yes/no, y/n or 1/0)"))?,
        ),
        Kind::Message(m) if m.full_name() == "google.protobuf.DoubleValue" => url_float_json(raw, false)?,
        Kind::Message(m) if m.full_name() == "google.protobuf.FloatValue" => url_float_json(raw, true)?,
        // grpc-gateway reads these parameters as JSON (Envoy refuses a Struct or
        // ListValue and makes a Value a string); a Value that is not JSON stays a string.
        Kind::Message(m) if m.full_name() == "google.protobuf.Struct" => match serde_json::from_str(raw) {
            Ok(object @ Json::Object(_)) => object,
            _ => return Err(format!("{raw:?} is not a JSON object, which a google.protobuf.Struct is")),
        },
        Kind::Message(m) if m.full_name() == "google.protobuf.ListValue" => match serde_json::from_str(raw) {
            Ok(list @ Json::Array(_)) => list,
            _ => return Err(format!("{raw:?} is not a JSON array, which a google.protobuf.ListValue is")),
        },
        Kind::Message(m) if m.full_name() == "google.protobuf.Value" => {
            serde_json::from_str(raw).unwrap_or_else(|_| Json::String(raw.to_string()))
        }
        Kind::Message(m) if !is_scalar_like(m) => {
            return Err(format!(
                "the field is a message ({}); set its fields instead, as `name.field=value`",
                m.full_name()
            ))
        }
        // Integers, strings, bytes (base64) and the scalar-like well-known types
        // all accept a JSON string in proto3 JSON.
        _ => Json::String(raw.to_string()),
    })
}

/// Booleans as Envoy's transcoding library reads them from URLs
/// (`absl::SimpleAtob`): true/t/yes/y/1 and false/f/no/n/0, in any letter case.
pub(crate) fn parse_bool(raw: &str) -> Option<bool> {
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
    let value = url_float(raw, float)?;
    serde_json::Number::from_f64(value).map(Json::Number).ok_or_else(|| format!("{raw:?} is not a finite number"))
}

/// [`url_float_json`]'s number (`NaN` and the infinities included).
pub(crate) fn url_float(raw: &str, float: bool) -> Result<f64, String> {
    match raw {
        "NaN" => return Ok(f64::NAN),
        "Infinity" => return Ok(f64::INFINITY),
        "-Infinity" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let value = parse_strtod(raw).ok_or_else(|| format!("{raw:?} is not a number"))?;
    let type_name = if float { "float" } else { "double" };
    if !value.is_finite() || (float && value.abs() > f64::from(f32::MAX)) {
        return Err(format!("{raw:?} is not a finite {type_name} (use NaN, Infinity or -Infinity for those values)"));
    }
    Ok(value)
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
