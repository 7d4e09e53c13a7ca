//! The filter as a dynamic module: per-configuration and per-stream state,
//! and the core's [`Host`] over Envoy's dynamic-module callbacks. No unsafe
//! here: the callbacks come wrapped from [`crate::abi::callbacks`].

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Instant, SystemTime};

use filter_core::metrics::{Counter, Gauge};
use filter_core::{Action, Host, HostError, Live, Loaded, Metrics, OwnCall, OwnCallError, Remote, Side};
use log::{error, info};
use transcoder::{ConfigError, Transcoder, TranscoderConfig};

use crate::abi::callbacks::{Body, ConfigHandle, HeaderMap, Stream};
use crate::metrics::MetricIds;
use crate::remote::{Event, Fetcher};

/// One `DynamicModuleFilter` configuration, shared by every worker: the
/// transcoder is immutable and `Send + Sync`, so each set is loaded once, not
/// per worker as in Wasm. A set fetched at run time replaces it for new requests.
pub struct FilterConfig {
    /// The remote source, if any (dropped first: its timer thread stops before the rest goes).
    fetcher: Option<Fetcher>,
    /// The set in service; each new stream takes its own `Arc` (one read lock per request).
    current: RwLock<Option<Arc<Transcoder>>>,
    /// The source requests wait for (503) until a set is loaded, unless `pass_through_until_loaded`.
    waiting_for: Option<String>,
    /// The ids of the metrics defined with this configuration.
    metrics: Arc<MetricIds>,
}

impl FilterConfig {
    /// Loads the filter's JSON configuration (the Wasm plugin's, unchanged; or `{}`, for a
    /// filter whose services are all configured per route); the error says why not.
    pub fn new(json: &[u8], envoy: &ConfigHandle<'_>) -> Result<FilterConfig, String> {
        let started = Instant::now();
        // Before anything can fail or count: Envoy allows defining metrics only now.
        let metrics = Arc::new(MetricIds::define(envoy));
        if is_empty_object(json) {
            info!(
                "rust_grpc_proxy: dynamic module ready without a descriptor set of its own: requests pass \
                 through untouched unless their route has a per-route configuration"
            );
            return Ok(FilterConfig { fetcher: None, current: RwLock::new(None), waiting_for: None, metrics });
        }
        let config = TranscoderConfig::from_json(json).map_err(|e| match e {
            ConfigError::Invalid { ref field, .. } if field == "proto_descriptor_bin" => format!(
                "configuration refused: {e} (a filter whose services are all configured per route takes `{{}}`)"
            ),
            e => format!("configuration refused: {e}"),
        })?;
        let remote = Remote::from_config(&config, Some(SystemTime::now()));
        let mut slot = None;
        if config.proto_descriptor_bin.is_some() {
            let transcoder = Transcoder::new(config).map_err(|e| format!("configuration refused: {e}"))?;
            filter_core::install(&mut slot, transcoder, "the configuration", started.elapsed(), json.len());
        } else if let Some(remote) = &remote {
            info!("rust_grpc_proxy: waiting for the descriptor set from {}", remote.name);
        }
        let fetcher = remote.map(|remote| Fetcher::new(remote, envoy));
        let waiting_for = fetcher.as_ref().and_then(Fetcher::waiting_for);
        info!("rust_grpc_proxy: dynamic module ready");
        Ok(FilterConfig { fetcher, current: RwLock::new(slot), waiting_for, metrics })
    }

    /// The set in service, if any.
    fn transcoder(&self) -> Option<Arc<Transcoder>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The state of a new HTTP stream.
    pub fn new_filter(&self) -> Filter {
        let transcoder = self.transcoder();
        let not_ready = match (&transcoder, &self.waiting_for) {
            (None, Some(source)) => Some(Rc::from(source.as_str())),
            _ => None,
        };
        Filter {
            core: filter_core::Request::new(transcoder, not_ready),
            details: None,
            metrics: self.metrics.clone(),
            failed: false,
        }
    }

