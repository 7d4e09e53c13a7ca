//! One pod in, a decision out: a JSON patch that adds the sidecar, a reason not to touch
//! the pod, or a denial with a message for the user.
//!
//! The patch only ever adds: it never rewrites what the pod has (so fields this
//! build's k8s-openapi does not know survive), and it creates `annotations`,
//! `volumes` and `initContainers` when the pod has none.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, Pod,
    Probe, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use crate::options::{self, DescriptorSource, InjectorConfig, Options, Runtime, HEALTH_PORT_NAME, REST_PORT_NAME};
use crate::{
    envoy, BOOTSTRAP_ENV, DEFAULT_CONTAINER_ANNOTATION, DESCRIPTOR_MOUNT, DESCRIPTOR_VOLUME, DYNMOD_SEARCH_PATH_ENV,
    ENABLE_LABEL, IMAGE_DYNMOD_DIR, IMAGE_ENVOY_BIN, IMAGE_INJECTOR_BIN, IMAGE_WASM, RUN_MOUNT, RUN_VOLUME,
    SIDECAR_NAME, STATUS_ANNOTATION, VERSION,
};

/// What the webhook answers for one pod.
#[derive(Debug)]
pub enum Outcome {
    /// Inject: the patch, warnings for the user, a one-line summary for the log.
    Patch { patch: Patch, warnings: Vec<String>, summary: String },
    /// Admit unchanged; `warning` (if any) is shown to the user.
    Skip { reason: String, warning: Option<String> },
    /// Refuse the pod with this message.
    Deny { message: String },
}

/// UID and GID of the sidecar (no file of the image needs to be owned by them).
pub const SIDECAR_UID: i64 = 65532;

/// Decide for one pod.
pub fn inject(pod: &Pod, cfg: &InjectorConfig) -> Outcome {
    let labels = pod.metadata.labels.as_ref();
    if labels.and_then(|l| l.get(ENABLE_LABEL)).is_none() {
        return Outcome::Skip { reason: format!("no {ENABLE_LABEL} label"), warning: None };
    }
    if options::status(pod).is_some() {
        return Outcome::Skip { reason: format!("already injected ({STATUS_ANNOTATION} is set)"), warning: None };
    }
    let spec = match &pod.spec {
        Some(s) => s,
        None => return Outcome::Deny { message: "the pod has no spec".into() },
    };
    let has_sidecar =
        spec.containers.iter().chain(spec.init_containers.iter().flatten()).any(|c| c.name == SIDECAR_NAME);
    if has_sidecar {
        return Outcome::Skip {
            reason: format!("a container named {SIDECAR_NAME} exists"),
            warning: Some(format!(
                "not injected: the pod already has a container named {SIDECAR_NAME} (but no {STATUS_ANNOTATION} annotation)"
            )),
        };
    }
    if spec.host_network == Some(true) {
        return Outcome::Skip {
            reason: "hostNetwork pod".into(),
            warning: Some(format!(
                "{ENABLE_LABEL}: sidecar not injected into a hostNetwork pod: it would bind its ports on the node and send gRPC to the node's 127.0.0.1"
            )),
        };
    }

    let opts = match options::options(pod, cfg) {
        Ok(o) => o,
        Err(errors) => {
            return Outcome::Deny { message: format!("rust-grpc-proxy sidecar injection: {}", errors.join("; ")) }
        }
    };

    let mut volumes: Vec<Volume> = Vec::new();
    let descriptor_volume = match &opts.descriptor {
        DescriptorSource::ConfigMap { name, .. } => {
            volumes.push(Volume {
                name: DESCRIPTOR_VOLUME.into(),
                config_map: Some(ConfigMapVolumeSource { name: name.clone(), ..Default::default() }),
                ..Default::default()
            });
            Some(DESCRIPTOR_VOLUME.to_string())
        }
        DescriptorSource::Volume { name, .. } => Some(name.clone()),
        // The filter asks the app itself: nothing to mount.
        DescriptorSource::Reflection { .. } => None,
    };
    volumes.push(Volume {
        name: RUN_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource { size_limit: Some(Quantity("64Mi".into())), ..Default::default() }),
        ..Default::default()
    });
    let existing: Vec<&str> = spec.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
    for v in &volumes {
        if existing.contains(&v.name.as_str()) {
            return Outcome::Deny {
                message: format!(
                    "rust-grpc-proxy sidecar injection: the pod already has a volume named {}, a name the sidecar uses",
                    v.name
                ),
            };
        }
    }

    let container = sidecar_container(&opts, descriptor_volume.as_deref());
    let status = json!({
        "version": VERSION,
        "layout": if opts.native_sidecar { "native" } else { "classic" },
        "container": SIDECAR_NAME,
        "volumes": volumes.iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
        "grpcPort": opts.grpc_port,
        "restPort": opts.rest_port,
        "runtime": match opts.runtime { Runtime::Native => "native", Runtime::Wasm => "wasm" },
    });

    let mut ops: Vec<PatchOperation> = Vec::new();
    let add = |ops: &mut Vec<PatchOperation>, tokens: &[&str], value: Value| {
        ops.push(PatchOperation::Add(AddOperation { path: PointerBuf::from_tokens(tokens.iter().copied()), value }));
    };

    // Annotations: the status record, and kubectl's default container -> the app.
    let mut new_annotations = vec![(STATUS_ANNOTATION.to_string(), status.to_string())];
    let has_default = pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(DEFAULT_CONTAINER_ANNOTATION));
    if !has_default && !opts.app_container.is_empty() {
        new_annotations.push((DEFAULT_CONTAINER_ANNOTATION.to_string(), opts.app_container.clone()));
    }
    if pod.metadata.annotations.is_none() {
        add(
            &mut ops,
            &["metadata", "annotations"],
            Value::Object(new_annotations.into_iter().map(|(k, v)| (k, Value::String(v))).collect()),
        );
    } else {
        for (k, v) in new_annotations {
            add(&mut ops, &["metadata", "annotations", &k], Value::String(v));
        }
    }

    if spec.volumes.is_none() {
        add(&mut ops, &["spec", "volumes"], Value::Array(volumes.iter().map(to_value).collect()));
    } else {
        for v in &volumes {
            add(&mut ops, &["spec", "volumes", "-"], to_value(v));
        }
    }

    let c = to_value(&container);
    if opts.native_sidecar {
        // Last of the init containers: the pod's own init steps run first, and the app
        // containers start once Envoy has started.
        if spec.init_containers.is_none() {
            add(&mut ops, &["spec", "initContainers"], Value::Array(vec![c]));
        } else {
            add(&mut ops, &["spec", "initContainers", "-"], c);
        }
    } else {
        add(&mut ops, &["spec", "containers", "-"], c);
    }

    let summary = format!(
        "{} sidecar ({}): REST :{} -> gRPC 127.0.0.1:{}{}",
        if opts.native_sidecar { "native" } else { "classic" },
        match opts.runtime {
            Runtime::Native => "dynamic module",
            Runtime::Wasm => "Wasm filter",
        },
        opts.rest_port,
        opts.grpc_port,
        match &opts.descriptor {
            DescriptorSource::Reflection { .. } => " (descriptors from the app's reflection service)",
            _ => "",
        }
    );
    Outcome::Patch { patch: Patch(ops), warnings: opts.warnings.clone(), summary }
}

