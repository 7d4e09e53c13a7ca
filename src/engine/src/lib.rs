//! The transcoding engine: everything that turns JSON/REST into gRPC and back,
//! as plain functions from bytes to bytes, so it can be tested natively and on
//! wasm32 without a proxy.
//!
//! [`Transcoder`] is the whole engine behind one type: built once from the
//! plugin configuration, then asked, per request, where the request goes
//! ([`Transcoder::route_request`]), what gRPC message it becomes
//! ([`Transcoder::request_frame`]) and what HTTP answer the gRPC reply
//! becomes ([`Transcoder::unary_response`]).

pub mod config;
pub mod direct;
pub mod error;
pub mod frame;
pub mod json;
pub mod path_matcher;
pub mod path_template;
pub mod percent;
pub mod query;
pub mod reflection;
pub mod request;
pub mod request_stream;
pub mod response;
pub mod routes;
pub mod source;
pub mod status;
pub mod stream;
pub mod surface;

#[cfg(test)]
mod test_rng;

use std::collections::HashSet;
use std::sync::OnceLock;

use prost_reflect::DescriptorPool;

pub use config::TranscoderConfig;
pub use error::ConfigError;
use query::QueryParam;
use request::{FieldBinding, ParseOptions, Source};
use response::{HttpPayload, Printer, JSON};
use routes::{MethodInfo, Route, RouteTable};
pub use status::{Code, Status};
pub use stream::{ResponseStream, StreamEnd, StreamFormat};

/// A loaded configuration: descriptors, routes and options, ready to serve.
pub struct Transcoder {
    config: TranscoderConfig,
    pool: DescriptorPool,
    table: RouteTable,
    printer: Printer,
    parse: ParseOptions,
    ignored_query: HashSet<String>,
    /// Per route (same index), its message types compiled for the fast path on
    /// its first request: a large set has thousands of routes, most never
    /// called in a given VM, and compiling them all made the load slower.
    /// `OnceLock`, as the native module shares one `Transcoder` between threads.
    direct: Vec<OnceLock<DirectRoute>>,
}

/// A route's message types compiled for the fast path.
#[derive(Debug)]
struct DirectRoute {
    schema: direct::Schema,
    /// The request type, when the body is the whole message in JSON (`body: "*"`).
    input: Option<u32>,
    /// The response type, when the whole message is printed as JSON.
    output: Option<u32>,
}

/// What to do with an incoming request.
#[derive(Debug)]
pub enum RequestOutcome {
    /// Not a request this filter transcodes: let it through untouched, as Envoy does.
    PassThrough(String),
    /// Answer with this error now.
    Reject(Status),
    /// Transcode it along this plan.
    Transcode(RequestPlan),
}

/// A matched request: the route and the values its URL binds.
#[derive(Debug, Clone)]
pub struct RequestPlan {
    route: usize,
    bindings: Vec<FieldBinding>,
}

impl RequestPlan {
    /// The values the URL binds (path variables, then query parameters).
    pub fn bindings(&self) -> &[FieldBinding] {
        &self.bindings
    }
}

/// The end of a stream whose messages were sent: what closes its body, and
/// the status it ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamTail {
    /// Bytes to append to the body (`]`, or a final error record).
    pub bytes: Vec<u8>,
    /// The stream's final status.
    pub status: Status,
}

/// A client stream being transcoded: where its body's elements start and end.
#[derive(Debug, Default)]
pub struct RequestStream {
    splitter: request_stream::ElementSplitter,
    /// `google.api.HttpBody` messages sent so far (a raw client stream).
    raw_messages: usize,
}

/// A complete HTTP answer made by the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// HTTP status code.
    pub status: u16,
    /// Response headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

/// The gRPC status headers of a reply (from trailers, or trailers-only headers).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcStatusHeaders<'a> {
    /// `grpc-status`.
    pub status: Option<&'a str>,
    /// `grpc-message`.
    pub message: Option<&'a str>,
    /// `grpc-status-details-bin`.
    pub details_bin: Option<&'a str>,
    /// The status came in a trailers-only answer (one header block, no body).
    /// Envoy then keeps that whole block as the HTTP headers, details included.
    pub trailers_only: bool,
}

