//! Direct transcoding between JSON and the protobuf wire format, for the
//! common case, without a `serde_json::Value` or a `DynamicMessage` per
//! request: a route's message types are compiled once, on its first request,
//! into flat tables ([`Schema`]), and a request body is read and written in one pass.
//!
//! It is a fast path, not a second implementation of proto3 JSON: whenever
//! the input leaves the subset handled here (an escape in a string, a `null`,
//! a number written as a string for a float, two members of a oneof, a
//! well-known type other than Timestamp, Duration and the wrappers, base64
//! other than standard and padded, an unknown key, a field set twice, fields out of
//! order on the wire, ...) it returns `None` and the caller takes the general
//! path, which then gives the same answer or the precise error. What it does
//! accept it turns into what the general path would: the same message
//! (requests) and the same bytes of JSON (responses); the tests below check
//! both against the general path.

use std::borrow::Cow;
use std::collections::HashMap;

use prost_reflect::{Kind, MessageDescriptor};

mod bindings;
mod time;
mod wire;

pub use bindings::bindings_to_wire;
use time::{parse_duration, parse_timestamp, read_timestamp, write_duration};
pub use wire::without_source_info;
use wire::{begin_len, end_len, field_bytes, get_varint, put_key, put_varint};
use wire::{decode_base64, encode_base64};

use crate::json::{write_double, write_float};

/// A scalar field type, as it sits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
}

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Scalar(Scalar),
    Enum(u32),
    Message(u32),
    Timestamp,
    Duration,
    /// `bytes`: base64 in JSON.
    Bytes,
    /// A wrapper (`google.protobuf.Int32Value`, ...): its value alone in JSON.
    Wrapper(Scalar),
    /// Anything the fast path leaves to the general one (bytes, other well-known types).
    Other,
}

#[derive(Debug)]
struct Field {
    number: u32,
    name: Box<str>,
    json_name: Box<str>,
    ty: Type,
    repeated: bool,
    packed: bool,
    /// A map field: the value's type.
    map_value: Option<Type>,
    /// A map field's key type (a string, an integer or a bool).
    map_key: Scalar,
    /// A proto3 `optional` scalar or a oneof member: written and printed when
    /// set, default value or not.
    presence: bool,
    /// The oneof it belongs to (index in its message; proto3 `optional`
    /// fields have a synthetic one): at most one member may be set.
    oneof: Option<u8>,
}

#[derive(Debug, Default)]
struct Message {
    /// False for messages the fast path never handles (oneofs, proto2 presence, extensions).
    supported: bool,
    /// Sorted by field number, the order the general path prints them in.
    fields: Vec<Field>,
    /// JSON names and proto names to field indexes (a JSON name wins, as in the general path).
    by_key: HashMap<Box<str>, u16>,
}

#[derive(Debug, Default)]
struct Enum {
    by_name: HashMap<Box<str>, i32>,
    names: HashMap<i32, Box<str>>,
}

/// A route's message types, compiled once for the fast path.
#[derive(Debug, Default)]
pub struct Schema {
    messages: Vec<Message>,
    enums: Vec<Enum>,
    message_ids: HashMap<String, u32>,
    enum_ids: HashMap<String, u32>,
}

/// How a response is printed (the `print_options` the fast path supports).
#[derive(Debug, Clone, Copy)]
pub struct PrintStyle {
    /// `preserve_proto_field_names`.
    pub proto_names: bool,
    /// `always_print_enums_as_ints`.
    pub enums_as_ints: bool,
}

/// Nesting deeper than this goes to the general path (serde_json stops at 128).
const MAX_DEPTH: usize = 64;

const TIMESTAMP: &str = "google.protobuf.Timestamp";
const DURATION: &str = "google.protobuf.Duration";

