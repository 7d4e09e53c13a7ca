//! What to inject into one pod: the `rustGrpcProxyEnable` label and the
//! `rust-grpc-proxy/*` annotations, read and validated against the pod and the
//! webhook's defaults. Every problem is collected, so a user sees them all at once.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Map, Value};

use crate::{ANNOTATION_PREFIX, ENABLE_LABEL, STATUS_ANNOTATION};

/// The webhook's defaults (its command-line flags); annotations override them per pod.
#[derive(Clone, Debug)]
pub struct InjectorConfig {
    /// Sidecar image: Envoy, the filter's .wasm and rgp-injector (deploy/Dockerfile).
    pub image: String,
    pub image_pull_policy: String,
    /// Native sidecar (init container with `restartPolicy: Always`, Kubernetes 1.29+)
    /// or the classic layout (one more entry in `containers`).
    pub native_sidecar: bool,
    pub rest_port: u16,
    pub health_port: u16,
    pub admin_port: u16,
    pub resources: Resources,
    pub concurrency: u32,
    pub log_level: String,
    /// ConfigMap used when a pod names no descriptor source ("" = the pod must name one).
    /// The default, `rust-grpc-proxy` with key `rust-grpc-proxy.pb`, is what
    /// `rgp publish SET.pb --name rust-grpc-proxy` writes, so a pod with only the label
    /// (as with the original injector) works in a namespace that has it.
    pub descriptor_configmap: String,
    /// Where the descriptors of a pod that names no source come from
    /// (`--default-descriptor-source`): the ConfigMap above, or the app's reflection service.
    pub default_source: DefaultSource,
}

/// The webhook-wide descriptor source for pods that name none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DefaultSource {
    /// The ConfigMap `--default-descriptor-configmap` (the original injector's behaviour).
    #[default]
    ConfigMap,
    /// The app's gRPC server reflection service: the label alone is enough.
    Reflection,
}

impl std::str::FromStr for DefaultSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "configmap" => Ok(DefaultSource::ConfigMap),
            "reflection" => Ok(DefaultSource::Reflection),
            _ => Err(format!("--default-descriptor-source: configmap or reflection, not {s:?}")),
        }
    }
}

impl Default for InjectorConfig {
    fn default() -> Self {
        InjectorConfig {
            image: "rust-grpc-proxy:0.1.0".into(),
            image_pull_policy: "IfNotPresent".into(),
            native_sidecar: true,
            rest_port: 6789,
            health_port: 6790,
            admin_port: 9901,
            resources: Resources {
                cpu_request: Some("50m".into()),
                memory_request: Some("64Mi".into()),
                cpu_limit: Some("1".into()),
                memory_limit: Some("256Mi".into()),
            },
            concurrency: 2,
            log_level: "info".into(),
            descriptor_configmap: "rust-grpc-proxy".into(),
            default_source: DefaultSource::ConfigMap,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    pub cpu_request: Option<String>,
    pub memory_request: Option<String>,
    pub cpu_limit: Option<String>,
    pub memory_limit: Option<String>,
}

/// Where the descriptor set comes from. ConfigMaps and volumes are mounted read-only in
/// the sidecar at `DESCRIPTOR_MOUNT`, `key` being the file inside; reflection mounts nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum DescriptorSource {
    /// A ConfigMap the user names (e.g. written by `rgp publish`): the webhook adds a
    /// `configMap` volume for it.
    ConfigMap { name: String, key: String },
    /// A volume the pod already declares (Secret, CSI, image volume, ...).
    Volume { name: String, key: String },
    /// The app's gRPC server reflection service, read by the filter itself through the
    /// sidecar's `app` cluster, again every `refresh_interval` (Duration JSON, `"60s"`).
    Reflection { refresh_interval: String },
}

impl DescriptorSource {
    /// The file inside the mounted ConfigMap or volume; None for reflection (nothing is mounted).
    pub fn key(&self) -> Option<&str> {
        match self {
            DescriptorSource::ConfigMap { key, .. } | DescriptorSource::Volume { key, .. } => Some(key),
            DescriptorSource::Reflection { .. } => None,
        }
    }
}

/// `refresh-interval` when a reflection pod sets none: often enough to pick up a new
/// version of the app within a minute, rarely enough that the exchange costs nothing.
pub const DEFAULT_REFRESH_INTERVAL: &str = "60s";

/// Values of the `descriptor-source` annotation.
const DESCRIPTOR_SOURCES: &[&str] = &["configmap", "volume", "reflection"];

/// Annotations that configure a mounted descriptor set, so conflict with reflection.
const MOUNTED_SET_ANNOTATIONS: &[&str] = &["descriptor-configmap", "descriptor-volume", "descriptor-key"];

/// Which build of the filter the sidecar's Envoy runs (annotation `runtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// The dynamic module: the image's Envoy is ours (1.40), the ABI the module was built for.
    Native,
    /// The Wasm filter and its Lua companion: only when the pod asks for it.
    Wasm,
}