impl Transcoder {
    /// Loads a plugin configuration (the JSON of Envoy's `GrpcJsonTranscoder`).
    pub fn from_json(config: &[u8]) -> Result<Self, ConfigError> {
        Transcoder::new(TranscoderConfig::from_json(config)?)
    }

    /// Loads `config` with `descriptor_set` in place of its own descriptor
    /// (a set fetched from a `descriptor_url`).
    pub fn with_descriptor_set(config: &TranscoderConfig, descriptor_set: Vec<u8>) -> Result<Self, ConfigError> {
        let mut config = config.clone();
        config.proto_descriptor_bin = Some(descriptor_set);
        Transcoder::new(config)
    }

    /// Loads an already parsed configuration.
    pub fn new(mut config: TranscoderConfig) -> Result<Self, ConfigError> {
        let bytes = config.proto_descriptor_bin.take().unwrap_or_default();
        let bytes = direct::without_source_info(&bytes).unwrap_or(bytes);
        let pool = decode_descriptor_set(&bytes).map_err(|e| {
            ConfigError::field(
                "proto_descriptor_bin",
                format!("not a usable FileDescriptorSet ({e}); build it with protoc --include_imports"),
            )
        })?;
        let table = RouteTable::build(&pool, &config)?;
        Ok(Transcoder {
            direct: table.routes.iter().map(|_| OnceLock::new()).collect(),
            printer: Printer::new(&config.print_options),
            parse: ParseOptions {
                case_insensitive_enums: config.case_insensitive_enum_parsing,
                reject_binding_body_collisions: config.request_validation_options.reject_binding_body_field_collisions,
            },
            ignored_query: config.ignored_query_parameters.iter().cloned().collect(),
            table,
            pool,
            config,
        })
    }

    /// The configuration in force (without the descriptor bytes).
    pub fn config(&self) -> &TranscoderConfig {
        &self.config
    }

    /// Problems found in bindings at load time (worth a log line each).
    pub fn warnings(&self) -> &[String] {
        &self.table.warnings
    }

    /// Every route, in load order.
    pub fn routes(&self) -> &[Route] {
        &self.table.routes
    }

