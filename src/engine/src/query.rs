//! Query parameters: which field a name binds to, and the values that cannot
//! travel through the proto3 JSON form.
//!
//! Names follow Envoy's transcoder (proto or JSON field names, dotted paths,
//! through repeated messages) and grpc-gateway (`map[key]=value`). A name that
//! matches no field is unknown (passed on, ignored or refused by
//! configuration); a name whose path runs through a scalar, an enum, a map or
//! a repeated well-known type is a client mistake, refused whatever the
//! configuration, as grpc-gateway refuses it.
//!
//! Most bindings become JSON and are read with the body's parser
//! (`request::bindings_to_message`). Two kinds cannot: a `FieldMask`, whose
//! paths Envoy keeps in proto spelling (`float_value`) where its JSON form
//! needs camelCase, and a field inside a well-known type whose JSON form is a
//! single value (`timestamp.seconds=5`, `int32_wrapper.value=3`), which Envoy
//! accepts. Those are set on the decoded message by [`apply_direct`].

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

use crate::request::{FieldBinding, Source};

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
    /// Its path runs through a field nothing can go inside: always a 400.
    Invalid {
        /// The parameter's name.
        name: String,
        /// What is wrong, in the parameter's own spelling.
        reason: String,
    },
}

/// Well-known types whose own fields a parameter may set one by one (Envoy
/// does), and whose JSON form is a single value: Timestamp, Duration, the wrappers.
pub(crate) fn settable_inside(m: &MessageDescriptor) -> bool {
    matches!(
        m.full_name(),
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

/// Well-known types set as one value whose insides no parameter may name
/// (`Struct`, `Value`, `ListValue`, `FieldMask`, `Any`, `Empty`).
fn set_whole(m: &MessageDescriptor) -> bool {
    m.parent_file().package_name() == "google.protobuf" && !settable_inside(m)
}

/// Resolves one decoded query parameter (`a.b`, `a.b[key]`) against the request type.
pub fn resolve_query_param(input: &MessageDescriptor, name: String, value: String) -> QueryParam {
    // A json_name may hold brackets (`search[decoded]`): a path of field names wins over a map key.
    if name.contains('[') {
        let names: Vec<&str> = name.split('.').collect();
        if let Ok(fields) = walk(input, &names) {
            return QueryParam::Bound(FieldBinding { fields, map_key: None, value, source: Source::Query, name });
        }
    }
    let (path, map_key) = match name.split_once('[') {
        Some((path, rest)) if rest.ends_with(']') => (path, Some(rest[..rest.len() - 1].to_string())),
        _ => (name.as_str(), None),
    };
    let names: Vec<&str> = path.split('.').collect();
    match walk(input, &names) {
        Ok(fields) => {
            QueryParam::Bound(FieldBinding { fields, map_key, value, source: Source::Query, name: name.clone() })
        }
        Err(Miss::Unknown(reason)) => QueryParam::Unknown { name, reason },
        Err(Miss::Invalid(reason)) => QueryParam::Invalid { name, reason },
    }
}

/// Whether a query parameter's name binds to a field of `input`.
pub fn query_param_resolves(input: &MessageDescriptor, name: &str) -> bool {
    matches!(resolve_query_param(input, name.to_string(), String::new()), QueryParam::Bound(_))
}

/// Why a path binds to no field.
enum Miss {
    Unknown(String),
    Invalid(String),
}

/// Follows a dotted path from `input`, field by field (proto name, then JSON name).
fn walk(input: &MessageDescriptor, names: &[&str]) -> Result<Vec<FieldDescriptor>, Miss> {
    let mut fields: Vec<FieldDescriptor> = Vec::with_capacity(names.len());
    let mut current = input.clone();
    for (i, name) in names.iter().enumerate() {
        let field = current
            .get_field_by_name(name)
            .or_else(|| current.get_field_by_json_name(name))
            .ok_or_else(|| Miss::Unknown(format!("no field {name:?} in message {}", current.full_name())))?;
        fields.push(field.clone());
        if i + 1 == names.len() {
            break;
        }
        let spelled = names[..=i].join(".");
        let next = names[i + 1];
        current = match field.kind() {
            _ if field.is_map() => {
                return Err(Miss::Invalid(format!(
                    "`{spelled}` is a map, so `{next}` cannot go inside it; set an entry as `{spelled}[key]=value`"
                )))
            }
            Kind::Message(m) if settable_inside(&m) || set_whole(&m) => {
                if field.is_list() {
                    return Err(Miss::Invalid(format!(
                        "the path goes through the repeated message field `{spelled}` ({}), whose elements are \
                         set whole: repeat `{spelled}=value` once per element",
                        m.full_name()
                    )));
                }
                if set_whole(&m) {
                    return Err(Miss::Invalid(format!(
                        "`{spelled}` is a {} and is set as one value (`{spelled}=...`), so `{next}` cannot go inside it",
                        m.full_name()
                    )));
                }
                if fields[..i].iter().any(FieldDescriptor::is_list) {
                    return Err(Miss::Invalid(format!(
                        "`{spelled}` inside a repeated message field is set whole (`{spelled}=...`), not by its fields"
                    )));
                }
                m
            }
            Kind::Message(m) => m,
            kind => {
                let what = match kind {
                    Kind::Enum(e) => format!("an enum ({})", e.full_name()),
                    other => format!("a {other:?} field").to_lowercase(),
                };
                return Err(Miss::Invalid(format!("`{spelled}` is {what}, so `{next}` cannot go inside it")));
            }
        };
    }
    if fields.is_empty() {
        return Err(Miss::Unknown("empty field path".to_string()));
    }
    Ok(fields)
}

/// Whether a binding is set on the decoded message by [`apply_direct`] rather
/// than through JSON: a `FieldMask`, or a field inside a well-known type.
pub fn is_direct(binding: &FieldBinding) -> bool {
    let Some((leaf, parents)) = binding.fields.split_last() else { return false };
    let mask = matches!(leaf.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.FieldMask");
    mask || parents.iter().any(|f| matches!(f.kind(), Kind::Message(m) if settable_inside(&m)))
}

/// Sets a [`is_direct`] binding on `message` (the request, decoded from the JSON bindings).
pub fn apply_direct(message: &mut DynamicMessage, binding: &FieldBinding) -> Result<(), String> {
    let Some((leaf, parents)) = binding.fields.split_last() else {
        return Err("empty field path".into());
    };
    let mut current = message;
    for field in parents {
        let slot = current.get_field_mut(field);
        current = match slot {
            // A repeated message on the way: the URL's one element, as the JSON bindings build it.
            Value::List(items) => {
                if items.is_empty() {
                    let Kind::Message(m) = field.kind() else {
                        return Err(format!("`{}` is not a message", field.name()));
                    };
                    items.push(Value::Message(DynamicMessage::new(m)));
                }
                match items.last_mut() {
                    Some(Value::Message(m)) => m,
                    _ => return Err(format!("`{}` is not a list of messages", field.name())),
                }
            }
            Value::Message(m) => m,
            _ => return Err(format!("`{}` is not a message", field.name())),
        };
    }
    let value = match leaf.kind() {
        Kind::Message(m) if m.full_name() == "google.protobuf.FieldMask" => {
            let mut mask = DynamicMessage::new(m.clone());
            let paths = field_mask_paths(&binding.value).into_iter().map(Value::String).collect();
            let paths_field = m.get_field_by_name("paths").ok_or("FieldMask without `paths`")?;
            mask.set_field(&paths_field, Value::List(paths));
            Value::Message(mask)
        }
        kind => scalar_value(&kind, &binding.value)?,
    };
    if leaf.is_list() {
        if let Value::List(items) = current.get_field_mut(leaf) {
            items.push(value);
        }
    } else {
        current.set_field(leaf, value);
    }
    Ok(())
}

/// A `FieldMask` parameter's paths as Envoy's transcoder sends them: each path
/// in proto spelling, camelCase words turned to snake_case (`floatValue` and
/// `float_value` both become `float_value`), comma-separated.
pub fn field_mask_paths(raw: &str) -> Vec<String> {
    raw.split(',').filter(|p| !p.is_empty()).map(to_snake_case).collect()
}

fn to_snake_case(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A URL string as a field of a well-known type (seconds, nanos, a wrapper's value).
fn scalar_value(kind: &Kind, raw: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("{raw:?} is not {what}");
    Ok(match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(raw.parse().map_err(|_| bad("a 32-bit integer"))?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(raw.parse().map_err(|_| bad("a 64-bit integer"))?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(raw.parse().map_err(|_| bad("an unsigned 32-bit integer"))?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(raw.parse().map_err(|_| bad("an unsigned 64-bit integer"))?),
        Kind::Float => Value::F32(crate::request::url_float(raw, true)? as f32),
        Kind::Double => Value::F64(crate::request::url_float(raw, false)?),
        Kind::Bool => Value::Bool(crate::request::parse_bool(raw).ok_or_else(|| bad("a boolean"))?),
        Kind::String => Value::String(raw.to_string()),
        Kind::Bytes => {
            // proto3 JSON takes standard or URL-safe base64, padded or not.
            use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
            use base64::Engine;
            let unpadded = raw.trim_end_matches('=');
            let decoded = STANDARD_NO_PAD.decode(unpadded).or_else(|_| URL_SAFE_NO_PAD.decode(unpadded));
            Value::Bytes(decoded.map_err(|_| bad("base64"))?.into())
        }
        other => return Err(format!("a {other:?} cannot be set from the URL")),
    })
}
