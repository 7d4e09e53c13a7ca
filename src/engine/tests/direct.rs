//! The fast path (`transcoder::direct`) against the general one, on every
//! message type of the example and bench protos, filled with random values:
//! whatever the fast path accepts must give the same JSON bytes (responses)
//! and the same message (requests) as the `DynamicMessage` path.

#[macro_use]
mod support;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MapKey, MessageDescriptor, Value};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use transcoder::config::PrintOptions;
use transcoder::direct::{PrintStyle, Schema};
use transcoder::request::{json_to_message, ParseOptions};
use transcoder::response::Printer;

const BENCH: &str = include_str!("../../../bench/proto/bench/v1/bench.proto");

struct Sources;

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match name {
            "bench/v1/bench.proto" => File::from_source(name, BENCH),
            "google/api/annotations.proto" => {
                File::from_source(name, include_str!("../../../descriptors/google/api/annotations.proto"))
            }
            "google/api/http.proto" => {
                File::from_source(name, include_str!("../../../descriptors/google/api/http.proto"))
            }
            _ => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// The bench protos and the example protos (the latter from the test support).
fn pools() -> Vec<DescriptorPool> {
    let mut resolver = ChainFileResolver::new();
    resolver.add(Sources);
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler.open_files(["bench/v1/bench.proto"]).expect("bench.proto compiles");
    let bench = DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice()).expect("pool");
    vec![bench, support::pool()]
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const STRINGS: &[&str] = &["", "a", "République", "quote \" here", "back\\slash", "line\nbreak", "<tag>&", "😀", "x y"];
const DOUBLES: &[f64] = &[
    0.0,
    1.0,
    -2.5,
    0.1,
    1e21,
    1e-7,
    123456.789,
    3.4028235e38,
    f64::NAN,
    -0.0,
    1e300,
    16.99,
    16.990000000000002,
    0.30000000000000004,
    45.764043,
    4.7,
    1e16,
    1e-5,
];

fn random_value(kind: &Kind, rng: &mut Rng, depth: usize) -> Value {
    match kind {
        Kind::Double => Value::F64(DOUBLES[rng.below(DOUBLES.len() as u64) as usize]),
        Kind::Float => Value::F32(DOUBLES[rng.below(DOUBLES.len() as u64) as usize] as f32),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32([0, 1, -1, 42, i32::MAX, i32::MIN][rng.below(6) as usize])
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64([0, 7, -7, i64::MAX, i64::MIN][rng.below(5) as usize])
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32([0, 3, u32::MAX][rng.below(3) as usize]),
        Kind::Uint64 | Kind::Fixed64 => Value::U64([0, 9, u64::MAX][rng.below(3) as usize]),
        Kind::Bool => Value::Bool(rng.below(2) == 1),
        Kind::String => Value::String(STRINGS[rng.below(STRINGS.len() as u64) as usize].to_string()),
        Kind::Bytes => {
            Value::Bytes([&[][..], &[0, 255, 7], b"any carnal pleas", &[251; 5]][rng.below(4) as usize].to_vec().into())
        }
        Kind::Enum(e) => {
            let values: Vec<i32> = e.values().map(|v| v.number()).collect();
            // Now and then a number the enum does not declare (proto3 enums are open).
            Value::EnumNumber(if rng.below(8) == 0 { 99 } else { values[rng.below(values.len() as u64) as usize] })
        }
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
            let mut t = DynamicMessage::new(m.clone());
            t.set_field_by_name("seconds", Value::I64([0, 1_767_225_600, -86_400][rng.below(3) as usize]));
            t.set_field_by_name("nanos", Value::I32([0, 500_000_000, 123_000, 7][rng.below(4) as usize]));
            Value::Message(t)
        }
        Kind::Message(m) if m.full_name() == "google.protobuf.Duration" => {
            let mut d = DynamicMessage::new(m.clone());
            let (seconds, nanos) =
                [(0, 0), (3600, 0), (1, 500_000_000), (-86_400, -7), (0, -123_000), (315_576_000_000, 999_999_999)]
                    [rng.below(6) as usize];
            d.set_field_by_name("seconds", Value::I64(seconds));
            d.set_field_by_name("nanos", Value::I32(nanos));
            Value::Message(d)
        }
        Kind::Message(m) if m.full_name().starts_with("google.protobuf.") && m.full_name().ends_with("Value") => {
            // A wrapper: now and then left empty (its default value).
            let mut w = DynamicMessage::new(m.clone());
            if let Some(field) = m.get_field_by_name("value").filter(|_| rng.below(3) != 0) {
                w.set_field(&field, random_value(&field.kind(), rng, depth + 1));
            }
            Value::Message(w)
        }
        Kind::Message(m) => Value::Message(random_message(m, rng, depth + 1)),
    }
}