/// Everything the sidecar of one pod is built from.
#[derive(Clone, Debug)]
pub struct Options {
    pub grpc_port: u16,
    pub rest_port: u16,
    pub health_port: u16,
    pub admin_port: u16,
    pub descriptor: DescriptorSource,
    /// The filter's build: native unless the pod asks for wasm.
    pub runtime: Runtime,
    /// Empty: every service of the set (decided by the sidecar when it reads the set).
    pub services: Vec<String>,
    /// GrpcJsonTranscoder fields other than the descriptor and `services`.
    pub transcoder: Map<String, Value>,
    pub image: String,
    pub image_pull_policy: String,
    pub native_sidecar: bool,
    pub resources: Resources,
    pub concurrency: u32,
    pub log_level: String,
    /// Name of the app container (the one declaring the gRPC port, else the first).
    pub app_container: String,
    /// Not errors, but worth telling the user (returned as admission warnings).
    pub warnings: Vec<String>,
}

/// Annotation names (without the prefix) the injector understands.
pub const KNOWN_ANNOTATIONS: &[&str] = &[
    "runtime",
    "descriptor-source",
    "refresh-interval",
    "descriptor-configmap",
    "descriptor-volume",
    "descriptor-key",
    "descriptor-sha256",
    "services",
    "port",
    "health-port",
    "admin-port",
    "print-options",
    "transcoder-options",
    "image",
    "image-pull-policy",
    "native-sidecar",
    "cpu-request",
    "memory-request",
    "cpu-limit",
    "memory-limit",
    "concurrency",
    "log-level",
    "status",
];

const PRINT_OPTIONS: &[&str] =
    &["add_whitespace", "always_print_primitive_fields", "always_print_enums_as_ints", "preserve_proto_field_names"];

/// Top-level GrpcJsonTranscoder fields `transcoder-options` may set (snake_case; the
/// filter also accepts camelCase, and so does this check).
const TRANSCODER_FIELDS: &[&str] = &[
    "print_options",
    "auto_mapping",
    "ignored_query_parameters",
    "ignore_unknown_query_parameters",
    "request_validation_options",
    "convert_grpc_status",
    "url_unescape_spec",
    "query_param_unescape_plus",
    "match_unregistered_custom_verb",
    "case_insensitive_enum_parsing",
    "max_request_body_size",
    "max_response_body_size",
    "match_incoming_request_route",
    "capture_unknown_query_parameters",
    "pass_through_until_loaded",
];

/// Port names the sidecar declares; a pod must not use them already.
pub const REST_PORT_NAME: &str = "rgp-rest";
pub const HEALTH_PORT_NAME: &str = "rgp-health";

fn annotation(pod: &Pod, name: &str) -> Option<String> {
    pod.metadata.annotations.as_ref()?.get(&format!("{ANNOTATION_PREFIX}{name}")).cloned()
}

fn app_containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or(&[])
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    spec.map(|s| s.containers.iter())
        .into_iter()
        .flatten()
        .chain(spec.and_then(|s| s.init_containers.as_ref()).map(|c| c.iter()).into_iter().flatten())
}

/// Ports the pod's containers declare: (container, name, containerPort).
fn declared_ports(pod: &Pod) -> Vec<(String, Option<String>, i32)> {
    all_containers(pod)
        .flat_map(|c| c.ports.iter().flatten().map(move |p| (c.name.clone(), p.name.clone(), p.container_port)))
        .collect()
}

