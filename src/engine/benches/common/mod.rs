//! What both engine benches share: the bench descriptor set, the engine loaded
//! from it, the two cases, and the `DynamicMessage` + serde_json baseline.

use base64::Engine;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use transcoder::Transcoder;

/// One benchmarked message: its route, type and JSON body.
pub struct Case {
    pub name: &'static str,
    pub path: &'static str,
    pub message: &'static str,
    pub json: &'static [u8],
}

/// The messages of bench/proto/bench/v1/bench.proto: small, an order (~1 KB), a listing
/// (numbers first, ~1 KB) and a catalog page of listings (~22 KB).
pub const CASES: &[Case] = &[
    Case {
        name: "small",
        path: "/v1/small",
        message: "bench.v1.Small",
        json: include_bytes!("../../../../bench/payloads/small.json"),
    },
    Case {
        name: "order",
        path: "/v1/orders",
        message: "bench.v1.Order",
        json: include_bytes!("../../../../bench/payloads/order.json"),
    },
    Case {
        name: "listing",
        path: "/v1/listings",
        message: "bench.v1.Listing",
        json: include_bytes!("../../../../bench/payloads/listing.json"),
    },
    Case {
        name: "catalog",
        path: "/v1/catalogs",
        message: "bench.v1.Catalog",
        json: include_bytes!("../../../../bench/payloads/catalog.json"),
    },
];

/// The bench protos compiled in memory (google/api from descriptors/, well-known types from protox).
pub fn descriptor_set() -> Vec<u8> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut compiler = protox::Compiler::new([format!("{root}/bench/proto"), format!("{root}/descriptors")])
        .expect("include paths exist");
    compiler.include_imports(true);
    compiler.open_files(["bench/v1/bench.proto"]).expect("bench.proto compiles");
    compiler.encode_file_descriptor_set()
}

/// The set's pool (for the baseline) and the engine configured with it.
pub fn load() -> (DescriptorPool, Transcoder) {
    let set = descriptor_set();
    let pool = DescriptorPool::decode(set.as_slice()).expect("pool");
    let config = format!(
        r#"{{"services":["bench.v1.Bench"],"proto_descriptor_bin":"{}"}}"#,
        base64::engine::general_purpose::STANDARD.encode(&set)
    );
    let engine = Transcoder::from_json(config.as_bytes()).expect("engine loads the bench set");
    (pool, engine)
}

/// Baseline request: JSON -> DynamicMessage (serde_json) -> protobuf -> frame.
pub fn baseline_request(desc: &MessageDescriptor, json: &[u8]) -> Vec<u8> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let message = DynamicMessage::deserialize(desc.clone(), &mut de).expect("baseline reads the JSON");
    transcoder::frame::encode_frame(&message.encode_to_vec())
}

/// Baseline response: frame -> DynamicMessage -> JSON (serde_json).
pub fn baseline_response(desc: &MessageDescriptor, options: &SerializeOptions, framed: &[u8]) -> Vec<u8> {
    let message =
        DynamicMessage::decode(desc.clone(), &framed[transcoder::frame::HEADER_LEN..]).expect("baseline decodes");
    let mut out = Vec::with_capacity(framed.len() * 2);
    let mut ser = serde_json::Serializer::new(&mut out);
    message.serialize_with_options(&mut ser, options).expect("baseline prints");
    out
}
