//! The engine alone (`make bench`, part 2): JSON -> gRPC frame and gRPC frame
//! -> JSON for the small and the realistic (~1 KB) message of
//! bench/proto/bench/v1/bench.proto, against the generic baseline a transcoder
//! without type-specific work would be: prost-reflect's `DynamicMessage` read
//! and printed with serde_json. Run with `cargo bench -p transcoder --bench transcode`.

use base64::Engine;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use std::hint::black_box;
use transcoder::{GrpcStatusHeaders, RequestOutcome, Transcoder};

const SMALL: &[u8] = include_bytes!("../../../bench/payloads/small.json");
const ORDER: &[u8] = include_bytes!("../../../bench/payloads/order.json");

/// The bench protos compiled in memory (google/api from descriptors/, well-known types from protox).
fn descriptor_set() -> Vec<u8> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut compiler = protox::Compiler::new([format!("{root}/bench/proto"), format!("{root}/descriptors")])
        .expect("include paths exist");
    compiler.include_imports(true);
    compiler
        .open_files(["bench/v1/bench.proto"])
        .expect("bench.proto compiles");
    compiler.encode_file_descriptor_set()
}

struct Case {
    name: &'static str,
    path: &'static str,
    message: &'static str,
    json: &'static [u8],
}

const CASES: &[Case] = &[
    Case {
        name: "small",
        path: "/v1/small",
        message: "bench.v1.Small",
        json: SMALL,
    },
    Case {
        name: "order",
        path: "/v1/orders",
        message: "bench.v1.Order",
        json: ORDER,
    },
];

fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Baseline request: JSON -> DynamicMessage (serde_json) -> protobuf -> frame.
fn baseline_request(desc: &prost_reflect::MessageDescriptor, json: &[u8]) -> Vec<u8> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let message = DynamicMessage::deserialize(desc.clone(), &mut de).expect("baseline reads the JSON");
    frame(&message.encode_to_vec())
}

/// Baseline response: frame -> DynamicMessage -> JSON (serde_json).
fn baseline_response(desc: &prost_reflect::MessageDescriptor, options: &SerializeOptions, framed: &[u8]) -> Vec<u8> {
    let message = DynamicMessage::decode(desc.clone(), &framed[5..]).expect("baseline decodes");
    let mut out = Vec::with_capacity(framed.len() * 2);
    let mut ser = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut ser, options)
        .expect("baseline prints");
    out
}

fn benches(c: &mut Criterion) {
    let set = descriptor_set();
    let pool = DescriptorPool::decode(set.as_slice()).expect("pool");
    let config = format!(
        r#"{{"services":["bench.v1.Bench"],"proto_descriptor_bin":"{}"}}"#,
        base64::engine::general_purpose::STANDARD.encode(&set)
    );
    let engine = Transcoder::from_json(config.as_bytes()).expect("engine loads the bench set");
    let options = SerializeOptions::new().stringify_64_bit_integers(true);
    let ok = GrpcStatusHeaders {
        status: Some("0"),
        ..Default::default()
    };

    let mut request = c.benchmark_group("json_to_grpc");
    for case in CASES {
        let desc = pool.get_message_by_name(case.message).expect("bench message");
        let RequestOutcome::Transcode(plan) = engine.route_request("POST", case.path) else {
            panic!("no route for POST {}", case.path)
        };
        // Same bytes both ways: the comparison is only fair if both produce the same frame.
        let ours = engine
            .request_frame(&plan, Some("application/json"), case.json)
            .expect("engine transcodes");
        assert_eq!(
            DynamicMessage::decode(desc.clone(), &ours[5..]).expect("decodes"),
            DynamicMessage::decode(desc.clone(), &baseline_request(&desc, case.json)[5..]).expect("decodes"),
            "{}: the engine and the baseline disagree",
            case.name
        );
        request.throughput(Throughput::Bytes(case.json.len() as u64));
        request.bench_with_input(BenchmarkId::new("engine", case.name), case, |b, case| {
            b.iter(|| {
                let RequestOutcome::Transcode(plan) = engine.route_request("POST", black_box(case.path)) else {
                    unreachable!()
                };
                engine.request_frame(&plan, Some("application/json"), black_box(case.json))
            })
        });
        request.bench_with_input(BenchmarkId::new("dynamic_message", case.name), case, |b, case| {
            b.iter(|| baseline_request(&desc, black_box(case.json)))
        });
    }
    request.finish();

    let mut response = c.benchmark_group("grpc_to_json");
    for case in CASES {
        let desc = pool.get_message_by_name(case.message).expect("bench message");
        let RequestOutcome::Transcode(plan) = engine.route_request("POST", case.path) else {
            panic!("no route for POST {}", case.path)
        };
        let framed = baseline_request(&desc, case.json);
        let ours = engine.unary_response(&plan, &framed, ok);
        assert_eq!(
            ours.status,
            200,
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&ours.body)
        );
        let theirs = baseline_response(&desc, &options, &framed);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&ours.body).expect("engine JSON"),
            serde_json::from_slice::<serde_json::Value>(&theirs).expect("baseline JSON"),
            "{}: the engine and the baseline print different JSON",
            case.name
        );
        response.throughput(Throughput::Bytes(framed.len() as u64));
        response.bench_with_input(BenchmarkId::new("engine", case.name), &framed, |b, framed| {
            b.iter(|| engine.unary_response(&plan, black_box(framed), ok))
        });
        response.bench_with_input(BenchmarkId::new("dynamic_message", case.name), &framed, |b, framed| {
            b.iter(|| baseline_response(&desc, &options, black_box(framed)))
        });
    }
    response.finish();
}

criterion_group! {
    name = transcode;
    // Short by default: `make bench` must stay bounded; CRITERION_* flags can lengthen it.
    config = Criterion::default().warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3)).sample_size(30);
    targets = benches
}
criterion_main!(transcode);
