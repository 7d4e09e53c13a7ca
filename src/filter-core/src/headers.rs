//! Header sets: which headers cross between the HTTP and gRPC sides, and the
//! answer to a transcoded call whose response is not gRPC.

use transcoder::{GrpcStatusHeaders, HttpReply, Status, Transcoder};

/// Headers never passed between the HTTP and gRPC sides.
pub fn is_connection_header(name: &str) -> bool {
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
pub fn is_grpc_response_header(name: &str) -> bool {
    is_connection_header(name) || GRPC_STATUS_HEADERS.contains(&name) || matches!(name, "date" | "server")
}

/// Upstream response headers an answer written in place removes: the gRPC status
/// and encoding, which the JSON answer replaces (its own status headers, if any, come after).
pub const GRPC_STATUS_HEADERS: [&str; 5] =
    ["grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding", "grpc-accept-encoding"];

/// The UTF-8 pairs of a header map (others cannot be JSON answer headers).
pub fn text_pairs(pairs: Vec<(String, Vec<u8>)>) -> Vec<(String, String)> {
    pairs.into_iter().filter_map(|(k, v)| String::from_utf8(v).ok().map(|v| (k, v))).collect()
}

/// The first value of `name` in `pairs`.
pub fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub(crate) fn grpc_status_of(pairs: &[(String, String)]) -> GrpcStatusHeaders<'_> {
    GrpcStatusHeaders {
        status: find(pairs, "grpc-status"),
        message: find(pairs, "grpc-message"),
        details_bin: find(pairs, "grpc-status-details-bin"),
        trailers_only: false,
    }
}

/// A transcoded request in the client's terms: what a 404 names when no Envoy
/// route takes its gRPC call (no virtual host for the host, no route for the
/// gRPC path, a direct-response or redirect route).
#[derive(Debug)]
pub struct RestTarget {
    /// The client's HTTP method.
    pub method: String,
    /// The client's path and query.
    pub path: String,
    /// The client's `:authority` (kept: a Wasm filter cannot read request headers
    /// once its headers callback returned Continue, as a bodiless request's does).
    pub authority: String,
    /// The gRPC path the request was rewritten to.
    pub grpc_path: String,
}

impl RestTarget {
    /// NOT_FOUND (404), as Envoy's router answers a request no route matches.
    pub fn no_route(&self) -> Status {
        Status::new(
            transcoder::Code::NotFound,
            format!(
                "no route serves {} {} on host {:?}: Envoy has no route to a cluster for its gRPC call {}",
                self.method, self.path, self.authority, self.grpc_path
            ),
        )
    }
}

/// The JSON error for an answer to a transcoded call that is not gRPC. A call
/// no route takes (Envoy's `route_not_found`, or a direct-response or redirect
/// route) is 404 NOT_FOUND naming the REST request. Otherwise the HTTP status is
/// kept when it is an error (503 no upstream, 504 timeout, 413 too large, ...),
/// else 502, with the code the status table gives it back; the message names
/// the status, content type and Envoy's reason (`details`).
pub(crate) fn non_grpc_answer(
    transcoder: &Transcoder,
    headers: &[(String, String)],
    details: Option<String>,
    target: Option<&RestTarget>,
) -> HttpReply {
    let http = find(headers, ":status").and_then(|s| s.trim().parse::<u16>().ok()).unwrap_or(0);
    let details = details.filter(|d| !d.is_empty() && d != "via_upstream");
    if let (Some("route_not_found" | "direct_response"), Some(target)) = (details.as_deref(), target) {
        return transcoder.local_error(&target.no_route());
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