impl Schema {
    /// Compiles `desc` and every message type it reaches; returns its id.
    pub fn add(&mut self, desc: &MessageDescriptor) -> u32 {
        if let Some(&id) = self.message_ids.get(desc.full_name()) {
            return id;
        }
        let id = self.messages.len() as u32;
        self.messages.push(Message::default());
        self.message_ids.insert(desc.full_name().to_string(), id);
        let proto3 = desc.parent_file().syntax() == prost_reflect::Syntax::Proto3;
        let mut supported = desc.oneofs().len() < 64 && desc.extensions().len() == 0 && desc.fields().len() < 128;
        let mut fields = Vec::new();
        for field in desc.fields() {
            let mut map_value = None;
            let mut map_key = Scalar::String;
            let ty = if field.is_map() {
                let Kind::Message(entry) = field.kind() else { continue };
                match self.type_of(&entry.map_entry_key_field().kind()) {
                    Type::Scalar(s) if !matches!(s, Scalar::Double | Scalar::Float) => map_key = s,
                    _ => supported = false,
                }
                map_value = Some(self.type_of(&entry.map_entry_value_field().kind()));
                Type::Other
            } else {
                let ty = self.type_of(&field.kind());
                // proto2's optional scalars (defaults of their own, required fields) stay with the general path.
                if !proto3
                    && !matches!(
                        ty,
                        Type::Message(_) | Type::Timestamp | Type::Duration | Type::Wrapper(_) | Type::Other
                    )
                    && !field.is_list()
                    && field.supports_presence()
                {
                    supported = false;
                }
                ty
            };
            if field.is_group() {
                supported = false;
            }
            fields.push(Field {
                number: field.number(),
                name: field.name().into(),
                json_name: field.json_name().into(),
                ty,
                repeated: field.is_list(),
                packed: field.is_packed(),
                map_value,
                map_key,
                presence: !field.is_list() && field.supports_presence(),
                oneof: field
                    .containing_oneof()
                    .and_then(|o| desc.oneofs().position(|x| x == o))
                    .and_then(|i| u8::try_from(i).ok()),
            });
        }
        fields.sort_by_key(|f| f.number);
        let mut by_key = HashMap::with_capacity(fields.len() * 2);
        for (i, f) in fields.iter().enumerate() {
            by_key.insert(f.name.clone(), i as u16);
        }
        for (i, f) in fields.iter().enumerate() {
            by_key.insert(f.json_name.clone(), i as u16);
        }
        self.messages[id as usize] = Message { supported, fields, by_key };
        id
    }

