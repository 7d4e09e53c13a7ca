// Intentionally empty: this package exists only for its dependency on
// wasm-bindgen-cli and its Cargo.lock (see README.md next to Cargo.toml).
