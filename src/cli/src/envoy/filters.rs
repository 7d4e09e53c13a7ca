//! The HTTP filters `rgp envoy` puts in front of the router for one gRPC service, per
//! runtime: the dynamic module (native), or the Wasm filter followed by its Lua companion
//! (envoy/companion.lua), which gives a request without a body (GET, DELETE) the gRPC
//! frame the Wasm filter hands it, so that such requests go through the router too.
//! In gateway mode with the per-route layout, the module instead runs once for all
//! services, each service's configuration riding on its routes.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{Description, GrpcService, Mode};

/// `@type` of the Wasm HTTP filter's config (as in the injector and envoy/transcoder-wasm.yaml).
pub const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// `@type` of the Lua HTTP filter's config (the companion).
pub const LUA_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua";
/// `@type` of the dynamic module HTTP filter's config (as in envoy/transcoder-dynmod.yaml).
pub const DYNMOD_FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";
/// The filter's root_id, and the dynamic module's name (lib<name>.so) and filter name.
pub const ROOT_ID: &str = "rust_grpc_proxy";
/// The Lua companion, one source of truth for every configuration we generate.
pub const COMPANION_LUA: &str = include_str!("../../../../envoy/companion.lua");
/// The predicate "the Wasm filter's marker is on the request", under which the companion runs.
pub const COMPANION_GATE: &str = include_str!("../../../../envoy/companion-gate.json");
/// `@type` of the wrapper that skips a filter by a matcher (gateway scopes, the companion's gate).
pub const EXTENSION_WITH_MATCHER: &str = "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher";
const SKIP_FILTER: &str = "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter";
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";

/// Which build of the filter Envoy runs.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// The dynamic module (librust_grpc_proxy.so): needs the Envoy whose ABI it was built for (1.40).
    Native,
    /// rust_grpc_proxy.wasm with the Lua companion: any Envoy with a Wasm runtime (Istio).
    Wasm,
}

/// How a gateway gives each service its own configuration (gateway mode, runtime native).
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum FilterLayout {
    /// One instance of the filter per service, wrapped in a matcher that skips it outside
    /// the service's paths (the default; the only layout a Wasm filter can have).
    PerService,
    /// One dynamic-module filter configured `{}`, and each service's configuration on its
    /// routes (`typed_per_filter_config`): the route picks the configuration.
    PerRoute,
}

impl FilterLayout {
    /// The description's `filter_layout`, else per-service.
    pub fn of(desc: &Description) -> FilterLayout {
        desc.filter_layout.unwrap_or(FilterLayout::PerService)
    }
}

impl Runtime {
    /// The description's `runtime`, else the mode's default: native where the Envoy is
    /// ours (sidecar, gateway), wasm for Istio, whose proxies are not ours to load modules into.
    pub fn of(desc: &Description) -> Runtime {
        desc.runtime.unwrap_or(match desc.mode {
            Mode::Istio => Runtime::Wasm,
            Mode::Gateway | Mode::Sidecar => Runtime::Native,
        })
    }
}

/// Whether the Wasm filter with this configuration hands bodiless requests to the companion.
pub fn wants_companion(config: &Value) -> bool {
    config.get("lua_companion").and_then(Value::as_bool) == Some(true)
}

/// The Wasm filter's typed config for one service; `code` is where the module comes from.
pub fn wasm_config(svc: &GrpcService, config: &Value, code: Value) -> Value {
    json!({
        "@type": WASM_FILTER_TYPE,
        "config": {
            "name": format!("{ROOT_ID}.{}", svc.name),
            "root_id": ROOT_ID,
            // Required: the filter holds the request headers while it reads the JSON body (PLATFORM.md).
            "allow_on_headers_stop_iteration": true,
            "failure_policy": "FAIL_CLOSED",
            "configuration": { "@type": STRING_VALUE_TYPE, "value": config.to_string() },
            "vm_config": { "runtime": "envoy.wasm.runtime.v8", "code": code }
        }
    })
}

/// The Lua companion's typed config.
pub fn companion_config() -> Value {
    json!({ "@type": LUA_FILTER_TYPE, "default_source_code": { "inline_string": COMPANION_LUA } })
}

/// [`COMPANION_GATE`] as a matcher predicate.
fn companion_gate() -> Value {
    // A file of this repository, checked by the tests: not something a user can break.
    serde_json::from_str(COMPANION_GATE).expect("envoy/companion-gate.json is JSON")
}

/// The dynamic module's typed config: Envoy finds lib<name>.so in ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
pub fn dynmod_config(config: &Value) -> Value {
    json!({
        "@type": DYNMOD_FILTER_TYPE,
        "dynamic_module_config": { "name": ROOT_ID },
        "filter_name": ROOT_ID,
        "filter_config": { "@type": STRING_VALUE_TYPE, "value": config.to_string() }
    })
}

