//! JSON to wire: a request body read in one pass into the wire bytes of its
//! message ([`Schema::json_to_wire`]).

use super::reader::Reader;
use super::scalar::{integer, scalar_wire_type, wire_type_of, Number};
use super::*;

impl Schema {
    /// A JSON object body as the wire bytes of message `id`, appended to `out`;
    /// `None` (and `out` in any state) when the general path must do it.
    pub fn json_to_wire(&self, id: u32, json: &[u8], out: &mut Vec<u8>) -> Option<()> {
        // One UTF-8 check for the whole body: strings are then cut at ASCII quotes.
        std::str::from_utf8(json).ok()?;
        let mut reader = Reader { json, pos: 0 };
        reader.skip_ws();
        self.read_message(id, &mut reader, out, 0)?;
        reader.skip_ws();
        (reader.pos == json.len()).then_some(())
    }

    fn read_message(&self, id: u32, r: &mut Reader<'_>, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        let message = self.messages.get(id as usize)?;
        if !message.supported || depth > MAX_DEPTH {
            return None;
        }
        r.expect(b'{')?;
        r.skip_ws();
        if r.eat(b'}') {
            return Some(());
        }
        let mut seen = 0u128;
        let mut oneofs_seen = 0u64;
        loop {
            r.skip_ws();
            let key = r.string()?;
            let index = *message.by_key.get(key)?;
            if seen & (1 << index) != 0 {
                return None;
            }
            seen |= 1 << index;
            let field = &message.fields[index as usize];
            if let Some(oneof) = field.oneof {
                // Two members of one oneof: the general path says which.
                if oneofs_seen & (1 << oneof) != 0 {
                    return None;
                }
                oneofs_seen |= 1 << oneof;
            }
            r.skip_ws();
            r.expect(b':')?;
            r.skip_ws();
            if r.literal(b"null") {
                // proto3 JSON: null is the field's default, so nothing is written. Not for
                // google.protobuf.Value (null is its NullValue) or the other types the
                // general path reads; and in a oneof it would still pick the member.
                let ty = field.map_value.unwrap_or(field.ty); // a map's own `ty` is Other
                if field.oneof.is_some() || matches!(ty, Type::Other) {
                    return None;
                }
            } else {
                self.read_field(field, r, out, depth)?;
            }
            r.skip_ws();
            if r.eat(b',') {
                continue;
            }
            r.expect(b'}')?;
            return Some(());
        }
    }

