//! `rgp envoy`: a complete Envoy bootstrap from a small description (docs/gateway.md).
//!
//! Three modes share one renderer:
//! - `gateway`: one listener (TLS from certificate files, optional client-certificate
//!   verification, HTTP/1.1 and HTTP/2 by ALPN on one port) in front of several gRPC
//!   services, each with its own descriptor set and REST prefixes, plus WebSocket
//!   backends. Each gRPC service gets its own instance of the filter, wrapped in
//!   Envoy's `ExtensionWithMatcher` so that it is skipped for requests outside its
//!   paths: a Wasm filter has no per-route configuration (`typed_per_filter_config`
//!   is not supported for `envoy.filters.http.wasm`), and the matcher keeps one
//!   service's options (e.g. `reject_unknown_method`) from touching another's routes.
//! - `sidecar`: the shape of the injector's bootstrap (src/injector/src/envoy.rs): one
//!   service on 127.0.0.1, one route `/`, a readiness listener.
//! - `istio`: not a bootstrap but an Istio `EnvoyFilter` that adds the same filter to the
//!   selected workloads (sidecar inbound or gateway) through ECDS, the module pulled
//!   from an OCI image by istio-agent. Istio's `WasmPlugin` cannot set
//!   `allow_on_headers_stop_iteration` and an `EnvoyFilter` cannot patch the config a
//!   `WasmPlugin` generates (EXTENSION_CONFIG patches are ADD only): docs/gateway.md.
//!
//! `runtime` picks the build of the filter ([`filters`]): the dynamic module (native, the
//! default where the Envoy is ours) or the Wasm filter with its Lua companion (wasm, the
//! only choice in istio mode). In gateway mode with the module, `filter_layout: per-route`
//! renders one filter instead, each service's configuration on its routes
//! (`typed_per_filter_config`), which only the module's ABI allows.
//!
//! Native gRPC (any `/pkg.Service/` of a service, and server reflection where asked
//! for) is routed to the backend untouched. The output is deterministic: keys are
//! sorted, the descriptor sets are inlined as base64, and the header names the
//! description by file name only.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};
use transcoder::surface;
use transcoder::Transcoder;

use crate::load;
use crate::Failure;

mod filters;

use filters::{companion_config, wants_companion, wasm_config, WASM_FILTER_TYPE};
pub use filters::{companion_matcher, FilterLayout, Runtime, COMPANION_LUA, EXTENSION_WITH_MATCHER};
/// gRPC server reflection services routed to the service that sets `reflection: true`.
const REFLECTION_SERVICES: [&str; 2] =
    ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const ACCESS_LOG_FORMAT: &str = "access: \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% cluster=%UPSTREAM_CLUSTER% grpc=%GRPC_STATUS_NUMBER% rx=%BYTES_RECEIVED% tx=%BYTES_SENT% %DURATION%ms\n";

/// The description file (YAML or JSON): see docs/gateway.md.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// `gateway`, `sidecar` or `istio`.
    pub mode: Mode,
    /// `native` (the dynamic module; default in gateway and sidecar modes) or `wasm`
    /// (the Wasm filter and its Lua companion; default and only choice in istio mode).
    #[serde(default)]
    pub runtime: Option<Runtime>,
    /// Gateway mode: `per-service` (default: one matcher-wrapped filter per service) or
    /// `per-route` (runtime native: one filter, each service's configuration on its routes).
    #[serde(default)]
    pub filter_layout: Option<FilterLayout>,
    /// The listener for REST, native gRPC and WebSockets.
    #[serde(default = "default_listen")]
    pub listen: Address,
    /// Envoy's admin interface (keep it on loopback).
    #[serde(default = "default_admin")]
    pub admin: Address,
    /// Readiness listener (`GET /ready` answers 200 while Envoy is live and not draining).
    #[serde(default)]
    pub health: Option<Address>,
    /// Runtime wasm: path of rust_grpc_proxy.wasm as Envoy sees it (istio mode: the
    /// module's `oci://` image). Runtime native finds the module by name instead.
    #[serde(default)]
    pub wasm: String,
    /// Virtual host domains (`:authority` values); default `["*"]`.
    #[serde(default)]
    pub domains: Vec<String>,
    /// TLS termination; absent: cleartext (HTTP/1.1 and h2c).
    #[serde(default)]
    pub tls: Option<Tls>,
    /// The gRPC backends (exactly one in sidecar mode).
    pub grpc: Vec<GrpcService>,
    /// WebSocket backends (gateway mode).
    #[serde(default)]
    pub websockets: Vec<WebSocket>,
    /// Where the EnvoyFilter goes and what it selects (istio mode).
    #[serde(default)]
    pub istio: Option<Istio>,
}

