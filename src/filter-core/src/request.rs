//! The per-request state machine: what every Envoy callback of a request does,
//! whichever host runs the filter.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use log::{debug, error, warn};
use transcoder::{source, HttpReply, RequestOutcome, RequestPlan, ResponseStream, Status, Transcoder};

use crate::headers::{
    find, grpc_status_of, is_grpc_response_header, non_grpc_answer, text_pairs, RestTarget, GRPC_STATUS_HEADERS,
};
use crate::metrics::{self, Counter};
use crate::{Action, Host, HostError, Side};

/// Past this many request body bytes the request headers go upstream before
/// the body is complete: a frame passed to Envoy while the filter holds the
/// request would be buffered, and refused (413) over the listener's
/// per_connection_buffer_limit_bytes (1 MiB by default).
pub const RELEASE_HEADERS_AFTER: usize = 64 * 1024;

/// A server stream whose JSON goes to the client as its messages complete.
///
/// Every chunk's raw bytes are replaced, in what Envoy holds, by the JSON of
/// the messages it completes; the host then lets that go ([`Host::release_stream`]):
/// at once (dynamic modules), or on the worker's next tick (Wasm, whose host can
/// only rewrite data a filter holds: it keeps what it holds here).
#[derive(Debug, Default)]
pub struct Live {
    /// Bytes of our JSON at the start of the body Envoy holds for us.
    pub json_len: usize,
    /// A chunk (or the trailers) is held until the host releases it.
    pub held: bool,
    /// The response headers were rewritten for the stream, to go with the first JSON.
    pub headers_sent: bool,
    /// The headers (and data) went to the client: headers can no longer change.
    pub released: bool,
    /// The filter gave up on the stream after messages were sent (bad frame,
    /// limit): the rest of the upstream body is dropped.
    pub failed: bool,
}

/// Per-request state.
pub struct Request {
    /// No descriptor set is loaded yet (from this source): answer 503.
    not_ready: Option<Rc<str>>,
    /// `service.Method` of a transcoded request, for the request counters.
    metric_method: Option<(String, String)>,
    pub(crate) transcoder: Option<Arc<Transcoder>>,
    /// Set while the request is being transcoded.
    pub(crate) plan: Option<RequestPlan>,
    pub(crate) content_type: Option<String>,
    /// A local reply was sent: our own callbacks must let it through.
    replied: bool,
    /// The call the filter made itself for a request without a body ([`crate::OwnCall`]).
    pub(crate) via_stream: Option<u32>,
    /// Upstream response headers (gRPC initial metadata) to pass on.
    pub(crate) response_headers: Vec<(String, String)>,
    /// The filter's own call brought initial metadata entries (else its answer was trailers-only).
    pub(crate) initial_metadata: bool,
    pub(crate) stream_messages: Vec<Vec<u8>>,
    pub(crate) stream_trailers: Vec<(String, String)>,
    /// For a server-streaming method: the stream's transcoder.
    pub(crate) response_stream: Option<ResponseStream>,
    /// The JSON body transcoded so far by the filter's own call.
    pub(crate) stream_body: Vec<u8>,
    /// The upstream response's `grpc-encoding` (for compressed messages).
    response_encoding: Option<String>,
    /// A server stream passed on message by message.
    live: Option<Rc<RefCell<Live>>>,
    /// A client stream: its body's elements become frames as they complete.
    request_stream: Option<transcoder::RequestStream>,
    /// The REST request as the client sent it, for errors about its routing.
    pub(crate) target: Option<RestTarget>,
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
    /// The HTTP status the client gets, once known (spares on_log a host call).
    answered: Option<u16>,
    /// Envoy holds response body bytes the filter has not drained.
    response_held: bool,
}

impl Request {
    /// A request served with `transcoder` (None: none loaded yet; then
    /// `not_ready` names the source awaited, when requests must wait for it).
    pub fn new(transcoder: Option<Arc<Transcoder>>, not_ready: Option<Rc<str>>) -> Self {
        Request {
            not_ready,
            metric_method: None,
            transcoder,
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
            answered: None,
            response_held: false,
        }
    }

