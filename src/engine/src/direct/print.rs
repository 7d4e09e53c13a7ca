//! Wire to JSON: a response message printed in one pass as the general path
//! prints it ([`Schema::wire_to_json`]).

use super::scalar::{decode_scalar, map_entry, scalar_wire_type, wire_type_of, write_display, MapEntry};
use super::*;

impl Schema {
    /// Message `id` (wire bytes) printed as compact JSON into `out`, exactly as
    /// the general path prints it; `None` when the general path must do it.
    pub fn wire_to_json(&self, id: u32, wire: &[u8], style: PrintStyle, out: &mut Vec<u8>) -> Option<()> {
        self.print_message(id, wire, style, out, 0)
    }

    fn print_message(&self, id: u32, wire: &[u8], style: PrintStyle, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        let message = self.messages.get(id as usize)?;
        if !message.supported || depth > MAX_DEPTH {
            return None;
        }
        out.push(b'{');
        let mut pos = 0;
        // Printed in field-number order, so the wire must come in that order
        // (every encoder here writes it so); a field seen again after another is refused.
        let mut last_number = 0u32;
        let mut open_list: Option<usize> = None;
        let mut map_entries: Vec<MapEntry<'_>> = Vec::new();
        let mut oneofs_seen = 0u64;
        while pos < wire.len() {
            let (key, next) = get_varint(wire, pos)?;
            pos = next;
            let number = u32::try_from(key >> 3).ok()?;
            let wire_type = (key & 7) as u8;
            let (value, next) = field_bytes(wire, pos, wire_type)?;
            pos = next;
            let Ok(index) = message.fields.binary_search_by_key(&number, |f| f.number) else {
                continue; // unknown field: not printed
            };
            let field = &message.fields[index];
            if number == last_number {
                if !(field.repeated || field.map_value.is_some()) {
                    return None; // a singular field twice: merging is the general path's job
                }
            } else {
                if number < last_number {
                    return None;
                }
                self.close_field(message, last_number, &mut open_list, &mut map_entries, style, out, depth)?;
                last_number = number;
                if let Some(oneof) = field.oneof {
                    // Two members of one oneof on the wire: the last wins, the general path's job.
                    if oneofs_seen & (1 << oneof) != 0 {
                        return None;
                    }
                    oneofs_seen |= 1 << oneof;
                }
                if field.map_value.is_none() && !field.repeated {
                    // Singular: print now unless it is the default value (and has no presence).
                    let start = out.len();
                    comma(out);
                    write_key(out, field, style);
                    if !self.print_value(field.ty, wire_type, value, style, out, depth, field.presence)? {
                        out.truncate(start);
                    }
                    continue;
                }
                if field.repeated && field.map_value.is_none() {
                    comma(out);
                    write_key(out, field, style);
                    out.push(b'[');
                    open_list = Some(out.len());
                }
            }
            if field.map_value.is_some() {
                map_entries.push(map_entry(value, field.map_key)?);
                continue;
            }
            // An element of a repeated field: packed (a run of values) or one value.
            if let (2, Some(element_type)) = (wire_type, scalar_wire_type(field.ty)) {
                let mut at = 0;
                while at < value.len() {
                    let (one, next) = match element_type {
                        0 => {
                            let (_, n) = get_varint(value, at)?;
                            (&value[at..n], n)
                        }
                        1 => (value.get(at..at + 8)?, at + 8),
                        _ => (value.get(at..at + 4)?, at + 4),
                    };
                    at = next;
                    self.push_list_item(field, element_type, one, style, out, depth, &mut open_list)?;
                }
            } else {
                self.push_list_item(field, wire_type, value, style, out, depth, &mut open_list)?;
            }
        }
        self.close_field(message, last_number, &mut open_list, &mut map_entries, style, out, depth)?;
        out.push(b'}');
        Some(())
    }

    #[allow(clippy::too_many_arguments)]
    fn push_list_item(
        &self,
        field: &Field,
        wire_type: u8,
        value: &[u8],
        style: PrintStyle,
        out: &mut Vec<u8>,
        depth: usize,
        open_list: &mut Option<usize>,
    ) -> Option<()> {
        let start = (*open_list)?;
        if out.len() > start {
            out.push(b',');
        }
        self.print_value(field.ty, wire_type, value, style, out, depth, true)?;
        Some(())
    }