/// The EnvoyFilter's metadata and targets (istio mode).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Istio {
    /// metadata.name of the EnvoyFilter (and the name of its extension config).
    pub name: String,
    /// metadata.namespace (the workloads' namespace, or Istio's root namespace for all).
    pub namespace: String,
    /// workloadSelector labels; empty: every workload of the namespace.
    #[serde(default)]
    pub selector: std::collections::BTreeMap<String, String>,
    /// `SIDECAR_INBOUND` (a service's own sidecar) or `GATEWAY` (an ingress gateway).
    #[serde(default = "default_context")]
    pub context: String,
}

fn default_context() -> String {
    "SIDECAR_INBOUND".into()
}

/// What the configuration is for.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One Envoy in front of several services (an ingress).
    Gateway,
    /// Envoy beside one service in its pod.
    Sidecar,
    /// An Istio EnvoyFilter for the mesh's own Envoys.
    Istio,
}

/// An address and port; `port: 0` lets Envoy pick one (tests).
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default = "any_address")]
    pub address: String,
    pub port: u16,
}

fn any_address() -> String {
    "0.0.0.0".into()
}
fn default_listen() -> Address {
    Address { address: any_address(), port: 8080 }
}
fn default_admin() -> Address {
    Address { address: "127.0.0.1".into(), port: 9901 }
}

/// TLS files, laid out like a Kubernetes `tls` Secret mount (tls.crt, tls.key, ca.crt).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Certificate chain (PEM).
    pub cert: String,
    /// Private key (PEM).
    pub key: String,
    /// CA bundle that client certificates must chain to; enables mutual TLS.
    #[serde(default)]
    pub client_ca: Option<String>,
    /// Refuse clients without a certificate (default: true when `client_ca` is set).
    #[serde(default)]
    pub require_client_certificate: Option<bool>,
}

/// One gRPC backend with its descriptor set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcService {
    /// Cluster and filter name (lowercase letters, digits, `-`).
    pub name: String,
    /// FileDescriptorSet with imports; a relative path is read from the description's directory.
    pub descriptor: PathBuf,
    /// Fully qualified gRPC services to transcode (and route as native gRPC).
    pub services: Vec<String>,
    /// REST path prefixes whose requests this service's filter transcodes (gateway mode).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// HOST:PORT of the backend (an IP: STATIC cluster; a name: STRICT_DNS); not in istio mode.
    #[serde(default)]
    pub backend: String,
    /// A second version of the backend that gets `weight` percent of the requests.
    #[serde(default)]
    pub canary: Option<Canary>,
    /// Route timeout (Envoy duration, e.g. `15s`); default 15s.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Retry policy of the routes.
    #[serde(default)]
    pub retries: Option<Retries>,
    /// Active health checking of the backend's hosts.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Route gRPC server reflection (v1 and v1alpha) to this backend.
    #[serde(default)]
    pub reflection: bool,
    /// Further GrpcJsonTranscoder fields for the filter (print_options, convert_grpc_status, ...).
    #[serde(default)]
    pub options: Map<String, Value>,
}

fn default_timeout() -> String {
    "15s".into()
}

/// Weighted routing to a second version.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// HOST:PORT of the canary.
    pub backend: String,
    /// Percent of the requests (0-100) that go to the canary.
    pub weight: u32,
}

/// Envoy's retry policy, the fields most used.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Envoy `retry_on` conditions, e.g. `unavailable,reset,connect-failure`.
    pub retry_on: String,
    /// How many retries.
    pub num_retries: u32,
    /// Timeout of each try (duration).
    #[serde(default)]
    pub per_try_timeout: Option<String>,
}

