//! The Envoy HTTP filter: thin proxy-wasm glue that moves headers and bodies
//! between Envoy and the [`transcoder`] engine, which does all the work.
//!
//! Flow of a transcoded request:
//! - request headers: the engine matches the route; headers are rewritten to
//!   the gRPC call (`POST /pkg.Service/Method`, `application/grpc`) and held;
//! - request body: buffered to the end, turned into one gRPC frame, passed on;
//! - a request without a body cannot be given one from Wasm (Envoy 1.40), so
//!   the filter calls the route's cluster itself over a gRPC stream and
//!   answers with a local reply;
//! - unary response: headers and body are held until the trailers (or the end
//!   of the body) bring the gRPC status; the JSON answer replaces the whole
//!   response;
//! - server-streaming response to a request with a body: passed on message by
//!   message (see [`Live`]); to a request without a body: answered at its end.

mod host;
mod metrics;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use log::{debug, error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use transcoder::reflection::{self, ReflectionFetch};
use transcoder::source::{self, DescriptorReflection, DescriptorUrl};
use transcoder::{
    GrpcStatusHeaders, HttpReply, RequestOutcome, RequestPlan, ResponseStream, Status, Transcoder, TranscoderConfig,
};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { transcoder: None, deadlines: Rc::default(), remote: None })
    });
}}

/// Per-worker state: the loaded configuration, shared by every request.
struct Root {
    transcoder: Option<Rc<Transcoder>>,
    /// The calls the filter made itself and when they must have answered.
    deadlines: Deadlines,
    /// The descriptor set comes (also) from a `descriptor_url`.
    remote: Option<Remote>,
}

/// Where the descriptor set is fetched from.
enum Source {
    Url(DescriptorUrl),
    Reflection(DescriptorReflection),
}

/// A reflection exchange in progress.
struct Exchange {
    fetch: ReflectionFetch,
    /// Index in [`reflection::SERVICES`] (v1, then v1alpha).
    version: usize,
    /// The server answered at least once on this stream.
    answered: bool,
    /// The stream has no timeout of its own: the tick cancels it past this.
    deadline: SystemTime,
}

/// A descriptor set fetched by the root context, on its tick.
struct Remote {
    /// The configuration the fetched sets are loaded with (no descriptor bytes).
    config: TranscoderConfig,
    source: Source,
    /// What the log and the 503 answer call the source.
    name: String,
    /// The in-flight fetch (HTTP call or reflection stream token), if any.
    pending: Option<u32>,
    exchange: Option<Exchange>,
    /// When the next fetch is due (None: never again).
    next_fetch: Option<SystemTime>,
    /// Digest of the fetched set in service.
    digest: Option<[u8; 32]>,
    /// Digest of the last set refused, so that an unchanged broken set is
    /// reported once, not at every poll.
    refused: Option<[u8; 32]>,
}

/// How often a worker retries the descriptor fetch while it has no set at all
/// (or the refresh interval, when shorter).
const FIRST_LOAD_RETRY: Duration = Duration::from_secs(1);

/// A gRPC call the filter made itself (for a request without a body). Envoy 1.40's
/// gRPC streams from Wasm have no timeout of their own, so without this a backend
/// that never answers would hold the client until Envoy's idle timeout (5 min).
struct Deadline {
    context_id: u32,
    token: u32,
    at: SystemTime,
    timeout: Duration,
}

/// Shared between the root context (whose tick enforces them) and the requests.
type Deadlines = Rc<RefCell<Vec<Deadline>>>;

/// How often the root context looks for calls past their deadline.
const DEADLINE_TICK: Duration = Duration::from_millis(250);

impl Root {
    /// Releases what live streams hold (see [`Live`]).
    fn release_held_streams(&self) {
        let held = HELD_STREAMS.with(|held| std::mem::take(&mut *held.borrow_mut()));
        for (context_id, live) in held {
            {
                let mut live = live.borrow_mut();
                live.held = false;
                live.released = true;
                live.json_len = 0;
            }
            // A context that ended since is simply gone: nothing to release.
            if proxy_wasm::hostcalls::set_effective_context(context_id).is_ok() {
                if let Err(e) = proxy_wasm::hostcalls::resume_http_response() {
                    debug!("rust_grpc_proxy: cannot release stream {context_id}: {e:?}");
                }
            }
        }
        if HELD_STREAMS.with(|held| held.borrow().is_empty()) {
            // Back to the slow tick that only looks for deadlines.
            let _ = proxy_wasm::hostcalls::set_tick_period(DEADLINE_TICK);
        }
    }

    /// Answers bodiless calls past their deadline with 504.
    fn expire_deadlines(&self) {
        let Ok(now) = proxy_wasm::hostcalls::get_current_time() else { return };
        let expired: Vec<Deadline> = {
            let mut all = self.deadlines.borrow_mut();
            let (expired, pending) = all.drain(..).partition(|d| d.at <= now);
            *all = pending;
            expired
        };
        let Some(t) = self.transcoder.clone() else { return };
        for d in expired {
            let _ = proxy_wasm::hostcalls::cancel_grpc_stream(d.token);
            if host::set_effective_context(d.context_id).is_err() {
                continue; // the request is gone already
            }
            let status = Status::new(
                transcoder::Code::DeadlineExceeded,
                format!("the gRPC backend did not answer within {:?} (grpc-timeout)", d.timeout),
            );
            if let Err(e) = host::send_response(
                504,
                &[("content-type".into(), "application/json".into())],
                &t.local_error(&status).body,
            ) {
                warn!("rust_grpc_proxy: could not answer a call past its deadline: {e}");
            }
        }
    }
}

impl Root {
    /// Puts `transcoder` in service for new requests; requests in flight keep
    /// the one they started with (they hold their own `Rc`).
    fn install(&mut self, transcoder: Transcoder, origin: &str, elapsed: Duration, size: usize) {
        for warning in transcoder.warnings() {
            warn!("rust_grpc_proxy: {warning}");
        }
        info!(
            "rust_grpc_proxy: loaded {} routes for {} in {:.1} ms ({} bytes from {origin})",
            transcoder.routes().len(),
            transcoder.config().services.join(", "),
            elapsed.as_secs_f64() * 1000.0,
            size
        );
        self.transcoder = Some(Rc::new(transcoder));
    }

