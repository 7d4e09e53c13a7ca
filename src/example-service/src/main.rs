//! `example-service`: the example gRPC backend (bookstore + echo).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// How long open connections may take to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

const USAGE: &str = "\
example-service: the example gRPC backend (bookstore.v1.Bookstore + echo.v1.EchoService)

USAGE:
    example-service serve [--listen ADDR] [--reflection] [--stateful]
        Serve both services over plaintext HTTP/2 gRPC on ADDR
        (default 127.0.0.1:50051; port 0 picks a free port). Prints
        `listening on <addr>` once the socket is bound; exits on SIGTERM/SIGINT.
        --reflection also serves grpc.reflection.v1alpha.ServerReflection.
        --stateful keeps shelves and books in memory (seeded with two shelves,
        at most 100 shelves of 100 books), so creates, updates and deletes
        stay; without it every answer depends on the request alone.

    example-service descriptor-set OUT_FILE
        Write the embedded FileDescriptorSet (every import included, with the
        google.api.http options) to OUT_FILE.

    example-service --help
        Print this help.
";

enum Command {
    Serve { listen: SocketAddr, reflection: bool, stateful: bool },
    DescriptorSet { out: String },
    Help,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Err("missing command".to_owned());
    };
    match command.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "serve" => {
            let mut listen = DEFAULT_LISTEN.to_owned();
            let mut reflection = false;
            let mut stateful = false;
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                if arg == "-h" || arg == "--help" {
                    return Ok(Command::Help);
                } else if arg == "--listen" {
                    listen = rest.next().ok_or("--listen needs a value (e.g. --listen 127.0.0.1:50051)")?.clone();
                } else if arg == "--reflection" {
                    reflection = true;
                } else if arg == "--stateful" {
                    stateful = true;
                } else if let Some(value) = arg.strip_prefix("--listen=") {
                    listen = value.to_owned();
                } else {
                    return Err(format!("serve: unexpected argument `{arg}`"));
                }
            }
            let listen =
                listen.parse().map_err(|e| format!("--listen `{listen}` is not an IP:PORT socket address: {e}"))?;
            Ok(Command::Serve { listen, reflection, stateful })
        }
        "descriptor-set" => match rest {
            [flag] if flag == "-h" || flag == "--help" => Ok(Command::Help),
            [out] => Ok(Command::DescriptorSet { out: out.clone() }),
            [] => Err("descriptor-set: missing OUT_FILE".to_owned()),
            [_, extra, ..] => Err(format!("descriptor-set: unexpected argument `{extra}`")),
        },
        other => Err(format!("unknown command `{other}`")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("example-service: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::DescriptorSet { out } => match std::fs::write(&out, example_service::DESCRIPTOR_SET) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("example-service: cannot write {out}: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { listen, reflection, stateful } => match serve(listen, reflection, stateful) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("example-service: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(listen: SocketAddr, reflection: bool, stateful: bool) -> Result<(), String> {
    let mut routes =
        if reflection { example_service::Routes::with_reflection()? } else { example_service::Routes::default() };
    if stateful {
        routes = routes.stateful();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let local = listener.local_addr().map_err(|e| format!("cannot read the bound address: {e}"))?;
        // Install the signal handlers before announcing readiness.
        let shutdown = shutdown_signal().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "listening on {local}");
            let _ = stdout.flush();
        }
        // On the signal, stop accepting and let open connections finish
        // (GOAWAY); a client that keeps its connection open gets
        // SHUTDOWN_GRACE, then the process exits anyway.
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = example_service::serve_routes(routes, listener, async {
            let _ = stop_rx.await;
        });
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => return result.map_err(|e| format!("server error: {e}")),
            () = shutdown => {}
        }
        let _ = stop_tx.send(());
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(result) => result.map_err(|e| format!("server error: {e}")),
            Err(_) => Ok(()),
        }
    })
}

/// Completes on the first SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