/// A TCP health check (connect succeeds = healthy), so any backend qualifies.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default = "default_hc_interval")]
    pub interval: String,
    #[serde(default = "default_hc_timeout")]
    pub timeout: String,
    #[serde(default = "default_two")]
    pub unhealthy_threshold: u32,
    #[serde(default = "default_one")]
    pub healthy_threshold: u32,
}

fn default_hc_interval() -> String {
    "5s".into()
}
fn default_hc_timeout() -> String {
    "1s".into()
}
fn default_two() -> u32 {
    2
}
fn default_one() -> u32 {
    1
}

/// A WebSocket backend behind a path prefix.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocket {
    /// Cluster name.
    pub name: String,
    /// Path prefix routed to the backend.
    pub prefix: String,
    /// HOST:PORT of the backend (HTTP/1.1).
    pub backend: String,
    /// How long a connection may stay silent (duration); default 3600s as ingress-nginx's example.
    #[serde(default = "default_ws_idle")]
    pub idle_timeout: String,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
}

fn default_ws_idle() -> String {
    "3600s".into()
}

/// `rgp envoy`: reads the description, checks each service's set as the filter
/// would load it, writes the bootstrap YAML.
pub fn run(description: &Path, out: &Path) -> Result<(), Failure> {
    let text = load::read(description)?;
    let desc: Description = serde_norway::from_slice(&text).map_err(|e| format!("{}: {e}", description.display()))?;
    let base = description.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = description.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let yaml = render(&desc, &base, &name)?;
    if out.as_os_str() == "-" {
        print!("{yaml}");
        Ok(())
    } else {
        load::write(out, yaml.as_bytes()).map_err(Failure::Usage)
    }
}

/// The bootstrap as YAML text; `base` resolves relative descriptor paths, `name` goes in the header.
pub fn render(desc: &Description, base: &Path, name: &str) -> Result<String, Failure> {
    let document = match desc.mode {
        Mode::Istio => istio_envoy_filter(desc, base)?,
        Mode::Gateway | Mode::Sidecar => bootstrap(desc, base)?,
    };
    let body = serde_norway::to_string(&document).map_err(|e| format!("cannot write YAML: {e}"))?;
    Ok(format!(
        "# Generated by `rgp envoy --description {name}` (docs/gateway.md); do not edit: change the description and regenerate.\n{body}"
    ))
}

/// The bootstrap as a JSON value.
pub fn bootstrap(desc: &Description, base: &Path) -> Result<Value, Failure> {
    validate(desc)?;
    let mut filters = Vec::new();
    let mut routes = Vec::new();
    let mut clusters = Vec::new();
    let configs = desc.grpc.iter().map(|svc| filter_config(desc, svc, base)).collect::<Result<Vec<_>, _>>()?;
    // Per route: one filter for all, and each service's configuration on its own routes.
    let per_route = FilterLayout::of(desc) == FilterLayout::PerRoute;
    let on_routes = |config: &Value| per_route.then(|| filters::route_config(config));
    if per_route {
        filters.push(filters::shared_filter());
    }
    for (svc, config) in desc.grpc.iter().zip(&configs) {
        if !per_route {
            filters.extend(filters::service_filters(desc, svc, config));
        }
        routes.extend(grpc_routes(desc.mode, svc, on_routes(config).as_ref()));
        clusters.extend(grpc_clusters(svc)?);
    }
    for ws in &desc.websockets {
        routes.push(websocket_route(ws));
        clusters.push(cluster(&ws.name, &ws.backend, false, ws.health_check.as_ref())?);
    }
    // The REST prefixes last, so that gRPC paths and WebSocket prefixes win over a broad `/`.
    for (svc, config) in desc.grpc.iter().zip(&configs) {
        routes.extend(rest_routes(desc.mode, svc, on_routes(config).as_ref()));
    }
    filters.push(json!({ "name": "envoy.filters.http.router", "typed_config": { "@type": ROUTER_TYPE } }));

    let domains = if desc.domains.is_empty() { vec!["*".to_string()] } else { desc.domains.clone() };
    let stat_prefix = match desc.mode {
        Mode::Sidecar => "rest",
        Mode::Gateway | Mode::Istio => "gateway",
    };
    let mut hcm = json!({
        "@type": HCM_TYPE,
        "stat_prefix": stat_prefix,
        // AUTO: HTTP/2 by ALPN over TLS, by its preface in cleartext (h2c), else HTTP/1.1.
        "codec_type": "AUTO",
        // `domains` match without the port: clients send `demo.example.com:443` (gRPC) or
        // `demo.example.com` (browsers) for the same host.
        "strip_any_host_port": true,
        "access_log": [{
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                "log_format": { "text_format_source": { "inline_string": ACCESS_LOG_FORMAT } }
            }
        }],
        "route_config": {
            "name": stat_prefix,
            "virtual_hosts": [{ "name": stat_prefix, "domains": domains, "routes": routes }]
        },
        "http_filters": filters
    });
    if !desc.websockets.is_empty() {
        // Upgrades are enabled here and limited to the WebSocket routes (each route with
        // upgrade_configs enabled); other routes refuse them.
        hcm["upgrade_configs"] = json!([{ "upgrade_type": "websocket", "enabled": false }]);
    }
    let mut chain = json!({
        "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm }]
    });
    if let Some(tls) = &desc.tls {
        chain["transport_socket"] = tls_socket(tls);
    }
    let mut listeners = vec![json!({
        "name": stat_prefix,
        "address": socket_address(&desc.listen),
        "filter_chains": [chain]
    })];
    if let Some(health) = &desc.health {
        listeners.push(health_listener(health));
    }
    Ok(json!({
        "node": { "id": format!("rust-grpc-proxy-{stat_prefix}"), "cluster": "rust-grpc-proxy" },
        "admin": { "address": socket_address(&desc.admin) },
        "static_resources": { "listeners": listeners, "clusters": clusters }
    }))
}