    /// Starts a descriptor fetch when one is due (called on every tick).
    fn poll_descriptors(&mut self) {
        let Ok(now) = proxy_wasm::hostcalls::get_current_time() else { return };
        self.expire_reflection(now);
        let Some(remote) = self.remote.as_mut() else { return };
        let Some(due) = remote.next_fetch else { return };
        if remote.pending.is_some() || now < due {
            return;
        }
        // Set before the call: a failed dispatch is retried at the next period, not at every tick.
        remote.next_fetch = next_fetch(now, self.transcoder.is_some(), remote.config.refresh_interval);
        match &remote.source {
            Source::Url(url) => {
                let Ok((authority, path)) = url.authority_and_path() else { return };
                let headers = [
                    (":method", "GET"),
                    (":path", path),
                    (":authority", authority),
                    ("accept", "application/octet-stream"),
                ];
                match proxy_wasm::hostcalls::dispatch_http_call(
                    &url.cluster,
                    headers.to_vec(),
                    None,
                    Vec::new(),
                    url.timeout(),
                ) {
                    Ok(token) => remote.pending = Some(token),
                    Err(e) => {
                        metrics::count("descriptor.failures");
                        warn!(
                            "rust_grpc_proxy: cannot fetch the descriptor set from {} on cluster {:?}: {e:?}",
                            url.url, url.cluster
                        );
                    }
                }
            }
            Source::Reflection(_) => self.start_reflection(0, now),
        }
    }

    /// Opens a reflection stream (`version`: index in [`reflection::SERVICES`]) and asks for the services' files.
    fn start_reflection(&mut self, version: usize, now: SystemTime) {
        let Some(remote) = self.remote.as_mut() else { return };
        let Source::Reflection(r) = &remote.source else { return };
        let Some(service_name) = reflection::SERVICES.get(version) else { return };
        let (fetch, requests) = ReflectionFetch::new(&remote.config.services);
        let service = grpc_service_for_cluster(&r.cluster, None);
        let opened = proxy_wasm::hostcalls::open_grpc_stream(&service, service_name, reflection::METHOD, Vec::new())
            .map_err(|e| format!("cannot open a stream to cluster {:?}: {e:?}", r.cluster))
            .and_then(|token| {
                for request in &requests {
                    proxy_wasm::hostcalls::send_grpc_stream_message(token, Some(request), false)
                        .map_err(|e| format!("cannot send on the reflection stream: {e:?}"))?;
                }
                Ok(token)
            });
        match opened {
            Ok(token) => {
                remote.pending = Some(token);
                let deadline = now.checked_add(r.timeout()).unwrap_or(now);
                remote.exchange = Some(Exchange { fetch, version, answered: false, deadline });
            }
            Err(e) => self.descriptor_fetched(Err(e)),
        }
    }

    /// Gives up on a reflection exchange past its deadline.
    fn expire_reflection(&mut self, now: SystemTime) {
        let Some(remote) = self.remote.as_mut() else { return };
        let (Some(token), Some(exchange)) = (remote.pending, remote.exchange.as_ref()) else { return };
        if now < exchange.deadline {
            return;
        }
        remote.pending = None;
        remote.exchange = None;
        let _ = proxy_wasm::hostcalls::cancel_grpc_stream(token);
        self.descriptor_fetched(Err("the reflection service did not send every file in time".into()));
    }

    /// Checks a fetched set and swaps it in, or keeps the set in service.
    /// `services` are those to transcode: the configured ones, or the ones the
    /// reflection service listed when none is configured.
    fn descriptor_fetched(&mut self, fetched: Result<(Vec<u8>, Vec<String>), String>) {
        let Some(remote) = self.remote.as_mut() else { return };
        let (bytes, services) = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                metrics::count("descriptor.failures");
                let kept =
                    if self.transcoder.is_some() { "the set in service stays" } else { "no set loaded yet, retrying" };
                warn!("rust_grpc_proxy: descriptor fetch from {} failed: {e}; {kept}", remote.name);
                return;
            }
        };
        let listed = remote.config.services.is_empty().then_some(services.as_slice());
        let digest = source::fetch_digest(&bytes, listed);
        if remote.digest == Some(digest) || remote.refused == Some(digest) {
            return; // unchanged since the last look
        }
        let started = proxy_wasm::hostcalls::get_current_time().ok();
        let size = bytes.len();
        let mut config = remote.config.clone();
        config.services = services;
        match Transcoder::with_descriptor_set(&config, bytes) {
            Ok(transcoder) => {
                remote.digest = Some(digest);
                remote.refused = None;
                let origin = format!("{} (sha256 {})", remote.name, source::digest_hex(&digest));
                let first = self.transcoder.is_none();
                metrics::count("descriptor.loads");
                metrics::gauge("descriptor.digest", source::digest_gauge(&digest));
                let elapsed = started
                    .and_then(|t| proxy_wasm::hostcalls::get_current_time().ok()?.duration_since(t).ok())
                    .unwrap_or_default();
                self.install(transcoder, &origin, elapsed, size);
                if first {
                    // Now loaded: from the fast first-load retry to the refresh interval.
                    let now = proxy_wasm::hostcalls::get_current_time().unwrap_or(SystemTime::UNIX_EPOCH);
                    if let Some(remote) = self.remote.as_mut() {
                        remote.next_fetch = next_fetch(now, true, remote.config.refresh_interval);
                    }
                }
            }
            Err(e) => {
                remote.refused = Some(digest);
                metrics::count("descriptor.failures");
                let kept = if self.transcoder.is_some() { "the set in service stays" } else { "no set loaded yet" };
                error!(
                    "rust_grpc_proxy: descriptor set from {} (sha256 {}) refused: {e}; {kept}",
                    remote.name,
                    source::digest_hex(&digest)
                );
            }
        }
    }
}

/// When to fetch the descriptor set next: soon while none is loaded, then at
/// the refresh interval (never, without one).
fn next_fetch(now: SystemTime, loaded: bool, refresh: Option<Duration>) -> Option<SystemTime> {
    let period = match (loaded, refresh) {
        (false, Some(r)) => r.min(FIRST_LOAD_RETRY),
        (false, None) => FIRST_LOAD_RETRY,
        (true, Some(r)) => r,
        (true, None) => return None,
    };
    now.checked_add(period)
}