/// Parse the label's value: a port number (1-65535) or the name of a declared port.
/// Returns the port, the app container and an optional warning.
pub fn grpc_port(pod: &Pod, value: &str) -> Result<(u16, Option<String>, Option<String>), String> {
    let declared = declared_ports(pod);
    let app = |port: i32| {
        app_containers(pod)
            .iter()
            .find(|c| c.ports.iter().flatten().any(|p| p.container_port == port))
            .map(|c| c.name.clone())
    };
    if value.is_empty() {
        return Err(format!(
            "label {ENABLE_LABEL} is empty: set it to the gRPC port of the app (1-65535), e.g. {ENABLE_LABEL}: \"50051\""
        ));
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        let port: u32 = value.parse().unwrap_or(u32::MAX);
        if !(1..=65535).contains(&port) {
            return Err(format!(
                "label {ENABLE_LABEL}=\"{value}\": {value} is not a port number (1-65535); set it to the gRPC port of the app"
            ));
        }
        let port = port as u16;
        if declared.iter().any(|(_, _, p)| *p == port as i32) {
            Ok((port, app(port as i32), None))
        } else {
            Ok((
                port,
                None,
                Some(format!(
                    "label {ENABLE_LABEL}=\"{value}\": no container of the pod declares port {port}; the sidecar sends gRPC to 127.0.0.1:{port} anyway (declaring it in ports is recommended)"
                )),
            ))
        }
    } else {
        match declared.iter().find(|(_, name, _)| name.as_deref() == Some(value)) {
            Some((_, _, port)) if (1..=65535).contains(port) => Ok((*port as u16, app(*port), None)),
            _ => Err(format!(
                "label {ENABLE_LABEL}=\"{value}\": not a port number (1-65535) nor the name of a port a container of the pod declares; set it to the gRPC port of the app"
            )),
        }
    }
}