    /// Decides what to do with a request from its method and `:path` (with query).
    pub fn route_request(&self, http_method: &str, path_and_query: &str) -> RequestOutcome {
        let (path, query) = split_path(path_and_query);
        let Some(matched) = self.table.matcher.lookup(http_method, path) else {
            return self.unknown_method(http_method, path);
        };
        let index = *matched.value;
        let Some(route) = self.table.routes.get(index) else {
            return self.unknown_method(http_method, path);
        };
        if let Some(problem) = &route.problem {
            return RequestOutcome::Reject(Status::invalid_argument(format!(
                "this method's HTTP binding is broken: {problem}"
            )));
        }
        // Native keeps the last of a singular field's values; strict mode refuses the second.
        let strict = self.config.request_validation_options.reject_unknown_query_parameters;
        let mut bindings = Vec::with_capacity(matched.bindings.len());
        for binding in matched.bindings {
            if let Some(invalid) = binding.invalid_utf8 {
                return RequestOutcome::Reject(Status::invalid_argument(format!(
                    "path variable `{}`: {invalid}",
                    binding.field_path.join(".")
                )));
            }
            let Some((_, fields)) = route.variables.iter().find(|(names, _)| names.as_slice() == binding.field_path)
            else {
                continue;
            };
            bindings.push(FieldBinding {
                fields: fields.clone(),
                map_key: None,
                name: binding.field_path.join("."),
                value: binding.value,
                source: Source::Path,
            });
        }
        for QueryPair { raw, name, value } in parse_query(query, self.config.query_param_unescape_plus) {
            if self.ignored_query.contains(&name) {
                continue;
            }
            // A value that is not UTF-8 matters only if the parameter names a field.
            let (value, bad_value) = match value {
                Ok(value) => (value, None),
                Err(e) => (e.lossless.clone(), Some(e)),
            };
            // A name that only resolves as written (a json_name holding escapes) is taken as written.
            let input = &route.method.input;
            let name =
                if raw != name && !query::query_param_resolves(input, &name) && query::query_param_resolves(input, raw)
                {
                    raw.to_string()
                } else {
                    name
                };
            match query::resolve_query_param(input, name, value) {
                QueryParam::Bound(binding) => {
                    if let Some(e) = bad_value {
                        return RequestOutcome::Reject(Status::invalid_argument(format!(
                            "query parameter `{}`: {e}",
                            binding.name
                        )));
                    }
                    if strict
                        && binding.is_singular()
                        && bindings.iter().any(|b| b.source == Source::Query && b.same_target(&binding))
                    {
                        return RequestOutcome::Reject(Status::invalid_argument(format!(
                            "query parameter `{}` is given more than once, but its field is not repeated",
                            binding.name
                        )));
                    }
                    bindings.push(binding)
                }
                QueryParam::Invalid { name, reason } => {
                    return RequestOutcome::Reject(Status::invalid_argument(format!(
                        "query parameter `{name}`: {reason}"
                    )))
                }
                QueryParam::Unknown { .. } if self.config.ignore_unknown_query_parameters => {}
                QueryParam::Unknown { name, reason } => {
                    let message = format!("unknown query parameter `{name}`: {reason}");
                    return if self.config.request_validation_options.reject_unknown_query_parameters {
                        RequestOutcome::Reject(Status::invalid_argument(message))
                    } else {
                        RequestOutcome::PassThrough(message)
                    };
                }
            }
        }
        RequestOutcome::Transcode(RequestPlan { route: index, bindings })
    }

    fn unknown_method(&self, http_method: &str, path: &str) -> RequestOutcome {
        let message = format!("no method is bound to {http_method} {path}");
        if self.config.request_validation_options.reject_unknown_method {
            RequestOutcome::Reject(Status::new(Code::NotFound, message))
        } else {
            RequestOutcome::PassThrough(message)
        }
    }

    /// The route a plan was made for.
    pub fn route(&self, plan: &RequestPlan) -> Option<&Route> {
        self.table.routes.get(plan.route)
    }

    /// The gRPC method a plan calls.
    pub fn method(&self, plan: &RequestPlan) -> Option<&MethodInfo> {
        self.route(plan).map(|r| r.method.as_ref())
    }

    /// The request message (unframed) for a plan and its body.
    pub fn request_message(
        &self,
        plan: &RequestPlan,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let route = self.route(plan).ok_or_else(|| Status::internal("the route of this request vanished"))?;
        let http_body = route.method.input.full_name() == routes::HTTP_BODY;
        if body.is_empty() {
            if route.method.client_streaming && !http_body {
                return Err(empty_stream_body());
            }
            // Without a body (a GET), the message is its URL bindings: straight to the wire when they are plain.
            if matches!(route.body, routes::BodyRule::Whole) && !http_body {
                if let Some(message) = direct::bindings_to_wire(&plan.bindings, self.parse.case_insensitive_enums) {
                    return Ok(message);
                }
            }
        } else {
            let mut out = Vec::with_capacity(body.len());
            if self.direct_request(plan, body, &mut out) {
                return Ok(out);
            }
        }
        self.general_request_message(plan, content_type, body)
    }

    /// The request message by way of a `DynamicMessage`: everything the fast path leaves.
    fn general_request_message(
        &self,
        plan: &RequestPlan,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let route = self.route(plan).ok_or_else(|| Status::internal("the route of this request vanished"))?;
        request::build_request(route, &plan.bindings, content_type, body, self.parse)
    }

