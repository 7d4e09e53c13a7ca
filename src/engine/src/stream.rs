//! Server-streaming responses: gRPC frames in, HTTP body bytes out, message
//! by message, as a JSON array (Envoy's default), newline-delimited JSON
//! (`print_options.stream_newline_delimited`) or Server-Sent Events
//! (`print_options.stream_sse_style_delimited`). `google.api.HttpBody`
//! streams are raw: the content type of the first message, data concatenated.
//!
//! [`ResponseStream::push`] takes body chunks however they were split and
//! returns the bytes ready for the client; [`ResponseStream::finish`] takes the
//! gRPC status and returns the tail (the closing `]`, or a final error record).

use crate::frame::{FrameDecoder, FrameError};
use crate::response::{message_to_http, Printer, JSON};
use crate::routes::{Route, HTTP_BODY};
use crate::status::{Code, Status};
use prost_reflect::DescriptorPool;

/// The body format of a server stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// `[msg,msg]` (`[]` when empty), `application/json`.
    JsonArray,
    /// One JSON message per line, `application/json`.
    NewlineDelimited,
    /// `data: <json>\n\n` per message, `text/event-stream`.
    ServerSentEvents,
    /// `google.api.HttpBody` messages: their data concatenated.
    HttpBody,
}

impl StreamFormat {
    /// The content type for the format (HttpBody: until the first message says otherwise).
    pub fn content_type(self) -> &'static str {
        match self {
            StreamFormat::ServerSentEvents => "text/event-stream",
            _ => JSON,
        }
    }
}

/// One server stream being transcoded.
#[derive(Debug)]
pub struct ResponseStream {
    format: StreamFormat,
    decoder: FrameDecoder,
    messages: usize,
    emitted: usize,
    limit: Option<usize>,
    content_type: Option<String>,
    encoding: Option<String>,
}

/// How a finished stream ends.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEnd {
    /// Append these bytes to what was sent; the stream succeeded (or the error
    /// was written into the body as a final record).
    Tail(Vec<u8>),
    /// Nothing was sent yet and the stream failed: answer with this error instead.
    Error(Status),
}

impl ResponseStream {
    /// A stream for `route` in `format`; `limit` bounds a single gRPC message and
    /// the total bytes produced (`max_response_body_size`).
    pub fn new(route: &Route, format: StreamFormat, limit: Option<usize>) -> Self {
        let format = if route.response_body.is_none() && route.method.output.full_name() == HTTP_BODY {
            StreamFormat::HttpBody
        } else {
            format
        };
        ResponseStream {
            format,
            decoder: FrameDecoder::new(limit),
            messages: 0,
            emitted: 0,
            limit,
            content_type: None,
            encoding: None,
        }
    }

    /// The response's `grpc-encoding`, for messages with the compressed flag.
    pub fn set_encoding(&mut self, encoding: Option<&str>) {
        self.encoding = encoding.map(str::to_string);
    }

    /// The format in force.
    pub fn format(&self) -> StreamFormat {
        self.format
    }

    /// Messages transcoded so far.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// The response content type (for HttpBody streams, the first message's).
    pub fn content_type(&self) -> String {
        self.content_type.clone().unwrap_or_else(|| self.format.content_type().to_string())
    }

