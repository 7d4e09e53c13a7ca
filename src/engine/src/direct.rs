//! Direct transcoding between JSON and the protobuf wire format, for the
//! common case, without a `serde_json::Value` or a `DynamicMessage` per
//! request: a route's message types are compiled once, on its first request,
//! into flat tables ([`Schema`]), and a request body is read and written in one pass.
//!
//! It is a fast path, not a second implementation of proto3 JSON: whenever
//! the input leaves the subset handled here (an escape in a key, a `null` in
//! a list or a oneof, a number written as a string for a float, two members of a oneof, a
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
mod parse;
mod print;
mod reader;
mod scalar;
mod time;
mod wire;

pub use bindings::bindings_to_wire;
use time::{parse_duration, parse_timestamp, read_timestamp, write_duration};
pub use wire::without_source_info;
use wire::{begin_len, end_len, field_bytes, get_varint, put_key, put_varint};
use wire::{decode_base64, encode_base64};

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
                // A proto3 `optional` field's synthetic oneof has one member: nothing to check.
                oneof: field
                    .containing_oneof()
                    .filter(|o| !o.is_synthetic())
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
}