    /// Serves this request with its route's own transcoder instead of the one it was
    /// created with (a host that knows the route only at request headers, such as a
    /// dynamic module with per-route configuration, calls this before
    /// [`Request::on_request_headers`]). The route's set is loaded, so nothing is awaited.
    pub fn use_route_transcoder(&mut self, transcoder: Arc<Transcoder>) {
        self.transcoder = Some(transcoder);
        self.not_ready = None;
    }

    /// The answer is final, whoever made it (upstream, our local replies, Envoy): count it.
    pub fn on_log(&self, host: &dyn Host) {
        if let Some((service, method)) = &self.metric_method {
            let status = match self.answered {
                Some(status) => status.to_string(),
                None => host.response_header(":status").unwrap_or_else(|| "none".into()),
            };
            let status = metrics::element(&status);
            host.count(Counter::Request { service, method, status: &status });
        }
    }

    /// Request headers: routes the request and rewrites it into its gRPC call.
    pub fn on_request_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Action {
        // One read of the whole map: under Wasm each host call costs more than the
        // transcoding of a small message.
        let headers = host.request_headers();
        let forged = host.frame_header().filter(|marker| headers.iter().any(|(k, _)| k == marker));
        let action = self.route_headers(host, headers, end_of_stream);
        if let Some(marker) = forged.filter(|_| !self.transcoding()) {
            // Only the host may hand a frame over in this header: a client's would replace
            // the body of whatever request carries it (a transcoded request's rewrite drops it).
            if let Err(e) = host.remove_request_header(marker) {
                warn!("rust_grpc_proxy: cannot remove a client's {marker}: {e}");
            }
        }
        action
    }

    fn route_headers(&mut self, host: &mut dyn Host, headers: Vec<(String, Vec<u8>)>, end_of_stream: bool) -> Action {
        let value = |name: &str| {
            headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| std::str::from_utf8(v).ok()).map(str::to_string)
        };
        let content_type = value("content-type");
        if content_type.as_deref().is_some_and(transcoder::is_grpc_content_type) {
            return Action::Continue;
        }
        let Some(t) = self.transcoder.clone() else {
            if let Some(source) = self.not_ready.clone() {
                // Without descriptors no route is known: every REST request may be one.
                host.count(Counter::NotLoadedReply);
                self.send(host, source::not_loaded_reply(&source), &mut Vec::new());
                return Action::Pause;
            }
            return Action::Continue;
        };
        let (Some(method), Some(path)) = (value(":method"), value(":path")) else {
            return Action::Continue;
        };
        let plan = match t.route_request(&method, &path) {
            RequestOutcome::PassThrough(reason) => {
                debug!("rust_grpc_proxy: passing {method} {path} through: {reason}");
                return Action::Continue;
            }
            RequestOutcome::Reject(status) => {
                self.reject(host, &t, &status);
                return Action::Pause;
            }
            RequestOutcome::Transcode(plan) => plan,
        };
        self.metric_method =
            t.method(&plan).map(|info| (metrics::element(&info.service), metrics::element(&info.name)));
        self.content_type = content_type;
        self.response_stream = t.response_stream(&plan);
        self.request_stream = t.request_stream(&plan);
        let grpc_path = t.method(&plan).map(|info| info.grpc_path.clone()).unwrap_or_default();
        let authority = value(":authority").unwrap_or_default();
        // A request that ended with its headers gets its frame as body where the host can
        // give it one (then it goes through the router like any other), else the filter
        // makes the call itself.
        let frame = if end_of_stream && host.can_append_request_body() {
            match t.request_frame(&plan, self.content_type.as_deref(), &[]) {
                Ok(frame) => Some(frame),
                Err(status) => {
                    self.reject(host, &t, &status);
                    return Action::Pause;
                }
            }
        } else {
            None
        };
        let frame_header = frame.as_deref().and_then(|frame| host.frame_as_header(frame));
        if let Err(e) = rewrite_request_headers(host, headers, &grpc_path, &method, &path, frame_header.as_deref()) {
            self.reject(host, &t, &Status::internal(format!("cannot rewrite the request headers: {e}")));
            return Action::Pause;
        }
        self.target = Some(RestTarget { method, path, authority, grpc_path });
        self.plan = Some(plan);
        if let Some(max) = t.max_request_body_size() {
            host.raise_buffer_limit(max);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        match frame {
            // Handed over with the headers.
            Some(_) if frame_header.is_some() => Action::Continue,
            Some(frame) => match host.append_request_body(&frame) {
                Ok(()) => Action::Continue,
                Err(e) => {
                    self.reject(host, &t, &Status::internal(format!("cannot give the request its body: {e}")));
                    Action::Pause
                }
            },
            None => {
                if let Err(status) = self.call_without_body(host) {
                    self.reject(host, &t, &status);
                }
                Action::Pause
            }
        }
    }

