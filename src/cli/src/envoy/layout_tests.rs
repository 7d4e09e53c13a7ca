//! `filter_layout`: the per-route layout renders one module filter and each service's
//! configuration on its routes; the per-service layout stays the default; what cannot
//! work is refused with the reason. The repository's own gateway description is the input.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::filters::{DYNMOD_PER_ROUTE_TYPE, SHARED_FILTER_NAME};
use super::*;

fn gateway_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../envoy/gateway")
}

/// envoy/gateway/gateway.yaml with `extra` lines appended (top-level fields).
fn description(extra: &str) -> Result<Description, String> {
    let text = std::fs::read_to_string(gateway_dir().join("gateway.yaml")).map_err(|e| e.to_string())?;
    serde_norway::from_str(&format!("{text}\n{extra}\n")).map_err(|e| e.to_string())
}

fn render_with(extra: &str) -> Result<Value, String> {
    let desc = description(extra)?;
    bootstrap(&desc, &gateway_dir()).map_err(|e| match e {
        Failure::Usage(message) => message,
        Failure::Problems => "problems reported".into(),
    })
}

fn hcm(bootstrap: &Value) -> &Value {
    &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

fn routes(bootstrap: &Value) -> Vec<Value> {
    hcm(bootstrap)["route_config"]["virtual_hosts"][0]["routes"].as_array().cloned().unwrap_or_default()
}

fn filter_names(bootstrap: &Value) -> Vec<String> {
    let filters = hcm(bootstrap)["http_filters"].as_array().cloned().unwrap_or_default();
    filters.iter().filter_map(|f| f["name"].as_str().map(str::to_string)).collect()
}

/// The JSON a route's own configuration carries (None without one).
fn route_json(route: &Value) -> Option<Value> {
    let own = route.get("typed_per_filter_config")?;
    let entry = &own[SHARED_FILTER_NAME];
    assert_eq!(entry["@type"], DYNMOD_PER_ROUTE_TYPE);
    assert_eq!(entry["dynamic_module_config"]["name"], "rust_grpc_proxy");
    assert_eq!(entry["filter_name"], "rust_grpc_proxy");
    serde_json::from_str(entry["filter_config"]["value"].as_str()?).ok()
}

#[test]
fn per_route_renders_one_filter_and_each_services_configuration_on_its_routes() {
    let per_route = render_with("filter_layout: per-route").expect("renders");
    let per_service = render_with("").expect("renders");
    assert_eq!(filter_names(&per_route), [SHARED_FILTER_NAME, "envoy.filters.http.router"]);
    let shared = &hcm(&per_route)["http_filters"][0]["typed_config"];
    assert_eq!(shared["filter_config"]["value"], "{}", "the filter itself serves no service");
    // Each service's configuration is the one its own instance gets in the per-service layout.
    let instance = |name: &str| -> Value {
        let filters = hcm(&per_service)["http_filters"].as_array().cloned().unwrap_or_default();
        let own = filters.iter().find(|f| f["name"] == format!("envoy.filters.http.dynamic_modules.{name}"));
        let value =
            own.map(|f| f["typed_config"]["extension_config"]["typed_config"]["filter_config"]["value"].clone());
        serde_json::from_str(value.and_then(|v| v.as_str().map(str::to_string)).as_deref().unwrap_or("null"))
            .unwrap_or(Value::Null)
    };
    let (bookstore, greeter) = (instance("bookstore"), instance("greeter"));
    assert!(bookstore["proto_descriptor_bin"].is_string() && greeter["proto_descriptor_bin"].is_string());
    let expected: &[(&str, Option<&Value>)] = &[
        ("/bookstore.v1.Bookstore/", Some(&bookstore)),
        ("/echo.v1.EchoService/", Some(&bookstore)),
        ("/greeter.v1.Greeter/", Some(&greeter)),
        ("/grpc.reflection.v1.ServerReflection/", None),
        ("/grpc.reflection.v1alpha.ServerReflection/", None),
        ("/ws/", None),
        ("/v1/", Some(&bookstore)),
        ("/api/", Some(&bookstore)),
        ("/greeter/", Some(&greeter)),
    ];
    let rendered = routes(&per_route);
    let prefixes: Vec<&str> = rendered.iter().filter_map(|r| r["match"]["prefix"].as_str()).collect();
    assert_eq!(prefixes, expected.iter().map(|(p, _)| *p).collect::<Vec<_>>(), "same routes, same order");
    for (route, (prefix, config)) in rendered.iter().zip(expected) {
        assert_eq!(route_json(route).as_ref(), *config, "{prefix}");
    }
    // The routes are otherwise those of the per-service layout.
    let strip = |mut r: Value| {
        if let Some(map) = r.as_object_mut() {
            map.remove("typed_per_filter_config");
        }
        r
    };
    assert_eq!(rendered.into_iter().map(strip).collect::<Vec<_>>(), routes(&per_service));
}

#[test]
fn per_service_stays_the_default_and_can_be_named() {
    let default = render_with("").expect("renders");
    assert_eq!(render_with("filter_layout: per-service").expect("renders"), default);
    let names = filter_names(&default);
    assert_eq!(
        names,
        [
            "envoy.filters.http.dynamic_modules.bookstore",
            "envoy.filters.http.dynamic_modules.greeter",
            "envoy.filters.http.router"
        ]
    );
    assert!(routes(&default).iter().all(|r| r.get("typed_per_filter_config").is_none()));
}

#[test]
fn layouts_that_cannot_work_are_refused_with_the_reason() {
    let refused = |extra: &str| render_with(extra).err().unwrap_or_else(|| panic!("accepted: {extra}"));
    let wasm = refused("filter_layout: per-route\nruntime: wasm\nwasm: /m.wasm");
    assert!(wasm.contains("per-route needs runtime native: a Wasm filter has no per-route configuration"), "{wasm}");
    let unknown = refused("filter_layout: per-host");
    assert!(unknown.contains("unknown variant `per-host`, expected `per-service` or `per-route`"), "{unknown}");
    let sidecar = std::fs::read_to_string(gateway_dir().join("sidecar.yaml")).unwrap_or_default();
    let sidecar: Result<Description, _> = serde_norway::from_str(&format!("{sidecar}\nfilter_layout: per-service\n"));
    let message = validate(&sidecar.expect("sidecar.yaml parses")).err().unwrap_or_default();
    assert!(message.contains("`filter_layout` is for gateway mode"), "{message}");
}

#[test]
fn a_fetched_set_is_refused_per_route_and_accepted_per_service() {
    let mut desc = description("filter_layout: per-route").expect("parses");
    let url = serde_json::json!({ "cluster": "descriptors", "url": "http://descriptors/greeter.pb" });
    desc.grpc[1].options.insert("descriptor_url".into(), url);
    let message = validate(&desc).err().unwrap_or_default();
    assert!(
        message.contains("grpc `greeter`: `options.descriptor_url` with filter_layout per-route")
            && message.contains("use filter_layout per-service"),
        "{message}"
    );
    desc.filter_layout = Some(FilterLayout::PerService);
    assert_eq!(validate(&desc), Ok(()));
}
