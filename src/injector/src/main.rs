//! rgp-injector: the sidecar injector webhook (`serve`), the sidecar's startup step
//! (`sidecar`), and `review` to answer one AdmissionReview from a file (for debugging).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rgp_injector::options::InjectorConfig;
use rgp_injector::{admission, server, sidecar};

const USAGE: &str = "\
rgp-injector: mutating admission webhook adding the rust-grpc-proxy Envoy sidecar

USAGE:
    rgp-injector serve --tls-cert FILE --tls-key FILE [--listen ADDR] [OPTIONS]
        Serve POST /mutate, GET /healthz, GET /readyz over HTTPS (default
        listen 0.0.0.0:8443). The certificate files are re-read when they change.
          --cert-reload-interval SECS   how often to check the files (default 5)
          --shutdown-delay SECS         serve this long after SIGTERM, not ready (default 5)

    rgp-injector review [FILE] [OPTIONS]
        Answer one AdmissionReview read from FILE (or stdin) on stdout.

    rgp-injector sidecar [--descriptor FILE] --config-out FILE -- ENVOY ARGS...
        Inside the injected container: complete the Envoy bootstrap in
        $RGP_ENVOY_BOOTSTRAP with the descriptor set FILE, write it to the
        --config-out file, then exec ENVOY ARGS. Without --descriptor (descriptor
        source reflection), the bootstrap is written as is.

OPTIONS (defaults for every pod; the pod's rust-grpc-proxy/* annotations override):
    --sidecar-image IMAGE         (default rust-grpc-proxy:0.1.0)
    --image-pull-policy POLICY    (default IfNotPresent)
    --native-sidecars true|false  init container with restartPolicy Always (default true; false for clusters before 1.29)
    --rest-port N --health-port N --admin-port N   (defaults 6789, 6790, 9901)
    --cpu-request Q --memory-request Q --cpu-limit Q --memory-limit Q  (defaults 50m, 64Mi, 1, 256Mi; '' for none)
    --concurrency N --log-level LEVEL   Envoy worker threads and log level (defaults 2, info)
    --default-descriptor-configmap NAME   ConfigMap for pods that name none (default rust-grpc-proxy,
                                  key rust-grpc-proxy.pb; '' to require the annotation)
    --default-descriptor-source configmap|reflection   where pods that name no descriptor source get
                                  their descriptors: the ConfigMap above (default), or the app's gRPC
                                  reflection service (then the label alone is enough)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("review") => review(&args[1..]),
        Some("sidecar") => sidecar::run(&args[1..]),
        Some("--version") => {
            println!("rgp-injector {}", rgp_injector::VERSION);
            Ok(())
        }
        Some("--help" | "-h" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("expected a command\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rgp-injector: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--flag value` (or `--flag=value`) pairs `config_flags` did not know, for the command to read.
type OtherFlags = Vec<(String, String)>;

/// Flags shared by `serve` and `review`: the config, the other flags, the positional arguments.
fn config_flags(args: &[String]) -> Result<(InjectorConfig, OtherFlags, Vec<String>), String> {
    let mut cfg = InjectorConfig::default();
    let mut rest = Vec::new();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if !arg.starts_with("--") {
            positional.push(arg.clone());
            continue;
        }
        // `--flag=value` (as deploy/injector.yaml writes them) or `--flag value`.
        let (a, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), value.to_string()),
            None => (arg.clone(), it.next().ok_or_else(|| format!("{arg} needs a value"))?.clone()),
        };
        let port = |v: &str| v.parse::<u16>().map_err(|_| format!("{a}: not a port: {v}"));
        let opt = |v: String| if v.is_empty() { None } else { Some(v) };
        match a.as_str() {
            "--sidecar-image" => cfg.image = value,
            "--image-pull-policy" => cfg.image_pull_policy = value,
            "--native-sidecars" => {
                cfg.native_sidecar = value.parse().map_err(|_| format!("{a}: true or false, not {value}"))?
            }
            "--rest-port" => cfg.rest_port = port(&value)?,
            "--health-port" => cfg.health_port = port(&value)?,
            "--admin-port" => cfg.admin_port = port(&value)?,
            "--cpu-request" => cfg.resources.cpu_request = opt(value),
            "--memory-request" => cfg.resources.memory_request = opt(value),
            "--cpu-limit" => cfg.resources.cpu_limit = opt(value),
            "--memory-limit" => cfg.resources.memory_limit = opt(value),
            "--concurrency" => cfg.concurrency = value.parse().map_err(|_| format!("{a}: a number, not {value}"))?,
            "--log-level" => cfg.log_level = value,
            "--default-descriptor-configmap" => cfg.descriptor_configmap = value,
            "--default-descriptor-source" => cfg.default_source = value.parse()?,
            _ => rest.push((a.clone(), value)),
        }
    }
    for q in [
        &cfg.resources.cpu_request,
        &cfg.resources.memory_request,
        &cfg.resources.cpu_limit,
        &cfg.resources.memory_limit,
    ]
    .into_iter()
    .flatten()
    {
        if rgp_injector::options::quantity(q).is_none() {
            return Err(format!("not a Kubernetes quantity: {q}"));
        }
    }
    Ok((cfg, rest, positional))
}

fn serve(args: &[String]) -> Result<(), String> {
    let (config, rest, positional) = config_flags(args)?;
    if let Some(p) = positional.first() {
        return Err(format!("serve: unexpected argument {p}"));
    }
    let mut listen: SocketAddr = "0.0.0.0:8443".parse().expect("valid address");
    let (mut cert, mut key) = (None, None);
    let mut reload_every = Duration::from_secs(5);
    let mut shutdown_delay = Duration::from_secs(5);
    let secs = |flag: &str, v: &str| {
        v.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("{flag}: seconds, not {v}"))
    };
    for (flag, value) in rest {
        match flag.as_str() {
            "--listen" => listen = value.parse().map_err(|_| format!("--listen: not an address: {value}"))?,
            "--tls-cert" => cert = Some(PathBuf::from(value)),
            "--tls-key" => key = Some(PathBuf::from(value)),
            "--cert-reload-interval" => reload_every = secs(&flag, &value)?.max(Duration::from_millis(50)),
            "--shutdown-delay" => shutdown_delay = secs(&flag, &value)?,
            _ => return Err(format!("serve: unknown flag {flag}")),
        }
    }
    let args = server::ServeArgs {
        listen,
        cert: cert.ok_or("serve: --tls-cert FILE is required")?,
        key: key.ok_or("serve: --tls-key FILE is required")?,
        reload_every,
        shutdown_delay,
        config,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(server::serve(args))
}

fn review(args: &[String]) -> Result<(), String> {
    let (config, rest, positional) = config_flags(args)?;
    if let Some((flag, _)) = rest.first() {
        return Err(format!("review: unknown flag {flag}"));
    }
    let body = match positional.first() {
        Some(path) => std::fs::read(path).map_err(|e| format!("{path}: {e}"))?,
        None => {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map_err(|e| e.to_string())?;
            b
        }
    };
    let d = admission::review(&body, &config);
    println!("{}", serde_json::to_string_pretty(&d.review).map_err(|e| e.to_string())?);
    eprintln!("{}: {}", d.verdict, d.reason);
    Ok(())
}
