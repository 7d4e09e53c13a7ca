//! Test support: the example protos compiled in memory (no protoc, no files at
//! run time, so the same tests run on wasm32) and a configured Transcoder.

#![allow(dead_code, unused_macros)]

/// A test that runs natively and, under wasm-bindgen-test, on wasm32.
macro_rules! test {
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        $(#[$m])*
        #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
        #[cfg_attr(not(target_arch = "wasm32"), test)]
        fn $name() $body
    };
}

use base64::Engine;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use transcoder::{RequestOutcome, RequestPlan, Transcoder};

const SOURCES: &[(&str, &str)] = &[
    ("bookstore/v1/bookstore.proto", include_str!("../../../../descriptors/bookstore/v1/bookstore.proto")),
    ("echo/v1/echo.proto", include_str!("../../../../descriptors/echo/v1/echo.proto")),
    ("google/api/annotations.proto", include_str!("../../../../descriptors/google/api/annotations.proto")),
    ("google/api/http.proto", include_str!("../../../../descriptors/google/api/http.proto")),
    ("google/api/httpbody.proto", include_str!("../../../../descriptors/google/api/httpbody.proto")),
    ("google/rpc/status.proto", include_str!("../../../../descriptors/google/rpc/status.proto")),
    ("google/rpc/error_details.proto", include_str!("../../../../descriptors/google/rpc/error_details.proto")),
    // Shapes from Envoy's own transcoder tests, shared with tests/e2e/test_envoy_cases.py.
    ("cases/v1/cases.proto", include_str!("../../../../tests/e2e/protos/cases/v1/cases.proto")),
];

struct Embedded;

impl FileResolver for Embedded {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match SOURCES.iter().find(|(n, _)| *n == name) {
            Some((n, source)) => File::from_source(n, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// The FileDescriptorSet of the example protos, with imports.
pub fn descriptor_set() -> Vec<u8> {
    let mut resolver = ChainFileResolver::new();
    resolver.add(Embedded);
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler
        .open_files(["bookstore/v1/bookstore.proto", "echo/v1/echo.proto", "google/rpc/error_details.proto"])
        .expect("example protos compile");
    compiler.encode_file_descriptor_set()
}

/// The descriptor pool of the example protos.
/// A transcoder for `cases.v1.Cases` (tests/e2e/protos/cases/v1/cases.proto), with `extra` configuration.
pub fn cases_transcoder(extra: serde_json::Value) -> Transcoder {
    let mut resolver = ChainFileResolver::new();
    resolver.add(Embedded);
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler.open_files(["cases/v1/cases.proto"]).expect("cases.proto compiles");
    let mut config = serde_json::json!({
        "proto_descriptor_bin": base64::engine::general_purpose::STANDARD.encode(compiler.encode_file_descriptor_set()),
        "services": ["cases.v1.Cases"],
    });
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    Transcoder::from_json(config.to_string().as_bytes()).expect("cases configuration loads")
}

pub fn pool() -> DescriptorPool {
    DescriptorPool::decode(descriptor_set().as_slice()).expect("pool")
}

/// A message type of the example protos.
pub fn message(name: &str) -> MessageDescriptor {
    pool().get_message_by_name(name).expect("message type")
}

/// A Transcoder for both example services with extra configuration fields.
pub fn transcoder(extra: serde_json::Value) -> Transcoder {
    try_transcoder(extra).expect("configuration loads")
}

/// Same, returning the load error.
pub fn try_transcoder(extra: serde_json::Value) -> Result<Transcoder, transcoder::ConfigError> {
    let mut config = serde_json::json!({
        "proto_descriptor_bin": base64::engine::general_purpose::STANDARD.encode(descriptor_set()),
        "services": ["bookstore.v1.Bookstore", "echo.v1.EchoService"],
    });
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    Transcoder::from_json(config.to_string().as_bytes())
}

/// Routes a request and expects it to be transcoded.
pub fn plan(t: &Transcoder, method: &str, path: &str) -> RequestPlan {
    match t.route_request(method, path) {
        RequestOutcome::Transcode(plan) => plan,
        other => panic!("{method} {path}: expected a transcoded request, got {other:?}"),
    }
}

/// The gRPC method path a request is routed to.
pub fn grpc_path(t: &Transcoder, method: &str, path: &str) -> String {
    t.method(&plan(t, method, path)).expect("method").grpc_path.clone()
}

/// The request message a request becomes, printed as proto3 JSON.
pub fn request_json(t: &Transcoder, method: &str, path: &str, body: &str) -> serde_json::Value {
    let plan = plan(t, method, path);
    let bytes = t.request_message(&plan, Some("application/json"), body.as_bytes()).expect("request transcodes");
    let input = t.method(&plan).expect("method").input.clone();
    let decoded = DynamicMessage::decode(input, bytes.as_slice()).expect("valid protobuf");
    serde_json::to_value(&decoded).expect("prints")
}

/// The error a request body or URL produces.
pub fn request_error(t: &Transcoder, method: &str, path: &str, body: &str) -> transcoder::Status {
    let plan = plan(t, method, path);
    t.request_message(&plan, Some("application/json"), body.as_bytes()).expect_err("request must be refused")
}

/// Encodes a message given as proto3 JSON into protobuf bytes.
pub fn encode_json(type_name: &str, json: serde_json::Value) -> Vec<u8> {
    use prost::Message;
    let desc = message(type_name);
    DynamicMessage::deserialize(desc, json).expect("valid JSON for the type").encode_to_vec()
}