    /// Ends the field `number` if it was a list (`]`) or a map (its entries, sorted by key).
    #[allow(clippy::too_many_arguments)]
    fn close_field(
        &self,
        message: &Message,
        number: u32,
        open_list: &mut Option<usize>,
        map_entries: &mut Vec<MapEntry<'_>>,
        style: PrintStyle,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Option<()> {
        if open_list.take().is_some() {
            out.push(b']');
        }
        if map_entries.is_empty() {
            return Some(());
        }
        let index = message.fields.binary_search_by_key(&number, |f| f.number).ok()?;
        let field = &message.fields[index];
        let value_type = field.map_value?;
        // Sorted by key as protobuf prints maps (integers by value); for a key given twice the last one counts.
        if matches!(field.map_key, Scalar::String | Scalar::Bool) {
            map_entries.sort_by(|a, b| a.0.cmp(&b.0));
        } else {
            map_entries.sort_by_key(|(key, _)| key.parse::<i128>().unwrap_or_default());
        }
        comma(out);
        write_key(out, field, style);
        out.push(b'{');
        let mut first = true;
        for (i, (key, value)) in map_entries.iter().enumerate() {
            if map_entries.get(i + 1).is_some_and(|(next, _)| next == key) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(out, key);
            out.push(b':');
            match value {
                Some((wire_type, bytes)) => {
                    self.print_value(value_type, *wire_type, bytes, style, out, depth, true)?;
                }
                None => self.print_default(value_type, style, out)?,
            }
        }
        out.push(b'}');
        map_entries.clear();
        Some(())
    }

    /// A map entry's value absent from the wire: its type's default, printed.
    fn print_default(&self, ty: Type, style: PrintStyle, out: &mut Vec<u8>) -> Option<()> {
        match ty {
            Type::Scalar(Scalar::String) => out.extend_from_slice(b"\"\""),
            Type::Scalar(Scalar::Bool) => out.extend_from_slice(b"false"),
            Type::Scalar(Scalar::Int64 | Scalar::Uint64 | Scalar::Sint64 | Scalar::Fixed64 | Scalar::Sfixed64) => {
                out.extend_from_slice(b"\"0\"")
            }
            Type::Scalar(_) => out.push(b'0'),
            Type::Enum(id) => {
                let e = self.enums.get(id as usize)?;
                match e.names.get(&0) {
                    Some(name) if !style.enums_as_ints => write_str(out, name),
                    _ => out.push(b'0'),
                }
            }
            Type::Message(_) => out.extend_from_slice(b"{}"),
            Type::Timestamp => out.extend_from_slice(b"\"1970-01-01T00:00:00Z\""),
            Type::Duration => out.extend_from_slice(b"\"0s\""),
            Type::Bytes => out.extend_from_slice(b"\"\""),
            Type::Wrapper(_) | Type::Other => return None,
        }
        Some(())
    }

    /// Prints one value; returns false (and prints something to be cut) for a
    /// default scalar that is not printed unless `always`.
    #[allow(clippy::too_many_arguments)]
    fn print_value(
        &self,
        ty: Type,
        wire_type: u8,
        value: &[u8],
        style: PrintStyle,
        out: &mut Vec<u8>,
        depth: usize,
        always: bool,
    ) -> Option<bool> {
        match ty {
            Type::Message(id) => {
                if wire_type != 2 {
                    return None;
                }
                self.print_message(id, value, style, out, depth + 1)?;
            }
            Type::Timestamp => {
                if wire_type != 2 {
                    return None;
                }
                let (seconds, nanos) = read_timestamp(value)?;
                // The general path refuses what protobuf cannot print (years 1..=9999).
                if !(-62_135_596_800..=253_402_300_799).contains(&seconds) || !(0..1_000_000_000).contains(&nanos) {
                    return None;
                }
                let text = prost_types::Timestamp { seconds, nanos }.to_string();
                write_str(out, &text);
            }
            Type::Duration => {
                if wire_type != 2 {
                    return None;
                }
                let (seconds, nanos) = read_timestamp(value)?;
                write_duration(out, seconds, nanos)?;
            }
            Type::Enum(id) => {
                if wire_type != 0 {
                    return None;
                }
                let n = get_varint(value, 0)?.0 as i32;
                if n == 0 && !always {
                    return Some(false);
                }
                match self.enums.get(id as usize)?.names.get(&n) {
                    Some(name) if !style.enums_as_ints => write_str(out, name),
                    _ => write_display(out, n),
                }
            }
            Type::Scalar(Scalar::String) => {
                if wire_type != 2 {
                    return None;
                }
                let text = std::str::from_utf8(value).ok()?;
                if text.is_empty() && !always {
                    return Some(false);
                }
                write_str(out, text);
            }
            Type::Scalar(s) => {
                if wire_type != wire_type_of(s) {
                    return None;
                }
                let v = decode_scalar(s, value)?;
                if v.is_default() && !always {
                    return Some(false);
                }
                v.print(out)?;
            }
            Type::Bytes => {
                if wire_type != 2 {
                    return None;
                }
                if value.is_empty() && !always {
                    return Some(false);
                }
                out.push(b'"');
                encode_base64(value, out);
                out.push(b'"');
            }
            Type::Wrapper(s) => {
                if wire_type != 2 {
                    return None;
                }
                // Its value (field 1), at most once; absent is the default, printed all the same.
                let mut inner: Option<(u8, &[u8])> = None;
                let mut pos = 0;
                while pos < value.len() {
                    let (key, next) = get_varint(value, pos)?;
                    let (bytes, next) = field_bytes(value, next, (key & 7) as u8)?;
                    if key >> 3 != 1 || inner.is_some() {
                        return None;
                    }
                    inner = Some(((key & 7) as u8, bytes));
                    pos = next;
                }
                match inner {
                    Some((wire_type, bytes)) => {
                        self.print_value(Type::Scalar(s), wire_type, bytes, style, out, depth, true)?;
                    }
                    None => self.print_default(Type::Scalar(s), style, out)?,
                }
            }
            Type::Other => return None,
        }
        Some(true)
    }
}

/// A comma unless this is the first member of the object just opened (a value never ends with `{`).
pub(super) fn comma(out: &mut Vec<u8>) {
    if out.last() != Some(&b'{') {
        out.push(b',');
    }
}

pub(super) fn write_key(out: &mut Vec<u8>, field: &Field, style: PrintStyle) {
    write_str(out, if style.proto_names { &field.name } else { &field.json_name });
    out.push(b':');
}

/// A JSON string as serde_json writes it (the general path's printer).
pub(super) fn write_str(out: &mut Vec<u8>, text: &str) {
    use serde::Serializer;
    // Writing into a Vec cannot fail.
    let _ = serde_json::Serializer::new(out).serialize_str(text);
}
