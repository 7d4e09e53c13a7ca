//! The webhook's HTTPS server (HTTP/1.1 over rustls):
//!
//! - `POST /mutate`: an `AdmissionReview` in, an `AdmissionReview` out (always 200 with a
//!   review, whatever the body held, except a body over the size limit: 413);
//! - `GET /healthz`: liveness, 200 while the process serves;
//! - `GET /readyz`: readiness, 200 until shutdown starts, then 503.
//!
//! SIGTERM/SIGINT: readiness turns 503, the server keeps serving for `shutdown_delay`
//! (so endpoints drop it first), stops accepting, and lets open requests finish.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::options::InjectorConfig;
use crate::{admission, log, tls};

/// Largest review accepted (the API server caps objects well below this).
pub const MAX_BODY: usize = 16 << 20;

pub struct ServeArgs {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub reload_every: Duration,
    pub shutdown_delay: Duration,
    pub config: InjectorConfig,
}

struct State {
    config: InjectorConfig,
    ready: AtomicBool,
}

/// Serve until SIGTERM or SIGINT.
pub async fn serve(args: ServeArgs) -> Result<(), String> {
    let cert = tls::ReloadingCert::load(&args.cert, &args.key)?;
    cert.watch(args.reload_every);
    let acceptor = TlsAcceptor::from(tls::server_config(Arc::clone(&cert))?);
    let listener =
        TcpListener::bind(args.listen).await.map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let state = Arc::new(State { config: args.config, ready: AtomicBool::new(true) });
    log::info(&format!("listening on {addr}"), &[("version", crate::VERSION)]);

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut signals = Signals::new()?;
    let stop = async {
        signals.recv().await;
        state.ready.store(false, Ordering::SeqCst);
        log::info("shutting down: not ready", &[("delay", &format!("{:?}", args.shutdown_delay))]);
        tokio::time::sleep(args.shutdown_delay).await;
    };
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    log::warn("accept failed", &[("error", &e.to_string())]);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let acceptor = acceptor.clone();
        let state = Arc::clone(&state);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    log::warn("TLS handshake failed", &[("peer", &peer.to_string()), ("error", &e.to_string())]);
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |req| handle(Arc::clone(&state), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                if !e.is_incomplete_message() {
                    log::warn("connection error", &[("peer", &peer.to_string()), ("error", &e.to_string())]);
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        log::warn("open connections did not finish within 10s", &[]);
    }
    log::info("stopped", &[]);
    Ok(())
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = |status: StatusCode, body: &str| {
        let mut r = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
        *r.status_mut() = status;
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
        r
    };
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        (&Method::GET, "/readyz") => {
            if state.ready.load(Ordering::SeqCst) {
                text(StatusCode::OK, "ready")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
            }
        }
        (&Method::POST, "/mutate") => match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(body) => {
                let d = admission::review(&body.to_bytes(), &state.config);
                let reason = if d.verdict == "denied" { "reason sent to the user" } else { d.reason.as_str() };
                log::info(
                    "admission",
                    &[
                        ("verdict", d.verdict),
                        ("namespace", &d.namespace),
                        ("pod", &d.pod),
                        ("uid", &d.uid),
                        ("reason", reason),
                    ],
                );
                let body = serde_json::to_vec(&d.review).unwrap_or_default();
                let mut r = Response::new(Full::new(Bytes::from(body)));
                r.headers_mut()
                    .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
                r
            }
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    text(StatusCode::PAYLOAD_TOO_LARGE, &format!("AdmissionReview larger than {MAX_BODY} bytes"))
                } else {
                    text(StatusCode::BAD_REQUEST, &format!("cannot read the request body: {e}"))
                }
            }
        },
        (_, "/mutate") => text(StatusCode::METHOD_NOT_ALLOWED, "POST an AdmissionReview to /mutate"),
        (_, "/healthz" | "/readyz") => text(StatusCode::METHOD_NOT_ALLOWED, "GET only"),
        _ => text(StatusCode::NOT_FOUND, "not found: POST /mutate, GET /healthz, GET /readyz"),
    };
    Ok(resp)
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, String> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(|e| e.to_string())?,
            int: signal(SignalKind::interrupt()).map_err(|e| e.to_string())?,
        })
    }
    async fn recv(&mut self) {
        tokio::select! { _ = self.term.recv() => {}, _ = self.int.recv() => {} }
    }
}
