//! The core's [`Host`] on proxy-wasm: moves headers and bodies of the current
//! HTTP context, holds live stream data until the worker's next tick, and
//! hands the gRPC frame of a request without a body to the Lua companion
//! (`envoy/companion.lua`), or without one makes the call itself: a Wasm
//! filter cannot give such a request a body in Envoy 1.40.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use filter_core::metrics::{Counter, Gauge};
use filter_core::{Host, HostError, Live, Metrics, OwnCall, OwnCallError, Side};
use log::{debug, warn};
use proxy_wasm::types::{BufferType, MapType};

use crate::host;
use crate::metrics::WasmMetrics;

/// A gRPC call the filter made itself (for a request without a body). Envoy 1.40's
/// gRPC streams from Wasm have no timeout of their own, so without this a backend
/// that never answers would hold the client until Envoy's idle timeout (5 min).
pub struct Deadline {
    /// The HTTP context that made the call.
    pub context_id: u32,
    /// The call's stream.
    pub token: u32,
    /// When it must have answered.
    pub at: SystemTime,
    /// Its timeout, for the 504's message.
    pub timeout: Duration,
}

/// Shared between the root context (whose tick enforces them) and the requests.
pub type Deadlines = Rc<RefCell<Vec<Deadline>>>;

/// How often the root context looks for calls past their deadline.
pub const DEADLINE_TICK: Duration = Duration::from_millis(250);

/// How often a worker releases held stream data while any is held.
const STREAM_FLUSH_PERIOD: Duration = Duration::from_millis(10);

thread_local! {
    /// Streams with data held until the next tick, by HTTP context id (per worker: one VM per thread).
    static HELD_STREAMS: RefCell<Vec<(u32, Rc<RefCell<Live>>)>> = const { RefCell::new(Vec::new()) };
}

/// Releases what live streams hold (from the root context's tick).
pub fn release_held_streams() {
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

/// Forgets a context's held data (it was released otherwise, or the context ended).
pub fn forget_held(context_id: u32) {
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

/// The host as one HTTP context (or the root context acting on one) sees it.
pub struct WasmHost<'a> {
    /// The HTTP context acted on.
    pub context_id: u32,
    /// The worker's own calls and their deadlines.
    pub deadlines: &'a Deadlines,
    /// `lua_companion`: the companion filter gives requests without a body their frame.
    pub companion: bool,
}

/// The header in which the filter hands a bodiless request's gRPC frame (hex) to
/// `envoy/companion.lua`; the same name is in that script.
pub const COMPANION_HEADER: &str = "x-rust-grpc-proxy-frame";

/// Lower-case hex: the companion's table (`BYTES` in envoy/companion.lua) has only lower-case pairs.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

fn host_error(e: host::HostError) -> HostError {
    HostError(e.to_string())
}

fn buffer(side: Side) -> BufferType {
    match side {
        Side::Request => BufferType::HttpRequestBody,
        Side::Response => BufferType::HttpResponseBody,
    }
}

impl Metrics for WasmHost<'_> {
    fn count(&self, counter: Counter<'_>) {
        WasmMetrics.count(counter);
    }

    fn gauge(&self, gauge: Gauge, value: u64) {
        WasmMetrics.gauge(gauge, value);
    }
}