    /// The gRPC request body (one frame) for a plan and its HTTP body.
    pub fn request_frame(
        &self,
        plan: &RequestPlan,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<u8>, Status> {
        if body.is_empty() {
            // The same rules as without a body at all: an empty client stream is refused, bindings go straight to the wire.
            return self.request_message(plan, content_type, body).map(|m| frame::encode_frame(&m));
        }
        // The fast path writes the message after room for the frame header, filled
        // in afterwards: one buffer, no copy.
        let mut out = Vec::with_capacity(body.len() + frame::HEADER_LEN);
        out.resize(frame::HEADER_LEN, 0);
        if self.direct_request(plan, body, &mut out) {
            if let Ok(len) = u32::try_from(out.len() - frame::HEADER_LEN) {
                out[1..frame::HEADER_LEN].copy_from_slice(&len.to_be_bytes());
                return Ok(out);
            }
        }
        self.general_request_message(plan, content_type, body).map(|m| frame::encode_frame(&m))
    }

    /// The fast path for a JSON body that is the whole request message and no
    /// URL bindings: true when it wrote the message into `out`.
    fn direct_request(&self, plan: &RequestPlan, body: &[u8], out: &mut Vec<u8>) -> bool {
        if !plan.bindings.is_empty() || body.is_empty() {
            return false;
        }
        let Some(direct) = self.direct_route(plan.route) else { return false };
        let Some(id) = direct.input else { return false };
        let start = out.len();
        if direct.schema.json_to_wire(id, body, out).is_some() {
            return true;
        }
        out.truncate(start);
        false
    }

    /// The state of a client stream, for a client-streaming method (else
    /// `None`: the body is one message). A rule without `body:` streams too, as
    /// in Envoy's transcoder, where it is the same as `body: "*"`.
    pub fn request_stream(&self, plan: &RequestPlan) -> Option<RequestStream> {
        let route = self.route(plan)?;
        route.method.client_streaming.then(RequestStream::default)
    }

    /// The gRPC frames of the elements a chunk of a client stream's body
    /// completed; `end`: the body ended. The URL's bindings go into the first
    /// message only, as Envoy's transcoder does.
    pub fn request_stream_chunk(
        &self,
        plan: &RequestPlan,
        stream: &mut RequestStream,
        content_type: Option<&str>,
        chunk: &[u8],
        end: bool,
    ) -> Result<Vec<u8>, Status> {
        let route = self.route(plan).ok_or_else(|| Status::internal("the route of this request vanished"))?;
        if matches!(route.body, routes::BodyRule::Whole) && route.method.input.full_name() == routes::HTTP_BODY {
            return self.raw_stream_chunk(route, plan, stream, content_type, chunk, end);
        }
        let mut elements = stream.splitter.push(chunk)?;
        if end {
            if stream.splitter.is_blank() {
                return Err(empty_stream_body());
            }
            elements.extend(stream.splitter.finish()?);
        }
        let first = stream.splitter.count() + 1 - elements.len();
        let mut out = Vec::new();
        for (i, element) in elements.iter().enumerate() {
            let bindings = if first + i == 1 { plan.bindings.as_slice() } else { &[] };
            let message = request::build_request(route, bindings, content_type, element, self.parse).map_err(|e| {
                Status::new(e.code, format!("element {} of the request stream: {}", first + i, e.message))
            })?;
            frame::push_frame_header(&mut out, message.len());
            out.extend_from_slice(&message);
        }
        Ok(out)
    }

    /// A chunk of a client stream of `google.api.HttpBody`: one message per
    /// chunk, as in Envoy's transcoder. The first carries the request's content
    /// type and the URL's bindings, and an empty body still sends it.
    fn raw_stream_chunk(
        &self,
        route: &Route,
        plan: &RequestPlan,
        stream: &mut RequestStream,
        content_type: Option<&str>,
        chunk: &[u8],
        end: bool,
    ) -> Result<Vec<u8>, Status> {
        let first = stream.raw_messages == 0;
        if chunk.is_empty() && !(end && first) {
            return Ok(Vec::new());
        }
        let (bindings, content_type) = if first { (plan.bindings.as_slice(), content_type) } else { (&[][..], None) };
        let message = request::build_request(route, bindings, content_type, chunk, self.parse)?;
        stream.raw_messages += 1;
        let mut out = Vec::with_capacity(message.len() + frame::HEADER_LEN);
        frame::push_frame_header(&mut out, message.len());
        out.extend_from_slice(&message);
        Ok(out)
    }

    /// `max_request_body_size`, if set.
    pub fn max_request_body_size(&self) -> Option<usize> {
        self.config.max_request_body_size.map(|n| n as usize)
    }

    /// `max_response_body_size`, if set.
    pub fn max_response_body_size(&self) -> Option<usize> {
        self.config.max_response_body_size.map(|n| n as usize)
    }

    /// The HTTP answer for a complete unary gRPC reply: its framed body and status.
    pub fn unary_response(&self, plan: &RequestPlan, grpc_body: &[u8], grpc: GrpcStatusHeaders<'_>) -> HttpReply {
        self.unary_response_encoded(plan, grpc_body, grpc, None)
    }

    /// [`Transcoder::unary_response`] for a reply with this `grpc-encoding`
    /// header: a message with the compressed flag is decompressed (gzip, deflate).
    pub fn unary_response_encoded(
        &self,
        plan: &RequestPlan,
        grpc_body: &[u8],
        grpc: GrpcStatusHeaders<'_>,
        encoding: Option<&str>,
    ) -> HttpReply {
        match grpc.status.map(Code::from_header) {
            Some(Code::Ok) => {}
            Some(_) => return self.upstream_error(grpc),
            None => {
                let status = Status::new(Code::Unknown, "the gRPC server's reply ended without a grpc-status");
                return self.error_reply(&status, None);
            }
        }
        let frames = match frame::decode_all(grpc_body, self.max_response_body_size()) {
            Ok(frames) => frames,
            Err(frame::FrameError::TooLarge { size, limit }) => {
                return self.local_error(&Status::internal(format!(
                    "the gRPC response ({size} bytes) is larger than max_response_body_size ({limit} bytes)"
                )))
            }
            Err(e) => return self.local_error(&Status::internal(format!("bad gRPC reply: {e}"))),
        };
        let inflated;
        let message = match frames.as_slice() {
            [] => &[][..],
            [only] if !only.compressed => only.data.as_slice(),
            [only] => match frame::decompress(encoding, &only.data, self.max_response_body_size()) {
                Ok(data) => {
                    inflated = data;
                    inflated.as_slice()
                }
                Err(e) => return self.local_error(&Status::from(e)),
            },
            _ => {
                return self.local_error(&Status::internal(format!(
                    "a unary method answered {} messages instead of one",
                    frames.len()
                )))
            }
        };
        let mut reply = self.message_response(plan, message);
        if reply.status == 200 {
            // Envoy moves the trailers of a unary reply into the response headers.
            reply.headers.push(("grpc-status".into(), grpc.status.unwrap_or("0").trim().to_string()));
            if let Some(message) = grpc.message {
                reply.headers.push(("grpc-message".into(), message.to_string()));
            }
        }
        reply
    }

    /// Whether the plan's method answers with a stream of messages.
    pub fn server_streaming(&self, plan: &RequestPlan) -> bool {
        self.method(plan).is_some_and(|m| m.server_streaming)
    }

    /// A transcoder for the plan's server stream (None for unary methods).
    pub fn response_stream(&self, plan: &RequestPlan) -> Option<ResponseStream> {
        let route = self.route(plan).filter(|r| r.method.server_streaming)?;
        let print = &self.config.print_options;
        let format = if print.stream_sse_style_delimited {
            StreamFormat::ServerSentEvents
        } else if print.stream_newline_delimited {
            StreamFormat::NewlineDelimited
        } else {
            StreamFormat::JsonArray
        };
        Some(ResponseStream::new(route, format, self.max_response_body_size()))
    }

    /// Feeds a chunk of the gRPC response body (framed) to a stream; returns
    /// the HTTP body bytes of the messages it completed.
    pub fn stream_chunk(
        &self,
        plan: &RequestPlan,
        stream: &mut ResponseStream,
        chunk: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let route = self.route(plan).ok_or_else(|| Status::internal("the route of this request vanished"))?;
        stream.push(route, &self.printer, chunk)
    }

    /// Feeds one unframed message to a stream.
    pub fn stream_message(
        &self,
        plan: &RequestPlan,
        stream: &mut ResponseStream,
        message: &[u8],
    ) -> Result<Vec<u8>, Status> {
        let route = self.route(plan).ok_or_else(|| Status::internal("the route of this request vanished"))?;
        stream.push_message(route, &self.printer, message)
    }

    /// The complete HTTP answer of a stream whose transcoded body so far is
    /// `body`, once its gRPC status is known (for a stream answered at its end).
    pub fn stream_reply(
        &self,
        stream: &mut ResponseStream,
        mut body: Vec<u8>,
        grpc: GrpcStatusHeaders<'_>,
    ) -> HttpReply {
        match self.stream_end(stream, grpc) {
            Err(reply) => reply,
            Ok(StreamTail { bytes, status }) => {
                body.extend_from_slice(&bytes);
                let mut headers = vec![("content-type".to_string(), stream.content_type())];
                headers.extend(stream_status_headers(stream, &status));
                HttpReply { status: 200, headers, body }
            }
        }
    }

    /// Ends a stream with its gRPC status: the bytes that close the body sent so
    /// far, or (no message was sent and the stream failed) the error answer
    /// that must replace the whole response.
    pub fn stream_end(
        &self,
        stream: &mut ResponseStream,
        grpc: GrpcStatusHeaders<'_>,
    ) -> Result<StreamTail, HttpReply> {
        let status = match grpc.status.map(Code::from_header) {
            Some(Code::Ok) => Status::new(Code::Ok, ""),
            Some(_) => Status::from_grpc(grpc.status, grpc.message, grpc.details_bin),
            None => Status::new(Code::Unknown, "the gRPC server's reply ended without a grpc-status"),
        };
        let upstream_failed = grpc.status.is_some() && status.code != Code::Ok;
        let status = stream.end_status(&status);
        match stream.finish(&status, &self.pool, &self.printer) {
            StreamEnd::Error(_) if upstream_failed => {
                let mut reply = self.upstream_error(grpc);
                // Envoy's transcoder still writes the (empty) array it would have streamed.
                if !self.config.convert_grpc_status && stream.format() == StreamFormat::JsonArray {
                    reply.body = b"[]".to_vec();
                }
                Err(reply)
            }
            StreamEnd::Error(status) => Err(self.error_reply(&status, None)),
            StreamEnd::Tail(bytes) => Ok(StreamTail { bytes, status }),
        }
    }

    /// Ends a stream the filter must abandon after messages were sent (a bad
    /// frame, a limit): the bytes that close the body and say why.
    pub fn stream_abort(&self, stream: &mut ResponseStream, status: &Status) -> Vec<u8> {
        match stream.finish(status, &self.pool, &self.printer) {
            StreamEnd::Tail(bytes) => bytes,
            StreamEnd::Error(_) => Vec::new(),
        }
    }

    /// The HTTP answer for one successful response message (unframed).
    pub fn message_response(&self, plan: &RequestPlan, message: &[u8]) -> HttpReply {
        let direct =
            (!self.printer.pretty() && !self.printer.print_defaults()).then(|| self.direct_route(plan.route)).flatten();
        if let Some((direct, id)) = direct.and_then(|d| Some((d, d.output?))) {
            let style = direct::PrintStyle {
                proto_names: self.config.print_options.preserve_proto_field_names,
                enums_as_ints: self.config.print_options.always_print_enums_as_ints,
            };
            let mut body = Vec::with_capacity(message.len() * 2 + 16);
            if direct.schema.wire_to_json(id, message, style, &mut body).is_some() {
                return HttpReply { status: 200, headers: vec![("content-type".into(), JSON.into())], body };
            }
        }
        let Some(route) = self.route(plan) else {
            return self.local_error(&Status::internal("the route of this request vanished"));
        };
        match response::message_to_http(route, message, &self.printer) {
            Ok(HttpPayload { content_type, body }) => {
                HttpReply { status: 200, headers: vec![("content-type".into(), content_type)], body }
            }
            Err(status) => self.local_error(&status),
        }
    }

    /// The HTTP answer for an error status from the gRPC server (its trailers, or
    /// trailers-only headers): a JSON `google.rpc.Status` with
    /// `convert_grpc_status`, else an empty body with the gRPC status headers,
    /// `grpc-message` passed on as the server sent it, as Envoy answers.
    /// For a trailers-only answer `grpc-status-details-bin` is kept too, as Envoy
    /// keeps that header block.
    pub fn upstream_error(&self, grpc: GrpcStatusHeaders<'_>) -> HttpReply {
        let status = Status::from_grpc(grpc.status, grpc.message, grpc.details_bin);
        let mut reply = self.error_reply(&status, grpc.message);
        if let (false, true, Some(details)) = (self.config.convert_grpc_status, grpc.trailers_only, grpc.details_bin) {
            reply.headers.push(("grpc-status-details-bin".to_string(), details.to_string()));
        }
        reply
    }

    /// `status` as an upstream error; `raw_message` is the `grpc-message` as received.
    fn error_reply(&self, status: &Status, raw_message: Option<&str>) -> HttpReply {
        if self.config.convert_grpc_status {
            return self.local_error(status);
        }
        let mut headers = vec![
            ("content-type".to_string(), JSON.to_string()),
            // The code, not status.number: Envoy writes a number outside 0..=16 as UNKNOWN here.
            ("grpc-status".to_string(), (status.code as i32).to_string()),
        ];
        match raw_message {
            Some(raw) => headers.push(("grpc-message".to_string(), raw.to_string())),
            None if !status.message.is_empty() => {
                headers.push(("grpc-message".to_string(), status::encode_grpc_message(&status.message)))
            }
            None => {}
        }
        HttpReply { status: status.http_status(), headers, body: Vec::new() }
    }

    /// The HTTP answer for an error found by the filter itself: always a JSON
    /// `google.rpc.Status` (Envoy's own errors are text/plain).
    pub fn local_error(&self, status: &Status) -> HttpReply {
        HttpReply {
            status: status.http_status(),
            headers: vec![("content-type".into(), JSON.into())],
            body: status.to_json(Some(&self.pool), &self.printer),
        }
    }

    /// A route's fast-path types, compiled on first use.
    fn direct_route(&self, route: usize) -> Option<&DirectRoute> {
        let cell = self.direct.get(route)?;
        let route = self.table.routes.get(route)?;
        Some(cell.get_or_init(|| DirectRoute::compile(route)))
    }

    /// The descriptor pool (for callers that print details or look up types).
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }
}