impl Context for Root {
    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        let Some(remote) = self.remote.as_mut() else { return };
        let (Some(pending), Some(exchange)) = (remote.pending, remote.exchange.as_mut()) else { return };
        if pending != token {
            return;
        }
        exchange.answered = true;
        let step = host::get_buffer(BufferType::GrpcReceiveBuffer, 0, size)
            .map_err(|e| format!("cannot read a reflection message: {e}"))
            .and_then(|message| exchange.fetch.on_response(&message));
        let result = match step {
            Ok(more) => {
                for request in &more {
                    if let Err(e) = proxy_wasm::hostcalls::send_grpc_stream_message(token, Some(request), false) {
                        debug!("rust_grpc_proxy: reflection stream send failed: {e:?}");
                    }
                }
                if !exchange.fetch.is_complete() {
                    return;
                }
                exchange.fetch.descriptor_set().map(|set| (set, exchange.fetch.services().to_vec()))
            }
            Err(e) => Err(e),
        };
        remote.pending = None;
        remote.exchange = None;
        let _ = proxy_wasm::hostcalls::cancel_grpc_stream(token);
        self.descriptor_fetched(result);
    }

    fn on_grpc_stream_close(&mut self, token: u32, status_code: u32) {
        let Some(remote) = self.remote.as_mut() else { return };
        if remote.pending != Some(token) {
            return;
        }
        remote.pending = None;
        let Some(exchange) = remote.exchange.take() else { return };
        // UNIMPLEMENTED before any answer: the server has no v1 reflection; try v1alpha.
        if status_code == 12 && !exchange.answered && exchange.version + 1 < reflection::SERVICES.len() {
            let now = proxy_wasm::hostcalls::get_current_time().unwrap_or(SystemTime::UNIX_EPOCH);
            self.start_reflection(exchange.version + 1, now);
            return;
        }
        let message = proxy_wasm::hostcalls::get_grpc_status().ok().and_then(|(_, m)| m).unwrap_or_default();
        self.descriptor_fetched(Err(format!(
            "the {} stream ended (grpc-status {status_code} {message}) before every file arrived",
            reflection::SERVICES.get(exchange.version).copied().unwrap_or("reflection")
        )));
    }

    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(remote) = self.remote.as_mut() else { return };
        if remote.pending != Some(token) {
            return;
        }
        remote.pending = None;
        let status = host::get_header(MapType::HttpCallResponseHeaders, ":status");
        let fetched = match status.as_deref() {
            Some("200") => host::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .map(|set| (set, remote.config.services.clone()))
                .map_err(|e| format!("cannot read the body: {e}")),
            // No headers: the call failed in Envoy (no host, reset, timeout).
            None => Err("no answer (connection failed, reset or timed out)".to_string()),
            Some(other) => Err(format!("HTTP status {other}")),
        };
        self.descriptor_fetched(fetched);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = match host::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(bytes) => bytes,
            Err(e) => {
                error!("rust_grpc_proxy: cannot read the plugin configuration: {e}");
                return false;
            }
        };
        // Timed so that `make bench` (bench/footprint.py) can report each worker's load time.
        let started = proxy_wasm::hostcalls::get_current_time().ok();
        let config = match TranscoderConfig::from_json(&bytes) {
            Ok(config) => config,
            Err(e) => {
                error!("rust_grpc_proxy: configuration refused: {e}");
                return false;
            }
        };
        let source = match (config.descriptor_url.clone(), config.descriptor_reflection.clone()) {
            (Some(url), _) => Some((url.url.clone(), Source::Url(url))),
            (None, Some(r)) => {
                Some((format!("gRPC server reflection on cluster {:?}", r.cluster), Source::Reflection(r)))
            }
            (None, None) => None,
        };
        if let Some((name, source)) = source {
            let mut template = config.clone();
            template.proto_descriptor_bin = None;
            self.remote = Some(Remote {
                config: template,
                source,
                name,
                pending: None,
                exchange: None,
                next_fetch: started.or(Some(SystemTime::UNIX_EPOCH)),
                digest: None,
                refused: None,
            });
        }
        if config.proto_descriptor_bin.is_some() {
            match Transcoder::new(config) {
                Ok(transcoder) => {
                    let elapsed = started
                        .and_then(|t| proxy_wasm::hostcalls::get_current_time().ok()?.duration_since(t).ok())
                        .unwrap_or_default();
                    self.install(transcoder, "the configuration", elapsed, bytes.len());
                }
                Err(e) => {
                    error!("rust_grpc_proxy: configuration refused: {e}");
                    return false;
                }
            }
        } else if let Some(remote) = &self.remote {
            info!("rust_grpc_proxy: waiting for the descriptor set from {}", remote.name);
        }
        // One tick serves deadlines, held streams and descriptor fetches.
        if let Err(e) = proxy_wasm::hostcalls::set_tick_period(DEADLINE_TICK) {
            warn!("rust_grpc_proxy: no tick, deadlines of requests without a body are not enforced and descriptors not fetched: {e:?}");
        }
        true
    }

    fn on_tick(&mut self) {
        self.release_held_streams();
        self.expire_deadlines();
        self.poll_descriptors();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let not_ready = match (&self.transcoder, &self.remote) {
            (None, Some(remote)) if !remote.config.pass_through_until_loaded => Some(Rc::from(remote.name.as_str())),
            _ => None,
        };
        Some(Box::new(Request {
            not_ready,
            metric_method: None,
            context_id,
            deadlines: self.deadlines.clone(),
            transcoder: self.transcoder.clone(),
            plan: None,
            content_type: None,
            replied: false,
            via_stream: None,
            response_headers: Vec::new(),
            initial_metadata: false,
            stream_messages: Vec::new(),
            stream_trailers: Vec::new(),
            response_stream: None,
            stream_body: Vec::new(),
            response_encoding: None,
            live: None,
            request_stream: None,
            target: None,
            request_body: Vec::new(),
            request_bytes: 0,
            body_streaming: false,
            response_body: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Per-request state.
struct Request {
    /// No descriptor set is loaded yet (from this source): answer 503.
    not_ready: Option<Rc<str>>,
    /// `service.Method` of a transcoded request, for the request counters.
    metric_method: Option<(String, String)>,
    context_id: u32,
    deadlines: Deadlines,
    transcoder: Option<Rc<Transcoder>>,
    /// Set while the request is being transcoded.
    plan: Option<RequestPlan>,
    content_type: Option<String>,
    /// A local reply was sent: our own callbacks must let it through.
    replied: bool,
    /// The gRPC stream opened for a request without a body.
    via_stream: Option<u32>,
    /// Upstream response headers (gRPC initial metadata) to pass on.
    response_headers: Vec<(String, String)>,
    /// The gRPC stream brought initial metadata entries (else its answer was trailers-only).
    initial_metadata: bool,
    stream_messages: Vec<Vec<u8>>,
    stream_trailers: Vec<(String, String)>,
    /// For a server-streaming method: the stream's transcoder, and the JSON
    /// body transcoded so far by the filter's own gRPC stream.
    response_stream: Option<ResponseStream>,
    stream_body: Vec<u8>,
    /// The upstream response's `grpc-encoding` (for compressed messages).
    response_encoding: Option<String>,
    /// A server stream passed on message by message (requests with a body).
    live: Option<Rc<RefCell<Live>>>,
    /// A client stream: its body's elements become frames as they complete.
    request_stream: Option<transcoder::RequestStream>,
    /// The REST request as the client sent it, for errors about its routing.
    target: Option<RestTarget>,
    /// A unary request's body so far, kept here rather than in Envoy's buffer
    /// (whose limit, the listener's per_connection_buffer_limit_bytes, would
    /// answer 413 past 1 MiB): `max_request_body_size` is the only limit.
    request_body: Vec<u8>,
    /// Request body bytes seen so far (against `max_request_body_size`).
    request_bytes: usize,
    /// The request headers went upstream before the body was complete (a big body).
    body_streaming: bool,
    /// A unary response's body so far, kept here for the same reason.
    response_body: Vec<u8>,
}

/// A transcoded request in the client's terms: what a 404 names when no Envoy
/// route takes its gRPC call (no virtual host for the host, no route for the
/// gRPC path, a direct-response or redirect route).
#[derive(Debug)]
struct RestTarget {
    method: String,
    authority: String,
    path: String,
}

impl RestTarget {
    /// NOT_FOUND (404), as Envoy's router answers a request no route matches.
    fn no_route(&self, grpc_path: &str) -> Status {
        Status::new(
            transcoder::Code::NotFound,
            format!(
                "no route serves {} {} on host {:?}: Envoy has no route to a cluster for its gRPC call {grpc_path}",
                self.method, self.path, self.authority
            ),
        )
    }
}

/// A server stream whose JSON goes to the client as its messages complete.
///
/// Envoy 1.40's Wasm host can only rewrite body data a filter holds, and
/// nothing can be added once data has passed. So every chunk is held
/// (`Pause`), rewritten into the JSON of the messages it completes, and
/// released by the worker's next tick ([`Root::on_tick`] resumes the
/// response); the trailers callback appends the closing bytes (`]` or an
/// error record) to what is still held, or holds the trailers until the next
/// tick releases them with the tail.
#[derive(Debug, Default)]
struct Live {
    /// Bytes of our JSON at the start of the body Envoy holds for us.
    json_len: usize,
    /// A chunk (or the trailers) is held until the next tick.
    held: bool,
    /// The response headers were rewritten for the stream, to go with the first JSON.
    headers_sent: bool,
    /// A tick released the headers (and data) to the client: headers can no longer change.
    released: bool,
    /// The filter gave up on the stream after messages were sent (bad frame,
    /// limit): the rest of the upstream body is dropped.
    failed: bool,
}

/// Past this many request body bytes the request headers go upstream before
/// the body is complete: a frame passed to Envoy while the filter holds the
/// request would be buffered, and refused (413) over the listener's
/// per_connection_buffer_limit_bytes (1 MiB by default).
const RELEASE_HEADERS_AFTER: usize = 64 * 1024;

/// How often a worker releases held stream data while any is held.
const STREAM_FLUSH_PERIOD: Duration = Duration::from_millis(10);

thread_local! {
    /// Streams with data held until the next tick, by HTTP context id (per worker: one VM per thread).
    static HELD_STREAMS: RefCell<Vec<(u32, Rc<RefCell<Live>>)>> = const { RefCell::new(Vec::new()) };
}

/// Replaces what follows `start` in the response body Envoy holds (`held`)
/// with `new`. The host can only replace a prefix or append, so a JSON prefix
/// still held is written again.
fn replace_held_tail(held: &[u8], start: usize, new: &[u8]) -> Result<(), host::HostError> {
    if start == 0 {
        return host::set_buffer(BufferType::HttpResponseBody, 0, held.len(), new);
    }
    let mut body = Vec::with_capacity(start + new.len());
    body.extend_from_slice(&held[..start.min(held.len())]);
    body.extend_from_slice(new);
    host::set_buffer(BufferType::HttpResponseBody, 0, held.len(), &body)
}

/// Forgets a context's held data (it was released otherwise, or the context ended).
fn forget_held(context_id: u32) {
    HELD_STREAMS.with(|held| held.borrow_mut().retain(|(id, _)| *id != context_id));
}

/// Asks the worker's next tick to release what `context_id` holds.
fn release_on_next_tick(context_id: u32, live: &Rc<RefCell<Live>>) {
    let first = HELD_STREAMS.with(|held| {
        let mut held = held.borrow_mut();
        let first = held.is_empty();
        if !held.iter().any(|(id, _)| *id == context_id) {
            held.push((context_id, live.clone()));
        }
        first
    });
    if first {
        if let Err(e) = proxy_wasm::hostcalls::set_tick_period(STREAM_FLUSH_PERIOD) {
            warn!("rust_grpc_proxy: cannot start the stream flush timer: {e:?}");
        }
    }
}

/// Default deadline for calls the filter makes itself, as Envoy's default route timeout.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Headers never passed between the HTTP and gRPC sides.
fn is_connection_header(name: &str) -> bool {
    name.starts_with(':')
        || matches!(
            name,
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "upgrade"
                | "te"
                | "trailer"
                | "content-length"
                | "content-type"
                | "host"
        )
}

/// Response headers dropped because the JSON answer replaces what they describe.
fn is_grpc_response_header(name: &str) -> bool {
    is_connection_header(name)
        || matches!(
            name,
            "grpc-status"
                | "grpc-message"
                | "grpc-status-details-bin"
                | "grpc-encoding"
                | "grpc-accept-encoding"
                | "date"
                | "server"
        )
}

fn text_pairs(pairs: Vec<(String, Vec<u8>)>) -> Vec<(String, String)> {
    pairs.into_iter().filter_map(|(k, v)| String::from_utf8(v).ok().map(|v| (k, v))).collect()
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn grpc_status_of(pairs: &[(String, String)]) -> GrpcStatusHeaders<'_> {
    GrpcStatusHeaders {
        status: find(pairs, "grpc-status"),
        message: find(pairs, "grpc-message"),
        details_bin: find(pairs, "grpc-status-details-bin"),
        trailers_only: false,
    }
}

impl Context for Request {
    fn on_done(&mut self) -> bool {
        forget_held(self.context_id);
        true
    }

    fn on_grpc_stream_initial_metadata(&mut self, _token: u32, entries: u32) {
        // For a trailers-only answer Envoy calls this with no entries and hands
        // the whole header block over as trailing metadata.
        self.initial_metadata = entries > 0;
        if let Ok(pairs) = host::get_map(MapType::GrpcReceiveInitialMetadata) {
            self.response_headers =
                text_pairs(pairs).into_iter().filter(|(k, _)| !is_grpc_response_header(k)).collect();
        }
    }

    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        let message = match host::get_buffer(BufferType::GrpcReceiveBuffer, 0, size) {
            Ok(message) => message,
            Err(e) => {
                warn!("rust_grpc_proxy: cannot read a gRPC message: {e}");
                return;
            }
        };
        let (Some(t), Some(plan), Some(stream)) =
            (self.transcoder.clone(), self.plan.as_ref(), self.response_stream.as_mut())
        else {
            self.stream_messages.push(message);
            return;
        };
        // A server stream: transcode each message as it comes, keep only the JSON
        // (bounded by max_response_body_size); the reply can only go at the end.
        match t.stream_message(plan, stream, &message) {
            Ok(bytes) => self.stream_body.extend_from_slice(&bytes),
            Err(status) => {
                let _ = proxy_wasm::hostcalls::cancel_grpc_stream(token);
                self.stream_body = Vec::new();
                self.reject(&t, &status);
            }
        }
    }

    fn on_grpc_stream_trailing_metadata(&mut self, _token: u32, _n: u32) {
        if let Ok(pairs) = host::get_map(MapType::GrpcReceiveTrailingMetadata) {
            self.stream_trailers = text_pairs(pairs);
        }
    }

    fn on_grpc_stream_close(&mut self, _token: u32, status_code: u32) {
        self.forget_deadline();
        let (Some(t), Some(plan)) = (self.transcoder.clone(), self.plan.take()) else {
            return;
        };
        // Envoy's own reason (no upstream, reset, ...), decoded: encode it as a grpc-message.
        let host_message = proxy_wasm::hostcalls::get_grpc_status().ok().and_then(|(_, m)| m);
        // Envoy's gRPC client reports a stream reset after the response started as
        // INTERNAL; gRPC's status code table says a connection broken after data was
        // sent is UNAVAILABLE (retryable), which is what the client gets when the
        // reset comes before the response.
        let reset_by_upstream = status_code == 13
            && !self.stream_trailers.iter().any(|(k, _)| k == "grpc-status")
            && host_message.as_deref().is_some_and(|m| m.starts_with("upstream_reset_"));
        let status_code = if reset_by_upstream { 14 } else { status_code };
        let code = status_code.to_string();
        let host_message = host_message.map(|m| transcoder::status::encode_grpc_message(&m));
        let trailers_only = !self.initial_metadata;
        if trailers_only {
            // One header block held everything: pass its other headers on, as
            // Envoy does with a trailers-only answer (x-bookstore-version, ...).
            self.response_headers =
                self.stream_trailers.iter().filter(|(k, _)| !is_grpc_response_header(k)).cloned().collect();
        }
        let mut grpc = grpc_status_of(&self.stream_trailers);
        grpc.status = Some(&code);
        grpc.trailers_only = trailers_only;
        if grpc.message.is_none() && status_code != 0 {
            grpc.message = host_message.as_deref();
        }
        let reply = if let Some(mut stream) = self.response_stream.take() {
            t.stream_reply(&mut stream, std::mem::take(&mut self.stream_body), grpc)
        } else if status_code != 0 {
            t.upstream_error(grpc)
        } else if self.stream_messages.is_empty() {
            // OK without a message: Envoy's gRPC client drops a frame cut short by the
            // end of the stream, and a unary call must answer one message (Envoy's
            // own unary client fails such calls as INTERNAL too).
            t.local_error(&Status::internal("the gRPC server answered OK without a complete response message"))
        } else {
            let framed: Vec<u8> =
                self.stream_messages.iter().flat_map(|m| transcoder::frame::encode_frame(m)).collect();
            t.unary_response(&plan, &framed, grpc)
        };
        let mut headers = std::mem::take(&mut self.response_headers);
        self.send(reply, &mut headers);
    }
}

impl Request {
    /// Sends a local reply, with extra headers first (upstream metadata).
    fn send(&mut self, reply: HttpReply, extra: &mut Vec<(String, String)>) {
        let HttpReply { status, headers, body } = reply;
        extra.extend(headers);
        self.replied = true;
        forget_held(self.context_id);
        self.plan = None;
        if let Err(e) = host::send_response(status, extra, &body) {
            error!("rust_grpc_proxy: could not send the reply ({status}): {e}");
        }
    }

    fn reject(&mut self, transcoder: &Transcoder, status: &Status) {
        metrics::count(&format!("transcoding_errors.{}", metrics::code_name(status.code)));
        debug!("rust_grpc_proxy: rejecting request: {status}");
        self.send(transcoder.local_error(status), &mut Vec::new());
    }

    /// Rewrites the request headers into a gRPC call's.
    fn rewrite_request_headers(
        &self,
        transcoder: &Transcoder,
        plan: &RequestPlan,
        method: &str,
        path: &str,
    ) -> Result<(), host::HostError> {
        let Some(info) = transcoder.method(plan) else { return Ok(()) };
        let h = MapType::HttpRequestHeaders;
        host::set_header(h, "x-envoy-original-path", path)?;
        host::set_header(h, "x-envoy-original-method", method)?;
        host::set_header(h, ":path", &info.grpc_path)?;
        host::set_header(h, ":method", "POST")?;
        host::set_header(h, "content-type", "application/grpc")?;
        host::set_header(h, "te", "trailers")?;
        host::remove_header(h, "content-length")
    }

    /// Calls the gRPC method over a stream of the route's cluster, for requests without a body.
    fn call_without_body(&mut self, transcoder: &Transcoder, plan: &RequestPlan) -> Result<(), Status> {
        let info = transcoder.method(plan).ok_or_else(|| Status::internal("route vanished"))?;
        let cluster = proxy_wasm::hostcalls::get_property(vec!["xds", "cluster_name"])
            .ok()
            .flatten()
            .or_else(|| proxy_wasm::hostcalls::get_property(vec!["cluster_name"]).ok().flatten())
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| match &self.target {
                Some(target) => target.no_route(&info.grpc_path),
                None => Status::new(transcoder::Code::NotFound, format!("no Envoy route serves {}", info.grpc_path)),
            })?;
        let message = transcoder.request_message(plan, self.content_type.as_deref(), &[])?;
        let headers = host::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        let mut metadata: Vec<(&str, &[u8])> = headers
            .iter()
            .filter(|(k, _)| !is_connection_header(k) && k != "grpc-timeout")
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let timeout = headers
            .iter()
            .find(|(k, _)| k == "grpc-timeout")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("{}S", DEFAULT_CALL_TIMEOUT.as_secs()).into_bytes());
        metadata.push(("grpc-timeout", &timeout));
        let deadline = parse_grpc_timeout(&timeout).unwrap_or(DEFAULT_CALL_TIMEOUT);
        // The client's :authority, not Envoy's default (the cluster name): mesh cluster
        // names such as Istio's `inbound|8080||` are not valid authorities, and HTTP/2
        // servers (hyper/tonic) reset such streams with a protocol error.
        let authority = headers.iter().find(|(k, _)| k == ":authority").and_then(|(_, v)| std::str::from_utf8(v).ok());
        let service = grpc_service_for_cluster(&cluster, authority);
        let token =
            proxy_wasm::hostcalls::open_grpc_stream(&service, &info.service, &info.name, metadata).map_err(|e| {
                Status::new(transcoder::Code::Unavailable, format!("cannot call cluster {cluster:?}: {e:?}"))
            })?;
        // The request's end goes with close_grpc_stream, not with the message: Envoy forgets
        // a gRPC stream of a Wasm context only once it was closed locally that way; a stream
        // ended by end_of_stream stays in Envoy's table (about 100 bytes per request, seen as
        // steady growth of Envoy's heap under `make soak`).
        let sent = proxy_wasm::hostcalls::send_grpc_stream_message(token, Some(&message), false)
            .and_then(|()| proxy_wasm::hostcalls::close_grpc_stream(token));
        if let Err(e) = sent {
            let _ = proxy_wasm::hostcalls::cancel_grpc_stream(token);
            return Err(Status::new(
                transcoder::Code::Unavailable,
                format!("cannot send to cluster {cluster:?}: {e:?}"),
            ));
        }
        self.via_stream = Some(token);
        if let Ok(now) = proxy_wasm::hostcalls::get_current_time() {
            self.deadlines.borrow_mut().push(Deadline {
                context_id: self.context_id,
                token,
                at: now + deadline,
                timeout: deadline,
            });
        }
        Ok(())
    }

    /// The call answered (or the request ended): its deadline no longer applies.
    fn forget_deadline(&self) {
        self.deadlines.borrow_mut().retain(|d| d.context_id != self.context_id);
    }

    /// Builds the reply once the whole upstream response is in.
    fn finish_response(&mut self, body: &[u8], status_headers: &[(String, String)], trailers_only: bool) {
        let (Some(t), Some(plan)) = (self.transcoder.clone(), self.plan.take()) else {
            return;
        };
        let mut grpc = grpc_status_of(status_headers);
        grpc.trailers_only = trailers_only;
        let encoding = self.response_encoding.take();
        let reply = match self.response_stream.take() {
            Some(mut stream) => {
                stream.set_encoding(encoding.as_deref());
                match t.stream_chunk(&plan, &mut stream, body) {
                    Ok(json) => t.stream_reply(&mut stream, json, grpc),
                    Err(status) => t.local_error(&status),
                }
            }
            None => t.unary_response_encoded(&plan, body, grpc, encoding.as_deref()),
        };
        let mut headers = std::mem::take(&mut self.response_headers);
        self.send(reply, &mut headers);
    }

    /// Turns the whole request body into the gRPC frame, which replaces the
    /// `held` bytes Envoy still holds (the last chunk).
    fn finish_request_body(&mut self, held: usize) -> Action {
        let Some(t) = self.transcoder.clone() else {
            return Action::Continue;
        };
        let Some(plan) = self.plan.as_ref() else {
            return Action::Continue;
        };
        let body = std::mem::take(&mut self.request_body);
        match t.request_frame(plan, self.content_type.as_deref(), &body) {
            Ok(frame) => {
                drop(body);
                match host::set_buffer(BufferType::HttpRequestBody, 0, held, &frame) {
                    Ok(()) => Action::Continue,
                    Err(e) => {
                        self.reject(&t, &Status::internal(format!("cannot replace the request body: {e}")));
                        Action::Pause
                    }
                }
            }
            Err(status) => {
                self.reject(&t, &status);
                Action::Pause
            }
        }
    }

    /// A chunk of a client stream's body: replaced by the frames of the
    /// elements it completed, and passed on at once.
    fn stream_request_chunk(&mut self, t: &Transcoder, chunk: &[u8], end: bool) -> Action {
        let (Some(plan), Some(stream)) = (self.plan.as_ref(), self.request_stream.as_mut()) else {
            return Action::Continue;
        };
        let result =
            t.request_stream_chunk(plan, stream, self.content_type.as_deref(), chunk, end).and_then(|frames| {
                if chunk.is_empty() && frames.is_empty() {
                    return Ok(());
                }
                host::set_buffer(BufferType::HttpRequestBody, 0, chunk.len(), &frames)
                    .map_err(|e| Status::internal(format!("cannot replace the request body: {e}")))
            });
        match result {
            Ok(()) => Action::Continue,
            Err(status) => {
                self.reject(t, &status);
                Action::Pause
            }
        }
    }

    /// A chunk of a live stream: the messages it completes replace its raw
    /// bytes in what Envoy holds, released on the next tick.
    fn live_body(&mut self, live: &Rc<RefCell<Live>>, end_of_stream: bool) -> Action {
        let Some(t) = self.transcoder.clone() else { return Action::Continue };
        let body = host::get_buffer(BufferType::HttpResponseBody, 0, usize::MAX).unwrap_or_default();
        let mut state = live.borrow_mut();
        state.held = true;
        let start = state.json_len.min(body.len());
        let raw = &body[start..];
        let mut json = Vec::new();
        if !state.failed {
            if let (Some(plan), Some(stream)) = (self.plan.as_ref(), self.response_stream.as_mut()) {
                match t.stream_chunk(plan, stream, raw) {
                    Ok(bytes) => json = bytes,
                    Err(status) if !state.released => {
                        drop(state);
                        self.live = None;
                        self.reject(&t, &status);
                        return Action::Pause;
                    }
                    Err(status) => {
                        warn!("rust_grpc_proxy: abandoning a stream after its first messages: {status}");
                        json = t.stream_abort(stream, &status);
                        state.failed = true;
                    }
                }
            }
        }
        if !json.is_empty() && !state.headers_sent {
            self.rewrite_stream_headers();
            state.headers_sent = true;
        }
        // The decoder keeps an unfinished frame itself: Envoy keeps only our JSON.
        if let Err(e) = replace_held_tail(&body, start, &json) {
            error!("rust_grpc_proxy: cannot rewrite a stream chunk: {e}");
        }
        state.json_len = start + json.len();
        if end_of_stream {
            // The upstream ended without trailers: its status is in the headers, if anywhere.
            drop(state);
            let status_headers = std::mem::take(&mut self.stream_trailers);
            return self.live_end(live, &status_headers);
        }
        if state.headers_sent && state.json_len > 0 {
            release_on_next_tick(self.context_id, live);
        }
        Action::Pause
    }

    /// The end of a live stream: the closing bytes go after what was sent.
    fn live_end(&mut self, live: &Rc<RefCell<Live>>, status_headers: &[(String, String)]) -> Action {
        let Some(t) = self.transcoder.clone() else { return Action::Continue };
        let body = host::get_buffer(BufferType::HttpResponseBody, 0, usize::MAX).unwrap_or_default();
        let mut state = live.borrow_mut();
        let start = state.json_len.min(body.len());
        let raw = &body[start..];
        if !state.headers_sent {
            // Nothing went out: the whole stream is one answer, as for a stream without live delivery.
            drop(state);
            self.live = None;
            forget_held(self.context_id);
            let raw = raw.to_vec();
            self.finish_response(&raw, status_headers, false);
            return Action::Pause;
        }
        let mut out = Vec::new();
        if let (false, Some(plan), Some(stream)) = (state.failed, self.plan.take(), self.response_stream.as_mut()) {
            match t.stream_chunk(&plan, stream, raw) {
                Ok(json) => {
                    out = json;
                    let mut grpc = grpc_status_of(status_headers);
                    grpc.trailers_only = false;
                    if let Ok(tail) = t.stream_end(stream, grpc) {
                        out.extend_from_slice(&tail.bytes);
                        if !state.released {
                            for (name, value) in transcoder::stream_status_headers(stream, &tail.status) {
                                let _ = host::set_header(MapType::HttpResponseHeaders, &name, &value);
                            }
                        }
                    }
                }
                Err(status) => out = t.stream_abort(stream, &status),
            }
        }
        self.plan = None;
        if let Err(e) = replace_held_tail(&body, start, &out) {
            error!("rust_grpc_proxy: cannot end a stream: {e}");
        }
        state.json_len = start + out.len();
        if state.held {
            // A chunk is held: continuing sends it, then the trailers.
            forget_held(self.context_id);
            return Action::Continue;
        }
        // Everything before went out already: hold the trailers so the tail is sent before them.
        state.held = true;
        drop(state);
        release_on_next_tick(self.context_id, live);
        Action::Pause
    }

    /// The upstream's headers, made the headers of a JSON stream.
    fn rewrite_stream_headers(&self) {
        let h = MapType::HttpResponseHeaders;
        let content_type = self.response_stream.as_ref().map(|s| s.content_type());
        for name in [
            "content-length",
            "grpc-encoding",
            "grpc-accept-encoding",
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
        ] {
            let _ = host::remove_header(h, name);
        }
        if let Some(content_type) = content_type {
            let _ = host::set_header(h, "content-type", &content_type);
        }
    }

    fn handling_response(&self) -> bool {
        !self.replied && self.plan.is_some() && self.via_stream.is_none()
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.forget_deadline();
    }
}

/// A `grpc-timeout` value (digits and a unit: `H`, `M`, `S`, `m`, `u`, `n`), as the
/// gRPC wire spec defines it; None when malformed.
fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

impl HttpContext for Request {
    fn on_log(&mut self) {
        // Here every answer is final, whoever made it (upstream, our local replies, Envoy).
        if let Some((service, method)) = &self.metric_method {
            let status = host::get_header(MapType::HttpResponseHeaders, ":status").unwrap_or_else(|| "none".into());
            metrics::count(&format!("requests.{service}.{method}.{}", metrics::element(&status)));
        }
    }

    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let h = MapType::HttpRequestHeaders;
        let content_type = host::get_header(h, "content-type");
        if content_type.as_deref().is_some_and(transcoder::is_grpc_content_type) {
            return Action::Continue;
        }
        let Some(t) = self.transcoder.clone() else {
            if let Some(source) = self.not_ready.clone() {
                // Without descriptors no route is known: every REST request may be one.
                metrics::count("descriptor.not_loaded_replies");
                self.send(source::not_loaded_reply(&source), &mut Vec::new());
                return Action::Pause;
            }
            return Action::Continue;
        };
        let (Some(method), Some(path)) = (host::get_header(h, ":method"), host::get_header(h, ":path")) else {
            return Action::Continue;
        };
        let plan = match t.route_request(&method, &path) {
            RequestOutcome::PassThrough(reason) => {
                debug!("rust_grpc_proxy: passing {method} {path} through: {reason}");
                return Action::Continue;
            }
            RequestOutcome::Reject(status) => {
                self.reject(&t, &status);
                return Action::Pause;
            }
            RequestOutcome::Transcode(plan) => plan,
        };
        self.metric_method =
            t.method(&plan).map(|info| (metrics::element(&info.service), metrics::element(&info.name)));
        let authority = host::get_header(h, ":authority").unwrap_or_default();
        self.target = Some(RestTarget { method: method.clone(), authority, path: path.clone() });
        self.content_type = content_type;
        self.response_stream = t.response_stream(&plan);
        self.request_stream = t.request_stream(&plan);
        if let Err(e) = self.rewrite_request_headers(&t, &plan, &method, &path) {
            self.reject(&t, &Status::internal(format!("cannot rewrite the request headers: {e}")));
            return Action::Pause;
        }
        if end_of_stream {
            if let Err(status) = self.call_without_body(&t, &plan) {
                self.reject(&t, &status);
                return Action::Pause;
            }
        }
        self.plan = Some(plan);
        Action::Pause
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let Some(t) = self.transcoder.clone() else { return Action::Continue };
        if self.replied {
            return Action::Pause;
        }
        if self.plan.is_none() || self.via_stream.is_some() {
            return Action::Continue;
        }
        let chunk = match host::get_buffer(BufferType::HttpRequestBody, 0, size) {
            Ok(chunk) => chunk,
            Err(e) => {
                self.reject(&t, &Status::internal(format!("cannot read the request body: {e}")));
                return Action::Pause;
            }
        };
        self.request_bytes += chunk.len();
        if let Some(max) = t.max_request_body_size() {
            if self.request_bytes > max {
                let status = Status::new(
                    transcoder::Code::ResourceExhausted,
                    format!("the request body is larger than max_request_body_size ({max} bytes)"),
                );
                let mut reply = t.local_error(&status);
                reply.status = 413;
                self.send(reply, &mut Vec::new());
                return Action::Pause;
            }
        }
        if self.request_stream.is_some() {
            return self.stream_request_chunk(&t, &chunk, end_of_stream);
        }
        self.request_body.extend_from_slice(&chunk);
        if !end_of_stream {
            // Envoy holds nothing: the body is ours until it is complete.
            if let Err(e) = host::set_buffer(BufferType::HttpRequestBody, 0, chunk.len(), &[]) {
                self.reject(&t, &Status::internal(format!("cannot take the request body: {e}")));
                return Action::Pause;
            }
            if self.request_body.len() > RELEASE_HEADERS_AFTER {
                // A big body: let the headers go now, so that the frame, when
                // it comes, is passed on rather than buffered (and limited) by Envoy.
                self.body_streaming = true;
                return Action::Continue;
            }
            return if self.body_streaming { Action::Continue } else { Action::Pause };
        }
        self.finish_request_body(chunk.len())
    }

    fn on_http_request_trailers(&mut self, _n: usize) -> Action {
        if self.replied {
            return Action::Pause;
        }
        if self.plan.is_none() || self.via_stream.is_some() {
            return Action::Continue;
        }
        // The body ended without end_of_stream because trailers follow: it is complete now.
        if let Some(t) = self.transcoder.clone().filter(|_| self.request_stream.is_some()) {
            return self.stream_request_chunk(&t, &[], true);
        }
        if self.body_streaming {
            // The body was passed on chunk by chunk (empty): nothing is held to put the frame in.
            let status = Status::new(
                transcoder::Code::Unimplemented,
                format!("request trailers after a body over {RELEASE_HEADERS_AFTER} bytes are not supported; send the body without trailers"),
            );
            if let Some(t) = self.transcoder.clone() {
                self.reject(&t, &status);
            }
            return Action::Pause;
        }
        let held = host::get_buffer(BufferType::HttpRequestBody, 0, usize::MAX).unwrap_or_default();
        self.request_body.extend_from_slice(&held);
        self.finish_request_body(held.len())
    }

    fn on_http_response_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        if !self.handling_response() {
            return Action::Continue;
        }
        let headers = text_pairs(host::get_map(MapType::HttpResponseHeaders).unwrap_or_default());
        let is_grpc = find(&headers, "content-type").is_some_and(transcoder::is_grpc_content_type);
        if !is_grpc {
            // Not a gRPC answer to our gRPC call: an Envoy error (no upstream, reset,
            // timeout, body over the buffer limit) or a backend that is no gRPC server.
            // The client asked for JSON, so it gets a JSON status saying so (Envoy's
            // native filter passes such answers on as they are).
            self.plan = None;
            if let Some(t) = self.transcoder.clone() {
                let reply = non_grpc_answer(&t, &headers, self.target.as_ref());
                self.send(reply, &mut Vec::new());
                return Action::Pause;
            }
            return Action::Continue;
        }
        self.response_headers = headers.iter().filter(|(k, _)| !is_grpc_response_header(k)).cloned().collect();
        self.response_encoding = find(&headers, "grpc-encoding").map(str::to_string);
        if end_of_stream {
            // Trailers-only: the status is in the headers and there is no body.
            self.finish_response(&[], &headers, true);
            return Action::Pause;
        }
        // Keep the status headers in case the body ends without trailers.
        self.stream_trailers = headers.into_iter().filter(|(k, _)| k.starts_with("grpc-")).collect();
        if let Some(stream) = self.response_stream.as_mut() {
            stream.set_encoding(self.response_encoding.as_deref());
            self.live = Some(Rc::default());
        }
        Action::Pause
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !self.handling_response() {
            // Our own local reply comes through here too: it must pass.
            return Action::Continue;
        }
        if let Some(live) = self.live.clone() {
            return self.live_body(&live, end_of_stream);
        }
        let Some(t) = self.transcoder.clone() else { return Action::Continue };
        // Envoy holds nothing (its buffer limit would fail big replies): the body is ours until it is complete.
        let chunk = host::get_buffer(BufferType::HttpResponseBody, 0, size).unwrap_or_default();
        self.response_body.extend_from_slice(&chunk);
        if let Some(max) = t.max_response_body_size() {
            if self.response_body.len() > max {
                self.plan = None;
                self.response_body = Vec::new();
                let status =
                    Status::internal(format!("the gRPC response is larger than max_response_body_size ({max} bytes)"));
                self.send(t.local_error(&status), &mut Vec::new());
                return Action::Pause;
            }
        }
        if end_of_stream {
            let body = std::mem::take(&mut self.response_body);
            let status_headers = std::mem::take(&mut self.stream_trailers);
            self.finish_response(&body, &status_headers, false);
        } else if let Err(e) = host::set_buffer(BufferType::HttpResponseBody, 0, chunk.len(), &[]) {
            error!("rust_grpc_proxy: cannot take a response chunk: {e}");
        }
        Action::Pause
    }

    fn on_http_response_trailers(&mut self, _n: usize) -> Action {
        if !self.handling_response() {
            // Our own local reply comes through here too: it must pass.
            return Action::Continue;
        }
        let trailers = text_pairs(host::get_map(MapType::HttpResponseTrailers).unwrap_or_default());
        if let Some(live) = self.live.clone() {
            return self.live_end(&live, &trailers);
        }
        let mut body = std::mem::take(&mut self.response_body);
        body.extend_from_slice(&host::get_buffer(BufferType::HttpResponseBody, 0, usize::MAX).unwrap_or_default());
        self.finish_response(&body, &trailers, false);
        Action::Pause
    }
}