fn validate(desc: &Description) -> Result<(), String> {
    if desc.grpc.is_empty() {
        return Err("`grpc` lists no service".into());
    }
    check_runtime(desc)?;
    check_layout(desc)?;
    if desc.mode != Mode::Gateway {
        if desc.grpc.len() != 1 {
            return Err("sidecar and istio modes serve exactly one `grpc` entry (one workload's app)".into());
        }
        if !desc.websockets.is_empty() {
            return Err("`websockets` are for gateway mode".into());
        }
    }
    if desc.mode == Mode::Istio {
        let svc = &desc.grpc[0];
        if desc.istio.is_none() {
            return Err("istio mode needs an `istio` section (name, namespace, selector, context)".into());
        }
        if desc.tls.is_some() || desc.health.is_some() || !desc.domains.is_empty() {
            return Err(
                "in istio mode the mesh owns listeners, TLS and health: leave out tls, health and domains".into()
            );
        }
        if svc.canary.is_some()
            || svc.retries.is_some()
            || svc.health_check.is_some()
            || svc.reflection
            || !svc.prefixes.is_empty()
            || !svc.backend.is_empty()
        {
            return Err(
                "in istio mode routing is Istio's (VirtualService, DestinationRule): leave out backend, prefixes, \
                        canary, retries, health_check and reflection"
                    .into(),
            );
        }
    } else if desc.istio.is_some() {
        return Err("`istio` is for istio mode".into());
    }
    let mut names = BTreeSet::new();
    let mut prefixes = BTreeSet::new();
    let mut reflection = None;
    for svc in &desc.grpc {
        check_name(&svc.name)?;
        if !names.insert(svc.name.clone()) {
            return Err(format!("two backends are named {:?}", svc.name));
        }
        if svc.services.is_empty() {
            return Err(format!("grpc `{}`: `services` is empty (name the fully qualified gRPC services)", svc.name));
        }
        if desc.mode == Mode::Gateway && svc.prefixes.is_empty() {
            return Err(format!(
                "grpc `{}`: gateway mode needs `prefixes` (the REST paths of its google.api.http rules, e.g. /v1/)",
                svc.name
            ));
        }
        for p in &svc.prefixes {
            check_prefix(p)?;
            if !prefixes.insert(p.clone()) {
                return Err(format!("prefix {p:?} is claimed twice"));
            }
        }
        if desc.mode != Mode::Istio {
            parse_backend(&svc.backend)?;
        }
        check_duration(&svc.timeout)?;
        if let Some(canary) = &svc.canary {
            parse_backend(&canary.backend)?;
            if canary.weight > 100 {
                return Err(format!(
                    "grpc `{}`: canary weight is a percentage (0-100), not {}",
                    svc.name, canary.weight
                ));
            }
        }
        if let Some(r) = &svc.retries {
            if let Some(t) = &r.per_try_timeout {
                check_duration(t)?;
            }
        }
        check_health(svc.health_check.as_ref())?;
        if svc.reflection {
            if let Some(other) = reflection.replace(&svc.name) {
                return Err(format!("`reflection: true` on both `{other}` and `{}`: one backend answers it", svc.name));
            }
        }
        for key in ["proto_descriptor", "protoDescriptor", "proto_descriptor_bin", "protoDescriptorBin", "services"] {
            if svc.options.contains_key(key) {
                return Err(format!(
                    "grpc `{}`: `options.{key}` is set by `descriptor`/`services`, leave it out",
                    svc.name
                ));
            }
        }
    }
    for ws in &desc.websockets {
        check_name(&ws.name)?;
        if !names.insert(ws.name.clone()) {
            return Err(format!("two backends are named {:?}", ws.name));
        }
        check_prefix(&ws.prefix)?;
        if !prefixes.insert(ws.prefix.clone()) {
            return Err(format!("prefix {:?} is claimed twice", ws.prefix));
        }
        parse_backend(&ws.backend)?;
        check_duration(&ws.idle_timeout)?;
        check_health(ws.health_check.as_ref())?;
    }
    if let Some(tls) = &desc.tls {
        if tls.require_client_certificate == Some(true) && tls.client_ca.is_none() {
            return Err(
                "tls: require_client_certificate needs client_ca (the CA that signs client certificates)".into()
            );
        }
    }
    Ok(())
}

