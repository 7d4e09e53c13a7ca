//! rgp-injector: a mutating admission webhook that adds an Envoy sidecar running the
//! rust-grpc-proxy filter (dynamic module, or Wasm filter) to pods labelled `rustGrpcProxyEnable: "<grpc port>"`,
//! and the sidecar's own startup step (`rgp-injector sidecar`), which renders the Envoy
//! configuration from the mounted descriptor set and execs Envoy.
//!
//! Layout:
//! - [`options`]: the label and the `rust-grpc-proxy/*` annotations, validated.
//! - [`envoy`]: the Envoy bootstrap the sidecar runs (JSON).
//! - [`inject`]: a Pod in, a JSON patch (or a reason not to patch) out.
//! - [`admission`]: `AdmissionReview` bytes in, `AdmissionReview` JSON out (never panics).
//! - [`sidecar`]: the startup step inside the injected container.
//! - [`descriptor`]: service names of a `FileDescriptorSet` (protobuf wire format).
//! - [`server`], [`tls`]: the HTTPS server with certificate reload.

pub mod admission;
pub mod descriptor;
pub mod envoy;
pub mod inject;
pub mod log;
pub mod options;
pub mod server;
pub mod sidecar;
pub mod tls;

/// Label that opts a pod in; its value is the gRPC port of the app (compatible with the
/// original Go injector).
pub const ENABLE_LABEL: &str = "rustGrpcProxyEnable";
/// Prefix of every annotation the injector reads or writes.
pub const ANNOTATION_PREFIX: &str = "rust-grpc-proxy/";
/// Annotation the injector writes on the pods it injected (JSON), and checks first.
pub const STATUS_ANNOTATION: &str = "rust-grpc-proxy/status";
/// kubectl's annotation naming the container `kubectl logs/exec` pick by default.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// Name of the injected container.
pub const SIDECAR_NAME: &str = "rust-grpc-proxy";
/// Volume holding the descriptor set when it comes from a ConfigMap.
pub const DESCRIPTOR_VOLUME: &str = "rust-grpc-proxy-descriptor";
/// emptyDir where the sidecar writes the rendered Envoy configuration.
pub const RUN_VOLUME: &str = "rust-grpc-proxy-run";
/// Where the descriptor volume is mounted in the sidecar.
pub const DESCRIPTOR_MOUNT: &str = "/etc/rust-grpc-proxy/descriptor";
/// Where the run volume is mounted in the sidecar.
pub const RUN_MOUNT: &str = "/var/run/rust-grpc-proxy";
/// Paths inside the sidecar image (deploy/Dockerfile).
pub const IMAGE_INJECTOR_BIN: &str = "/usr/local/bin/rgp-injector";
pub const IMAGE_ENVOY_BIN: &str = "/usr/local/bin/envoy";
pub const IMAGE_WASM: &str = "/usr/local/lib/rust-grpc-proxy/rust_grpc_proxy.wasm";
/// Directory of the dynamic module (librust_grpc_proxy.so) inside the sidecar image.
pub const IMAGE_DYNMOD_DIR: &str = "/usr/local/lib/rust-grpc-proxy";
/// Where Envoy looks for dynamic modules by name (set in the sidecar's environment).
pub const DYNMOD_SEARCH_PATH_ENV: &str = "ENVOY_DYNAMIC_MODULES_SEARCH_PATH";
/// Environment variable carrying the Envoy bootstrap (JSON, without the descriptor set).
pub const BOOTSTRAP_ENV: &str = "RGP_ENVOY_BOOTSTRAP";
/// Version written into the status annotation.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
