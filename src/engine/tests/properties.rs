//! Property tests: the engine's proto3 JSON mapping against a reference
//! (`prost-reflect` with `serde`) on generated messages of the richest example
//! type, `bookstore.v1.AllTypes` (every scalar, enums, nested and recursive
//! messages, repeated fields, maps of every key kind, a oneof, proto3 optionals
//! and the well-known types).
//!
//! For each generated message: the reference's JSON, sent as a request body,
//! must become exactly that message; and the message, as a gRPC reply, must
//! print as JSON that the reference reads back as exactly that message.

#[macro_use]
mod support;
#[path = "../src/test_rng.rs"]
mod test_rng;

use std::collections::HashMap;

use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value};

/// Messages per property (each one a full round trip through the engine).
const CASES: usize = 300;

struct Gen {
    next: Box<dyn FnMut() -> u64>,
}

impl Gen {
    fn new(seed: u64) -> Self {
        Gen { next: Box::new(test_rng::xorshift(seed)) }
    }

    fn below(&mut self, n: u64) -> u64 {
        (self.next)() % n.max(1)
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    /// An integer biased towards the edges (0, ±1, the type's extremes).
    fn int(&mut self, min: i128, max: i128) -> i128 {
        match self.below(6) {
            0 => min,
            1 => max,
            2 => [0, 1, -1][self.below(3) as usize].clamp(min, max),
            _ => {
                let span = (max - min) as u128 + 1;
                let raw = ((self.next)() as u128) << 64 | (self.next)() as u128;
                min + (raw % span) as i128
            }
        }
    }

    /// Any double but NaN (NaN equals nothing, so no round trip can be checked with it).
    fn float(&mut self) -> f64 {
        let x = match self.below(8) {
            0 => 0.0,
            1 => -0.0,
            2 => f64::INFINITY,
            3 => f64::NEG_INFINITY,
            4 => (self.int(-1_000_000, 1_000_000) as f64) / 8.0,
            5 => f64::from_bits((self.next)() & !(0x7ff << 52) | (0x3ff_u64 + self.below(600) - 300) << 52),
            _ => f64::from_bits((self.next)()),
        };
        if x.is_nan() {
            0.5
        } else {
            x
        }
    }

    fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", " ", "\"", "\\", "/", "\u{0}", "\n", "\u{1f}", "é", "€", "😀", "\u{2028}", "<", "&", "\u{7f}",
            "\u{ffff}",
        ];
        let len = self.below(8);
        (0..len).map(|_| PIECES[self.below(PIECES.len() as u64) as usize]).collect()
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = self.below(12);
        (0..len).map(|_| (self.next)() as u8).collect()
    }
}