/// Read and check everything for one pod. `Err` holds every problem found.
pub fn options(pod: &Pod, cfg: &InjectorConfig) -> Result<Options, Vec<String>> {
    let mut errors: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let label = pod.metadata.labels.as_ref().and_then(|l| l.get(ENABLE_LABEL)).cloned().unwrap_or_default();

    let (grpc_port, app, warning) = match grpc_port(pod, &label) {
        Ok(v) => v,
        Err(e) => {
            errors.push(e);
            (0, None, None)
        }
    };
    warnings.extend(warning);
    let app_container = app.or_else(|| app_containers(pod).first().map(|c| c.name.clone())).unwrap_or_default();

    // Unknown annotations with our prefix are refused: a typo must not be ignored silently.
    for key in pod.metadata.annotations.iter().flat_map(|a| a.keys()) {
        if let Some(name) = key.strip_prefix(ANNOTATION_PREFIX) {
            if !KNOWN_ANNOTATIONS.contains(&name) {
                errors.push(format!(
                    "unknown annotation {key} (known after {ANNOTATION_PREFIX}: {})",
                    KNOWN_ANNOTATIONS.iter().filter(|n| **n != "status").copied().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }

    let mut port = |name: &str, default: u16| -> u16 {
        match annotation(pod, name) {
            None => default,
            Some(v) => match v.parse::<u16>() {
                Ok(p) if p >= 1024 => p,
                Ok(p) if p >= 1 => {
                    errors.push(format!(
                        "annotation {ANNOTATION_PREFIX}{name}=\"{v}\": ports below 1024 need root and the sidecar runs as non-root; use 1024-65535 (a Service can still expose port {p})"
                    ));
                    default
                }
                _ => {
                    errors
                        .push(format!("annotation {ANNOTATION_PREFIX}{name}=\"{v}\": not a port number (1024-65535)"));
                    default
                }
            },
        }
    };
    let rest_port = port("port", cfg.rest_port);
    let health_port = port("health-port", cfg.health_port);
    let admin_port = port("admin-port", cfg.admin_port);

    // The sidecar shares the pod's network namespace: its ports must be free.
    let ours = [("port", rest_port), ("health-port", health_port), ("admin-port", admin_port)];
    for (i, (name, p)) in ours.iter().enumerate() {
        if grpc_port != 0 && *p == grpc_port {
            errors.push(format!(
                "the sidecar's {name} {p} is the app's gRPC port (label {ENABLE_LABEL}); set annotation {ANNOTATION_PREFIX}{name} to a free port"
            ));
        }
        for (other, q) in &ours[..i] {
            if p == q {
                errors.push(format!(
                    "the sidecar's {name} and {other} are both {p}; set annotation {ANNOTATION_PREFIX}{name} to another port"
                ));
            }
        }
        if let Some((c, _, _)) = declared_ports(pod).iter().find(|(_, _, d)| *d == *p as i32) {
            if *p != grpc_port {
                errors.push(format!(
                    "the sidecar's {name} {p} is declared by container {c}; set annotation {ANNOTATION_PREFIX}{name} to a free port"
                ));
            }
        }
    }
    for n in [REST_PORT_NAME, HEALTH_PORT_NAME] {
        if let Some((c, _, _)) = declared_ports(pod).iter().find(|(_, name, _)| name.as_deref() == Some(n)) {
            errors.push(format!("container {c} declares a port named {n}, a name the sidecar uses"));
        }
    }

    // The descriptor set: a ConfigMap or a volume of the pod, never an annotation
    // (sets can be megabytes; annotations are limited to 256 KiB in all), or the app's
    // reflection service, which the filter reads itself.
    let key_annotation = annotation(pod, "descriptor-key");
    let source = annotation(pod, "descriptor-source");
    let (configmap, volume) = (annotation(pod, "descriptor-configmap"), annotation(pod, "descriptor-volume"));
    let reflection = match source.as_deref() {
        Some("reflection") => true,
        None => configmap.is_none() && volume.is_none() && cfg.default_source == DefaultSource::Reflection,
        _ => false,
    };
    let refresh = annotation(pod, "refresh-interval");
    let descriptor = if reflection {
        // Say where reflection came from: a typo'd default is harder to spot than an annotation.
        let why = match source {
            Some(_) => format!("annotation {ANNOTATION_PREFIX}descriptor-source=\"reflection\""),
            None => "the webhook's --default-descriptor-source reflection".to_string(),
        };
        for name in MOUNTED_SET_ANNOTATIONS {
            if annotation(pod, name).is_some() {
                errors.push(format!(
                    "annotation {ANNOTATION_PREFIX}{name} names a mounted descriptor set, but {why} reads the descriptors from the app's gRPC reflection service; remove one of them"
                ));
            }
        }
        let refresh_interval = refresh.unwrap_or_else(|| DEFAULT_REFRESH_INTERVAL.to_string());
        if let Err(e) = check_duration(&refresh_interval) {
            errors.push(format!("annotation {ANNOTATION_PREFIX}refresh-interval=\"{refresh_interval}\": {e}"));
        }
        Some(DescriptorSource::Reflection { refresh_interval })
    } else {
        if refresh.is_some() {
            errors.push(format!(
                "annotation {ANNOTATION_PREFIX}refresh-interval applies only to {ANNOTATION_PREFIX}descriptor-source \"reflection\": a mounted descriptor set is read once at start (restart the pods to load a new one)"
            ));
        }
        match (source.as_deref(), &configmap, &volume) {
            (Some("configmap"), _, Some(_)) => errors.push(format!(
                "annotation {ANNOTATION_PREFIX}descriptor-source=\"configmap\" conflicts with {ANNOTATION_PREFIX}descriptor-volume; remove one of them"
            )),
            (Some("volume"), Some(_), _) => errors.push(format!(
                "annotation {ANNOTATION_PREFIX}descriptor-source=\"volume\" conflicts with {ANNOTATION_PREFIX}descriptor-configmap; remove one of them"
            )),
            (Some("volume"), _, None) => errors.push(format!(
                "annotation {ANNOTATION_PREFIX}descriptor-source=\"volume\" needs {ANNOTATION_PREFIX}descriptor-volume naming a volume of the pod"
            )),
            (None | Some("configmap" | "volume"), _, _) => {}
            (Some(other), _, _) => errors.push(format!(
                "annotation {ANNOTATION_PREFIX}descriptor-source=\"{other}\": one of {}",
                DESCRIPTOR_SOURCES.join(", ")
            )),
        }
        mounted_source(pod, cfg, configmap, volume, key_annotation, &mut errors)
    };
    if let Some(DescriptorSource::ConfigMap { key, .. }) = &descriptor {
        let ok = !key.is_empty()
            && key.len() <= 253
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            && key != "."
            && key != "..";
        if !ok {
            errors.push(format!(
                "annotation {ANNOTATION_PREFIX}descriptor-key=\"{key}\": not a ConfigMap key (letters, digits, '-', '_', '.')"
            ));
        }
    }
    if let Some(DescriptorSource::Volume { key, .. }) = &descriptor {
        if !is_relative_file(key) {
            errors.push(format!(
                "annotation {ANNOTATION_PREFIX}descriptor-key=\"{key}\": must be a relative file path inside the volume (no leading /, no ..)"
            ));
        }
    }

    // Native by default, reflection pods included: the sidecar image's Envoy is the 1.40
    // the module was built for, and the module fetches descriptors by reflection itself
    // (tests/containers/test_injected_pod.py runs both runtimes that way in a pod).
    let runtime = match annotation(pod, "runtime").as_deref() {
        None | Some("native") => Runtime::Native,
        Some("wasm") => Runtime::Wasm,
        Some(v) => {
            errors.push(format!(
                "annotation {ANNOTATION_PREFIX}runtime=\"{v}\": \"native\" (the dynamic module, the default) or \"wasm\" (the Wasm filter)"
            ));
            Runtime::Native
        }
    };

    let services: Vec<String> = annotation(pod, "services")
        .map(|s| s.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    for s in &services {
        if !s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !part.starts_with(|c: char| c.is_ascii_digit())
        }) {
            errors.push(format!(
                "annotation {ANNOTATION_PREFIX}services: \"{s}\" is not a fully qualified service name (e.g. bookstore.v1.Bookstore)"
            ));
        }
    }

    // Transcoder options: the JSON object of `transcoder-options`, then `print-options`.
    let mut transcoder = Map::new();
    transcoder.insert("convert_grpc_status".into(), Value::Bool(true));
    if let Some(text) = annotation(pod, "transcoder-options") {
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => {
                for (k, v) in map {
                    let snake = to_snake(&k);
                    if snake == "pass_through_until_loaded" && !reflection {
                        errors.push(format!(
                            "annotation {ANNOTATION_PREFIX}transcoder-options: {k} applies only to {ANNOTATION_PREFIX}descriptor-source \"reflection\" (a mounted set is loaded before Envoy serves)"
                        ));
                    } else if TRANSCODER_FIELDS.contains(&snake.as_str()) {
                        transcoder.insert(snake, v);
                    } else if matches!(
                        snake.as_str(),
                        "proto_descriptor"
                            | "proto_descriptor_bin"
                            | "descriptor_url"
                            | "descriptor_reflection"
                            | "refresh_interval"
                    ) {
                        errors.push(format!(
                            "annotation {ANNOTATION_PREFIX}transcoder-options: {k} cannot be set here; the descriptors come from {ANNOTATION_PREFIX}descriptor-configmap, -volume, or -source: reflection (with {ANNOTATION_PREFIX}refresh-interval)"
                        ));
                    } else if snake == "services" {
                        errors.push(format!(
                            "annotation {ANNOTATION_PREFIX}transcoder-options: use annotation {ANNOTATION_PREFIX}services for services"
                        ));
                    } else {
                        errors.push(format!(
                            "annotation {ANNOTATION_PREFIX}transcoder-options: unknown field {k} (known: {})",
                            TRANSCODER_FIELDS.join(", ")
                        ));
                    }
                }
            }
            Ok(_) => errors.push(format!("annotation {ANNOTATION_PREFIX}transcoder-options: must be a JSON object")),
            Err(e) => errors.push(format!("annotation {ANNOTATION_PREFIX}transcoder-options: not JSON: {e}")),
        }
    }
    if let Some(text) = annotation(pod, "print-options") {
        let mut print = match transcoder.remove("print_options") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for flag in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let snake = to_snake(flag).replace('-', "_");
            if PRINT_OPTIONS.contains(&snake.as_str()) {
                print.insert(snake, Value::Bool(true));
            } else {
                errors.push(format!(
                    "annotation {ANNOTATION_PREFIX}print-options: unknown option \"{flag}\" (known: {})",
                    PRINT_OPTIONS.join(", ")
                ));
            }
        }
        transcoder.insert("print_options".into(), Value::Object(print));
    }

    let image = annotation(pod, "image").unwrap_or_else(|| cfg.image.clone());
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.push(format!("annotation {ANNOTATION_PREFIX}image=\"{image}\": not an image reference"));
    }
    let image_pull_policy = annotation(pod, "image-pull-policy").unwrap_or_else(|| cfg.image_pull_policy.clone());
    if !["Always", "IfNotPresent", "Never"].contains(&image_pull_policy.as_str()) {
        errors.push(format!(
            "annotation {ANNOTATION_PREFIX}image-pull-policy=\"{image_pull_policy}\": one of Always, IfNotPresent, Never"
        ));
    }
    let native_sidecar = match annotation(pod, "native-sidecar").as_deref() {
        None => cfg.native_sidecar,
        Some("true") => true,
        Some("false") => false,
        Some(v) => {
            errors.push(format!("annotation {ANNOTATION_PREFIX}native-sidecar=\"{v}\": \"true\" or \"false\""));
            cfg.native_sidecar
        }
    };
    let restart_policy = pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
    if !native_sidecar && restart_policy != "Always" {
        warnings.push(format!(
            "classic sidecar layout on a pod with restartPolicy {restart_policy}: the Envoy container keeps running after the app exits, so the pod does not complete (native sidecars, Kubernetes 1.29+, do not have this problem)"
        ));
    }

    let mut resources = cfg.resources.clone();
    for (name, slot, is_cpu) in [
        ("cpu-request", &mut resources.cpu_request, true),
        ("memory-request", &mut resources.memory_request, false),
        ("cpu-limit", &mut resources.cpu_limit, true),
        ("memory-limit", &mut resources.memory_limit, false),
    ] {
        if let Some(v) = annotation(pod, name) {
            if v.is_empty() {
                *slot = None; // explicitly no request / limit
            } else if quantity(&v).is_none() {
                errors.push(format!(
                    "annotation {ANNOTATION_PREFIX}{name}=\"{v}\": not a Kubernetes quantity (e.g. {})",
                    if is_cpu { "100m or 0.5" } else { "128Mi" }
                ));
            } else {
                *slot = Some(v);
            }
        }
    }
    for (what, req, lim) in [
        ("cpu", &resources.cpu_request, &resources.cpu_limit),
        ("memory", &resources.memory_request, &resources.memory_limit),
    ] {
        if let (Some(r), Some(l)) = (req.as_deref().and_then(quantity), lim.as_deref().and_then(quantity)) {
            if r > l {
                errors.push(format!(
                    "sidecar {what} request {} is above its limit {} (annotations {ANNOTATION_PREFIX}{what}-request, {ANNOTATION_PREFIX}{what}-limit)",
                    req.as_deref().unwrap_or_default(),
                    lim.as_deref().unwrap_or_default()
                ));
            }
        }
    }

    let concurrency = match annotation(pod, "concurrency") {
        None => cfg.concurrency,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=64).contains(&n) => n,
            _ => {
                errors.push(format!("annotation {ANNOTATION_PREFIX}concurrency=\"{v}\": Envoy worker threads, 1-64"));
                cfg.concurrency
            }
        },
    };
    let log_level = annotation(pod, "log-level").unwrap_or_else(|| cfg.log_level.clone());
    if !["trace", "debug", "info", "warning", "error", "critical", "off"].contains(&log_level.as_str()) {
        errors.push(format!(
            "annotation {ANNOTATION_PREFIX}log-level=\"{log_level}\": one of trace, debug, info, warning, error, critical, off"
        ));
    }

    let descriptor = match descriptor {
        Some(descriptor) if errors.is_empty() => descriptor,
        Some(_) => return Err(errors),
        None if errors.is_empty() => {
            return Err(vec!["no descriptor source could be worked out from the annotations".into()])
        }
        None => return Err(errors),
    };
    Ok(Options {
        grpc_port,
        rest_port,
        health_port,
        admin_port,
        descriptor,
        runtime,
        services,
        transcoder,
        image,
        image_pull_policy,
        native_sidecar,
        resources,
        concurrency,
        log_level,
        app_container,
        warnings,
    })
}