/// A client-streaming call whose body holds no JSON at all: Envoy's transcoder
/// refuses it too ("Expected an array"); `[]` is how a client sends no message.
fn empty_stream_body() -> Status {
    Status::invalid_argument(
        "the request body is empty: a client-streaming method takes a JSON array of messages \
         (`[]` for none) or newline-delimited JSON messages",
    )
}

/// The headers that carry a JSON array stream's failure: Envoy closes the
/// array and loses the status; we still can say it, while headers can be sent.
pub fn stream_status_headers(stream: &ResponseStream, status: &Status) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if status.code != Code::Ok && stream.format() == StreamFormat::JsonArray {
        headers.push(("grpc-status".into(), (status.code as i32).to_string()));
        if !status.message.is_empty() {
            headers.push(("grpc-message".into(), status::encode_grpc_message(&status.message)));
        }
    }
    headers
}

impl DirectRoute {
    /// Compiles the message types of a route the fast path can serve: a JSON
    /// body that is the whole request message, a response printed whole,
    /// compact, without defaults (other `print_options` go to the general path).
    fn compile(route: &Route) -> DirectRoute {
        let mut schema = direct::Schema::default();
        let input = &route.method.input;
        let output = &route.method.output;
        let input = (matches!(route.body, routes::BodyRule::Whole) && input.full_name() != routes::HTTP_BODY)
            .then(|| schema.add(input));
        let output =
            (route.response_body.is_none() && output.full_name() != routes::HTTP_BODY).then(|| schema.add(output));
        DirectRoute { schema, input, output }
    }
}