/// The filter layout against the mode, the runtime and the services' options.
fn check_layout(desc: &Description) -> Result<(), String> {
    let Some(layout) = desc.filter_layout else { return Ok(()) };
    if desc.mode != Mode::Gateway {
        return Err("`filter_layout` is for gateway mode (sidecar and istio modes have one service, one filter)".into());
    }
    if layout == FilterLayout::PerService {
        return Ok(());
    }
    if Runtime::of(desc) == Runtime::Wasm {
        return Err("filter_layout per-route needs runtime native: a Wasm filter has no per-route configuration \
                    (typed_per_filter_config is not supported for envoy.filters.http.wasm); use per-service \
                    (the default) with runtime wasm"
            .into());
    }
    for svc in &desc.grpc {
        for key in ["descriptor_url", "descriptorUrl", "descriptor_reflection", "descriptorReflection"] {
            if svc.options.contains_key(key) {
                return Err(format!(
                    "grpc `{}`: `options.{key}` with filter_layout per-route: a route's configuration cannot \
                     fetch its descriptor set (the module refuses it; Envoy gives routes no callouts); \
                     use filter_layout per-service",
                    svc.name
                ));
            }
        }
    }
    Ok(())
}

/// The runtime against the mode and `wasm`.
fn check_runtime(desc: &Description) -> Result<(), String> {
    match Runtime::of(desc) {
        Runtime::Native if desc.mode == Mode::Istio => Err(
            "runtime native in istio mode: Istio's Envoys are not ours to load a dynamic module into; \
             use runtime: wasm (the default in istio mode)"
                .into(),
        ),
        Runtime::Native if !desc.wasm.is_empty() => Err(format!(
            "`wasm` is set but the runtime is native (the default in {} mode), which loads the dynamic module \
             instead: remove `wasm`, or add `runtime: wasm` to keep the Wasm filter",
            if desc.mode == Mode::Gateway { "gateway" } else { "sidecar" }
        )),
        Runtime::Native => Ok(()),
        Runtime::Wasm if desc.wasm.is_empty() => Err(
            "runtime wasm needs `wasm`: the path of rust_grpc_proxy.wasm as Envoy sees it (istio mode: its oci:// image)"
                .into(),
        ),
        Runtime::Wasm => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("name {name:?}: use lowercase letters, digits and `-` (at most 63)"))
    }
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.starts_with('/') {
        Ok(())
    } else {
        Err(format!("prefix {prefix:?} must start with `/`"))
    }
}