    fn read_field(&self, field: &Field, r: &mut Reader<'_>, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        if let Some(value_type) = field.map_value {
            r.expect(b'{')?;
            r.skip_ws();
            if r.eat(b'}') {
                return Some(());
            }
            loop {
                r.skip_ws();
                let key = r.string_value()?;
                r.skip_ws();
                r.expect(b':')?;
                r.skip_ws();
                put_key(out, field.number, 2);
                let start = begin_len(out);
                if field.map_key == Scalar::String {
                    put_key(out, 1, 2);
                    put_varint(out, key.len() as u64);
                    out.extend_from_slice(key.as_bytes());
                } else {
                    // JSON keys are strings: "7", "true".
                    let key = match (field.map_key, key.as_ref()) {
                        (Scalar::Bool, "true") => Number::Bool(true),
                        (Scalar::Bool, "false") => Number::Bool(false),
                        (Scalar::Bool, _) => return None,
                        (s, text) => integer(s, text)?,
                    };
                    put_key(out, 1, wire_type_of(field.map_key));
                    key.write(out);
                }
                self.read_value(value_type, 2, r, out, depth, true)?;
                end_len(out, start);
                r.skip_ws();
                if r.eat(b',') {
                    continue;
                }
                return r.expect(b'}');
            }
        }
        if !field.repeated {
            return self.read_value(field.ty, field.number, r, out, depth, field.presence);
        }
        r.expect(b'[')?;
        r.skip_ws();
        if r.eat(b']') {
            return Some(());
        }
        let packed = field.packed && scalar_wire_type(field.ty).is_some();
        let start = if packed {
            put_key(out, field.number, 2);
            Some(begin_len(out))
        } else {
            None
        };
        loop {
            r.skip_ws();
            if packed {
                self.read_packed(field.ty, r, out)?;
            } else {
                self.read_value(field.ty, field.number, r, out, depth, true)?;
            }
            r.skip_ws();
            if r.eat(b',') {
                continue;
            }
            r.expect(b']')?;
            break;
        }
        if let Some(start) = start {
            end_len(out, start);
        }
        Some(())
    }

    /// One value with its key; `always` writes defaults too (list and map entries).
    fn read_value(
        &self,
        ty: Type,
        number: u32,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
        depth: usize,
        always: bool,
    ) -> Option<()> {
        match ty {
            Type::Message(id) => {
                put_key(out, number, 2);
                let start = begin_len(out);
                self.read_message(id, r, out, depth + 1)?;
                end_len(out, start);
            }
            Type::Timestamp | Type::Duration => {
                let text = r.string()?;
                let (seconds, nanos) =
                    if ty == Type::Timestamp { parse_timestamp(text)? } else { parse_duration(text)? };
                put_key(out, number, 2);
                let start = begin_len(out);
                if seconds != 0 {
                    put_key(out, 1, 0);
                    put_varint(out, seconds as u64);
                }
                if nanos != 0 {
                    put_key(out, 2, 0);
                    put_varint(out, nanos as i64 as u64);
                }
                end_len(out, start);
            }
            Type::Enum(id) => {
                let number_value = *self.enums.get(id as usize)?.by_name.get(r.string()?)?;
                if always || number_value != 0 {
                    put_key(out, number, 0);
                    put_varint(out, number_value as i64 as u64);
                }
            }
            Type::Scalar(Scalar::String) => {
                let text = r.string_value()?;
                if always || !text.is_empty() {
                    put_key(out, number, 2);
                    put_varint(out, text.len() as u64);
                    out.extend_from_slice(text.as_bytes());
                }
            }
            Type::Scalar(s) => {
                let value = read_scalar(s, r)?;
                if always || !value.is_default() {
                    put_key(out, number, wire_type_of(s));
                    value.write(out);
                }
            }
            Type::Bytes => {
                let data = decode_base64(&r.string_value()?)?;
                if always || !data.is_empty() {
                    put_key(out, number, 2);
                    put_varint(out, data.len() as u64);
                    out.extend_from_slice(&data);
                }
            }
            Type::Wrapper(s) => {
                // Present even when its value is the default: the wrapper is written.
                put_key(out, number, 2);
                let start = begin_len(out);
                self.read_value(Type::Scalar(s), 1, r, out, depth, false)?;
                end_len(out, start);
            }
            Type::Other => return None,
        }
        Some(())
    }

    fn read_packed(&self, ty: Type, r: &mut Reader<'_>, out: &mut Vec<u8>) -> Option<()> {
        match ty {
            Type::Enum(id) => {
                let n = *self.enums.get(id as usize)?.by_name.get(r.string()?)?;
                put_varint(out, n as i64 as u64);
            }
            Type::Scalar(s) => read_scalar(s, r)?.write(out),
            _ => return None,
        }
        Some(())
    }
}

fn read_scalar(s: Scalar, r: &mut Reader<'_>) -> Option<Number> {
    if s == Scalar::Bool {
        return if r.literal(b"true") {
            Some(Number::Bool(true))
        } else if r.literal(b"false") {
            Some(Number::Bool(false))
        } else {
            None
        };
    }
    let quoted = r.peek() == Some(b'"');
    let token = if quoted { r.string()? } else { r.number()? };
    match s {
        Scalar::Double | Scalar::Float => {
            // Floats written as strings ("NaN", "1e400", hex) are the general path's business.
            if quoted {
                return None;
            }
            let v: f64 = token.parse().ok()?;
            if v == 0.0 && v.is_sign_negative() {
                return None; // -0: whether it is a default is the general path's call
            }
            if s == Scalar::Double {
                v.is_finite().then_some(Number::F64(v))
            } else {
                let f = v as f32;
                f.is_finite().then_some(Number::F32(f))
            }
        }
        _ => integer(s, token),
    }
}