/// Whether a `content-type` makes a request (or response) gRPC, by Envoy's rule
/// (`Grpc::Common::hasGrpcContentType`): exactly `application/grpc` or
/// `application/grpc+<subtype>`. `application/grpc-web` is not gRPC, and the
/// native transcoder transcodes such requests like any other.
pub fn is_grpc_content_type(content_type: &str) -> bool {
    content_type.strip_prefix("application/grpc").is_some_and(|rest| rest.is_empty() || rest.starts_with('+'))
}

/// Decodes a `FileDescriptorSet` into a descriptor pool, as the filter and `rgp` load it.
///
/// prost-reflect 0.16 panics (an index out of bounds while labelling its own
/// error) on a file whose `syntax` is neither unset, `proto2` nor `proto3`
/// (found by the `descriptor_set` fuzz target with `syntax = "proto4"`; protoc
/// writes `editions` for edition files), so such sets are refused here first.
/// That check decodes only each file's name and syntax: decoding the whole set
/// twice cost a large set's load about 15% more.
pub fn decode_descriptor_set(bytes: &[u8]) -> Result<DescriptorPool, String> {
    use prost::Message;
    let set = SyntaxOfFiles::decode(bytes).map_err(|e| e.to_string())?;
    if let Some(file) = set.file.iter().find(|f| !matches!(f.syntax.as_deref(), None | Some("proto2" | "proto3"))) {
        return Err(format!(
            "file {:?} has syntax {:?}; only proto2 and proto3 files are supported",
            file.name.as_deref().unwrap_or_default(),
            file.syntax.as_deref().unwrap_or_default()
        ));
    }
    DescriptorPool::decode(bytes).map_err(|e| e.to_string())
}

