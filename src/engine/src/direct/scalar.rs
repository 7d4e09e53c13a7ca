//! Scalars: numbers as they sit on the wire and in JSON, and map entries.

use super::*;
use crate::json::{write_double, write_float};

#[derive(Debug, Clone, Copy)]
pub(super) enum Number {
    I32(i32),
    I64(i64),
    U32(u32),
    U64(u64),
    F32(f32),
    F64(f64),
    Bool(bool),
    /// How the value goes on the wire.
    Zig32(i32),
    Zig64(i64),
    Fixed32(u32),
    Fixed64(u64),
    Sfixed32(i32),
    Sfixed64(i64),
}

impl Number {
    pub(super) fn is_default(self) -> bool {
        match self {
            Number::I32(v) | Number::Zig32(v) | Number::Sfixed32(v) => v == 0,
            Number::I64(v) | Number::Zig64(v) | Number::Sfixed64(v) => v == 0,
            Number::U32(v) | Number::Fixed32(v) => v == 0,
            Number::U64(v) | Number::Fixed64(v) => v == 0,
            // -0.0 is not a default for protobuf; it is left to the general path when printing.
            Number::F32(v) => v == 0.0 && v.is_sign_positive(),
            Number::F64(v) => v == 0.0 && v.is_sign_positive(),
            Number::Bool(v) => !v,
        }
    }

