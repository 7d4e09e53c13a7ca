//! `rgp-injector sidecar`: the first process of the injected container.
//!
//! The webhook puts the Envoy bootstrap in the container's environment
//! (`RGP_ENVOY_BOOTSTRAP`), without the descriptor set: sets can be megabytes, too big
//! for a pod spec, and a Wasm filter cannot read files. This step reads the set from the
//! mounted ConfigMap (or volume), puts it inline into the filter's configuration as
//! `proto_descriptor_bin` (base64), fills `services` with every service of the set when
//! the pod named none, writes the result into the sidecar's emptyDir and execs Envoy on
//! it (so Envoy is the container's main process and gets its signals).
//!
//! Without `--descriptor` (descriptor source `reflection`) there is no set to splice: the
//! filter's configuration must name a runtime source, and the bootstrap is written as is.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Map, Value};

use crate::envoy::{DYNMOD_FILTER_TYPE, ROOT_ID, WASM_FILTER_TYPE};
use crate::{descriptor, BOOTSTRAP_ENV};

/// A change to the filter's options (JSON object), or why it cannot be made.
type EditOptions<'a> = dyn FnMut(&mut Map<String, Value>) -> Result<(), String> + 'a;

/// Parse the bootstrap and call `edit` on the options of each of our filters (Wasm
/// filter or dynamic module), writing them back; refuses a bootstrap without one.
fn edit_filter_options(bootstrap: &str, edit: &mut EditOptions) -> Result<Value, String> {
    let mut config: Value = serde_json::from_str(bootstrap).map_err(|e| format!("{BOOTSTRAP_ENV} is not JSON: {e}"))?;
    let mut found = 0;
    let mut problem = None;
    visit(&mut config, &mut |obj| {
        let slot = match obj.get("@type").and_then(Value::as_str) {
            Some(WASM_FILTER_TYPE) if obj.pointer("/config/root_id").and_then(Value::as_str) == Some(ROOT_ID) => {
                "/config/configuration/value"
            }
            Some(DYNMOD_FILTER_TYPE) if obj.get("filter_name").and_then(Value::as_str) == Some(ROOT_ID) => {
                "/filter_config/value"
            }
            _ => return,
        };
        if problem.is_some() {
            return;
        }
        found += 1;
        let Some(slot) = obj.pointer_mut(slot) else {
            problem = Some("the filter has no configuration.value".to_string());
            return;
        };
        let mut options: Map<String, Value> = match slot.as_str().map(serde_json::from_str) {
            Some(Ok(Value::Object(m))) => m,
            _ => {
                problem = Some("the filter's configuration.value is not a JSON object".into());
                return;
            }
        };
        match edit(&mut options) {
            Ok(()) => *slot = Value::String(Value::Object(options).to_string()),
            Err(e) => problem = Some(e),
        }
    });
    if let Some(p) = problem {
        return Err(p);
    }
    if found == 0 {
        return Err(format!("{BOOTSTRAP_ENV} has no {ROOT_ID} filter (Wasm or dynamic module)"));
    }
    Ok(config)
}

/// The bootstrap as is, for a filter that fetches its descriptors itself; refuses one
/// whose filter names no runtime source (Envoy would refuse it with a less helpful message).
/// Returns the config and what the filter reads the descriptors from.
pub fn render_without_set(bootstrap: &str) -> Result<(Value, String), String> {
    let mut source = String::new();
    let config = edit_filter_options(bootstrap, &mut |options| {
        source = match (options.get("descriptor_reflection"), options.get("descriptor_url")) {
            (Some(r), _) => format!(
                "gRPC server reflection on cluster {}",
                r.get("cluster").map(Value::to_string).unwrap_or_default()
            ),
            (None, Some(u)) => u.get("url").map(Value::to_string).unwrap_or_default(),
            (None, None) => {
                return Err(
                    "no --descriptor, and the filter's configuration names no descriptor_reflection or descriptor_url: it would have no descriptor set (annotation rust-grpc-proxy/descriptor-source)".into(),
                )
            }
        };
        Ok(())
    })?;
    Ok((config, source))
}

