//! Requests without a body on a host that cannot give them one (Wasm): the
//! filter makes the gRPC call itself, and answers with a local reply built
//! from what the call brought back.

use std::time::Duration;

use log::warn;
use transcoder::{Status, Transcoder};

use crate::headers::{grpc_status_of, is_connection_header, is_grpc_response_header, text_pairs};
use crate::{Host, OwnCallError, Request};

/// Default deadline for calls the filter makes itself, as Envoy's default route timeout.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A gRPC call the host is asked to make for a request without a body.
#[derive(Debug)]
pub struct OwnCall {
    /// `pkg.Service`.
    pub service: String,
    /// `Method`.
    pub method: String,
    /// The request message (not framed).
    pub message: Vec<u8>,
    /// The client's headers that go along as metadata, `grpc-timeout` last.
    pub metadata: Vec<(String, Vec<u8>)>,
    /// The client's `:authority`, sent as the call's (not the cluster name).
    pub authority: Option<String>,
    /// When the call must have answered.
    pub timeout: Duration,
    /// `/pkg.Service/Method`, for errors.
    pub grpc_path: String,
}

impl Request {
    /// Builds the call of a request without a body and has the host make it.
    pub(crate) fn call_without_body(&mut self, host: &mut dyn Host) -> Result<(), Status> {
        let (Some(t), Some(plan)) = (self.transcoder.clone(), self.plan.as_ref()) else { return Ok(()) };
        let info = t.method(plan).ok_or_else(|| Status::internal("route vanished"))?;
        let message = t.request_message(plan, self.content_type.as_deref(), &[])?;
        let headers = host.request_headers();
        let mut metadata: Vec<(String, Vec<u8>)> =
            headers.iter().filter(|(k, _)| !is_connection_header(k) && k != "grpc-timeout").cloned().collect();
        let timeout = headers
            .iter()
            .find(|(k, _)| k == "grpc-timeout")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("{}S", DEFAULT_CALL_TIMEOUT.as_secs()).into_bytes());
        let deadline = parse_grpc_timeout(&timeout).unwrap_or(DEFAULT_CALL_TIMEOUT);
        metadata.push(("grpc-timeout".into(), timeout));
        let authority = headers
            .iter()
            .find(|(k, _)| k == ":authority")
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(str::to_string);
        let call = OwnCall {
            service: info.service.clone(),
            method: info.name.clone(),
            message,
            metadata,
            authority,
            timeout: deadline,
            grpc_path: info.grpc_path.clone(),
        };
        match host.own_call(call) {
            Ok(token) => {
                self.via_stream = Some(token);
                Ok(())
            }
            Err(OwnCallError::NoCluster) => Err(match &self.target {
                Some(target) => target.no_route(),
                None => Status::new(transcoder::Code::NotFound, format!("no Envoy route serves {}", info.grpc_path)),
            }),
            Err(OwnCallError::Failed(e)) => Err(Status::new(transcoder::Code::Unavailable, e)),
        }
    }

    /// The call's initial metadata (`entries`: how many; none for a trailers-only answer).
    pub fn call_initial_metadata(&mut self, entries: u32, pairs: Vec<(String, Vec<u8>)>) {
        // For a trailers-only answer Envoy calls this with no entries and hands
        // the whole header block over as trailing metadata.
        self.initial_metadata = entries > 0;
        self.response_headers = text_pairs(pairs).into_iter().filter(|(k, _)| !is_grpc_response_header(k)).collect();
    }

    /// One message of the call's answer.
    pub fn call_message(&mut self, host: &mut dyn Host, token: u32, message: Vec<u8>) {
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
                host.cancel_own_call(token);
                self.stream_body = Vec::new();
                self.reject(host, &t, &status);
            }
        }
    }

    /// The call's trailing metadata.
    pub fn call_trailing_metadata(&mut self, pairs: Vec<(String, Vec<u8>)>) {
        self.stream_trailers = text_pairs(pairs);
    }

    /// The call ended with `status_code`; `host_message` is Envoy's own reason, if any.
    pub fn call_close(&mut self, host: &mut dyn Host, status_code: u32, host_message: Option<String>) {
        let (Some(t), Some(plan)) = (self.transcoder.clone(), self.plan.take()) else {
            return;
        };
        // Envoy's gRPC client reports a stream reset after the response started as
        // INTERNAL; gRPC's status code table says a connection broken after data was
        // sent is UNAVAILABLE (retryable), which is what the client gets when the
        // reset comes before the response.
        let reset_by_upstream = status_code == 13
            && !self.stream_trailers.iter().any(|(k, _)| k == "grpc-status")
            && host_message.as_deref().is_some_and(|m| m.starts_with("upstream_reset_"));
        let status_code = if reset_by_upstream { 14 } else { status_code };
        let code = status_code.to_string();
        // Envoy's own reason (no upstream, reset, ...), decoded: encode it as a grpc-message.
        let host_message = host_message.map(|m| transcoder::status::encode_grpc_message(&m));
        let trailers_only = !self.initial_metadata;
        if trailers_only {
            // One header block held everything: pass its other headers on, as
            // Envoy does with a trailers-only answer (x-bookstore-version, ...).
            self.response_headers =
                self.stream_trailers.iter().filter(|(k, _)| !is_grpc_response_header(k)).cloned().collect();
        }
        let trailers = std::mem::take(&mut self.stream_trailers);
        let mut grpc = grpc_status_of(&trailers);
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
        self.send(host, reply, &mut headers);
    }
}

/// Answers 504 to a request whose own call passed its deadline (`timeout`).
pub fn own_call_expired(host: &mut dyn Host, transcoder: &Transcoder, timeout: Duration) {
    let status = Status::new(
        transcoder::Code::DeadlineExceeded,
        format!("the gRPC backend did not answer within {timeout:?} (grpc-timeout)"),
    );
    let reply = transcoder.local_error(&status);
    if let Err(e) = host.send_response(504, &[("content-type".into(), "application/json".into())], &reply.body) {
        warn!("rust_grpc_proxy: could not answer a call past its deadline: {e}");
    }
}

/// A `grpc-timeout` value (digits and a unit: `H`, `M`, `S`, `m`, `u`, `n`), as the
/// gRPC wire spec defines it; None when malformed.
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
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