/// A valid value of each well-known type, as proto3 JSON.
fn well_known(g: &mut Gen, full_name: &str) -> Option<serde_json::Value> {
    use serde_json::json;
    let samples: Vec<serde_json::Value> = match full_name {
        "google.protobuf.Timestamp" => vec![
            json!("1970-01-01T00:00:00Z"),
            json!("0001-01-01T00:00:00Z"),
            json!("9999-12-31T23:59:59.999999999Z"),
            json!("2024-02-29T12:30:00.120Z"),
            json!("1969-12-31T23:59:59.000001Z"),
        ],
        "google.protobuf.Duration" => vec![
            json!("0s"),
            json!("-1.000000001s"),
            json!("315576000000s"),
            json!("-315576000000.999999999s"),
            json!("0.500s"),
        ],
        "google.protobuf.FieldMask" => vec![json!(""), json!("a"), json!("fooBar,x.yZ"), json!("a.b.c")],
        "google.protobuf.Struct" => vec![json!({}), json!({"a": null, "b": [1.5, "x", true, {"c": {}}], "": -0.25})],
        "google.protobuf.Value" => {
            vec![json!(null), json!(1e300), json!("s"), json!(false), json!([[], {}]), json!({"k": [null]})]
        }
        "google.protobuf.ListValue" => vec![json!([]), json!([1, "two", null, [3], {"four": 4}])],
        "google.protobuf.Any" => vec![
            json!({"@type": "type.googleapis.com/bookstore.v1.Nested", "name": "in any", "count": -3}),
            json!({"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1.5s"}),
            json!({"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"a": 1}}),
        ],
        "google.protobuf.Empty" => vec![json!({})],
        "google.protobuf.Int32Value" => vec![json!(-2147483648), json!(0)],
        "google.protobuf.Int64Value" => vec![json!("9223372036854775807"), json!("-1")],
        "google.protobuf.UInt32Value" => vec![json!(4294967295u32)],
        "google.protobuf.UInt64Value" => vec![json!("18446744073709551615")],
        // No infinities in wrappers: the reference prints a wrapped infinity as `null`.
        "google.protobuf.FloatValue" => vec![json!(1.5), json!(-0.0)],
        "google.protobuf.DoubleValue" => vec![json!(-2.5e-300), json!(1e308)],
        "google.protobuf.BoolValue" => vec![json!(true), json!(false)],
        "google.protobuf.StringValue" => vec![json!(""), json!("wrapped ü")],
        "google.protobuf.BytesValue" => vec![json!("AAEC/w=="), json!("")],
        _ => return None,
    };
    Some(samples[g.below(samples.len() as u64) as usize].clone())
}

fn scalar(g: &mut Gen, kind: &Kind) -> Value {
    match kind {
        Kind::Double => Value::F64(g.float()),
        Kind::Float => Value::F32(g.float() as f32),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(g.int(i32::MIN as i128, i32::MAX as i128) as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(g.int(i64::MIN as i128, i64::MAX as i128) as i64),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(g.int(0, u32::MAX as i128) as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(g.int(0, u64::MAX as i128) as u64),
        Kind::Bool => Value::Bool(g.chance(2)),
        Kind::String => Value::String(g.string()),
        Kind::Bytes => Value::Bytes(g.bytes().into()),
        Kind::Enum(e) => {
            let values: Vec<i32> = e.values().map(|v| v.number()).collect();
            Value::EnumNumber(values[g.below(values.len() as u64) as usize])
        }
        Kind::Message(m) => Value::Message(message(g, m, 0)),
    }
}

fn value(g: &mut Gen, kind: &Kind, depth: u32) -> Value {
    match kind {
        Kind::Message(m) => {
            if let Some(json) = well_known(g, m.full_name()) {
                return Value::Message(DynamicMessage::deserialize(m.clone(), json).expect("valid well-known JSON"));
            }
            Value::Message(message(g, m, depth + 1))
        }
        other => scalar(g, other),
    }
}

fn map_key(g: &mut Gen, kind: &Kind) -> MapKey {
    match scalar(g, kind) {
        Value::Bool(b) => MapKey::Bool(b),
        Value::I32(n) => MapKey::I32(n),
        Value::I64(n) => MapKey::I64(n),
        Value::U32(n) => MapKey::U32(n),
        Value::U64(n) => MapKey::U64(n),
        Value::String(s) => MapKey::String(s),
        other => unreachable!("map key kind {other:?}"),
    }
}

fn field_value(g: &mut Gen, field: &FieldDescriptor, depth: u32) -> Value {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else { unreachable!() };
        let key_kind = entry.map_entry_key_field().kind();
        let value_kind = entry.map_entry_value_field().kind();
        let mut map = HashMap::new();
        for _ in 0..g.below(4) {
            map.insert(map_key(g, &key_kind), value(g, &value_kind, depth));
        }
        Value::Map(map)
    } else if field.is_list() {
        Value::List((0..g.below(4)).map(|_| value(g, &field.kind(), depth)).collect())
    } else {
        value(g, &field.kind(), depth)
    }
}

/// A random message as it is on the wire: decoded from its own encoding, so fields
/// the generator set to their default value are unset, as they are after any transport.
fn generated(g: &mut Gen, desc: &MessageDescriptor) -> DynamicMessage {
    wire(&message(g, desc, 0))
}

/// A message as the wire has it (fields holding their default value unset), so two
/// messages compare by content, not by which defaults were set explicitly.
fn wire(msg: &DynamicMessage) -> DynamicMessage {
    DynamicMessage::decode(msg.descriptor(), msg.encode_to_vec().as_slice()).expect("a message decodes")
}

/// A random message: each field set with probability 1/2 (nested types less as they deepen).
fn message(g: &mut Gen, desc: &MessageDescriptor, depth: u32) -> DynamicMessage {
    let mut msg = DynamicMessage::new(desc.clone());
    for field in desc.fields() {
        let recursive = matches!(field.kind(), Kind::Message(ref m) if m.full_name() == desc.full_name());
        if depth > 3 && recursive || !g.chance(2 + u64::from(depth)) && depth > 0 || g.chance(2) {
            continue;
        }
        // Setting a oneof member clears the others: the last one set wins, as in JSON.
        msg.set_field(&field, field_value(g, &field, depth));
    }
    msg
}

fn differs(expected: &DynamicMessage, got: &DynamicMessage) -> String {
    format!(
        "\n  expected: {}\n  got:      {}",
        serde_json::to_string(expected).unwrap_or_default(),
        serde_json::to_string(got).unwrap_or_default()
    )
}

test! { fn json_bodies_become_the_reference_message() {
    let t = support::transcoder(serde_json::json!({}));
    let plan = support::plan(&t, "POST", "/v1/types:echo");
    let desc = support::message("bookstore.v1.AllTypes");
    let mut g = Gen::new(0x005E_ED0F_A117_E575);
    for case in 0..CASES {
        let expected = generated(&mut g, &desc);
        let body = serde_json::to_vec(&expected).expect("reference prints");
        let bytes = t
            .request_message(&plan, Some("application/json"), &body)
            .unwrap_or_else(|e| panic!("case {case}: refused {}: {e:?}", String::from_utf8_lossy(&body)));
        let got = wire(&DynamicMessage::decode(desc.clone(), bytes.as_slice()).expect("valid protobuf"));
        assert!(got == expected, "case {case}: {}{}", String::from_utf8_lossy(&body), differs(&expected, &got));
    }
}}

test! { fn replies_print_as_json_the_reference_reads_back() {
    for options in [
        serde_json::json!({}),
        serde_json::json!({"print_options": {"always_print_primitive_fields": true, "always_print_enums_as_ints": true,
                                             "preserve_proto_field_names": true, "add_whitespace": true}}),
    ] {
        let t = support::transcoder(options.clone());
        let plan = support::plan(&t, "POST", "/v1/types:echo");
        let desc = support::message("bookstore.v1.AllTypes");
        let mut g = Gen::new(0xB0B_CAFE_D00D);
        for case in 0..CASES {
            let expected = generated(&mut g, &desc);
            let reply = t.message_response(&plan, &expected.encode_to_vec());
            let text = String::from_utf8_lossy(&reply.body).into_owned();
            assert_eq!(reply.status, 200, "case {case} ({options}): {text}");
            let mut de = serde_json::Deserializer::from_str(&text);
            let got = wire(&DynamicMessage::deserialize(desc.clone(), &mut de)
                .unwrap_or_else(|e| panic!("case {case} ({options}): the reference cannot read {text}: {e}")));
            assert!(got == expected, "case {case} ({options}): {text}{}", differs(&expected, &got));
        }
    }
}}
