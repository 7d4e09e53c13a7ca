//! Heap allocations per transcoded message (`make bench`, footprint): a
//! counting global allocator around the engine and around the
//! `DynamicMessage` + serde_json baseline of benches/transcode.rs, for the
//! small and the realistic message, both ways. Prints one line per case and,
//! when BENCH_OUT is set, writes BENCH_OUT/alloc.json.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use base64::Engine;
mod common;

use common::{baseline_request, baseline_response, Case, CASES};
use prost_reflect::{DescriptorPool, SerializeOptions};
use transcoder::{GrpcStatusHeaders, RequestOutcome, Transcoder};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations, bytes) of one call of `f`.
fn count<T>(f: impl FnOnce() -> T) -> (u64, u64) {
    let (a, b) = (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed));
    let out = f();
    let counted = (ALLOCATIONS.load(Relaxed) - a, BYTES.load(Relaxed) - b);
    drop(out);
    counted
}

fn main() {
    // `cargo bench` passes --bench; any other argument is a filter this tool does not take.
    let (pool, engine) = common::load();
    let options = SerializeOptions::new().stringify_64_bit_integers(true);
    let ok = GrpcStatusHeaders { status: Some("0"), ..Default::default() };
    let mut rows = Vec::new();
    for &Case { name, path, message, json } in CASES {
        let desc = pool.get_message_by_name(message).expect("bench message");
        let framed = baseline_request(&desc, json);
        let measured = [
            (
                "json_to_grpc",
                "engine",
                count(|| match engine.route_request("POST", path) {
                    RequestOutcome::Transcode(plan) => engine.request_frame(&plan, Some("application/json"), json).ok(),
                    _ => None,
                }),
            ),
            ("json_to_grpc", "dynamic_message", count(|| baseline_request(&desc, json))),
            ("grpc_to_json", "engine", {
                let RequestOutcome::Transcode(plan) = engine.route_request("POST", path) else { panic!("no route") };
                count(|| engine.unary_response(&plan, &framed, ok))
            }),
            ("grpc_to_json", "dynamic_message", count(|| baseline_response(&desc, &options, &framed))),
        ];
        for (direction, who, (allocations, bytes)) in measured {
            println!("alloc {direction:12} {who:15} {name}: {allocations:5} allocations, {bytes:7} bytes");
            rows.push(format!(
                r#"{{"direction":"{direction}","who":"{who}","case":"{name}","allocations":{allocations},"bytes":{bytes}}}"#
            ));
        }
    }
    if let Some(out) = std::env::var_os("BENCH_OUT") {
        // The large set of bench/footprint.py, if it was built: what loading it costs natively,
        // in parts (no Wasm, no V8), to tell what bounds the filter's load time in each VM.
        let large = std::path::Path::new(&out).join("large.pb");
        if let (Ok(set), Ok(services)) =
            (std::fs::read(&large), std::fs::read_to_string(std::path::Path::new(&out).join("large-services.json")))
        {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&set);
            let config = format!(r#"{{"services":{services},"proto_descriptor_bin":"{encoded}"}}"#);
            let time = |f: &mut dyn FnMut()| {
                let started = std::time::Instant::now();
                f();
                started.elapsed().as_secs_f64() * 1000.0
            };
            let parse_ms = time(&mut || drop(serde_json::from_str::<serde_json::Value>(&config)));
            let pool_ms = time(&mut || drop(DescriptorPool::decode(set.as_slice())));
            let stripped = transcoder::direct::without_source_info(&set).expect("a well-formed set");
            let stripped_ms = time(&mut || drop(DescriptorPool::decode(stripped.as_slice())));
            let (allocations, bytes) = count(|| Transcoder::from_json(config.as_bytes()));
            let load_ms = time(&mut || drop(Transcoder::from_json(config.as_bytes())));
            println!(
                "load (native) large set {} bytes: config JSON parse {parse_ms:.1} ms, DescriptorPool::decode {pool_ms:.1} ms ({stripped_ms:.1} ms without source info), \
                 Transcoder::from_json total {load_ms:.1} ms, {allocations} allocations, {bytes} bytes",
                set.len()
            );
            rows.push(format!(
                r#"{{"direction":"load","who":"engine","case":"large","parse_ms":{parse_ms:.2},"pool_ms":{pool_ms:.2},"pool_stripped_ms":{stripped_ms:.2},"load_ms":{load_ms:.2},"allocations":{allocations},"bytes":{bytes}}}"#
            ));
        }
        let path = std::path::Path::new(&out).join("alloc.json");
        std::fs::write(&path, format!("[{}]\n", rows.join(",\n"))).expect("write alloc.json");
    }
}
