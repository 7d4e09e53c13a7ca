//! URL bindings (path variables, query parameters) straight to the wire, for
//! requests without a body: a GET's message is only its bindings, and going
//! through JSON and a `DynamicMessage` for them cost more than the rest of the
//! request.
//!
//! Each binding is written on its own as a chain of nested messages ending in
//! its value: protobuf merges repeated occurrences of a message field and keeps
//! the last of a scalar, which is what the general path's JSON object does.
//! Only plain values take this path (strings, canonical integers, booleans,
//! declared enum names and numbers, finite floats, into singular or repeated
//! fields of nested messages outside oneofs); anything else returns `None` and
//! the general path gives the same message or the precise error.

use prost_reflect::{FieldDescriptor, Kind};

use super::wire::{put_key, put_varint};
use crate::request::{parse_bool, url_float, FieldBinding};

/// The message the bindings make, or `None` for the general path.
pub fn bindings_to_wire(bindings: &[FieldBinding], case_insensitive_enums: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bindings.len() * 16);
    for (i, binding) in bindings.iter().enumerate() {
        // A singular field bound twice keeps the last value, even a default one
        // (which is not written): the general path's to settle.
        if binding.is_singular() && bindings[..i].iter().any(|b| b.same_target(binding)) {
            return None;
        }
        write_binding(binding, case_insensitive_enums, &mut out)?;
    }
    Some(out)
}

fn write_binding(binding: &FieldBinding, case_insensitive_enums: bool, out: &mut Vec<u8>) -> Option<()> {
    if binding.map_key.is_some() {
        return None;
    }
    let (leaf, parents) = binding.fields.split_last()?;
    for field in parents {
        let plain_message = matches!(field.kind(), Kind::Message(m) if !m.full_name().starts_with("google.protobuf."));
        if !plain_message || field.is_list() || field.is_map() || field.containing_oneof().is_some() {
            return None;
        }
    }
    if leaf.is_map() || leaf.containing_oneof().is_some_and(|o| !o.is_synthetic()) {
        return None;
    }
    let (wire_type, value) = encode_value(leaf, &binding.value, case_insensitive_enums)?;
    // A default value of a field without presence is not written, but its parents are (present, empty).
    let presence = leaf.is_list() || leaf.supports_presence();
    let leaf_bytes = if value.is_default && !presence {
        Vec::new()
    } else {
        let mut bytes = Vec::with_capacity(value.bytes.len() + 4);
        put_key(&mut bytes, leaf.number(), wire_type);
        bytes.extend_from_slice(&value.bytes);
        bytes
    };
    // Nested from the inside out: each parent wraps the bytes of the level below.
    let mut inner = leaf_bytes;
    for field in parents.iter().rev() {
        let mut wrapped = Vec::with_capacity(inner.len() + 6);
        put_key(&mut wrapped, field.number(), 2);
        put_varint(&mut wrapped, inner.len() as u64);
        wrapped.extend_from_slice(&inner);
        inner = wrapped;
    }
    out.extend_from_slice(&inner);
    Some(())
}

/// An encoded value (without its key) and whether it is the type's default.
struct Encoded {
    bytes: Vec<u8>,
    is_default: bool,
}

fn varint(v: u64) -> Encoded {
    let mut bytes = Vec::with_capacity(10);
    put_varint(&mut bytes, v);
    Encoded { bytes, is_default: v == 0 }
}

/// A plain decimal integer: optional `-`, no `+`, no leading zeros.
fn canonical_integer(raw: &str, signed: bool) -> Option<&str> {
    let digits = if signed { raw.strip_prefix('-').unwrap_or(raw) } else { raw };
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.len() == 1 || !digits.starts_with('0'));
    canonical.then_some(raw)
}

fn encode_value(field: &FieldDescriptor, raw: &str, case_insensitive_enums: bool) -> Option<(u8, Encoded)> {
    let int = |signed| canonical_integer(raw, signed);
    Some(match field.kind() {
        Kind::String => (2, {
            let mut bytes = Vec::with_capacity(raw.len() + 2);
            put_varint(&mut bytes, raw.len() as u64);
            bytes.extend_from_slice(raw.as_bytes());
            Encoded { bytes, is_default: raw.is_empty() }
        }),
        Kind::Bool => (0, varint(u64::from(parse_bool(raw)?))),
        Kind::Int32 => (0, varint(int(true)?.parse::<i32>().ok()? as i64 as u64)),
        Kind::Int64 => (0, varint(int(true)?.parse::<i64>().ok()? as u64)),
        Kind::Uint32 => (0, varint(u64::from(int(false)?.parse::<u32>().ok()?))),
        Kind::Uint64 => (0, varint(int(false)?.parse::<u64>().ok()?)),
        Kind::Sint32 => {
            let v = int(true)?.parse::<i32>().ok()?;
            (0, varint(u64::from(((v << 1) ^ (v >> 31)) as u32)))
        }
        Kind::Sint64 => {
            let v = int(true)?.parse::<i64>().ok()?;
            (0, varint(((v << 1) ^ (v >> 63)) as u64))
        }
        Kind::Fixed32 => fixed(&int(false)?.parse::<u32>().ok()?.to_le_bytes()),
        Kind::Sfixed32 => fixed(&int(true)?.parse::<i32>().ok()?.to_le_bytes()),
        Kind::Fixed64 => fixed(&int(false)?.parse::<u64>().ok()?.to_le_bytes()),
        Kind::Sfixed64 => fixed(&int(true)?.parse::<i64>().ok()?.to_le_bytes()),
        Kind::Double | Kind::Float => {
            // Finite, and not -0 (whether that is a default is the general path's call).
            let float = field.kind() == Kind::Float;
            let v = url_float(raw, float).ok().filter(|v| v.is_finite() && !(*v == 0.0 && v.is_sign_negative()))?;
            if float {
                fixed(&(v as f32).to_le_bytes())
            } else {
                fixed(&v.to_le_bytes())
            }
        }
        Kind::Enum(e) => {
            let number = match raw.parse::<i32>() {
                Ok(n) if canonical_integer(raw, true).is_some() => e.get_value(n)?.number(),
                Ok(_) => return None,
                Err(_) if case_insensitive_enums => return None,
                Err(_) => e.get_value_by_name(raw)?.number(),
            };
            (0, varint(number as i64 as u64))
        }
        Kind::Bytes | Kind::Message(_) => return None,
    })
}

fn fixed(bytes: &[u8]) -> (u8, Encoded) {
    let wire_type = if bytes.len() == 8 { 1 } else { 5 };
    (wire_type, Encoded { is_default: bytes.iter().all(|&b| b == 0), bytes: bytes.to_vec() })
}