/// The mounted descriptor set of a pod: the ConfigMap or volume its annotations name,
/// else the webhook's default ConfigMap. Problems go to `errors`.
fn mounted_source(
    pod: &Pod,
    cfg: &InjectorConfig,
    configmap: Option<String>,
    volume: Option<String>,
    key_annotation: Option<String>,
    errors: &mut Vec<String>,
) -> Option<DescriptorSource> {
    match (configmap, volume) {
        (Some(_), Some(_)) => {
            errors.push(format!(
                "annotations {ANNOTATION_PREFIX}descriptor-configmap and {ANNOTATION_PREFIX}descriptor-volume are both set; use one"
            ));
            None
        }
        (Some(name), None) => {
            if !is_dns_subdomain(&name) {
                errors.push(format!(
                    "annotation {ANNOTATION_PREFIX}descriptor-configmap=\"{name}\": not a valid ConfigMap name (lower-case RFC 1123 subdomain)"
                ));
            }
            let key = key_annotation.unwrap_or_else(|| format!("{name}.pb"));
            Some(DescriptorSource::ConfigMap { name, key })
        }
        (None, Some(name)) => {
            let exists =
                pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).is_some_and(|v| v.iter().any(|v| v.name == name));
            if !exists {
                errors.push(format!(
                    "annotation {ANNOTATION_PREFIX}descriptor-volume=\"{name}\": the pod has no volume named {name}"
                ));
            }
            let key = key_annotation.unwrap_or_else(|| "descriptors.pb".into());
            Some(DescriptorSource::Volume { name, key })
        }
        (None, None) if !cfg.descriptor_configmap.is_empty() => {
            let name = cfg.descriptor_configmap.clone();
            let key = key_annotation.unwrap_or_else(|| format!("{name}.pb"));
            Some(DescriptorSource::ConfigMap { name, key })
        }
        (None, None) => {
            errors.push(format!(
                "annotation {ANNOTATION_PREFIX}descriptor-configmap is required: the name of a ConfigMap in the pod's namespace holding the descriptor set (rgp publish writes one), {ANNOTATION_PREFIX}descriptor-volume naming a volume of the pod, or {ANNOTATION_PREFIX}descriptor-source: reflection when the app serves gRPC reflection"
            ));
            None
        }
    }
}

