//! The Envoy bootstrap of an injected sidecar, shaped like envoy/transcoder-wasm.yaml:
//!
//! - listener `rest` on 0.0.0.0:<port> (codec AUTO: REST over HTTP/1.1, native gRPC
//!   over h2c): the filter, then the router, one route `/` to the app. The filter is the
//!   dynamic module (runtime native, found in ENVOY_DYNAMIC_MODULES_SEARCH_PATH), or the
//!   Wasm filter followed by its Lua companion (envoy/companion.lua), which gives requests
//!   without a body the gRPC frame the Wasm filter hands it, so they go through the router;
//! - listener `health` on 0.0.0.0:<health-port>: Envoy's health_check filter answers
//!   `GET /ready` (200 while Envoy runs and is not draining) for the readiness probe;
//! - cluster `app`: 127.0.0.1:<grpc port>, HTTP/2;
//! - admin on 127.0.0.1:<admin-port> only (reachable with `kubectl port-forward`).
//!
//! With a mounted descriptor set, the filter's configuration leaves out
//! `proto_descriptor_bin` (and `services` when the pod names none): `rgp-injector
//! sidecar` adds them from the set, because a Wasm filter cannot read files and the set
//! is too large for the pod spec. With reflection, the configuration is complete here:
//! `descriptor_reflection` names the `app` cluster and the filter fetches the set itself.

use serde_json::{json, Map, Value};

use crate::options::{DescriptorSource, Options, Runtime};

/// `@type` of the Wasm HTTP filter's config; the sidecar step looks for it.
pub const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// `@type` of the dynamic module HTTP filter's config; the sidecar step looks for it too.
pub const DYNMOD_FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";
/// The Lua companion of the Wasm filter (one source of truth with envoy/render.py and rgp envoy).
pub const COMPANION_LUA: &str = include_str!("../../../envoy/companion.lua");
/// The predicate "the Wasm filter's marker is on the request", under which the companion runs
/// (one source of truth with envoy/render.py and rgp envoy).
pub const COMPANION_GATE: &str = include_str!("../../../envoy/companion-gate.json");
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";
/// The filter's root_id (as in envoy/transcoder-wasm.yaml).
pub const ROOT_ID: &str = "rust_grpc_proxy";
/// The cluster of the app's gRPC port: where requests go, and whom reflection asks.
pub const APP_CLUSTER: &str = "app";

/// The filter configuration. With a mounted set: without the set (and without `services`
/// if the pod names none), which the sidecar step completes. With reflection: complete,
/// `services` left out when the pod names none (the filter then lists the app's).
pub fn filter_options(opts: &Options) -> Map<String, Value> {
    let mut m = opts.transcoder.clone();
    if opts.runtime == Runtime::Wasm {
        m.insert("lua_companion".into(), json!(true));
    }
    if !opts.services.is_empty() {
        m.insert("services".into(), json!(opts.services));
    }
    if let DescriptorSource::Reflection { refresh_interval } = &opts.descriptor {
        m.insert("descriptor_reflection".into(), json!({ "cluster": APP_CLUSTER }));
        m.insert("refresh_interval".into(), json!(refresh_interval));
    }
    m
}

/// [`COMPANION_GATE`] as a matcher predicate.
fn companion_gate() -> Value {
    // A file of this repository, checked by the tests: not something a pod can break.
    serde_json::from_str(COMPANION_GATE).expect("envoy/companion-gate.json is JSON")
}

/// The filters of the `rest` listener, router last; `wasm_path` is the .wasm inside the image.
fn rest_filters(opts: &Options, wasm_path: &str) -> Vec<Value> {
    let options = Value::Object(filter_options(opts)).to_string();
    let configuration = json!({ "@type": STRING_VALUE_TYPE, "value": options });
    let mut filters = match opts.runtime {
        Runtime::Native => vec![json!({
            "name": "envoy.filters.http.dynamic_modules",
            "typed_config": {
                "@type": DYNMOD_FILTER_TYPE,
                "dynamic_module_config": { "name": ROOT_ID },
                "filter_name": ROOT_ID,
                "filter_config": configuration
            }
        })],
        Runtime::Wasm => vec![
            json!({
                "name": "envoy.filters.http.wasm",
                "typed_config": {
                    "@type": WASM_FILTER_TYPE,
                    "config": {
                        "name": ROOT_ID,
                        "root_id": ROOT_ID,
                        "allow_on_headers_stop_iteration": true,
                        "failure_policy": "FAIL_CLOSED",
                        "configuration": configuration,
                        "vm_config": {
                            "runtime": "envoy.wasm.runtime.v8",
                            "code": { "local": { "filename": wasm_path } }
                        }
                    }
                }
            }),
            // Right after the Wasm filter: it moves the frame into the body (lua_companion above).
            // It runs only for requests with the marker: a Lua filter costs every request a
            // script run, and only a transcoded request without a body needs it.
            json!({
                "name": "envoy.filters.http.lua",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher",
                    "extension_config": {
                        "name": "envoy.filters.http.lua",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                            "default_source_code": { "inline_string": COMPANION_LUA }
                        }
                    },
                    "xds_matcher": { "matcher_list": { "matchers": [{
                        "predicate": { "not_matcher": companion_gate() },
                        "on_match": { "action": {
                            "name": "skip",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter"
                            }
                        } }
                    }] } }
                }
            }),
        ],
    };
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
    }));
    filters
}

/// The bootstrap (JSON) for one pod; `wasm_path` is the module inside the image (runtime wasm).
pub fn bootstrap(opts: &Options, wasm_path: &str) -> Value {
    let filters = rest_filters(opts, wasm_path);
    json!({
        "node": { "id": "rust-grpc-proxy-sidecar", "cluster": "rust-grpc-proxy" },
        "admin": {
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": opts.admin_port } }
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "rest",
                    "address": { "socket_address": { "address": "0.0.0.0", "port_value": opts.rest_port } },
                    "filter_chains": [{ "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "rest",
                            "codec_type": "AUTO",
                            "access_log": [{
                                "name": "envoy.access_loggers.stdout",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                                    "log_format": { "text_format_source": { "inline_string":
                                        "access: \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% grpc=%GRPC_STATUS_NUMBER% rx=%BYTES_RECEIVED% tx=%BYTES_SENT% %DURATION%ms\n" } }
                                }
                            }],
                            "route_config": {
                                "name": "app",
                                "virtual_hosts": [{
                                    "name": "app",
                                    "domains": ["*"],
                                    "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": APP_CLUSTER, "timeout": "60s" } }]
                                }]
                            },
                            "http_filters": filters
                        }
                    }] }]
                },
                {
                    "name": "health",
                    "address": { "socket_address": { "address": "0.0.0.0", "port_value": opts.health_port } },
                    "filter_chains": [{ "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
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
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
                                }
                            ]
                        }
                    }] }]
                }
            ],
            "clusters": [{
                "name": APP_CLUSTER,
                "type": "STATIC",
                "connect_timeout": "2s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": { "http2_protocol_options": {} }
                    }
                },
                "load_assignment": {
                    "cluster_name": APP_CLUSTER,
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                        "socket_address": { "address": "127.0.0.1", "port_value": opts.grpc_port }
                    } } }] }]
                }
            }]
        }
    })
}
