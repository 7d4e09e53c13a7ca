//! The filter's host-independent core, shared by its two hosts: Envoy's
//! proxy-wasm runtime (`src/filter`) and Envoy's dynamic modules (`src/dynmod`).
//!
//! Everything a request goes through lives here once: the per-request state
//! machine ([`Request`]), streaming delivery ([`Live`]), body limits, the
//! answers to failed calls, the descriptor set's fetch schedule, exchanges and
//! swaps ([`Remote`], driven through a host's [`FetchHost`]) and the metric names. An adapter implements [`Host`] (moving
//! headers, bodies and replies between Envoy and the core) and calls the
//! [`Request`] hooks from Envoy's callbacks.
//!
//! Flow of a transcoded request:
//! - request headers: the engine matches the route; headers are rewritten to
//!   the gRPC call (`POST /pkg.Service/Method`, `application/grpc`) and held;
//! - request body: buffered to the end, turned into one gRPC frame, passed on;
//! - a request without a body: a host that can give it a body appends the
//!   frame in the headers phase (it then goes through the router like any
//!   other); one that cannot (Wasm) calls the route's cluster itself ([`OwnCall`]);
//! - unary response: held until the trailers (or the end of the body) bring
//!   the gRPC status; the JSON answer replaces the whole response;
//! - server-streaming response: passed on message by message ([`Live`]).

#![forbid(unsafe_code)]

mod descriptors;
mod fetch;
mod headers;
pub mod metrics;
mod own_call;
mod request;

use std::cell::RefCell;
use std::rc::Rc;

pub use descriptors::{install, next_fetch, Remote, Source, FIRST_LOAD_RETRY};
pub use fetch::{FetchHost, Loaded};
pub use headers::{find, is_connection_header, is_grpc_response_header, text_pairs, RestTarget};
pub use own_call::{own_call_expired, parse_grpc_timeout, OwnCall, DEFAULT_CALL_TIMEOUT};
pub use request::{Live, Request, RELEASE_HEADERS_AFTER};

/// What a hook tells Envoy to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pass what was received on (and anything held before it).
    Continue,
    /// Hold it: the filter continues later, or has answered itself.
    Pause,
}

/// A host call that failed, with the host's own words for why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError(pub String);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which side of the exchange a body belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client's request (towards the gRPC backend).
    Request,
    /// The backend's response (towards the client).
    Response,
}

/// Why a host could not make the call of a request without a body itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnCallError {
    /// No Envoy route (hence no cluster) serves the gRPC call.
    NoCluster,
    /// The host refused the call; the text says why.
    Failed(String),
}

