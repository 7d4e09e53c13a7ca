//! `rgp`: descriptor-set tooling for the rust-grpc-proxy filter.
//!
//! Exit codes, for CI: 0 all good; 1 problems found (check), breaking changes
//! (diff), or a set the filter would refuse (publish, openapi); 2 usage or I/O
//! errors (unreadable files, bad arguments, protos that do not compile).

mod build;
mod check;
mod diff;
mod envoy;
mod load;
mod openapi;
mod publish;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build, check, diff and publish descriptor sets for the rust-grpc-proxy
/// filter (a drop-in for Envoy's grpc_json_transcoder), and write their
/// OpenAPI document.
///
/// Exit codes: 0 ok; 1 problems found (check), breaking changes (diff) or a
/// set the filter would refuse (publish, openapi); 2 usage or I/O error.
#[derive(Parser)]
#[command(name = "rgp", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile .proto files into a FileDescriptorSet with every import.
    ///
    /// google/api/{annotations,http,httpbody}.proto, google/rpc/{status,error_details}.proto
    /// and the google/protobuf well-known types are built in; a file of the same
    /// name under an -I directory is used instead. The output is byte-for-byte
    /// reproducible and does not depend on the order of the file arguments.
    Build {
        /// Include directory (like protoc's -I); repeatable; default: the current directory.
        #[arg(short = 'I', long = "include", value_name = "DIR")]
        includes: Vec<PathBuf>,
        /// .proto files, as paths under an include directory or names relative to one.
        #[arg(required = true, value_name = "FILE.proto")]
        files: Vec<PathBuf>,
        /// Where to write the FileDescriptorSet.
        #[arg(short = 'o', long = "output", value_name = "OUT.pb")]
        output: PathBuf,
    },
    /// Load a set as the filter does and list its routes and every problem.
    ///
    /// Prints `METHOD template -> package.Service/Method` per route (stdout) and one
    /// `error:` line per problem naming the proto file and method (stderr).
    /// Exit 1 when there are problems.
    Check {
        /// The FileDescriptorSet (binary).
        #[arg(value_name = "SET.pb")]
        set: PathBuf,
        #[command(flatten)]
        select: Select,
    },
    /// Compare the HTTP surface of two sets; breaking changes exit 1.
    ///
    /// Routes added, removed or changed; request and response fields removed,
    /// renamed (JSON name) or retyped; enum values removed. Lines start with
    /// `breaking:` or `compatible:`.
    Diff {
        /// The published set.
        #[arg(value_name = "OLD.pb")]
        old: PathBuf,
        /// The candidate set.
        #[arg(value_name = "NEW.pb")]
        new: PathBuf,
        /// Report breaking changes but exit 0.
        #[arg(long)]
        allow_breaking: bool,
        /// Services to compare (comma-separated, fully qualified); default: all services of both sets.
        #[arg(long, value_delimiter = ',', value_name = "a.B,c.D")]
        services: Vec<String>,
    },
    /// Write what a deployment needs: the set, its sha256, a ConfigMap, the
    /// filter configuration JSON and an Envoy http_filters snippet.
    Publish {
        /// The FileDescriptorSet (binary).
        #[arg(value_name = "SET.pb")]
        set: PathBuf,
        /// Base name of the outputs and of the ConfigMap.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Kubernetes namespace of the ConfigMap.
        #[arg(long, default_value = "default", value_name = "NS")]
        namespace: String,
        /// Path of the .wasm module in the Envoy snippet.
        #[arg(long, default_value = "/etc/envoy/rust_grpc_proxy.wasm", value_name = "PATH")]
        wasm_path: String,
        #[command(flatten)]
        select: Select,
        /// Output directory (created if missing).
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: PathBuf,
    },
    /// Write an Envoy bootstrap (gateway or sidecar mode) from a description (docs/gateway.md).
    ///
    /// Checks each service's descriptor set and options as the filter loads them; the
    /// output is deterministic (same description and sets, same bytes).
    Envoy {
        /// The description (YAML or JSON); relative descriptor paths are read from its directory.
        #[arg(long, value_name = "gateway.yaml")]
        description: PathBuf,
        /// Where to write the Envoy YAML; `-` for stdout.
        #[arg(long, value_name = "envoy.yaml", default_value = "-")]
        out: PathBuf,
    },
    /// Write an OpenAPI 3.0 document of the REST surface of a set.
    Openapi {
        /// The FileDescriptorSet (binary).
        #[arg(value_name = "SET.pb")]
        set: PathBuf,
        /// Services to describe (comma-separated, fully qualified); default: all services.
        #[arg(long, value_delimiter = ',', value_name = "a.B,c.D")]
        services: Vec<String>,
        /// `info.title` of the document.
        #[arg(long, value_name = "TEXT")]
        title: Option<String>,
        /// Print proto field names instead of JSON names (the filter's preserve_proto_field_names).
        #[arg(long)]
        proto_names: bool,
        /// Where to write the JSON document; `-` for stdout.
        #[arg(short = 'o', long = "output", value_name = "openapi.json", default_value = "-")]
        output: PathBuf,
    },
}

/// Which services, and which filter options, a command looks at.
#[derive(clap::Args, Clone, Default)]
pub struct Select {
    /// Services to load (comma-separated, fully qualified); default: the config's, else all in the set.
    #[arg(long, value_delimiter = ',', value_name = "a.B,c.D")]
    pub services: Vec<String>,
    /// A filter configuration (GrpcJsonTranscoder JSON) whose options apply;
    /// its proto_descriptor_bin, if any, is replaced by SET.pb.
    #[arg(long, value_name = "FILTER_CONFIG.json")]
    pub config: Option<PathBuf>,
}

/// What went wrong, and so which exit code.
pub enum Failure {
    /// Problems found in the input (exit 1); already reported.
    Problems,
    /// Usage or I/O error (exit 2).
    Usage(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Usage(message)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { includes, files, output } => {
            build::compile(&includes, &files).and_then(|bytes| load::write(&output, &bytes)).map_err(Failure::Usage)
        }
        Command::Check { set, select } => check::run(&set, &select),
        Command::Diff { old, new, allow_breaking, services } => diff::run(&old, &new, &services, allow_breaking),
        Command::Publish { set, name, namespace, wasm_path, select, output } => {
            publish::run(&set, &name, &namespace, &wasm_path, &select, &output)
        }
        Command::Envoy { description, out } => envoy::run(&description, &out),
        Command::Openapi { set, services, title, proto_names, output } => {
            openapi::run(&set, &services, title.as_deref(), proto_names, &output)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Problems) => ExitCode::from(1),
        Err(Failure::Usage(message)) => {
            eprintln!("rgp: error: {message}");
            ExitCode::from(2)
        }
    }
}