impl Host for WasmHost<'_> {
    fn request_header(&self, name: &str) -> Option<String> {
        host::get_header(MapType::HttpRequestHeaders, name)
    }

    fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
        host::get_map(MapType::HttpRequestHeaders).unwrap_or_default()
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        host::set_header(MapType::HttpRequestHeaders, name, value).map_err(host_error)
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        host::remove_header(MapType::HttpRequestHeaders, name).map_err(host_error)
    }

    fn rewrite_headers(
        &mut self,
        side: Side,
        current: Option<Vec<(String, Vec<u8>)>>,
        set: &[(&str, &str)],
        remove: &[&str],
    ) -> Result<(), HostError> {
        // Two host calls at most (read, write) instead of one per header.
        let map = match side {
            Side::Request => MapType::HttpRequestHeaders,
            Side::Response => MapType::HttpResponseHeaders,
        };
        let current = match current {
            Some(current) => current,
            None => host::get_map(map).map_err(host_error)?,
        };
        let mut pairs: Vec<(&str, &[u8])> = current
            .iter()
            .filter(|(k, _)| !remove.contains(&k.as_str()) && !set.iter().any(|(name, _)| name == k))
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        pairs.extend(set.iter().map(|(k, v)| (*k, v.as_bytes())));
        host::set_map(map, &pairs).map_err(host_error)
    }

    fn frame_header(&self) -> Option<&'static str> {
        self.companion.then_some(COMPANION_HEADER)
    }

    fn frame_as_header(&self, frame: &[u8]) -> Option<String> {
        // In the one header write of the rewrite: a host call fewer than setting it after.
        self.companion.then(|| hex(frame))
    }

    fn response_header(&self, name: &str) -> Option<String> {
        host::get_header(MapType::HttpResponseHeaders, name)
    }

    fn response_headers(&self) -> Vec<(String, Vec<u8>)> {
        host::get_map(MapType::HttpResponseHeaders).unwrap_or_default()
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        host::set_header(MapType::HttpResponseHeaders, name, value).map_err(host_error)
    }

    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        host::remove_header(MapType::HttpResponseHeaders, name).map_err(host_error)
    }

    fn response_trailers(&self) -> Vec<(String, Vec<u8>)> {
        host::get_map(MapType::HttpResponseTrailers).unwrap_or_default()
    }

    fn response_code_details(&self) -> Option<String> {
        proxy_wasm::hostcalls::get_property(vec!["response", "code_details"])
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
    }

    fn body(&self, side: Side) -> Result<Vec<u8>, HostError> {
        host::get_buffer(buffer(side), 0, usize::MAX).map_err(host_error)
    }

    fn replace_body(&mut self, side: Side, held: usize, new: &[u8]) -> Result<(), HostError> {
        host::set_buffer(buffer(side), 0, held, new).map_err(host_error)
    }

    fn send_response(&mut self, status: u16, headers: &[(String, String)], body: &[u8]) -> Result<(), HostError> {
        host::send_response(status, headers, body).map_err(host_error)
    }

    fn can_append_request_body(&self) -> bool {
        self.companion
    }

    fn own_call(&mut self, call: OwnCall) -> Result<u32, OwnCallError> {
        let cluster = proxy_wasm::hostcalls::get_property(vec!["xds", "cluster_name"])
            .ok()
            .flatten()
            .or_else(|| proxy_wasm::hostcalls::get_property(vec!["cluster_name"]).ok().flatten())
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|c| !c.is_empty())
            .ok_or(OwnCallError::NoCluster)?;
        let metadata: Vec<(&str, &[u8])> = call.metadata.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        // The client's :authority, not Envoy's default (the cluster name): mesh cluster
        // names such as Istio's `inbound|8080||` are not valid authorities, and HTTP/2
        // servers (hyper/tonic) reset such streams with a protocol error.
        let service = grpc_service_for_cluster(&cluster, call.authority.as_deref());
        let token = proxy_wasm::hostcalls::open_grpc_stream(&service, &call.service, &call.method, metadata)
            .map_err(|e| OwnCallError::Failed(format!("cannot call cluster {cluster:?}: {e:?}")))?;
        // The request's end goes with close_grpc_stream, not with the message: Envoy forgets
        // a gRPC stream of a Wasm context only once it was closed locally that way; a stream
        // ended by end_of_stream stays in Envoy's table (about 100 bytes per request, seen as
        // steady growth of Envoy's heap under `make soak`).
        let sent = proxy_wasm::hostcalls::send_grpc_stream_message(token, Some(&call.message), false)
            .and_then(|()| proxy_wasm::hostcalls::close_grpc_stream(token));
        if let Err(e) = sent {
            let _ = proxy_wasm::hostcalls::cancel_grpc_stream(token);
            return Err(OwnCallError::Failed(format!("cannot send to cluster {cluster:?}: {e:?}")));
        }
        if let Ok(now) = proxy_wasm::hostcalls::get_current_time() {
            self.deadlines.borrow_mut().push(Deadline {
                context_id: self.context_id,
                token,
                at: now + call.timeout,
                timeout: call.timeout,
            });
        }
        Ok(token)
    }

    fn cancel_own_call(&mut self, token: u32) {
        let _ = proxy_wasm::hostcalls::cancel_grpc_stream(token);
    }

    fn release_stream(&mut self, live: &Rc<RefCell<Live>>, end: bool) -> filter_core::Action {
        if end {
            // Everything before went out already: hold the trailers so the tail is sent before them.
            live.borrow_mut().held = true;
        }
        release_on_next_tick(self.context_id, live);
        filter_core::Action::Pause
    }

    fn forget_stream(&mut self) {
        forget_held(self.context_id);
    }
}

/// A serialized `envoy.config.core.v3.GrpcService` naming the cluster (and the
/// `:authority` to send, else Envoy sends the cluster name): Envoy tries to parse
/// the "upstream" argument as this message before treating it as a cluster name,
/// and some plain names happen to parse.
pub fn grpc_service_for_cluster(cluster: &str, authority: Option<&str>) -> String {
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
    use super::hex;

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }
}
