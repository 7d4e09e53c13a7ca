//! `rgp publish`: the files a deployment needs, from a set that passes `check`.

use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};
use transcoder::surface::{self, Problem, ProblemKind};
use transcoder::Transcoder;

use crate::load;
use crate::{Failure, Select};

pub fn run(
    set_path: &Path,
    name: &str,
    namespace: &str,
    wasm_path: &str,
    select: &Select,
    out: &Path,
) -> Result<(), Failure> {
    check_k8s_name("--name", name)?;
    check_k8s_name("--namespace", namespace)?;
    let set = match load::load_set(set_path)? {
        Ok(set) => set,
        Err(problems) => {
            load::report(&problems);
            eprintln!("{}: not published", set_path.display());
            return Err(Failure::Problems);
        }
    };
    let (mut object, services) = load::config_json(select, &set)?;
    // The snippet's Wasm filter hands requests without a body to its Lua companion; the
    // dynamic module, given the same JSON, ignores the field.
    if !object.contains_key("luaCompanion") {
        object.entry("lua_companion").or_insert(serde_json::Value::Bool(true));
    }
    let full = load::with_descriptor(&object, &set.bytes);

    // Publish only what the filter loads without a problem (what `rgp check` passes).
    let mut problems: Vec<Problem> = Vec::new();
    match load::parse_config(&full) {
        Ok(config) => {
            problems.extend(surface::analyze(&set.pool, &services, &config).problems);
            if let Err(e) = Transcoder::new(config) {
                problems.push(Problem {
                    kind: ProblemKind::BadDescriptorSet,
                    file: None,
                    method: None,
                    message: format!("the filter refuses this set and configuration: {e}"),
                });
            }
        }
        Err(e) => problems.push(Problem {
            kind: ProblemKind::BadDescriptorSet,
            file: None,
            method: None,
            message: format!("the filter refuses this configuration: {e}"),
        }),
    }
    if !problems.is_empty() {
        load::report(&problems);
        eprintln!("{}: {} problem(s); not published (rgp check shows the routes)", set_path.display(), problems.len());
        return Err(Failure::Problems);
    }

    let sha = hex(&Sha256::digest(&set.bytes));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&set.bytes);
    let pb_name = format!("{name}.pb");
    let config_text = serde_json::to_string_pretty(&full).map_err(|e| e.to_string())? + "\n";
    let config_line = full.to_string();

    let configmap = format!(
        "# Written by rgp publish from {source}: the descriptor set {pb_name} (sha256 {sha}).\n\
         # Mount it where your tooling renders the filter configuration; the Wasm filter itself\n\
         # cannot read files, so Envoy gets the set inline ({name}.filter.json, {name}.envoy.yaml).\n\
         apiVersion: v1\n\
         kind: ConfigMap\n\
         metadata:\n\
         \x20 name: {name}\n\
         \x20 namespace: {namespace}\n\
         \x20 labels:\n\
         \x20   app.kubernetes.io/managed-by: rgp\n\
         \x20 annotations:\n\
         \x20   rust-grpc-proxy/descriptor-sha256: \"{sha}\"\n\
         \x20   rust-grpc-proxy/services: \"{services}\"\n\
         binaryData:\n\
         \x20 {pb_name}: {b64}\n",
        source = set_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        services = services.join(","),
    );

    let envoy = format!(
        "# Envoy http_filters for {name} (descriptor sha256 {sha}), written by rgp publish.\n\
         # Goes into the HttpConnectionManager; the router must come last. The gRPC route and\n\
         # an HTTP/2 cluster for the backend are yours to add (see envoy/transcoder-wasm.yaml).\n\
         # The Lua filter right after the Wasm filter gives GET/DELETE requests the gRPC frame the\n\
         # Wasm filter hands it (\"lua_companion\": true), so they go through the router too. With\n\
         # the dynamic module instead (README, \"Which runtime\"), use {name}.filter.json as its\n\
         # filter_config and leave out both.\n\
         http_filters:\n\
         - name: envoy.filters.http.wasm\n\
         \x20 typed_config:\n\
         \x20   \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n\
         \x20   config:\n\
         \x20     name: rust_grpc_proxy\n\
         \x20     root_id: rust_grpc_proxy\n\
         \x20     # Required: the filter holds the headers while it reads the JSON body.\n\
         \x20     allow_on_headers_stop_iteration: true\n\
         \x20     failure_policy: FAIL_CLOSED\n\
         \x20     configuration:\n\
         \x20       \"@type\": type.googleapis.com/google.protobuf.StringValue\n\
         \x20       # {name}.filter.json on one line.\n\
         \x20       value: {value}\n\
         \x20     vm_config:\n\
         \x20       runtime: envoy.wasm.runtime.v8\n\
         \x20       code:\n\
         \x20         local:\n\
         \x20           filename: {wasm}\n\
         - name: envoy.filters.http.lua\n\
         \x20 typed_config:\n\
         \x20   \"@type\": {with_matcher}\n\
         \x20   # Skips the Lua filter unless the Wasm filter's marker is on the request: a script\n\
         \x20   # run costs every request, and only a transcoded request without a body needs it.\n\
         \x20   xds_matcher: {matcher}\n\
         \x20   extension_config:\n\
         \x20     name: envoy.filters.http.lua\n\
         \x20     typed_config:\n\
         \x20       \"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua\n\
         \x20       default_source_code:\n\
         \x20         inline_string: |\n\
         {lua}\
         - name: envoy.filters.http.router\n\
         \x20 typed_config:\n\
         \x20   \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n",
        value = yaml_single_quoted(&config_line),
        wasm = yaml_single_quoted(wasm_path),
        with_matcher = crate::envoy::EXTENSION_WITH_MATCHER,
        matcher = crate::envoy::companion_matcher(),
        lua = crate::envoy::COMPANION_LUA
            .lines()
            .map(|l| if l.is_empty() { "\n".to_string() } else { format!("            {l}\n") })
            .collect::<String>(),
    );

    let files: [(String, Vec<u8>); 5] = [
        (pb_name.clone(), set.bytes.clone()),
        (format!("{pb_name}.sha256"), format!("{sha}  {pb_name}\n").into_bytes()),
        (format!("{name}.configmap.yaml"), configmap.into_bytes()),
        (format!("{name}.filter.json"), config_text.into_bytes()),
        (format!("{name}.envoy.yaml"), envoy.into_bytes()),
    ];
    for (file, bytes) in &files {
        let path = out.join(file);
        load::write(&path, bytes)?;
        println!("{}", path.display());
    }
    eprintln!("published {pb_name} (sha256 {sha}) for {}", services.join(", "));
    Ok(())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A YAML single-quoted scalar: only `'` needs escaping (as `''`); no line breaks expected.
fn yaml_single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Kubernetes object names and namespaces: lower-case RFC 1123 labels (what a
/// namespace needs; stricter than a ConfigMap name needs, and safe for file names).
fn check_k8s_name(flag: &str, name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Failure::Usage(format!(
            "{flag} {name:?}: must be 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit (a Kubernetes name)"
        )))
    }
}