fn random_message(desc: &MessageDescriptor, rng: &mut Rng, depth: usize) -> DynamicMessage {
    let mut message = DynamicMessage::new(desc.clone());
    if depth > 3 || desc.full_name().starts_with("google.protobuf.") {
        return message;
    }
    for field in desc.fields() {
        if rng.below(3) == 0 {
            continue;
        }
        let value = if field.is_map() {
            let Kind::Message(entry) = field.kind() else { continue };
            let value_kind = entry.map_entry_value_field().kind();
            let mut map = std::collections::HashMap::new();
            for _ in 0..rng.below(4) {
                let small = [0i64, 1, -7, 42, 1000][rng.below(5) as usize];
                let key = match entry.map_entry_key_field().kind() {
                    Kind::String => MapKey::String(STRINGS[rng.below(STRINGS.len() as u64) as usize].to_string()),
                    Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(small as i32),
                    Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(small * 1_000_000_007),
                    Kind::Uint32 | Kind::Fixed32 => MapKey::U32(small.unsigned_abs() as u32),
                    Kind::Uint64 | Kind::Fixed64 => MapKey::U64(small.unsigned_abs() * 1_000_000_007),
                    Kind::Bool => MapKey::Bool(small > 0),
                    _ => continue,
                };
                map.insert(key, random_value(&value_kind, rng, depth));
            }
            Value::Map(map)
        } else if field.is_list() {
            Value::List((0..rng.below(4)).map(|_| random_value(&field.kind(), rng, depth)).collect())
        } else {
            random_value(&field.kind(), rng, depth)
        };
        // A oneof keeps only the last member set, as it should.
        message.set_field(&field, value);
    }
    message
}

test! {
    fn the_fast_path_agrees_with_the_general_one() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut printed, mut parsed, mut tried) = (0, 0, 0);
        for pool in pools() {
            let mut schema = Schema::default();
            for desc in pool.all_messages().filter(|m| !m.full_name().starts_with("google.")) {
                let id = schema.add(&desc);
                for (proto_names, enums_as_ints) in [(false, false), (true, false), (false, true)] {
                    let printer = Printer::new(&PrintOptions {
                        preserve_proto_field_names: proto_names,
                        always_print_enums_as_ints: enums_as_ints,
                        ..PrintOptions::default()
                    });
                    let style = PrintStyle { proto_names, enums_as_ints };
                    for _ in 0..40 {
                        tried += 1;
                        let wire = random_message(&desc, &mut rng, 0).encode_to_vec();
                        let decoded = DynamicMessage::decode(desc.clone(), wire.as_slice()).expect("decodes");
                        let Ok(general) = printer.message(&decoded) else { continue };
                        let mut fast = Vec::new();
                        if schema.wire_to_json(id, &wire, style, &mut fast).is_some() {
                            printed += 1;
                            assert_eq!(
                                String::from_utf8_lossy(&fast),
                                String::from_utf8_lossy(&general),
                                "{}: printed differently",
                                desc.full_name()
                            );
                        }
                        // The printed JSON read back both ways.
                        let Ok(expected) = json_to_message(&desc, &general, ParseOptions::default()) else { continue };
                        let mut wire_back = Vec::new();
                        if schema.json_to_wire(id, &general, &mut wire_back).is_some() {
                            parsed += 1;
                            let got = DynamicMessage::decode(desc.clone(), wire_back.as_slice()).expect("fast path wire decodes");
                            // Compared as wire bytes: a DynamicMessage's Debug recurses without end on
                            // recursive types, which overflowed the stack when such a test failed.
                            // Equal, or equal but for a wrapper holding its default, which the fast
                            // path writes empty as protobuf does and the general path writes out.
                            let same = got == expected || printer.message(&got).ok() == printer.message(&expected).ok();
                            assert!(
                                same,
                                "{}: read differently from {}: fast {:?}, general {:?}",
                                desc.full_name(),
                                String::from_utf8_lossy(&general),
                                got.encode_to_vec(),
                                expected.encode_to_vec()
                            );
                        }
                    }
                }
            }
        }
        eprintln!("fast path taken: printed {printed}, parsed {parsed} of {tried}");
        // The comparison is only worth something if the fast path took most cases.
        assert!(printed * 3 > tried && parsed * 4 > tried, "fast path taken: printed {printed}, parsed {parsed} of {tried}");
    }
}