/// A `FileDescriptorSet` read for [`decode_descriptor_set`]'s syntax check
/// only: prost skips every other field without decoding it.
#[derive(Clone, PartialEq, prost::Message)]
struct SyntaxOfFiles {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileSyntax>,
}

/// The name and `syntax` of a `FileDescriptorProto`.
#[derive(Clone, PartialEq, prost::Message)]
struct FileSyntax {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "12")]
    syntax: Option<String>,
}

/// Splits `:path` into path and query, dropping any fragment.
fn split_path(path_and_query: &str) -> (&str, &str) {
    let without_fragment = path_and_query.split('#').next().unwrap_or_default();
    match without_fragment.split_once('?') {
        Some((path, query)) => (path, query),
        None => (without_fragment, ""),
    }
}

/// Splits and decodes a query string into (name, value) pairs, in order.
/// Names never turn `+` into a space; values do with `query_param_unescape_plus`.
/// Parameters with an empty name are skipped, as Envoy does; a name that does
/// not decode to UTF-8 keeps its undecodable escapes (so it names no field);
/// a value that does not decode is returned as the error.
/// Each name also comes as written, for a field whose `json_name` itself holds
/// escapes (`search%5Bencoded%5D`), which Envoy matches before decoding too.
fn parse_query(query: &str, unescape_plus: bool) -> Vec<QueryPair<'_>> {
    query
        .split('&')
        .filter_map(|part| {
            let (raw, value) = part.split_once('=').unwrap_or((part, ""));
            let name = percent::decode_query_component(raw, false).unwrap_or_else(|e| e.lossless);
            (!name.is_empty()).then(|| QueryPair {
                raw,
                name,
                value: percent::decode_query_component(value, unescape_plus),
            })
        })
        .collect()
}

/// One query parameter: its name as written and decoded, and its decoded value.
struct QueryPair<'a> {
    raw: &'a str,
    name: String,
    value: Result<String, percent::InvalidUtf8>,
}