/// The injected container; `descriptor_volume` is the volume holding the descriptor set
/// (None with reflection: then the sidecar step gets no `--descriptor`).
pub fn sidecar_container(opts: &Options, descriptor_volume: Option<&str>) -> Container {
    let config_out = format!("{RUN_MOUNT}/envoy.json");
    let bootstrap = envoy::bootstrap(opts, IMAGE_WASM);
    let mut args: Vec<String> = Vec::new();
    if let Some(key) = opts.descriptor.key() {
        args.extend(["--descriptor".into(), format!("{DESCRIPTOR_MOUNT}/{key}")]);
    }
    args.extend([
        "--config-out".into(),
        config_out.clone(),
        "--".into(),
        IMAGE_ENVOY_BIN.into(),
        "-c".into(),
        config_out,
        "--disable-hot-restart".into(),
        "--concurrency".into(),
        opts.concurrency.to_string(),
        "--log-level".into(),
        opts.log_level.clone(),
    ]);
    let mut volume_mounts = Vec::new();
    if let Some(name) = descriptor_volume {
        volume_mounts.push(VolumeMount {
            name: name.into(),
            mount_path: DESCRIPTOR_MOUNT.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    volume_mounts.push(VolumeMount { name: RUN_VOLUME.into(), mount_path: RUN_MOUNT.into(), ..Default::default() });
    Container {
        name: SIDECAR_NAME.into(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some(opts.image_pull_policy.clone()),
        command: Some(vec![IMAGE_INJECTOR_BIN.into(), "sidecar".into()]),
        args: Some(args),
        env: Some(vec![
            EnvVar { name: BOOTSTRAP_ENV.into(), value: Some(bootstrap.to_string()), ..Default::default() },
            // Also in the image, but an image built otherwise must still find the module.
            EnvVar { name: DYNMOD_SEARCH_PATH_ENV.into(), value: Some(IMAGE_DYNMOD_DIR.into()), ..Default::default() },
        ]),
        ports: Some(vec![
            ContainerPort {
                name: Some(REST_PORT_NAME.into()),
                container_port: opts.rest_port as i32,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some(HEALTH_PORT_NAME.into()),
                container_port: opts.health_port as i32,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/ready".into()),
                port: IntOrString::Int(opts.health_port as i32),
                scheme: Some("HTTP".into()),
                ..Default::default()
            }),
            initial_delay_seconds: Some(1),
            period_seconds: Some(5),
            timeout_seconds: Some(2),
            failure_threshold: Some(3),
            success_threshold: Some(1),
            ..Default::default()
        }),
        resources: Some(options::resource_requirements(&opts.resources)),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(SIDECAR_UID),
            run_as_group: Some(SIDECAR_UID),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
            ..Default::default()
        }),
        restart_policy: opts.native_sidecar.then(|| "Always".to_string()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(volume_mounts),
        ..Default::default()
    }
}

/// A k8s-openapi object as JSON (these types only hold strings, numbers and maps, so
/// serializing them cannot fail).
fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