test! {
    fn the_fast_path_refuses_what_it_does_not_handle() {
        let pool = &pools()[0];
        let mut schema = Schema::default();
        let order = pool.get_message_by_name("bench.v1.Order").expect("Order");
        let id = schema.add(&order);
        for body in [
            r#"{"id":"a\x"}"#,                 // an escape JSON does not have
            r#"{"id":"\ud800"}"#,              // a lone surrogate
            r#"{"id":"\udc00\ud800"}"#,        // surrogates the wrong way round
            r#"{"id":"\u12g4"}"#,              // not hex
            r#"{"id":"tab	here"}"#,            // a raw control character
            r#"{"discount":null}"#,             // null for a oneof member
            r#"{"unknownKey":1}"#,              // a key naming no field
            r#"{"id":"a","id":"b"}"#,           // a field twice
            r#"{"discountRate":"NaN"}"#,        // a float as a string
            r#"{"status":2}"#,                  // an enum as a number
            r#"{"gift":true,}"#,                // not JSON
            r#"{"createTime":"2026-01-01T00:00:00+01:00"}"#, // an offset
            r#"{"createTime":"2026-02-30T00:00:00Z"}"#,      // no such day
            r#"{"items":[{"quantity":1.5}]}"#,  // not an integer
            r#"{"id":"a"} x"#,                  // trailing garbage
        ] {
            assert!(schema.json_to_wire(id, body.as_bytes(), &mut Vec::new()).is_none(), "accepted {body}");
        }
        for (name, body) in [
            ("bench.v1.Listing", &include_bytes!("../../../bench/payloads/listing.json")[..]),
            ("bench.v1.Catalog", include_bytes!("../../../bench/payloads/catalog.json")),
            ("bench.v1.Listing", include_bytes!("../../../bench/payloads/listing-escaped.json")),
        ] {
            let id = schema.add(&pool.get_message_by_name(name).expect("bench message"));
            let mut wire = Vec::new();
            schema.json_to_wire(id, body, &mut wire).unwrap_or_else(|| panic!("{name} takes the fast path in"));
            let style = PrintStyle { proto_names: false, enums_as_ints: false };
            assert!(schema.wire_to_json(id, &wire, style, &mut Vec::new()).is_some(), "{name} takes the fast path out");
        }
        for body in [r#"{"shippingTime":"01s"}"#, r#"{"shippingTime":"1.s"}"#, r#"{"shippingTime":"+1s"}"#,
                     r#"{"shippingTime":"1.0000000001s"}"#, r#"{"shippingTime":"315576000001s"}"#] {
            let id = schema.add(&pool.get_message_by_name("bench.v1.Listing").expect("Listing"));
            assert!(schema.json_to_wire(id, body.as_bytes(), &mut Vec::new()).is_none(), "accepted {body}");
        }
        // Presence: a oneof member or an `optional` field set to its default is sent and printed;
        // two members of one oneof (in JSON or on the wire) are the general path's to judge.
        let listing = schema.add(&pool.get_message_by_name("bench.v1.Listing").expect("Listing"));
        let style = PrintStyle { proto_names: false, enums_as_ints: false };
        let mut wire = Vec::new();
        schema.json_to_wire(listing, br#"{"discount":0,"maxPerOrder":0}"#, &mut wire).expect("fast path");
        assert_eq!(wire, [0x91, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0xa0, 0x01, 0x00]);
        let mut printed = Vec::new();
        schema.wire_to_json(listing, &wire, style, &mut printed).expect("fast path");
        assert_eq!(String::from_utf8_lossy(&printed), r#"{"discount":0,"maxPerOrder":0}"#);
        assert!(schema.json_to_wire(listing, br#"{"discount":1.5,"coupon":"x"}"#, &mut Vec::new()).is_none());
        let both = [&wire[..10], &[0x9a, 0x01, 0x01, b'x'][..]].concat();
        assert!(schema.wire_to_json(listing, &both, style, &mut Vec::new()).is_none());
        // Integer map keys: strings in JSON, numbers on the wire, printed in numeric order.
        let mut wire = Vec::new();
        schema.json_to_wire(listing, br#"{"stockByWarehouse":{"10":3,"-2":1,"9":0}}"#, &mut wire).expect("fast path");
        let mut printed = Vec::new();
        schema.wire_to_json(listing, &wire, style, &mut printed).expect("fast path");
        assert_eq!(String::from_utf8_lossy(&printed), r#"{"stockByWarehouse":{"-2":1,"9":0,"10":3}}"#);
        for body in [r#"{"stockByWarehouse":{"07":1}}"#, r#"{"stockByWarehouse":{"x":1}}"#, r#"{"stockByWarehouse":{"3000000000":1}}"#] {
            assert!(schema.json_to_wire(listing, body.as_bytes(), &mut Vec::new()).is_none(), "accepted {body}");
        }
        // A wrapper at its default is present, so printed; bytes are standard padded base64 both ways.
        let mut wire = Vec::new();
        schema.json_to_wire(listing, br#"{"minAge":0,"subtitle":"","checksum":"AP8H"}"#, &mut wire).expect("fast path");
        assert_eq!(wire, [0xaa, 0x01, 0x00, 0xb2, 0x01, 0x00, 0xba, 0x01, 0x03, 0x00, 0xff, 0x07]);
        let mut printed = Vec::new();
        schema.wire_to_json(listing, &wire, style, &mut printed).expect("fast path");
        assert_eq!(String::from_utf8_lossy(&printed), r#"{"minAge":0,"subtitle":"","checksum":"AP8H"}"#);
        for body in [r#"{"checksum":"AP8"}"#, r#"{"checksum":"_-8H"}"#] {
            assert!(schema.json_to_wire(listing, body.as_bytes(), &mut Vec::new()).is_none(), "accepted {body}");
        }
        let mut out = Vec::new();
        schema
            .json_to_wire(id, include_bytes!("../../../bench/payloads/order.json"), &mut out)
            .expect("the bench order takes the fast path");
        assert!(schema.wire_to_json(id, &out, PrintStyle { proto_names: false, enums_as_ints: false }, &mut Vec::new()).is_some());
    }
}

test! {
    fn escapes_and_nulls_take_the_fast_path_and_read_as_the_general_path_reads_them() {
        let pool = &pools()[0];
        let mut schema = Schema::default();
        for (name, body) in [
            ("bench.v1.Order", r#"{"id":"a\"b\\c\/d","note":"line\nbreak\ttab\r\b\f","customerId":"\u00e9t\u00C9 \ud83d\ude00 \u0000"}"#),
            ("bench.v1.Order", r#"{"labels":{"k\"ey":"v\u00e9"},"items":[{"sku":"\/x"}]}"#),
            ("bench.v1.Order", r#"{"id":null,"status":null,"createTime":null,"shippingAddress":null,"items":null,"labels":null,"gift":null}"#),
            ("bench.v1.Listing", r#"{"minAge":null,"subtitle":null,"maxPerOrder":null,"checksum":null,"tags":["a\"",null]}"#),
            ("bench.v1.Listing", r#"{"minAge":null,"subtitle":"\u00e9","maxPerOrder":null,"checksum":"AP8H","tags":["a\""]}"#),
            ("bench.v1.Listing", r#"{"checksum":"AP\/H","title":"PHP \/ escapes \/"}"#),
        ] {
            let desc = pool.get_message_by_name(name).expect("bench message");
            let id = schema.add(&desc);
            let general = json_to_message(&desc, body.as_bytes(), ParseOptions::default());
            let mut wire = Vec::new();
            match (schema.json_to_wire(id, body.as_bytes(), &mut wire), general) {
                (Some(()), Ok(expected)) => {
                    let got = DynamicMessage::decode(desc.clone(), wire.as_slice()).expect("fast path wire decodes");
                    assert_eq!(got, expected, "{body}");
                }
                // The fast path may leave anything to the general path, but never take what it refuses.
                (None, _) => {}
                (Some(()), Err(e)) => panic!("{body}: the fast path took what the general path refuses: {e}"),
            }
        }
        // Cases the fast path must take.
        let order = schema.add(&pool.get_message_by_name("bench.v1.Order").expect("Order"));
        for body in [
            r#"{"id":"a\"b\\c\/d","note":"line\nbreak","customerId":"\u00e9 \ud83d\ude00"}"#,
            r#"{"id":null,"status":null,"createTime":null,"items":null,"labels":null}"#,
        ] {
            assert!(schema.json_to_wire(order, body.as_bytes(), &mut Vec::new()).is_some(), "refused {body}");
        }
        let listing = schema.add(&pool.get_message_by_name("bench.v1.Listing").expect("Listing"));
        for body in [
            r#"{"minAge":null,"subtitle":null,"maxPerOrder":null,"checksum":null,"stockByWarehouse":null}"#,
            r#"{"checksum":"AP\/H","title":"PHP \/ escapes \/","attributes":{"k\u00e9y":"\"v\""}}"#,
        ] {
            assert!(schema.json_to_wire(listing, body.as_bytes(), &mut Vec::new()).is_some(), "refused {body}");
        }
    }
}

test! {
    fn a_set_with_source_info_loads_without_it() {
        let mut resolver = ChainFileResolver::new();
        resolver.add(Sources);
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true).include_source_info(true);
        compiler.open_files(["bench/v1/bench.proto"]).expect("bench.proto compiles");
        let with_info = compiler.encode_file_descriptor_set();
        let stripped = transcoder::direct::without_source_info(&with_info).expect("a well-formed set");
        assert!(stripped.len() * 2 < with_info.len(), "{} -> {} bytes", with_info.len(), stripped.len());
        let pool = DescriptorPool::decode(stripped.as_slice()).expect("the stripped set decodes");
        assert!(pool.files().all(|f| f.file_descriptor_proto().source_code_info.is_none()));
        let original = DescriptorPool::decode(with_info.as_slice()).expect("the original decodes");
        let names = |p: &DescriptorPool| p.all_messages().map(|m| m.full_name().to_string()).collect::<Vec<_>>();
        assert_eq!(names(&pool), names(&original));
        // Not a set at all: None, so the caller reports the decode error of the bytes as given.
        assert!(transcoder::direct::without_source_info(&[0x0a, 0x05, 0x01]).is_none());
    }
}

test! {
    fn explicit_defaults_and_odd_wire_print_as_the_general_path_does() {
        let pool = &pools()[0];
        let printer = Printer::new(&PrintOptions::default());
        let style = PrintStyle { proto_names: false, enums_as_ints: false };
        let order = pool.get_message_by_name("bench.v1.Order").expect("Order");
        let mut schema = Schema::default();
        let id = schema.add(&order);
        let mut printed = 0;
        for wire in [
            &[0x0a, 0x00][..],                         // id = "" written out
            &[0x18, 0x00],                             // status = 0 written out
            &[0x60, 0x00],                             // gift = false written out
            &[0x59, 0, 0, 0, 0, 0, 0, 0, 0],           // discount_rate = 0.0 written out
            &[0x22, 0x00],                             // create_time present, empty
            &[0x52, 0x00],                             // a map entry with neither key nor value
            &[0x52, 0x03, 0x0a, 0x01, b'k'],           // a map entry without its value
            &[0x42, 0x02, 0x28, 0x05, 0x42, 0x00],     // items: one whose tags has the wrong wire type, one empty
            &[0x0a, 0x01, b'a', 0xa8, 0x1f, 0x01],     // an unknown field after a known one
            &[0x18, 0x07],                             // an enum number Status does not declare
        ] {
            let mut fast = Vec::new();
            let taken = schema.wire_to_json(id, wire, style, &mut fast).is_some();
            let Ok(decoded) = DynamicMessage::decode(order.clone(), wire) else {
                assert!(!taken, "the fast path printed what does not decode: {wire:02x?}");
                continue;
            };
            let general = printer.message(&decoded);
            if taken {
                printed += 1;
                let general = general.expect("the general path prints what the fast path printed");
                assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&general), "wire {wire:02x?}");
            }
        }
        eprintln!("fast path took {printed} of the odd wires");
        assert!(printed >= 7, "the fast path took only {printed} of these cases");
    }
}

test! {
    fn url_bindings_straight_to_the_wire_agree_with_the_general_path() {
        let t = support::transcoder(serde_json::json!({}));
        let queries = [
            "int32Value=-5&int64Value=9223372036854775807&uint32Value=4294967295&uint64Value=18446744073709551615",
            "sint32Value=-3&sint64Value=-9&fixed32Value=7&fixed64Value=8&sfixed32Value=-1&sfixed64Value=-2",
            "doubleValue=16.99&floatValue=4.7&boolValue=yes&stringValue=R%C3%A9publique&color=BLUE",
            "color=2&repeatedColor=RED&repeatedColor=3&repeatedInt32=0&repeatedInt32=-7&repeatedString=",
            "nested.name=a&nested.count=3&nested.child.name=b&nested.child.count=0",
            "int32Value=1&int32Value=2&stringValue=x&stringValue=", // bound twice: not taken
            "optionalInt32=0&optionalString=",
            "doubleValue=0&floatValue=0.0&int32Value=0&boolValue=false",
            "repeatedInt64=1&repeatedInt64=-1",
            // The general path's cases: not plain, so not taken (checked below).
            "int32Value=007", "doubleValue=NaN", "doubleValue=-0", "color=7", "bytesValue=AP8H",
            "choiceString=a", "stringMap[k]=v", "timestamp=2020-01-01T00:00:00Z", "int32Wrapper=3",
            "repeatedNested.name=a", "color=blue",
        ];
        let mut taken = 0;
        for query in queries {
            let plan = support::plan(&t, "POST", &format!("/v1/types:echo?{query}"));
            let route = t.route(&plan).expect("route");
            let general = transcoder::request::build_request(route, plan.bindings(), None, b"", ParseOptions::default());
            let Some(fast) = transcoder::direct::bindings_to_wire(plan.bindings(), false) else { continue };
            taken += 1;
            let input = t.method(&plan).expect("method").input.clone();
            let general = DynamicMessage::decode(input.clone(), general.expect("general path").as_slice()).expect("decodes");
            let fast = DynamicMessage::decode(input, fast.as_slice()).expect("fast wire decodes");
            // (DynamicMessage's Debug recurses through the descriptor: compare, then print JSON.)
            let json = |m: &DynamicMessage| serde_json::to_string(m).unwrap_or_default();
            assert!(fast == general, "{query}: fast {} vs general {}", json(&fast), json(&general));
        }
        assert_eq!(taken, 8, "the plain queries take the fast path, the others do not");
    }
}