/// Envoy's JSON duration form: decimal seconds with an `s`, e.g. `15s`, `0.5s`.
fn check_duration(text: &str) -> Result<(), String> {
    let ok = text.strip_suffix('s').is_some_and(|n| {
        let (whole, frac) = n.split_once('.').unwrap_or((n, "0"));
        !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && !frac.is_empty()
            && frac.bytes().all(|b| b.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!("duration {text:?}: write seconds with an `s`, e.g. 15s or 0.5s"))
    }
}

fn check_health(hc: Option<&HealthCheck>) -> Result<(), String> {
    if let Some(hc) = hc {
        check_duration(&hc.interval)?;
        check_duration(&hc.timeout)?;
    }
    Ok(())
}

/// (host, port, is an IP address) of `HOST:PORT` (`[v6]:port` too).
fn parse_backend(text: &str) -> Result<(String, u16, bool), String> {
    let bad = || format!("backend {text:?}: write HOST:PORT, e.g. 127.0.0.1:50051 or bookstore.default.svc:50051");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port, host.parse::<IpAddr>().is_ok()))
}

fn socket_address(a: &Address) -> Value {
    json!({ "socket_address": { "address": a.address, "port_value": a.port } })
}

/// The filter configuration JSON of one service, checked as `rgp publish` checks it. The
/// Wasm runtime gets `"lua_companion": true` unless the options say otherwise.
fn filter_config(desc: &Description, svc: &GrpcService, base: &Path) -> Result<Value, Failure> {
    let path = if svc.descriptor.is_absolute() { svc.descriptor.clone() } else { base.join(&svc.descriptor) };
    let set = match load::load_set(&path)? {
        Ok(set) => set,
        Err(problems) => {
            load::report(&problems);
            return Err(Failure::Usage(format!("grpc `{}`: {} does not load", svc.name, path.display())));
        }
    };
    let mut object = svc.options.clone();
    object.insert("services".into(), json!(svc.services));
    if Runtime::of(desc) == Runtime::Wasm && !object.contains_key("luaCompanion") {
        object.entry("lua_companion").or_insert(json!(true));
    }
    let full = load::with_descriptor(&object, &set.bytes);
    let config =
        load::parse_config(&full).map_err(|e| format!("grpc `{}`: the filter refuses its options: {e}", svc.name))?;
    let problems = surface::analyze(&set.pool, &svc.services, &config).problems;
    if !problems.is_empty() {
        load::report(&problems);
        return Err(Failure::Usage(format!(
            "grpc `{}`: {} problem(s) in {} (rgp check shows them)",
            svc.name,
            problems.len(),
            path.display()
        )));
    }
    Transcoder::new(config).map_err(|e| format!("grpc `{}`: the filter refuses this set: {e}", svc.name))?;
    Ok(full)
}

/// istio mode: an EnvoyFilter that adds the filter by ECDS (the extension config, with
/// the module as `remote` code that istio-agent fetches, `oci://` included, and hands
/// Envoy as a local file) and inserts it before the router of the selected listeners,
/// with the Lua companion inline right after it.
fn istio_envoy_filter(desc: &Description, base: &Path) -> Result<Value, Failure> {
    validate(desc)?;
    let (Some(istio), Some(svc)) = (&desc.istio, desc.grpc.first()) else {
        return Err(Failure::Usage("istio mode needs `istio` and one `grpc` entry".into()));
    };
    check_name(&istio.name)?;
    if !["SIDECAR_INBOUND", "GATEWAY"].contains(&istio.context.as_str()) {
        return Err(Failure::Usage(format!("istio.context {:?}: SIDECAR_INBOUND or GATEWAY", istio.context)));
    }
    let config = filter_config(desc, svc, base)?;
    let code = json!({ "remote": { "http_uri": { "uri": desc.wasm, "timeout": "30s" } } });
    let router_of_hcm = json!({ "filterChain": { "filter": {
        "name": "envoy.filters.network.http_connection_manager",
        "subFilter": { "name": "envoy.filters.http.router" }
    } } });
    let mut spec = json!({
        "configPatches": [
            {
                "applyTo": "EXTENSION_CONFIG",
                "match": { "context": istio.context },
                "patch": { "operation": "ADD", "value": {
                    "name": istio.name,
                    "typed_config": wasm_config(svc, &config, code)
                } }
            },
            {
                "applyTo": "HTTP_FILTER",
                "match": { "context": istio.context, "listener": router_of_hcm },
                "patch": { "operation": "INSERT_BEFORE", "value": {
                    "name": istio.name,
                    "config_discovery": {
                        "config_source": { "ads": {}, "initial_fetch_timeout": "0s" },
                        "type_urls": [WASM_FILTER_TYPE]
                    }
                } }
            }
        ]
    });
    if wants_companion(&config) {
        // The companion right after the Wasm filter, in the same context and workloads.
        let after_filter = json!({ "filterChain": { "filter": {
            "name": "envoy.filters.network.http_connection_manager",
            "subFilter": { "name": istio.name }
        } } });
        if let Some(patches) = spec["configPatches"].as_array_mut() {
            patches.push(json!({
                "applyTo": "HTTP_FILTER",
                "match": { "context": istio.context, "listener": after_filter },
                "patch": { "operation": "INSERT_AFTER", "value": {
                    "name": format!("{}-companion", istio.name),
                    "typed_config": companion_config()
                } }
            }));
        }
    }
    if !istio.selector.is_empty() {
        spec["workloadSelector"] = json!({ "labels": istio.selector });
    }
    Ok(json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": { "name": istio.name, "namespace": istio.namespace },
        "spec": spec
    }))
}