    /// An event about the descriptor fetches, on the main thread.
    pub fn fetch_event(&self, envoy: &ConfigHandle<'_>, event: Event) {
        let Some(fetcher) = &self.fetcher else { return };
        let loaded = || self.current.read().unwrap_or_else(PoisonError::into_inner).is_some();
        let install = |l: Loaded| {
            let mut slot = None;
            filter_core::install(&mut slot, l.transcoder, &l.origin, l.elapsed, l.size);
            // Requests in flight keep the `Arc` they started with.
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = slot;
        };
        fetcher.event(envoy, &self.metrics, event, &loaded, &install);
    }
}

/// Whether a configuration is the empty JSON object (whitespace aside): the filter-level
/// configuration of a filter that serves only routes with their own configuration.
fn is_empty_object(json: &[u8]) -> bool {
    let mut bytes = json.iter().filter(|b| !b.is_ascii_whitespace());
    bytes.next() == Some(&b'{') && bytes.next() == Some(&b'}') && bytes.next().is_none()
}

/// One `DynamicModuleFilterPerRoute` configuration: a route's own transcoder, loaded once on
/// the main thread and shared by every worker's streams on that route.
pub struct RouteConfig {
    transcoder: Arc<Transcoder>,
}

/// How many route configurations exist: while there are none, a request spares the
/// lookup of its route's (Envoy walks the route's per-filter configurations for it). Relaxed:
/// Envoy publishes a new route table to the workers only after its configurations exist.
static ROUTE_CONFIGS: AtomicUsize = AtomicUsize::new(0);

impl Drop for RouteConfig {
    fn drop(&mut self) {
        ROUTE_CONFIGS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RouteConfig {
    /// Loads a route's JSON configuration: the filter's format, with its descriptor set inline.
    /// Sets fetched at run time are refused: they need the configuration-level callouts and
    /// scheduler Envoy gives a filter configuration, and a route's configuration has none.
    pub fn new(json: &[u8]) -> Result<RouteConfig, String> {
        let started = Instant::now();
        let refused = |e: &dyn std::fmt::Display| format!("per-route configuration refused: {e}");
        let config = TranscoderConfig::from_json(json).map_err(|e| refused(&e))?;
        let fetched = [
            ("descriptor_url", config.descriptor_url.is_some()),
            ("descriptor_reflection", config.descriptor_reflection.is_some()),
        ];
        if let Some((field, _)) = fetched.into_iter().find(|(_, set)| *set) {
            return Err(refused(&format!(
                "configuration field `{field}`: a per-route configuration cannot fetch its descriptor set \
                 (Envoy gives routes no callouts); put the set in `proto_descriptor_bin`, or configure this \
                 service in the filter's own configuration"
            )));
        }
        let transcoder = Transcoder::new(config).map_err(|e| refused(&e))?;
        let mut slot = None;
        filter_core::install(&mut slot, transcoder, "a per-route configuration", started.elapsed(), json.len());
        let transcoder = slot.ok_or_else(|| refused(&"the transcoder was not installed"))?;
        ROUTE_CONFIGS.fetch_add(1, Ordering::Relaxed);
        Ok(RouteConfig { transcoder })
    }
}

/// The details of Envoy's 413 for a request body over its buffer limit.
const PAYLOAD_TOO_LARGE: &str = "request_payload_too_large";

/// One HTTP stream.
pub struct Filter {
    core: filter_core::Request,
    /// The details of the last local reply on the stream (`route_not_found`,
    /// `upstream_reset_before_response_started{...}`): what Envoy's
    /// `response.code_details` says, which the Wasm build reads as a property.
    details: Option<String>,
    /// The configuration's metric ids.
    metrics: Arc<MetricIds>,
    /// A hook of this stream panicked (caught): the filter leaves the stream alone.
    failed: bool,
}

/// Which hook is running: the received body is only reachable in body hooks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A headers or trailers hook.
    HeadersOrTrailers,
    /// A body hook.
    Body,
}

impl Filter {
    /// Whether a hook of this stream panicked.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// A hook of this stream panicked: later hooks leave it alone.
    pub fn fail(&mut self) {
        self.failed = true;
    }

    fn host<'a, 'h>(&'a self, stream: &'a Stream<'h>, phase: Phase) -> DynHost<'a, 'h> {
        DynHost { stream, phase, details: self.details.as_deref(), metrics: &self.metrics }
    }

