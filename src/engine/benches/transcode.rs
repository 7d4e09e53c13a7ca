//! The engine alone (`make bench`, part 2): JSON -> gRPC frame and gRPC frame
//! -> JSON for the small and the realistic (~1 KB) message of
//! bench/proto/bench/v1/bench.proto, against the generic baseline a transcoder
//! without type-specific work would be: prost-reflect's `DynamicMessage` read
//! and printed with serde_json. Run with `cargo bench -p transcoder --bench transcode`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prost_reflect::{DynamicMessage, SerializeOptions};
use std::hint::black_box;
use transcoder::{GrpcStatusHeaders, RequestOutcome};

mod common;

use common::{baseline_request, baseline_response, CASES};

/// The GET cases of bench/e2e.py: path variables and query parameters, no body.
const GET_CASES: [(&str, &str); 2] = [
    ("small", "/v1/small/s-1?name=small%20message&count=42&active=true"),
    (
        "order",
        "/v1/orders/order-000123?customer_id=customer-4567&status=STATUS_PAID&page_size=20&fields=items&fields=total",
    ),
];

fn benches(c: &mut Criterion) {
    let (pool, engine) = common::load();
    let options = SerializeOptions::new().stringify_64_bit_integers(true);
    let ok = GrpcStatusHeaders { status: Some("0"), ..Default::default() };

    let mut request = c.benchmark_group("json_to_grpc");
    for case in CASES {
        let desc = pool.get_message_by_name(case.message).expect("bench message");
        let RequestOutcome::Transcode(plan) = engine.route_request("POST", case.path) else {
            panic!("no route for POST {}", case.path)
        };
        // Same bytes both ways: the comparison is only fair if both produce the same frame.
        let ours = engine.request_frame(&plan, Some("application/json"), case.json).expect("engine transcodes");
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

    // A GET: the request message from the path and the query (bench/e2e.py's GET cases).
    let mut get = c.benchmark_group("get_to_grpc");
    for (name, path) in GET_CASES {
        let RequestOutcome::Transcode(plan) = engine.route_request("GET", path) else {
            panic!("no route for GET {path}")
        };
        assert!(engine.request_frame(&plan, None, &[]).is_ok(), "{name}: the engine builds no frame");
        get.bench_with_input(BenchmarkId::new("engine", name), path, |b, path| {
            b.iter(|| {
                let RequestOutcome::Transcode(plan) = engine.route_request("GET", black_box(path)) else {
                    unreachable!()
                };
                engine.request_frame(&plan, None, &[])
            })
        });
    }
    get.finish();

    let mut response = c.benchmark_group("grpc_to_json");
    for case in CASES {
        let desc = pool.get_message_by_name(case.message).expect("bench message");
        let RequestOutcome::Transcode(plan) = engine.route_request("POST", case.path) else {
            panic!("no route for POST {}", case.path)
        };
        let framed = baseline_request(&desc, case.json);
        let ours = engine.unary_response(&plan, &framed, ok);
        assert_eq!(ours.status, 200, "{}: {}", case.name, String::from_utf8_lossy(&ours.body));
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