    /// A request body chunk (what Envoy holds for the request now).
    pub fn on_request_body(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Action {
        let Some(t) = self.transcoder.clone() else { return Action::Continue };
        if self.replied {
            return Action::Pause;
        }
        if self.plan.is_none() || self.via_stream.is_some() {
            return Action::Continue;
        }
        let chunk = match host.body(Side::Request) {
            Ok(chunk) => chunk,
            Err(e) => {
                self.reject(host, &t, &Status::internal(format!("cannot read the request body: {e}")));
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
                self.send(host, reply, &mut Vec::new());
                return Action::Pause;
            }
        }
        if self.request_stream.is_some() {
            return self.stream_request_chunk(host, &t, &chunk, end_of_stream);
        }
        self.request_body.extend_from_slice(&chunk);
        if !end_of_stream {
            // Envoy holds nothing: the body is ours until it is complete.
            if let Err(e) = host.replace_body(Side::Request, chunk.len(), &[]) {
                self.reject(host, &t, &Status::internal(format!("cannot take the request body: {e}")));
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
        self.finish_request_body(host, chunk.len())
    }

    /// Request trailers: the body is complete.
    pub fn on_request_trailers(&mut self, host: &mut dyn Host) -> Action {
        if self.replied {
            return Action::Pause;
        }
        if self.plan.is_none() || self.via_stream.is_some() {
            return Action::Continue;
        }
        // The body ended without end_of_stream because trailers follow: it is complete now.
        if let Some(t) = self.transcoder.clone().filter(|_| self.request_stream.is_some()) {
            return self.stream_request_chunk(host, &t, &[], true);
        }
        if self.body_streaming {
            // The body was passed on chunk by chunk (empty): nothing is held to put the frame in.
            let status = Status::new(
                transcoder::Code::Unimplemented,
                format!("request trailers after a body over {RELEASE_HEADERS_AFTER} bytes are not supported; send the body without trailers"),
            );
            if let Some(t) = self.transcoder.clone() {
                self.reject(host, &t, &status);
            }
            return Action::Pause;
        }
        let held = host.body(Side::Request).unwrap_or_default();
        self.request_body.extend_from_slice(&held);
        self.finish_request_body(host, held.len())
    }

    /// Response headers: a gRPC answer to our call is held (or streamed), anything else answered as JSON.
    pub fn on_response_headers(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Action {
        if !self.handling_response() {
            return Action::Continue;
        }
        let headers = text_pairs(host.response_headers());
        self.answered = find(&headers, ":status").and_then(|s| s.parse().ok());
        let is_grpc = find(&headers, "content-type").is_some_and(transcoder::is_grpc_content_type);
        if !is_grpc {
            // Not a gRPC answer to our gRPC call: an Envoy error (no upstream, reset,
            // timeout, body over the buffer limit) or a backend that is no gRPC server.
            // The client asked for JSON, so it gets a JSON status saying so (Envoy's
            // native filter passes such answers on as they are).
            self.plan = None;
            if let Some(t) = self.transcoder.clone() {
                let details = host.response_code_details();
                let reply = non_grpc_answer(&t, &headers, details, self.target.as_ref());
                self.send(host, reply, &mut Vec::new());
                return Action::Pause;
            }
            return Action::Continue;
        }
        self.response_headers = headers.iter().filter(|(k, _)| !is_grpc_response_header(k)).cloned().collect();
        self.response_encoding = find(&headers, "grpc-encoding").map(str::to_string);
        if end_of_stream {
            // Trailers-only: the status is in the headers and there is no body.
            return self.finish_response(host, &[], &headers, true, Some(0));
        }
        // Keep the status headers in case the body ends without trailers.
        self.stream_trailers = headers.into_iter().filter(|(k, _)| k.starts_with("grpc-")).collect();
        if let Some(stream) = self.response_stream.as_mut() {
            stream.set_encoding(self.response_encoding.as_deref());
            self.live = Some(Rc::default());
        }
        Action::Pause
    }

    /// A response body chunk.
    pub fn on_response_body(&mut self, host: &mut dyn Host, end_of_stream: bool) -> Action {
        if !self.handling_response() {
            // Our own local reply comes through here too: it must pass.
            return Action::Continue;
        }
        if let Some(live) = self.live.clone() {
            return self.live_body(host, &live, end_of_stream);
        }
        let Some(t) = self.transcoder.clone() else { return Action::Continue };
        // Envoy holds nothing (its buffer limit would fail big replies): the body is ours until it is complete.
        let chunk = host.body(Side::Response).unwrap_or_default();
        self.response_body.extend_from_slice(&chunk);
        if let Some(max) = t.max_response_body_size() {
            if self.response_body.len() > max {
                self.plan = None;
                self.response_body = Vec::new();
                let status =
                    Status::internal(format!("the gRPC response is larger than max_response_body_size ({max} bytes)"));
                self.send(host, t.local_error(&status), &mut Vec::new());
                return Action::Pause;
            }
        }
        if end_of_stream {
            let body = std::mem::take(&mut self.response_body);
            let status_headers = std::mem::take(&mut self.stream_trailers);
            return self.finish_response(host, &body, &status_headers, false, Some(chunk.len()));
        } else if let Err(e) = host.replace_body(Side::Response, chunk.len(), &[]) {
            error!("rust_grpc_proxy: cannot take a response chunk: {e}");
            self.response_held = true;
        }
        Action::Pause
    }

    /// Response trailers: the gRPC status is in; the answer goes.
    pub fn on_response_trailers(&mut self, host: &mut dyn Host) -> Action {
        if !self.handling_response() {
            // Our own local reply comes through here too: it must pass.
            return Action::Continue;
        }
        let trailers = text_pairs(host.response_trailers());
        if let Some(live) = self.live.clone() {
            return self.live_end(host, &live, &trailers);
        }
        let mut body = std::mem::take(&mut self.response_body);
        if self.response_held {
            // A chunk could not be drained: Envoy still holds it (else it holds nothing).
            body = host.body(Side::Response).unwrap_or_default();
        }
        let held = Some(if self.response_held { body.len() } else { 0 });
        self.finish_response(host, &body, &trailers, false, held)
    }

    /// The request is being transcoded (its headers were rewritten into a gRPC call's).
    pub fn transcoding(&self) -> bool {
        self.plan.is_some()
    }

    /// Leaves the response alone from here on (headers, body, trailers pass as they are).
    pub fn leave_response(&mut self) {
        self.plan = None;
        self.live = None;
    }

    /// The filter's own call, if it made one (its host's token).
    pub fn own_call_token(&self) -> Option<u32> {
        self.via_stream
    }

    /// Sends a local reply, with extra headers first (upstream metadata).
    pub(crate) fn send(&mut self, host: &mut dyn Host, reply: HttpReply, extra: &mut Vec<(String, String)>) {
        let HttpReply { status, headers, body } = reply;
        extra.extend(headers);
        self.replied = true;
        self.answered = Some(status);
        host.forget_stream();
        self.plan = None;
        if let Err(e) = host.send_response(status, extra, &body) {
            error!("rust_grpc_proxy: could not send the reply ({status}): {e}");
        }
    }

    pub(crate) fn reject(&mut self, host: &mut dyn Host, transcoder: &Transcoder, status: &Status) {
        host.count(Counter::TranscodingError(status.code));
        debug!("rust_grpc_proxy: rejecting request: {status}");
        self.send(host, transcoder.local_error(status), &mut Vec::new());
    }

    /// Builds the reply once the whole upstream response is in: `held` is how many of its
    /// body bytes Envoy still holds in this callback (None: unknown, so no answer in place).
    /// Continue when the answer was written into the held response, else Pause.
    fn finish_response(
        &mut self,
        host: &mut dyn Host,
        body: &[u8],
        status_headers: &[(String, String)],
        trailers_only: bool,
        held: Option<usize>,
    ) -> Action {
        let (Some(t), Some(plan)) = (self.transcoder.clone(), self.plan.take()) else {
            return Action::Pause;
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
            None => {
                let reply = t.unary_response_encoded(&plan, body, grpc, encoding.as_deref());
                // A body over Envoy's buffer limit would fail there: a local reply has no limit.
                let fits = host.in_place_limit().is_some_and(|limit| reply.body.len() < limit);
                if let Some(held) = held.filter(|_| fits) {
                    match self.answer_in_place(host, &reply, held) {
                        Ok(()) => return Action::Continue,
                        Err(e) => debug!("rust_grpc_proxy: answering with a local reply instead: {e}"),
                    }
                }
                reply
            }
        };
        let mut headers = std::mem::take(&mut self.response_headers);
        self.send(host, reply, &mut headers);
        Action::Pause
    }

    /// Writes a unary answer into the upstream response Envoy holds, as native does:
    /// the upstream's own headers stay (`x-envoy-upstream-service-time`, metadata),
    /// the gRPC ones go, and an empty error body keeps its content-type, which a
    /// local reply drops. The trailers go on as they came (HTTP/2 clients see them).
    fn answer_in_place(&mut self, host: &mut dyn Host, reply: &HttpReply, held: usize) -> Result<(), HostError> {
        let status = reply.status.to_string();
        let length = reply.body.len().to_string();
        let mut set: Vec<(&str, &str)> = vec![(":status", &status), ("content-length", &length)];
        set.extend(reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        host.rewrite_headers(Side::Response, None, &set, &GRPC_STATUS_HEADERS)?;
        if held > 0 || !reply.body.is_empty() {
            host.replace_body(Side::Response, held, &reply.body)?;
        }
        self.replied = true;
        self.answered = Some(reply.status);
        Ok(())
    }

    /// Turns the whole request body into the gRPC frame, which replaces the
    /// `held` bytes Envoy still holds (the last chunk).
    fn finish_request_body(&mut self, host: &mut dyn Host, held: usize) -> Action {
        let (Some(t), Some(plan)) = (self.transcoder.clone(), self.plan.as_ref()) else {
            return Action::Continue;
        };
        let body = std::mem::take(&mut self.request_body);
        match t.request_frame(plan, self.content_type.as_deref(), &body) {
            Ok(frame) => {
                drop(body);
                match host.replace_body(Side::Request, held, &frame) {
                    Ok(()) => Action::Continue,
                    Err(e) => {
                        self.reject(host, &t, &Status::internal(format!("cannot replace the request body: {e}")));
                        Action::Pause
                    }
                }
            }
            Err(status) => {
                self.reject(host, &t, &status);
                Action::Pause
            }
        }
    }

    /// A chunk of a client stream's body: replaced by the frames of the
    /// elements it completed, and passed on at once.
    fn stream_request_chunk(&mut self, host: &mut dyn Host, t: &Transcoder, chunk: &[u8], end: bool) -> Action {
        let (Some(plan), Some(stream)) = (self.plan.as_ref(), self.request_stream.as_mut()) else {
            return Action::Continue;
        };
        let result =
            t.request_stream_chunk(plan, stream, self.content_type.as_deref(), chunk, end).and_then(|frames| {
                if chunk.is_empty() && frames.is_empty() {
                    return Ok(());
                }
                host.replace_body(Side::Request, chunk.len(), &frames)
                    .map_err(|e| Status::internal(format!("cannot replace the request body: {e}")))
            });
        match result {
            Ok(()) => Action::Continue,
            Err(status) => {
                self.reject(host, t, &status);
                Action::Pause
            }
        }
    }

    /// A chunk of a live stream: the messages it completes replace its raw
    /// bytes in what Envoy holds, which the host then lets go.
    fn live_body(&mut self, host: &mut dyn Host, live: &Rc<RefCell<Live>>, end_of_stream: bool) -> Action {
        let Some(t) = self.transcoder.clone() else { return Action::Continue };
        let body = host.body(Side::Response).unwrap_or_default();
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
                        self.reject(host, &t, &status);
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
            self.rewrite_stream_headers(host);
            state.headers_sent = true;
        }
        // The decoder keeps an unfinished frame itself: Envoy keeps only our JSON.
        if let Err(e) = replace_held_tail(host, &body, start, &json) {
            error!("rust_grpc_proxy: cannot rewrite a stream chunk: {e}");
        }
        state.json_len = start + json.len();
        if end_of_stream {
            // The upstream ended without trailers: its status is in the headers, if anywhere.
            drop(state);
            let status_headers = std::mem::take(&mut self.stream_trailers);
            return self.live_end(host, live, &status_headers);
        }
        if state.headers_sent && state.json_len > 0 {
            drop(state);
            return host.release_stream(live, false);
        }
        Action::Pause
    }

    /// The end of a live stream: the closing bytes go after what was sent.
    fn live_end(
        &mut self,
        host: &mut dyn Host,
        live: &Rc<RefCell<Live>>,
        status_headers: &[(String, String)],
    ) -> Action {
        let Some(t) = self.transcoder.clone() else { return Action::Continue };
        let body = host.body(Side::Response).unwrap_or_default();
        let mut state = live.borrow_mut();
        let start = state.json_len.min(body.len());
        let raw = &body[start..];
        if !state.headers_sent {
            // Nothing went out: the whole stream is one answer, as for a stream without live delivery.
            drop(state);
            self.live = None;
            host.forget_stream();
            let raw = raw.to_vec();
            self.finish_response(host, &raw, status_headers, false, None);
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
                                let _ = host.set_response_header(&name, &value);
                            }
                        }
                    }
                }
                Err(status) => out = t.stream_abort(stream, &status),
            }
        }
        self.plan = None;
        if let Err(e) = replace_held_tail(host, &body, start, &out) {
            error!("rust_grpc_proxy: cannot end a stream: {e}");
        }
        state.json_len = start + out.len();
        if state.held {
            // A chunk is held: continuing sends it, then the trailers.
            drop(state);
            host.forget_stream();
            return Action::Continue;
        }
        drop(state);
        host.release_stream(live, true)
    }

    /// The upstream's headers, made the headers of a JSON stream.
    fn rewrite_stream_headers(&self, host: &mut dyn Host) {
        let content_type = self.response_stream.as_ref().map(|s| s.content_type());
        let remove = [
            "content-length",
            "grpc-encoding",
            "grpc-accept-encoding",
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
        ];
        let set: Vec<(&str, &str)> = content_type.iter().map(|ct| ("content-type", ct.as_ref())).collect();
        if let Err(e) = host.rewrite_headers(Side::Response, None, &set, &remove) {
            warn!("rust_grpc_proxy: cannot rewrite a stream's response headers: {e}");
        }
    }

    fn handling_response(&self) -> bool {
        !self.replied && self.plan.is_some() && self.via_stream.is_none()
    }
}

