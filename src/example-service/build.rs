//! Compiles the bookstore and echo protos with the pure-Rust `protox` compiler
//! (no `protoc` needed), generates the prost messages and tonic
//! servers/clients from the resulting descriptor set, and writes the encoded
//! set (every import included, `google.api.http` options kept) to
//! `OUT_DIR/descriptor_set.bin` for `include_bytes!`.

use std::env;
use std::path::PathBuf;

const FILES: &[&str] = &[
    "bookstore/v1/bookstore.proto",
    "echo/v1/echo.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let descriptors = manifest_dir.join("../../descriptors");
    println!("cargo:rerun-if-changed={}", descriptors.display());
    for file in FILES {
        println!("cargo:rerun-if-changed={}", descriptors.join(file).display());
    }

    let mut compiler = protox::Compiler::new([&descriptors]).unwrap_or_else(|e| fail(e));
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(FILES).unwrap_or_else(|e| fail(e));

    // The encoded set is built by reflection so that extension options such as
    // `(google.api.http)` survive (prost_types would drop them as unknown fields).
    let encoded = compiler.encode_file_descriptor_set();
    std::fs::write(out_dir.join("descriptor_set.bin"), encoded).expect("write descriptor_set.bin");

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Clients are generic over the transport; only the tests build a Channel,
        // so the binary does not need tonic's `channel` feature.
        .build_transport(false)
        // Sorted maps: the same request always encodes to the same bytes.
        .btree_map(".")
        .include_file("protos.rs")
        .emit_rerun_if_changed(false)
        .compile_fds(compiler.file_descriptor_set())
        .expect("generate code from the descriptor set");
}

fn fail(e: protox::Error) -> ! {
    panic!("protox failed to compile the protos: {e:?}");
}