/// Checks a Duration the way the filter reads `refresh_interval` (transcoder's
/// `source::duration_field`: `<seconds>s`, above 0 and at most a year), so that a value
/// the filter would refuse at start is refused at admission instead. The injector does not
/// link the engine: its serde_json features would change the webhook's JSON output.
pub fn check_duration(text: &str) -> Result<(), String> {
    let seconds = text
        .strip_suffix('s')
        .and_then(|n| n.parse::<f64>().ok())
        .ok_or_else(|| "not a duration such as \"60s\" or \"0.5s\"".to_string())?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 * 365.0 {
        return Err(format!("{seconds} s is not a duration above 0 and at most a year"));
    }
    Ok(())
}

/// The injector's own annotations on a pod (for the status check).
pub fn status(pod: &Pod) -> Option<&String> {
    pod.metadata.annotations.as_ref()?.get(STATUS_ANNOTATION)
}

/// camelCase -> snake_case (snake_case unchanged).
fn to_snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Lower-case RFC 1123 subdomain (ConfigMap names), at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_relative_file(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && s.len() <= 253
        && s.split('/').all(|p| !p.is_empty() && p != ".." && p != ".")
        && !s.chars().any(|c| c.is_control())
}

/// The value of a Kubernetes resource quantity (`100m`, `0.5`, `128Mi`, `1e3`), or None
/// when it does not parse the way the API server reads quantities. Negative values are
/// refused (the API server refuses them for resources).
pub fn quantity(s: &str) -> Option<f64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let num = num.strip_prefix('+').unwrap_or(num);
    if num.is_empty() || num.matches('.').count() > 1 || num == "." {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => {
            let exp = &e[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(exp.parse::<i32>().ok()?)
        }
        _ => return None,
    };
    Some(n * factor)
}