/// Rewrites the request headers (`current`, as read) into a gRPC call's, with the
/// host's frame header when it hands the frame over in one (`frame_header`).
fn rewrite_request_headers(
    host: &mut dyn Host,
    current: Vec<(String, Vec<u8>)>,
    grpc_path: &str,
    method: &str,
    path: &str,
    frame_header: Option<&str>,
) -> Result<(), crate::HostError> {
    let mut set = vec![
        ("x-envoy-original-path", path),
        ("x-envoy-original-method", method),
        (":path", grpc_path),
        (":method", "POST"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ];
    // A client's frame header goes too (see `Host::frame_header`), unless ours replaces it.
    let remove: &[&str] = match host.frame_header() {
        Some(marker) => {
            if let Some(frame) = frame_header {
                set.push((marker, frame));
            }
            &["content-length", marker]
        }
        None => &["content-length"],
    };
    host.rewrite_headers(Side::Request, Some(current), &set, remove)
}

/// Replaces what follows `start` in the response body Envoy holds (`held`)
/// with `new`. Hosts can only replace a prefix or append, so a JSON prefix
/// still held is written again.
fn replace_held_tail(host: &mut dyn Host, held: &[u8], start: usize, new: &[u8]) -> Result<(), crate::HostError> {
    if start == 0 {
        return host.replace_body(Side::Response, held.len(), new);
    }
    let mut body = Vec::with_capacity(start + new.len());
    body.extend_from_slice(&held[..start.min(held.len())]);
    body.extend_from_slice(new);
    host.replace_body(Side::Response, held.len(), &body)
}