/// The JSON error for an answer to a transcoded call that is not gRPC. A call
/// no route takes (Envoy's `route_not_found`, or a direct-response or redirect
/// route) is 404 NOT_FOUND naming the REST request. Otherwise the HTTP status is
/// kept when it is an error (503 no upstream, 504 timeout, 413 too large, ...),
/// else 502, with the code the status table gives it back; the message names
/// the status, content type and Envoy's reason.
fn non_grpc_answer(transcoder: &Transcoder, headers: &[(String, String)], target: Option<&RestTarget>) -> HttpReply {
    let http = find(headers, ":status").and_then(|s| s.trim().parse::<u16>().ok()).unwrap_or(0);
    let details = proxy_wasm::hostcalls::get_property(vec!["response", "code_details"])
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|d| !d.is_empty() && d != "via_upstream");
    if let (Some("route_not_found" | "direct_response"), Some(target)) = (details.as_deref(), target) {
        let grpc_path = host::get_header(MapType::HttpRequestHeaders, ":path").unwrap_or_default();
        return transcoder.local_error(&target.no_route(&grpc_path));
    }
    let code =
        if (400..=599).contains(&http) { transcoder::Code::for_http_error(http) } else { transcoder::Code::Unknown };
    let content_type = find(headers, "content-type").unwrap_or("no content-type");
    let message = match details {
        Some(details) => format!("the gRPC call failed in Envoy: HTTP {http} ({details})"),
        None => format!("the gRPC backend answered HTTP {http} with {content_type}, not gRPC"),
    };
    let mut reply = transcoder.local_error(&Status::new(code, message));
    reply.status = if (400..=599).contains(&http) { http } else { 502 };
    reply
}