    /// Bytes of an unfinished frame held by the decoder.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// Takes a chunk of the gRPC body; returns the HTTP body bytes of every
    /// message it completed.
    pub fn push(&mut self, route: &Route, printer: &Printer, chunk: &[u8]) -> Result<Vec<u8>, Status> {
        let frames = self.decoder.push(chunk).map_err(frame_status)?;
        let mut out = Vec::new();
        for frame in frames {
            if frame.compressed {
                let data = crate::frame::decompress(self.encoding.as_deref(), &frame.data, self.limit)
                    .map_err(Status::from)?;
                self.message(route, printer, &data, &mut out)?;
            } else {
                self.message(route, printer, &frame.data, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Takes one unframed message (as a gRPC client receives it).
    pub fn push_message(&mut self, route: &Route, printer: &Printer, message: &[u8]) -> Result<Vec<u8>, Status> {
        let mut out = Vec::new();
        self.message(route, printer, message, &mut out)?;
        Ok(out)
    }

    fn message(&mut self, route: &Route, printer: &Printer, message: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
        let payload = message_to_http(route, message, printer)?;
        let start = out.len();
        match self.format {
            StreamFormat::JsonArray => {
                out.push(if self.messages == 0 { b'[' } else { b',' });
                out.extend_from_slice(&payload.body);
            }
            StreamFormat::NewlineDelimited => {
                out.extend_from_slice(&payload.body);
                out.push(b'\n');
            }
            StreamFormat::ServerSentEvents => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&payload.body);
                out.extend_from_slice(b"\n\n");
            }
            StreamFormat::HttpBody => {
                if self.content_type.is_none() {
                    self.content_type = Some(payload.content_type);
                }
                out.extend_from_slice(&payload.body);
            }
        }
        self.messages += 1;
        self.emitted += out.len() - start;
        if let Some(limit) = self.limit {
            if self.emitted > limit {
                return Err(Status::internal(format!(
                    "the transcoded stream is larger than max_response_body_size ({limit} bytes)"
                )));
            }
        }
        Ok(())
    }

    /// The stream's final status: `status`, unless the gRPC body ended inside a frame.
    pub fn end_status(&self, status: &Status) -> Status {
        match self.decoder.finish() {
            Err(e) if status.code == Code::Ok => frame_status(e),
            _ => status.clone(),
        }
    }

    /// Ends the stream with its gRPC status (`Code::Ok` for success).
    ///
    /// An error before any message replaces the answer. After messages, a JSON
    /// array is closed as Envoy closes it (the caller should add the status as
    /// `grpc-status`/`grpc-message` headers when it still can); NDJSON gets a
    /// final `{"error": <google.rpc.Status>}` line and SSE an `event: error`
    /// record carrying the `google.rpc.Status`.
    pub fn finish(&mut self, status: &Status, pool: &DescriptorPool, printer: &Printer) -> StreamEnd {
        let status = self.end_status(status);
        if status.code != Code::Ok && self.messages == 0 {
            return StreamEnd::Error(status);
        }
        let mut tail = Vec::new();
        match self.format {
            StreamFormat::JsonArray => tail.extend_from_slice(if self.messages == 0 { b"[]" } else { b"]" }),
            StreamFormat::NewlineDelimited if status.code != Code::Ok => {
                tail.extend_from_slice(b"{\"error\":");
                tail.extend_from_slice(&status.to_json(Some(pool), &compact(printer)));
                tail.extend_from_slice(b"}\n");
            }
            StreamFormat::ServerSentEvents if status.code != Code::Ok => {
                tail.extend_from_slice(b"event: error\ndata: ");
                tail.extend_from_slice(&status.to_json(Some(pool), &compact(printer)));
                tail.extend_from_slice(b"\n\n");
            }
            _ => {}
        }
        StreamEnd::Tail(tail)
    }
}

/// A record on one line must not be pretty-printed.
fn compact(printer: &Printer) -> Printer {
    printer.compact()
}

fn frame_status(e: FrameError) -> Status {
    match e {
        FrameError::TooLarge { size, limit } => Status::internal(format!(
            "a gRPC response message ({size} bytes) is larger than max_response_body_size ({limit} bytes)"
        )),
        other => Status::internal(format!("bad gRPC reply: {other}")),
    }
}

impl From<crate::frame::DecompressError> for Status {
    fn from(e: crate::frame::DecompressError) -> Status {
        let code = match e {
            crate::frame::DecompressError::Unsupported(_) => Code::Unimplemented,
            _ => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