    pub(super) fn write(self, out: &mut Vec<u8>) {
        match self {
            Number::I32(v) => put_varint(out, v as i64 as u64),
            Number::I64(v) => put_varint(out, v as u64),
            Number::U32(v) => put_varint(out, u64::from(v)),
            Number::U64(v) => put_varint(out, v),
            Number::Bool(v) => out.push(u8::from(v)),
            Number::Zig32(v) => put_varint(out, u64::from(((v << 1) ^ (v >> 31)) as u32)),
            Number::Zig64(v) => put_varint(out, ((v << 1) ^ (v >> 63)) as u64),
            Number::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Number::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Number::Fixed32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Number::Fixed64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Number::Sfixed32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Number::Sfixed64(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }

    /// proto3 JSON: 64-bit integers as strings, floats as protobuf prints them.
    pub(super) fn print(self, out: &mut Vec<u8>) -> Option<()> {
        match self {
            Number::I32(v) | Number::Zig32(v) | Number::Sfixed32(v) => write_display(out, v),
            Number::U32(v) | Number::Fixed32(v) => write_display(out, v),
            Number::I64(v) | Number::Zig64(v) | Number::Sfixed64(v) => {
                out.push(b'"');
                write_display(out, v);
                out.push(b'"');
            }
            Number::U64(v) | Number::Fixed64(v) => {
                out.push(b'"');
                write_display(out, v);
                out.push(b'"');
            }
            Number::Bool(v) => out.extend_from_slice(if v { b"true" } else { b"false" }),
            Number::F32(v) if v.is_finite() && !(v == 0.0 && v.is_sign_negative()) => write_float(out, v),
            Number::F64(v) if v.is_finite() && !(v == 0.0 && v.is_sign_negative()) => write_double(out, v),
            // NaN, infinities and -0: the general path's business.
            Number::F32(_) | Number::F64(_) => return None,
        }
        Some(())
    }
}

pub(super) fn wire_type_of(s: Scalar) -> u8 {
    match s {
        Scalar::Double | Scalar::Fixed64 | Scalar::Sfixed64 => 1,
        Scalar::Float | Scalar::Fixed32 | Scalar::Sfixed32 => 5,
        Scalar::String => 2,
        _ => 0,
    }
}

pub(super) fn scalar_wire_type(ty: Type) -> Option<u8> {
    match ty {
        Type::Scalar(s) if s != Scalar::String => Some(wire_type_of(s)),
        Type::Enum(_) => Some(0),
        _ => None,
    }
}

pub(super) fn decode_scalar(s: Scalar, value: &[u8]) -> Option<Number> {
    let varint = || get_varint(value, 0).map(|(v, _)| v);
    let fixed32 = || value.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let fixed64 = || value.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    Some(match s {
        Scalar::Int32 => Number::I32(varint()? as i32),
        Scalar::Int64 => Number::I64(varint()? as i64),
        Scalar::Uint32 => Number::U32(varint()? as u32),
        Scalar::Uint64 => Number::U64(varint()?),
        Scalar::Sint32 => {
            let v = varint()? as u32;
            Number::Zig32(((v >> 1) as i32) ^ -((v & 1) as i32))
        }
        Scalar::Sint64 => {
            let v = varint()?;
            Number::Zig64(((v >> 1) as i64) ^ -((v & 1) as i64))
        }
        Scalar::Bool => Number::Bool(varint()? != 0),
        Scalar::Fixed32 => Number::Fixed32(fixed32()?),
        Scalar::Sfixed32 => Number::Sfixed32(fixed32()? as i32),
        Scalar::Float => Number::F32(f32::from_bits(fixed32()?)),
        Scalar::Fixed64 => Number::Fixed64(fixed64()?),
        Scalar::Sfixed64 => Number::Sfixed64(fixed64()? as i64),
        Scalar::Double => Number::F64(f64::from_bits(fixed64()?)),
        Scalar::String => return None,
    })
}

/// A plain decimal integer (as a number, a string or a map key) as scalar `s`.
pub(super) fn integer(s: Scalar, token: &str) -> Option<Number> {
    let digits = token.strip_prefix('-').unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    let v: i128 = token.parse().ok()?;
    Some(match s {
        Scalar::Int32 => Number::I32(i32::try_from(v).ok()?),
        Scalar::Sint32 => Number::Zig32(i32::try_from(v).ok()?),
        Scalar::Sfixed32 => Number::Sfixed32(i32::try_from(v).ok()?),
        Scalar::Int64 => Number::I64(i64::try_from(v).ok()?),
        Scalar::Sint64 => Number::Zig64(i64::try_from(v).ok()?),
        Scalar::Sfixed64 => Number::Sfixed64(i64::try_from(v).ok()?),
        Scalar::Uint32 => Number::U32(u32::try_from(v).ok()?),
        Scalar::Fixed32 => Number::Fixed32(u32::try_from(v).ok()?),
        Scalar::Uint64 => Number::U64(u64::try_from(v).ok()?),
        Scalar::Fixed64 => Number::Fixed64(u64::try_from(v).ok()?),
        _ => return None,
    })
}

/// A map entry: its key as JSON names it and, when present, its value's wire type and bytes.
pub(super) type MapEntry<'a> = (Cow<'a, str>, Option<(u8, &'a [u8])>);

/// Reads a map entry message (key = field 1, value = field 2) of a `key`-typed map.
pub(super) fn map_entry(entry: &[u8], key_type: Scalar) -> Option<MapEntry<'_>> {
    let mut key = match key_type {
        Scalar::String => Cow::Borrowed(""),
        Scalar::Bool => Cow::Borrowed("false"),
        _ => Cow::Borrowed("0"),
    };
    let mut value = None;
    let mut pos = 0;
    while pos < entry.len() {
        let (tag, next) = get_varint(entry, pos)?;
        let wire_type = (tag & 7) as u8;
        let (bytes, next) = field_bytes(entry, next, wire_type)?;
        match tag >> 3 {
            1 if key_type == Scalar::String && wire_type == 2 => key = Cow::Borrowed(std::str::from_utf8(bytes).ok()?),
            1 if key_type != Scalar::String && wire_type == wire_type_of(key_type) => {
                key = Cow::Owned(match decode_scalar(key_type, bytes)? {
                    Number::I32(v) | Number::Zig32(v) | Number::Sfixed32(v) => v.to_string(),
                    Number::I64(v) | Number::Zig64(v) | Number::Sfixed64(v) => v.to_string(),
                    Number::U32(v) | Number::Fixed32(v) => v.to_string(),
                    Number::U64(v) | Number::Fixed64(v) => v.to_string(),
                    Number::Bool(v) => v.to_string(),
                    Number::F32(_) | Number::F64(_) => return None,
                })
            }
            2 => value = Some((wire_type, bytes)),
            _ => return None,
        }
        pos = next;
    }
    Some((key, value))
}

pub(super) fn write_display(out: &mut Vec<u8>, value: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(out, "{value}");
}