/// The host's stats store; names get [`metrics::PREFIX`] in front. A metric
/// the host refuses is skipped: metrics never fail a request.
pub trait Metrics {
    /// Adds one to a counter.
    fn count(&self, counter: metrics::Counter<'_>);
    /// Sets a gauge.
    fn gauge(&self, gauge: metrics::Gauge, value: u64);
}

/// What an adapter does for the core: only moves data between Envoy and it.
///
/// Body calls act on "what Envoy holds" in the current callback: for a body
/// callback, the received data (and what is buffered before it); in a headers
/// or trailers callback, the buffer a filter may add data to.
pub trait Host: Metrics {
    /// One request header's value (None when absent or not UTF-8).
    fn request_header(&self, name: &str) -> Option<String>;
    /// All request headers, values as bytes.
    fn request_headers(&self) -> Vec<(String, Vec<u8>)>;
    /// Sets a request header, replacing any value it had.
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Removes a request header.
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;
    /// Rewrites the headers of `side` in one go: `remove` names go, `set` values replace
    /// or add. `current` is the map as [`Host::request_headers`] or
    /// [`Host::response_headers`] returned it, if the caller still has it. Hosts whose
    /// calls are dear (Wasm: one per header) replace the whole map at once instead.
    fn rewrite_headers(
        &mut self,
        side: Side,
        _current: Option<Vec<(String, Vec<u8>)>>,
        set: &[(&str, &str)],
        remove: &[&str],
    ) -> Result<(), HostError> {
        for name in remove {
            match side {
                Side::Request => self.remove_request_header(name)?,
                Side::Response => self.remove_response_header(name)?,
            }
        }
        for (name, value) in set {
            match side {
                Side::Request => self.set_request_header(name, value)?,
                Side::Response => self.set_response_header(name, value)?,
            }
        }
        Ok(())
    }
    /// How large a unary answer may be to be written into the upstream response while
    /// the filter holds it (headers rewritten, body replaced, the response then
    /// continued), as native does, rather than sent as a local reply: Envoy's buffer
    /// limit for the stream, which such a body counts against. None: never in place.
    fn in_place_limit(&self) -> Option<usize> {
        None
    }
    /// The request header in which this host hands a bodiless request's frame on
    /// ([`Host::append_request_body`]), if it uses one: the core removes it from every
    /// request, so that a client cannot hand one over itself.
    fn frame_header(&self) -> Option<&'static str> {
        None
    }
    /// A bodiless request's frame as the header this host hands it on in
    /// ([`Host::frame_header`]), written with the request's other headers in one
    /// rewrite instead of by [`Host::append_request_body`]. None: append it.
    fn frame_as_header(&self, _frame: &[u8]) -> Option<String> {
        None
    }
    /// One response header's value (None when absent or not UTF-8).
    fn response_header(&self, name: &str) -> Option<String>;
    /// All response headers, values as bytes.
    fn response_headers(&self) -> Vec<(String, Vec<u8>)>;
    /// Sets a response header, replacing any value it had.
    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Removes a response header.
    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError>;
    /// All response trailers, values as bytes.
    fn response_trailers(&self) -> Vec<(String, Vec<u8>)>;
    /// Envoy's `response.code_details` (`route_not_found`, `upstream_reset_...`), if any.
    fn response_code_details(&self) -> Option<String>;
    /// The body bytes Envoy holds for `side` now.
    fn body(&self, side: Side) -> Result<Vec<u8>, HostError>;
    /// Replaces the first `held` bytes of what Envoy holds for `side` with `new`.
    fn replace_body(&mut self, side: Side, held: usize, new: &[u8]) -> Result<(), HostError>;
    /// Answers the request with a local reply.
    fn send_response(&mut self, status: u16, headers: &[(String, String)], body: &[u8]) -> Result<(), HostError>;
    /// Whether this host can give a request without a body a body in the headers
    /// phase (in its frame header, [`Host::frame_as_header`], else by
    /// [`Host::append_request_body`]); if not, the core calls [`Host::own_call`].
    fn can_append_request_body(&self) -> bool;
    /// Gives a request without a body its gRPC frame as body, in the headers phase
    /// (asked only of a host that can and hands no frame header over).
    fn append_request_body(&mut self, _frame: &[u8]) -> Result<(), HostError> {
        Err(HostError("this host cannot append a body to a request".into()))
    }
    /// Makes the gRPC call of a request without a body itself; the answer
    /// comes back through [`Request::call_message`] and friends. Returns the call's token.
    fn own_call(&mut self, call: OwnCall) -> Result<u32, OwnCallError>;
    /// Cancels a call made by [`Host::own_call`].
    fn cancel_own_call(&mut self, token: u32);
    /// A live stream's JSON was written into what Envoy holds: let it go to
    /// the client (now, or soon: then the state in `live` says what is held).
    /// `end`: the stream's closing bytes are in it.
    fn release_stream(&mut self, live: &Rc<RefCell<Live>>, end: bool) -> Action;
    /// The request no longer holds stream data (a reply was sent, or it ended).
    fn forget_stream(&mut self);
    /// Raises Envoy's buffer limit for this request to `limit` bytes, as Envoy's own
    /// transcoder does with max_request_body_size; hosts that cannot (Wasm) keep Envoy's.
    fn raise_buffer_limit(&mut self, _limit: usize) {}
}