/// Complete the bootstrap with the descriptor set. Returns the config and the services.
pub fn render(bootstrap: &str, set: &[u8]) -> Result<(Value, Vec<String>), String> {
    let in_set = descriptor::services(set)?;
    if in_set.is_empty() {
        return Err("the descriptor set has no services".into());
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(set);
    let mut services = Vec::new();
    let config = edit_filter_options(bootstrap, &mut |options| {
        let named: Vec<String> = match options.get("services") {
            Some(Value::Array(a)) => a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        if named.is_empty() {
            options.insert("services".into(), Value::from(in_set.clone()));
            services = in_set.clone();
        } else {
            let missing: Vec<&String> = named.iter().filter(|s| !in_set.contains(s)).collect();
            if !missing.is_empty() {
                return Err(format!(
                    "service(s) {} (annotation rust-grpc-proxy/services) not in the descriptor set, which has: {}",
                    missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                    in_set.join(", ")
                ));
            }
            services = named;
        }
        options.insert("proto_descriptor_bin".into(), Value::String(b64.clone()));
        Ok(())
    })?;
    Ok((config, services))
}

/// Call `f` on every JSON object in `v` (parents before children).
fn visit(v: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    if v.is_object() {
        f(v);
    }
    match v {
        Value::Object(m) => m.iter_mut().for_each(|(_, c)| visit(c, f)),
        Value::Array(a) => a.iter_mut().for_each(|c| visit(c, f)),
        _ => {}
    }
}

/// Read the set, with an error that says what the volume does hold when the file is missing.
pub fn read_descriptor(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let present: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                let mut v: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with(".."))
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default();
        format!(
            "cannot read the descriptor set {}: {e}; the volume holds: [{}] (set annotation rust-grpc-proxy/descriptor-key to one of them)",
            path.display(),
            present.join(", ")
        )
    })
}

/// Write atomically (temporary file + rename in the same directory).
fn write_config(path: &Path, config: &Value) -> Result<(), String> {
    let tmp: PathBuf = path.with_extension("tmp");
    let text = serde_json::to_vec(config).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), path.display()))
}

/// The sidecar step's command line.
pub struct SidecarArgs {
    /// The mounted descriptor set; None when the filter fetches its descriptors itself.
    pub descriptor: Option<PathBuf>,
    /// Where the rendered Envoy configuration is written.
    pub config_out: PathBuf,
    /// The program (Envoy) and its arguments, exec'd once the configuration is written.
    pub exec: Vec<String>,
}

/// Parse `[--descriptor PATH] --config-out PATH -- PROGRAM ARGS...`.
pub fn parse_args(args: &[String]) -> Result<SidecarArgs, String> {
    let (mut descriptor, mut config_out, mut exec) = (None, None, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--descriptor" => descriptor = Some(it.next().cloned().ok_or("sidecar: --descriptor needs a PATH")?),
            "--config-out" => config_out = Some(it.next().cloned().ok_or("sidecar: --config-out needs a PATH")?),
            "--" => {
                exec = it.by_ref().cloned().collect();
            }
            other => return Err(format!("sidecar: unknown argument {other}")),
        }
    }
    Ok(SidecarArgs {
        descriptor: descriptor.map(PathBuf::from),
        config_out: config_out.ok_or("sidecar: --config-out PATH is required")?.into(),
        exec,
    })
}