    /// Request headers hook.
    pub fn request_headers(&mut self, stream: &Stream<'_>, end_of_stream: bool) -> Action {
        let route = if ROUTE_CONFIGS.load(Ordering::Relaxed) > 0 { stream.route_config() } else { None };
        if let Some(route) = route {
            // Only now is the route known: its own configuration replaces the filter's.
            self.core.use_route_transcoder(Arc::clone(&route.transcoder));
        }
        let details = self.details.take();
        let mut host =
            DynHost { stream, phase: Phase::HeadersOrTrailers, details: details.as_deref(), metrics: &self.metrics };
        let action = self.core.on_request_headers(&mut host, end_of_stream);
        self.details = details;
        if self.core.transcoding() {
            // Envoy may have picked the route for the REST path already (this filter's
            // per-route lookup does): the router must route the gRPC call's :path.
            stream.clear_route_cache();
        }
        action
    }

    /// Request body hook.
    pub fn request_body(&mut self, stream: &Stream<'_>, end_of_stream: bool) -> Action {
        let details = self.details.take();
        let mut host = DynHost { stream, phase: Phase::Body, details: details.as_deref(), metrics: &self.metrics };
        let action = self.core.on_request_body(&mut host, end_of_stream);
        self.details = details;
        action
    }

    /// Request trailers hook.
    pub fn request_trailers(&mut self, stream: &Stream<'_>) -> Action {
        let details = self.details.take();
        let mut host =
            DynHost { stream, phase: Phase::HeadersOrTrailers, details: details.as_deref(), metrics: &self.metrics };
        let action = self.core.on_request_trailers(&mut host);
        self.details = details;
        action
    }

    /// Response headers hook.
    pub fn response_headers(&mut self, stream: &Stream<'_>, end_of_stream: bool) -> Action {
        if self.details.as_deref() == Some(PAYLOAD_TOO_LARGE) {
            // Envoy's own 413, sent while it was still reading the request: replacing it
            // with ours from here made Envoy 1.40 crash (seen: SIGSEGV after our reply went
            // out), so it goes to the client as Envoy wrote it (text/plain), body included.
            self.core.leave_response();
            return Action::Continue;
        }
        let details = self.details.take();
        let mut host =
            DynHost { stream, phase: Phase::HeadersOrTrailers, details: details.as_deref(), metrics: &self.metrics };
        let action = self.core.on_response_headers(&mut host, end_of_stream);
        self.details = details;
        action
    }

    /// Response body hook.
    pub fn response_body(&mut self, stream: &Stream<'_>, end_of_stream: bool) -> Action {
        let details = self.details.take();
        let mut host = DynHost { stream, phase: Phase::Body, details: details.as_deref(), metrics: &self.metrics };
        let action = self.core.on_response_body(&mut host, end_of_stream);
        self.details = details;
        action
    }

    /// Response trailers hook.
    pub fn response_trailers(&mut self, stream: &Stream<'_>) -> Action {
        let details = self.details.take();
        let mut host =
            DynHost { stream, phase: Phase::HeadersOrTrailers, details: details.as_deref(), metrics: &self.metrics };
        let action = self.core.on_response_trailers(&mut host);
        self.details = details;
        action
    }

    /// The stream is complete: count the answer.
    pub fn stream_complete(&self, stream: &Stream<'_>) {
        self.core.on_log(&self.host(stream, Phase::HeadersOrTrailers));
    }

    /// Envoy is sending a local reply on this stream (its own, or ours).
    pub fn local_reply(&mut self, details: String) {
        self.details = Some(details);
    }
}

/// The core's host for one hook of one stream.
struct DynHost<'a, 'h> {
    stream: &'a Stream<'h>,
    phase: Phase,
    details: Option<&'a str>,
    metrics: &'a MetricIds,
}

impl DynHost<'_, '_> {
    fn body_type(&self, side: Side) -> Body {
        match (side, self.phase) {
            (Side::Request, Phase::Body) => Body::ReceivedRequest,
            (Side::Request, Phase::HeadersOrTrailers) => Body::BufferedRequest,
            (Side::Response, Phase::Body) => Body::ReceivedResponse,
            (Side::Response, Phase::HeadersOrTrailers) => Body::BufferedResponse,
        }
    }

    fn text(&self, map: HeaderMap, name: &str) -> Option<String> {
        self.stream.header(map, name).and_then(|v| String::from_utf8(v).ok())
    }