/// The sidecar's `resources` as a Kubernetes object.
pub fn resource_requirements(r: &Resources) -> k8s_openapi::api::core::v1::ResourceRequirements {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let map = |cpu: &Option<String>, mem: &Option<String>| {
        let mut m = BTreeMap::new();
        if let Some(c) = cpu {
            m.insert("cpu".to_string(), Quantity(c.clone()));
        }
        if let Some(v) = mem {
            m.insert("memory".to_string(), Quantity(v.clone()));
        }
        (!m.is_empty()).then_some(m)
    };
    k8s_openapi::api::core::v1::ResourceRequirements {
        requests: map(&r.cpu_request, &r.memory_request),
        limits: map(&r.cpu_limit, &r.memory_limit),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity("100m"), Some(0.1));
        assert_eq!(quantity("1"), Some(1.0));
        assert_eq!(quantity("0.5"), Some(0.5));
        assert_eq!(quantity("128Mi"), Some(128.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("1E-3"), Some(0.001));
        for bad in ["", "abc", "1.2.3", "-1", "10mb", "Mi", "1e", "1 Mi", "."] {
            assert_eq!(quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_follow_the_filters_rule() {
        // The values transcoder's source.rs tests accept and refuse, and a few more.
        for ok in ["60s", "1.5s", "0.5s", "1e3s", "+5s", "31536000s"] {
            assert_eq!(check_duration(ok), Ok(()), "{ok}");
        }
        for bad in ["", "60", "1m", "-1s", "0s", "infs", "NaNs", "31536001s", "s", " 60s"] {
            assert!(check_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(is_dns_subdomain("bookstore-descriptors"));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("Bookstore"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain(""));
        assert!(is_relative_file("set.pb"));
        assert!(is_relative_file("sets/set.pb"));
        assert!(!is_relative_file("/set.pb"));
        assert!(!is_relative_file("../set.pb"));
        assert_eq!(to_snake("printOptions"), "print_options");
        assert_eq!(to_snake("auto_mapping"), "auto_mapping");
    }

    /// A pod with the label and `annotations`, its app declaring gRPC port 50051.
    fn pod(annotations: &[(&str, &str)]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "labels": {ENABLE_LABEL: "50051"},
                "annotations": annotations.iter().map(|(k, v)| (format!("{ANNOTATION_PREFIX}{k}"), *v))
                    .collect::<BTreeMap<_, _>>(),
            },
            "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 50051}]}]},
        }))
        .expect("a valid Pod")
    }

    /// The module is the default whatever the descriptor source; `runtime: wasm` still
    /// picks the Wasm filter, reflection pods included.
    #[test]
    fn runtime_is_native_unless_the_pod_asks_for_wasm() {
        let cfg = InjectorConfig::default();
        let reflection_default = InjectorConfig { default_source: DefaultSource::Reflection, ..cfg.clone() };
        let runtime = |annotations: &[(&str, &str)], cfg: &InjectorConfig| {
            options(&pod(annotations), cfg).map(|o| (o.runtime, o.descriptor)).expect("accepted")
        };
        // (the pod's annotations, the webhook's flags, the runtime it must get)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a InjectorConfig, Runtime);
        let cases: [Case; 7] = [
            (&[("descriptor-configmap", "set")], &cfg, Runtime::Native),
            (&[("descriptor-configmap", "set"), ("runtime", "wasm")], &cfg, Runtime::Wasm),
            (&[("descriptor-source", "reflection")], &cfg, Runtime::Native),
            (&[("descriptor-source", "reflection"), ("runtime", "native")], &cfg, Runtime::Native),
            (&[("descriptor-source", "reflection"), ("runtime", "wasm")], &cfg, Runtime::Wasm),
            (&[], &reflection_default, Runtime::Native),
            (&[("runtime", "wasm")], &reflection_default, Runtime::Wasm),
        ];
        for (annotations, cfg, want) in cases {
            let (got, descriptor) = runtime(annotations, cfg);
            assert_eq!(got, want, "{annotations:?} {:?}", cfg.default_source);
            let by_reflection = matches!(descriptor, DescriptorSource::Reflection { .. });
            let asked = annotations.contains(&("descriptor-source", "reflection"))
                || cfg.default_source == DefaultSource::Reflection;
            assert_eq!(by_reflection, asked, "{annotations:?}");
        }
    }
}