/// A serialized `envoy.config.core.v3.GrpcService` naming the cluster (and the
/// `:authority` to send, else Envoy sends the cluster name): Envoy tries to parse
/// the "upstream" argument as this message before treating it as a cluster name,
/// and some plain names happen to parse.
fn grpc_service_for_cluster(cluster: &str, authority: Option<&str>) -> String {
    // The host takes a string; lengths over 127 make a non-UTF-8 varint: then
    // without the authority, and at last the plain name, the only form left.
    authority
        .filter(|a| !a.is_empty())
        .and_then(|a| encode_grpc_service(cluster, a))
        .or_else(|| encode_grpc_service(cluster, ""))
        .unwrap_or_else(|| cluster.to_string())
}

fn encode_grpc_service(cluster: &str, authority: &str) -> Option<String> {
    let mut envoy_grpc = Vec::with_capacity(cluster.len() + authority.len() + 8);
    envoy_grpc.push(0x0a); // EnvoyGrpc.cluster_name = 1
    push_varint(&mut envoy_grpc, cluster.len());
    envoy_grpc.extend_from_slice(cluster.as_bytes());
    if !authority.is_empty() {
        envoy_grpc.push(0x12); // EnvoyGrpc.authority = 2
        push_varint(&mut envoy_grpc, authority.len());
        envoy_grpc.extend_from_slice(authority.as_bytes());
    }
    let mut service = Vec::with_capacity(envoy_grpc.len() + 4);
    service.push(0x0a); // GrpcService.envoy_grpc = 1
    push_varint(&mut service, envoy_grpc.len());
    service.extend_from_slice(&envoy_grpc);
    String::from_utf8(service).ok()
}

fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_and_garbage_does_not() {
        assert_eq!(parse_grpc_timeout(b"15S"), Some(Duration::from_secs(15)));
        assert_eq!(parse_grpc_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout(b"99999999M"), Some(Duration::from_secs(99_999_999 * 60)));
        for bad in [&b""[..], b"S", b"15", b"15s", b"-1S", b"123456789S", b"1.5S", b"\xff\xffS", b"1\xc3\xa9"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
