//! Compiles bench/proto/bench/v1/bench.proto with the pure-Rust `protox`
//! (google/api from descriptors/), generates the prost messages and the tonic
//! server, and writes the encoded set (imports and `google.api.http` options
//! included) to `OUT_DIR/descriptor_set.bin` for `descriptor-set`.

use std::env;
use std::path::PathBuf;

const FILE: &str = "bench/v1/bench.proto";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let protos = manifest_dir.join("../../bench/proto");
    let descriptors = manifest_dir.join("../../descriptors");
    println!("cargo:rerun-if-changed={}", protos.join(FILE).display());

    let mut compiler = protox::Compiler::new([&protos, &descriptors]).unwrap_or_else(|e| fail(e));
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files([FILE]).unwrap_or_else(|e| fail(e));
    // Encoded by reflection so that `(google.api.http)` options survive.
    std::fs::write(out_dir.join("descriptor_set.bin"), compiler.encode_file_descriptor_set())
        .expect("write descriptor_set.bin");

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .build_transport(false)
        .include_file("protos.rs")
        .emit_rerun_if_changed(false)
        .compile_fds(compiler.file_descriptor_set())
        .expect("generate code from the descriptor set");
}

fn fail(e: protox::Error) -> ! {
    panic!("protox failed to compile bench.proto: {e:?}");
}