/// The name of the one filter of the per-route layout: the key of its routes' `typed_per_filter_config`.
pub const SHARED_FILTER_NAME: &str = "envoy.filters.http.dynamic_modules.rust_grpc_proxy";
/// `@type` of a route's own configuration of the dynamic module.
pub const DYNMOD_PER_ROUTE_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute";

/// The one filter of the per-route layout: the module configured `{}`, which passes every
/// request through unless its route carries a configuration ([`route_config`]).
pub fn shared_filter() -> Value {
    json!({ "name": SHARED_FILTER_NAME, "typed_config": dynmod_config(&json!({})) })
}

/// A route's `typed_per_filter_config` with one service's configuration for the shared filter.
pub fn route_config(config: &Value) -> Value {
    json!({ SHARED_FILTER_NAME: {
        "@type": DYNMOD_PER_ROUTE_TYPE,
        "dynamic_module_config": { "name": ROOT_ID },
        // filter_name, not per_route_config_name: Envoy 1.40 logs the latter as deprecated.
        "filter_name": ROOT_ID,
        "filter_config": { "@type": STRING_VALUE_TYPE, "value": config.to_string() }
    } })
}

/// The http_filters entries of one service (before the router), in order.
pub fn service_filters(desc: &Description, svc: &GrpcService, config: &Value) -> Vec<Value> {
    // (name, typed config, whether it runs only for requests with the companion's marker)
    let chunks = match Runtime::of(desc) {
        Runtime::Native => {
            vec![(format!("envoy.filters.http.dynamic_modules.{}", svc.name), dynmod_config(config), false)]
        }
        Runtime::Wasm => {
            let code = json!({ "local": { "filename": desc.wasm } });
            let mut v = vec![(format!("envoy.filters.http.wasm.{}", svc.name), wasm_config(svc, config, code), false)];
            if wants_companion(config) {
                // Right after the Wasm filter, and in gateway mode under the same matcher. A Lua
                // filter costs every request a script run: only requests with the marker need it.
                v.push((format!("envoy.filters.http.lua.{}", svc.name), companion_config(), true));
            }
            v
        }
    };
    chunks.into_iter().map(|(name, filter, gated)| scoped(desc.mode, svc, name, filter, gated)).collect()
}

/// The filter wrapped so that it is skipped unless `predicate` holds.
fn skip_unless(name: String, filter: Value, predicate: Value) -> Value {
    json!({
        "name": name,
        "typed_config": {
            "@type": EXTENSION_WITH_MATCHER,
            "extension_config": { "name": name, "typed_config": filter },
            "xds_matcher": skip_matcher(predicate)
        }
    })
}

/// An ExtensionWithMatcher's xds_matcher that skips its filter unless `predicate` holds.
fn skip_matcher(predicate: Value) -> Value {
    json!({ "matcher_list": { "matchers": [{
        "predicate": { "not_matcher": predicate },
        "on_match": { "action": { "name": "skip", "typed_config": { "@type": SKIP_FILTER } } }
    }] } })
}

/// The companion's xds_matcher outside gateway mode: skipped unless the marker is there.
pub fn companion_matcher() -> Value {
    skip_matcher(companion_gate())
}

/// In gateway mode, the filter wrapped so that it is skipped outside the service's paths;
/// `gated` (the companion): skipped also, in every mode, unless the marker is there.
fn scoped(mode: Mode, svc: &GrpcService, name: String, filter: Value, gated: bool) -> Value {
    if mode != Mode::Gateway {
        return match gated {
            true => skip_unless(name, filter, companion_gate()),
            false => json!({ "name": name, "typed_config": filter }),
        };
    }
    // Skip this instance unless :path starts with one of the service's REST prefixes or
    // is one of its gRPC services' paths. A matcher sees :path as the filters before it
    // left it, so the companion after the Wasm filter sees the gRPC path the Wasm filter
    // wrote, and must run there; the Wasm filter runs there too, so that it removes a
    // companion marker a native gRPC client might send. Requests another service's
    // instance rewrote to its own gRPC path are skipped.
    let prefix_predicate = |p: &str| {
        json!({ "single_predicate": {
            "input": {
                "name": "request-path",
                "typed_config": { "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput", "header_name": ":path" }
            },
            "value_match": { "prefix": p }
        } })
    };
    let grpc_paths: Vec<String> = svc.services.iter().map(|s| format!("/{s}/")).collect();
    let predicates: Vec<Value> = svc
        .prefixes
        .iter()
        .map(String::as_str)
        .chain(grpc_paths.iter().map(String::as_str))
        .map(prefix_predicate)
        .collect();
    let in_scope = json!({ "or_matcher": { "predicate": predicates } });
    let predicate = match gated {
        true => json!({ "and_matcher": { "predicate": [in_scope, companion_gate()] } }),
        false => in_scope,
    };
    skip_unless(name, filter, predicate)
}