/// Render, write, then exec the program after `--` (Envoy). Returns only on failure.
pub fn run(args: &[String]) -> Result<(), String> {
    let a = parse_args(args)?;
    let bootstrap = std::env::var(BOOTSTRAP_ENV).map_err(|_| format!("{BOOTSTRAP_ENV} is not set"))?;
    match &a.descriptor {
        Some(path) => {
            let set = read_descriptor(path)?;
            let (config, services) = render(&bootstrap, &set)?;
            write_config(&a.config_out, &config)?;
            eprintln!(
                "rgp-injector sidecar: {} ({} bytes) -> {}; services: {}",
                path.display(),
                set.len(),
                a.config_out.display(),
                services.join(", ")
            );
        }
        None => {
            let (config, source) = render_without_set(&bootstrap)?;
            write_config(&a.config_out, &config)?;
            eprintln!(
                "rgp-injector sidecar: no descriptor file; the filter reads the descriptors from {source} -> {}",
                a.config_out.display()
            );
        }
    }
    let Some((program, rest)) = a.exec.split_first() else {
        return Ok(()); // nothing to exec: only render (useful to inspect the config)
    };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(program).args(rest).exec();
    Err(format!("cannot exec {program}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(num: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![num << 3 | 2, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    fn set() -> Vec<u8> {
        let file = [ld(1, b"a.proto"), ld(2, b"shop.v1"), ld(6, &ld(1, b"Shop")), ld(6, &ld(1, b"Admin"))].concat();
        ld(1, &file)
    }

    fn bootstrap(options: &str) -> String {
        serde_json::json!({"static_resources": {"listeners": [{"filters": [{"typed_config": {
            "@type": WASM_FILTER_TYPE,
            "config": {"root_id": ROOT_ID, "configuration": {"value": options}}
        }}]}]}})
        .to_string()
    }

    fn options_of(config: &Value) -> Value {
        let v =
            config.pointer("/static_resources/listeners/0/filters/0/typed_config/config/configuration/value").unwrap();
        serde_json::from_str(v.as_str().unwrap()).unwrap()
    }

    #[test]
    fn fills_descriptor_and_every_service() {
        let (config, services) = render(&bootstrap(r#"{"convert_grpc_status":true}"#), &set()).unwrap();
        assert_eq!(services, ["shop.v1.Shop", "shop.v1.Admin"]);
        let o = options_of(&config);
        assert_eq!(o["services"], serde_json::json!(["shop.v1.Shop", "shop.v1.Admin"]));
        assert_eq!(o["convert_grpc_status"], true);
        let b64 = base64::engine::general_purpose::STANDARD.encode(set());
        assert_eq!(o["proto_descriptor_bin"], b64);
    }

    #[test]
    fn keeps_named_services_and_refuses_unknown_ones() {
        let (config, services) = render(&bootstrap(r#"{"services":["shop.v1.Admin"]}"#), &set()).unwrap();
        assert_eq!(services, ["shop.v1.Admin"]);
        assert_eq!(options_of(&config)["services"], serde_json::json!(["shop.v1.Admin"]));
        let err = render(&bootstrap(r#"{"services":["shop.v1.Nope"]}"#), &set()).unwrap_err();
        assert!(err.contains("shop.v1.Nope") && err.contains("which has: shop.v1.Shop, shop.v1.Admin"), "{err}");
    }

    #[test]
    fn refuses_what_it_cannot_complete() {
        assert!(render("not json", &set()).unwrap_err().contains("not JSON"));
        assert!(render("{}", &set()).unwrap_err().contains("no rust_grpc_proxy filter"));
        assert!(render(&bootstrap("[]"), &set()).unwrap_err().contains("not a JSON object"));
        assert!(render(&bootstrap("{}"), b"garbage!").is_err());
        assert!(render(&bootstrap("{}"), &ld(1, &ld(1, b"empty.proto"))).unwrap_err().contains("no services"));
    }

    #[test]
    fn without_a_set_keeps_the_configuration_and_needs_a_runtime_source() {
        let b = bootstrap(r#"{"descriptor_reflection":{"cluster":"app"},"refresh_interval":"60s"}"#);
        let (config, source) = render_without_set(&b).unwrap();
        assert_eq!(source, r#"gRPC server reflection on cluster "app""#);
        let o = options_of(&config);
        assert_eq!(o["descriptor_reflection"]["cluster"], "app");
        assert!(o.get("proto_descriptor_bin").is_none() && o.get("services").is_none());
        let err = render_without_set(&bootstrap(r#"{"convert_grpc_status":true}"#)).unwrap_err();
        assert!(err.contains("names no descriptor_reflection or descriptor_url"), "{err}");
        assert!(render_without_set("{}").unwrap_err().contains("no rust_grpc_proxy filter"));
    }

    #[test]
    fn completes_the_dynamic_modules_configuration_too() {
        let b = serde_json::json!({"http_filters": [{"typed_config": {
            "@type": DYNMOD_FILTER_TYPE, "filter_name": ROOT_ID,
            "filter_config": {"value": r#"{"convert_grpc_status":true}"#}
        }}]})
        .to_string();
        let (config, services) = render(&b, &set()).unwrap();
        assert_eq!(services, ["shop.v1.Shop", "shop.v1.Admin"]);
        let v = config.pointer("/http_filters/0/typed_config/filter_config/value").unwrap();
        let o: Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
        assert_eq!(o["proto_descriptor_bin"], base64::engine::general_purpose::STANDARD.encode(set()));
    }

    #[test]
    fn parses_its_arguments() {
        let a: Vec<String> = ["--descriptor", "/d/x.pb", "--config-out", "/r/e.json", "--", "envoy", "-c", "/r/e.json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = parse_args(&a).unwrap();
        assert_eq!(p.descriptor, Some(PathBuf::from("/d/x.pb")));
        assert_eq!(p.exec, ["envoy", "-c", "/r/e.json"]);
        let without = parse_args(&a[2..]).unwrap();
        assert_eq!(without.descriptor, None);
        assert!(parse_args(&a[4..]).is_err(), "--config-out is required");
        assert!(parse_args(&["--bogus".to_string()]).is_err());
    }
}