    fn set(&self, map: HeaderMap, name: &str, value: Option<&str>) -> Result<(), HostError> {
        if self.stream.set_header(map, name, value) {
            Ok(())
        } else {
            Err(HostError(format!("Envoy refused to change header {name:?}")))
        }
    }
}

impl Metrics for DynHost<'_, '_> {
    fn count(&self, counter: Counter<'_>) {
        self.metrics.count_on_stream(self.stream, counter);
    }

    fn gauge(&self, _gauge: Gauge, _value: u64) {
        // Gauges are the configuration's (the descriptor set in service), set from its fetches.
    }
}

impl Host for DynHost<'_, '_> {
    fn request_header(&self, name: &str) -> Option<String> {
        self.text(HeaderMap::RequestHeaders, name)
    }

    fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.stream.headers(HeaderMap::RequestHeaders)
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.set(HeaderMap::RequestHeaders, name, Some(value))
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.set(HeaderMap::RequestHeaders, name, None)
    }

    fn response_header(&self, name: &str) -> Option<String> {
        self.text(HeaderMap::ResponseHeaders, name)
    }

    fn response_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.stream.headers(HeaderMap::ResponseHeaders)
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.set(HeaderMap::ResponseHeaders, name, Some(value))
    }

    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        self.set(HeaderMap::ResponseHeaders, name, None)
    }

    fn response_trailers(&self) -> Vec<(String, Vec<u8>)> {
        self.stream.headers(HeaderMap::ResponseTrailers)
    }

    fn response_code_details(&self) -> Option<String> {
        self.details.map(str::to_string)
    }

    fn body(&self, side: Side) -> Result<Vec<u8>, HostError> {
        Ok(self.stream.body(self.body_type(side)))
    }

    fn replace_body(&mut self, side: Side, held: usize, new: &[u8]) -> Result<(), HostError> {
        let body = self.body_type(side);
        if held > 0 && !self.stream.drain(body, held) {
            return Err(HostError("Envoy has no body to drain".into()));
        }
        if !new.is_empty() && !self.stream.append(body, new) {
            return Err(HostError("Envoy refused to add to the body".into()));
        }
        Ok(())
    }

    fn send_response(&mut self, status: u16, headers: &[(String, String)], body: &[u8]) -> Result<(), HostError> {
        self.stream.send_response(status, headers, body, "rust_grpc_proxy");
        Ok(())
    }

    fn in_place_limit(&self) -> Option<usize> {
        // 0: Envoy knows no limit for the stream here; the local reply is then the safe side.
        let limit = self.stream.buffer_limit();
        (limit > 0).then(|| usize::try_from(limit).unwrap_or(usize::MAX))
    }

    fn can_append_request_body(&self) -> bool {
        true
    }

    fn append_request_body(&mut self, frame: &[u8]) -> Result<(), HostError> {
        if self.stream.append(Body::BufferedRequest, frame) {
            Ok(())
        } else {
            Err(HostError("Envoy refused to add a body to the request".into()))
        }
    }

    fn own_call(&mut self, _call: OwnCall) -> Result<u32, OwnCallError> {
        // Never asked: this host appends the frame instead (can_append_request_body).
        error!("rust_grpc_proxy: own call asked of the dynamic module");
        Err(OwnCallError::Failed("the dynamic module makes no calls of its own".into()))
    }

    fn cancel_own_call(&mut self, _token: u32) {}

    fn release_stream(&mut self, live: &Rc<RefCell<Live>>, end: bool) -> Action {
        // Data written in a body hook goes on with Continue: nothing stays held.
        let mut live = live.borrow_mut();
        live.held = false;
        live.released = true;
        live.json_len = 0;
        if end && self.phase == Phase::HeadersOrTrailers {
            // The closing bytes were added in the trailers hook; Envoy 1.40 drops data
            // added to a response buffer there when the trailers go on at once, so the
            // trailers wait for the next turn of the worker's loop, which sends the data first.
            if self.stream.continue_encoding_soon() {
                return Action::Pause;
            }
            error!("rust_grpc_proxy: cannot schedule the end of a stream");
        }
        Action::Continue
    }

    fn forget_stream(&mut self) {}

    fn raise_buffer_limit(&mut self, limit: usize) {
        self.stream.set_buffer_limit(u64::try_from(limit).unwrap_or(u64::MAX));
    }
}