fn canary_name(svc: &GrpcService) -> String {
    format!("{}-canary", svc.name)
}

/// The route action shared by a service's routes: its cluster(s), timeout and retries.
fn grpc_action(svc: &GrpcService) -> Value {
    let mut action = match &svc.canary {
        Some(c) => json!({ "weighted_clusters": { "clusters": [
            { "name": svc.name, "weight": 100 - c.weight },
            { "name": canary_name(svc), "weight": c.weight }
        ] } }),
        None => json!({ "cluster": svc.name }),
    };
    action["timeout"] = json!(svc.timeout);
    if let Some(r) = &svc.retries {
        let mut policy = json!({ "retry_on": r.retry_on, "num_retries": r.num_retries });
        if let Some(t) = &r.per_try_timeout {
            policy["per_try_timeout"] = json!(t);
        }
        action["retry_policy"] = policy;
    }
    action
}

/// A route of a service; `per_filter` is the service's `typed_per_filter_config` in the per-route layout.
fn service_route(svc: &GrpcService, prefix: String, per_filter: Option<&Value>) -> Value {
    let mut route = json!({ "match": { "prefix": prefix }, "route": grpc_action(svc) });
    if let Some(per_filter) = per_filter {
        route["typed_per_filter_config"] = per_filter.clone();
    }
    route
}

/// Native gRPC (and transcoded requests, which are routed again on their gRPC path). In
/// the per-route layout the service's own paths carry its configuration, as the matcher of
/// the per-service layout lets its filter run there (JSON posted to `/pkg.Service/Method`
/// with `auto_mapping`); reflection is gRPC only and needs none.
fn grpc_routes(mode: Mode, svc: &GrpcService, per_filter: Option<&Value>) -> Vec<Value> {
    if mode != Mode::Gateway {
        return Vec::new();
    }
    let own = svc.services.iter().map(|s| service_route(svc, format!("/{s}/"), per_filter));
    let reflection = REFLECTION_SERVICES.iter().filter(|_| svc.reflection);
    own.chain(reflection.map(|s| service_route(svc, format!("/{s}/"), None))).collect()
}

/// The REST prefixes (sidecar: `/`); requests the filter does not transcode reach the backend as they are.
fn rest_routes(mode: Mode, svc: &GrpcService, per_filter: Option<&Value>) -> Vec<Value> {
    let prefixes: Vec<String> = match mode {
        Mode::Gateway => svc.prefixes.clone(),
        Mode::Sidecar | Mode::Istio => vec!["/".into()],
    };
    prefixes.into_iter().map(|p| service_route(svc, p, per_filter)).collect()
}

fn websocket_route(ws: &WebSocket) -> Value {
    json!({
        "match": { "prefix": ws.prefix },
        "route": {
            "cluster": ws.name,
            // No overall deadline for a long-lived connection; idle_timeout ends silent ones.
            "timeout": "0s",
            "idle_timeout": ws.idle_timeout,
            "upgrade_configs": [{ "upgrade_type": "websocket", "enabled": true }]
        }
    })
}