    fn type_of(&mut self, kind: &Kind) -> Type {
        match kind {
            Kind::Double => Type::Scalar(Scalar::Double),
            Kind::Float => Type::Scalar(Scalar::Float),
            Kind::Int32 => Type::Scalar(Scalar::Int32),
            Kind::Int64 => Type::Scalar(Scalar::Int64),
            Kind::Uint32 => Type::Scalar(Scalar::Uint32),
            Kind::Uint64 => Type::Scalar(Scalar::Uint64),
            Kind::Sint32 => Type::Scalar(Scalar::Sint32),
            Kind::Sint64 => Type::Scalar(Scalar::Sint64),
            Kind::Fixed32 => Type::Scalar(Scalar::Fixed32),
            Kind::Fixed64 => Type::Scalar(Scalar::Fixed64),
            Kind::Sfixed32 => Type::Scalar(Scalar::Sfixed32),
            Kind::Sfixed64 => Type::Scalar(Scalar::Sfixed64),
            Kind::Bool => Type::Scalar(Scalar::Bool),
            Kind::String => Type::Scalar(Scalar::String),
            Kind::Bytes => Type::Bytes,
            Kind::Enum(e) => {
                if let Some(&id) = self.enum_ids.get(e.full_name()) {
                    return Type::Enum(id);
                }
                let id = self.enums.len() as u32;
                let mut compiled = Enum::default();
                for v in e.values() {
                    compiled.by_name.insert(v.name().into(), v.number());
                    // The first name of an aliased number is the one printed.
                    compiled.names.entry(v.number()).or_insert_with(|| v.name().into());
                }
                self.enums.push(compiled);
                self.enum_ids.insert(e.full_name().to_string(), id);
                Type::Enum(id)
            }
            Kind::Message(m) if m.full_name() == TIMESTAMP => Type::Timestamp,
            Kind::Message(m) if m.full_name() == DURATION => Type::Duration,
            Kind::Message(m) => match m.full_name() {
                "google.protobuf.DoubleValue" => Type::Wrapper(Scalar::Double),
                "google.protobuf.FloatValue" => Type::Wrapper(Scalar::Float),
                "google.protobuf.Int64Value" => Type::Wrapper(Scalar::Int64),
                "google.protobuf.UInt64Value" => Type::Wrapper(Scalar::Uint64),
                "google.protobuf.Int32Value" => Type::Wrapper(Scalar::Int32),
                "google.protobuf.UInt32Value" => Type::Wrapper(Scalar::Uint32),
                "google.protobuf.BoolValue" => Type::Wrapper(Scalar::Bool),
                "google.protobuf.StringValue" => Type::Wrapper(Scalar::String),
                name if name.starts_with("google.protobuf.") => Type::Other,
                _ => Type::Message(self.add(m)),
            },
        }
    }

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
            self.read_field(field, r, out, depth)?;
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
                let key = r.string()?;
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
                    let key = match (field.map_key, key) {
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
                let text = r.string()?;
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
                let data = decode_base64(r.string()?)?;
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
fn comma(out: &mut Vec<u8>) {
    if out.last() != Some(&b'{') {
        out.push(b',');
    }
}

fn write_key(out: &mut Vec<u8>, field: &Field, style: PrintStyle) {
    write_str(out, if style.proto_names { &field.name } else { &field.json_name });
    out.push(b':');
}

/// A JSON string as serde_json writes it (the general path's printer).
fn write_str(out: &mut Vec<u8>, text: &str) {
    use serde::Serializer;
    // Writing into a Vec cannot fail.
    let _ = serde_json::Serializer::new(out).serialize_str(text);
}

fn write_display(out: &mut Vec<u8>, value: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(out, "{value}");
}

// ------------------------------------------------------------------ scalars

#[derive(Debug, Clone, Copy)]
enum Number {
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
    fn is_default(self) -> bool {
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

    fn write(self, out: &mut Vec<u8>) {
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
    fn print(self, out: &mut Vec<u8>) -> Option<()> {
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

fn wire_type_of(s: Scalar) -> u8 {
    match s {
        Scalar::Double | Scalar::Fixed64 | Scalar::Sfixed64 => 1,
        Scalar::Float | Scalar::Fixed32 | Scalar::Sfixed32 => 5,
        Scalar::String => 2,
        _ => 0,
    }
}

fn scalar_wire_type(ty: Type) -> Option<u8> {
    match ty {
        Type::Scalar(s) if s != Scalar::String => Some(wire_type_of(s)),
        Type::Enum(_) => Some(0),
        _ => None,
    }
}

fn decode_scalar(s: Scalar, value: &[u8]) -> Option<Number> {
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

/// A plain decimal integer (as a number, a string or a map key) as scalar `s`.
fn integer(s: Scalar, token: &str) -> Option<Number> {
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
type MapEntry<'a> = (Cow<'a, str>, Option<(u8, &'a [u8])>);

/// Reads a map entry message (key = field 1, value = field 2) of a `key`-typed map.
fn map_entry(entry: &[u8], key_type: Scalar) -> Option<MapEntry<'_>> {
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

// ------------------------------------------------------------------ JSON reader

struct Reader<'a> {
    json: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.json.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let found = self.json.get(self.pos..self.pos + word.len()) == Some(word);
        if found {
            self.pos += word.len();
        }
        found
    }

    /// A string without escapes or control characters (others: general path).
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.pos;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => return None,
                b if b < 0x20 => return None,
                _ => self.pos += 1,
            }
        }
        let text = &self.json[start..self.pos];
        self.pos += 1;
        // The whole body was checked to be UTF-8, and quotes are ASCII.
        std::str::from_utf8(text).ok()
    }

    /// A JSON number token, checked against JSON's grammar.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.pos;
        self.eat(b'-');
        let int_start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        let int_len = self.pos - int_start;
        if int_len == 0 || (int_len > 1 && self.json[int_start] == b'0') {
            return None;
        }
        if self.eat(b'.') {
            let frac = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            if self.pos == frac {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            let exp = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            if self.pos == exp {
                return None;
            }
        }
        std::str::from_utf8(&self.json[start..self.pos]).ok()
    }
}