fn grpc_clusters(svc: &GrpcService) -> Result<Vec<Value>, String> {
    let mut out = vec![cluster(&svc.name, &svc.backend, true, svc.health_check.as_ref())?];
    if let Some(c) = &svc.canary {
        out.push(cluster(&canary_name(svc), &c.backend, true, svc.health_check.as_ref())?);
    }
    Ok(out)
}

fn cluster(name: &str, backend: &str, http2: bool, hc: Option<&HealthCheck>) -> Result<Value, String> {
    let (host, port, is_ip) = parse_backend(backend)?;
    let mut c = json!({
        "name": name,
        "type": if is_ip { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": host, "port_value": port }
            } } }] }]
        }
    });
    if http2 {
        c["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} }
            }
        });
    }
    if let Some(hc) = hc {
        c["health_checks"] = json!([{
            "timeout": hc.timeout,
            "interval": hc.interval,
            // Envoy checks a cluster that has had no traffic yet only every 60 s by
            // default: a backend that dies before its first request would stay
            // "healthy" for a minute. Check at the same pace either way.
            "no_traffic_interval": hc.interval,
            "unhealthy_threshold": hc.unhealthy_threshold,
            "healthy_threshold": hc.healthy_threshold,
            // A connect is enough: no payload, so any backend (gRPC or WebSocket) qualifies.
            "tcp_health_check": {}
        }]);
        // Envoy's default panic threshold (50 %) routes to every host once fewer than half
        // are healthy, so a one-host cluster would still get traffic after failing its
        // checks; 0 makes the checks decide: no healthy host, a fast 503 (flag UH).
        c["common_lb_config"] = json!({ "healthy_panic_threshold": { "value": 0.0 } });
    }
    Ok(c)
}

fn tls_socket(tls: &Tls) -> Value {
    let mut common = json!({
        "tls_certificates": [{
            "certificate_chain": { "filename": tls.cert },
            "private_key": { "filename": tls.key }
        }],
        // HTTP/2 for gRPC clients, HTTP/1.1 for the rest (and WebSockets), on one port.
        "alpn_protocols": ["h2", "http/1.1"]
    });
    let mut ctx = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
    });
    if let Some(ca) = &tls.client_ca {
        common["validation_context"] = json!({ "trusted_ca": { "filename": ca } });
        ctx["require_client_certificate"] = json!(tls.require_client_certificate.unwrap_or(true));
    }
    ctx["common_tls_context"] = common;
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": ctx })
}

fn health_listener(a: &Address) -> Value {
    json!({
        "name": "health",
        "address": socket_address(a),
        "filter_chains": [{ "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM_TYPE,
                "stat_prefix": "health",
                "route_config": { "name": "health", "virtual_hosts": [{
                    "name": "health", "domains": ["*"],
                    "routes": [{ "match": { "prefix": "/" }, "direct_response": { "status": 404 } }]
                }] },
                "http_filters": [
                    {
                        "name": "envoy.filters.http.health_check",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck",
                            "pass_through_mode": false,
                            "headers": [{ "name": ":path", "string_match": { "exact": "/ready" } }]
                        }
                    },
                    { "name": "envoy.filters.http.router", "typed_config": { "@type": ROUTER_TYPE } }
                ]
            }
        }] }]
    })
}

#[cfg(test)]
mod layout_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_envoy_seconds() {
        for ok in ["15s", "0.5s", "3600s"] {
            assert!(check_duration(ok).is_ok(), "{ok}");
        }
        for bad in ["15", "1m", "s", ".5s", "1.s", "-1s"] {
            assert!(check_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backends_parse_with_their_cluster_type() {
        assert_eq!(parse_backend("127.0.0.1:50051").ok(), Some(("127.0.0.1".into(), 50051, true)));
        assert_eq!(parse_backend("[::1]:80").ok(), Some(("::1".into(), 80, true)));
        assert_eq!(parse_backend("svc.ns.svc:8080").ok(), Some(("svc.ns.svc".into(), 8080, false)));
        for bad in ["nohost", ":80", "h:port", "h:70000"] {
            assert!(parse_backend(bad).is_err(), "{bad}");
        }
    }
}
