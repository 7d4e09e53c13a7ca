//! gRPC status codes, their HTTP equivalents, and `google.rpc.Status` as JSON:
//! the one place that decides what an error looks like to a REST client.

use base64::Engine;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, SerializeOptions};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::json::{self, MessageJson};
use crate::response::Printer;

/// The gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    /// Not an error.
    Ok = 0,
    /// The operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// Unknown error.
    Unknown = 2,
    /// The client sent something invalid.
    InvalidArgument = 3,
    /// The deadline passed before the operation finished.
    DeadlineExceeded = 4,
    /// Some requested entity was not found.
    NotFound = 5,
    /// The entity the client tried to create already exists.
    AlreadyExists = 6,
    /// The caller may not do this.
    PermissionDenied = 7,
    /// Some resource (quota, size) is exhausted.
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// The operation was aborted, typically by a concurrency conflict.
    Aborted = 10,
    /// The operation went past the valid range.
    OutOfRange = 11,
    /// The operation is not implemented.
    Unimplemented = 12,
    /// An internal invariant broke.
    Internal = 13,
    /// The service is unavailable; retrying may help.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The caller is not authenticated.
    Unauthenticated = 16,
}

impl Code {
    /// The code for a number; numbers outside 0..=16 are UNKNOWN, as gRPC says.
    pub fn from_i32(n: i32) -> Code {
        match n {
            0 => Code::Ok,
            1 => Code::Cancelled,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            15 => Code::DataLoss,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    /// The code from a `grpc-status` header value; garbage is UNKNOWN.
    pub fn from_header(value: &str) -> Code {
        value.trim().parse::<i32>().map(Code::from_i32).unwrap_or(Code::Unknown)
    }

    /// The HTTP status Envoy and grpc-gateway give this code.
    pub fn http_status(self) -> u16 {
        match self {
            Code::Ok => 200,
            Code::Cancelled => 499,
            Code::Unknown => 500,
            Code::InvalidArgument => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists => 409,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            Code::FailedPrecondition => 400,
            Code::Aborted => 409,
            Code::OutOfRange => 400,
            Code::Unimplemented => 501,
            Code::Internal => 500,
            Code::Unavailable => 503,
            Code::DataLoss => 500,
            Code::Unauthenticated => 401,
        }
    }

    /// The code a client reads back as this HTTP error status by [`Code::http_status`]
    /// (the table Envoy and grpc-gateway share), for errors that keep Envoy's own
    /// status: 400, 401, 403, 404, 409, 429, 499, 500, 501, 503 and 504 agree with
    /// their code. The table has no 413 and no 502: 413 is RESOURCE_EXHAUSTED,
    /// the nearest, and 502 UNAVAILABLE, as gRPC's own HTTP mapping has it (a bad
    /// gateway is worth a retry); any other status is UNKNOWN.
    pub fn for_http_error(status: u16) -> Code {
        match status {
            400 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::NotFound,
            409 => Code::Aborted,
            413 | 429 => Code::ResourceExhausted,
            499 => Code::Cancelled,
            500 => Code::Internal,
            501 => Code::Unimplemented,
            502 | 503 => Code::Unavailable,
            504 => Code::DeadlineExceeded,
            _ => Code::Unknown,
        }
    }
}

/// `google.rpc.Status` as it travels in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    /// The gRPC code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The developer-facing message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// An error answer: what the filter or the gRPC server says went wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The gRPC code.
    pub code: Code,
    /// The code's number in the JSON body: `code as i32`, except when the
    /// server's `grpc-status-details-bin` carries a number outside 0..=16
    /// (UNKNOWN to gRPC), which Envoy prints as it is.
    pub number: i32,
    /// The message, as text.
    pub message: String,
    /// Typed details from `grpc-status-details-bin`.
    pub details: Vec<prost_types::Any>,
}

impl Status {
    /// A status without details.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status { code, number: code as i32, message: message.into(), details: Vec::new() }
    }

    /// INVALID_ARGUMENT: the client's request is wrong.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Status::new(Code::InvalidArgument, message)
    }

    /// INTERNAL: something between the filter and the server is wrong.
    pub fn internal(message: impl Into<String>) -> Self {
        Status::new(Code::Internal, message)
    }

    /// The status a gRPC server sent in its trailers (or trailers-only headers).
    ///
    /// `grpc-message` is percent-decoded as the gRPC spec says; when
    /// `grpc-status-details-bin` decodes, its message and details win, since the
    /// server put them there on purpose.
    pub fn from_grpc(status: Option<&str>, message: Option<&str>, details_bin: Option<&str>) -> Self {
        let code = status.map(Code::from_header).unwrap_or(Code::Unknown);
        let message = message.map(decode_grpc_message).unwrap_or_default();
        let mut status = Status::new(code, message);
        if let Some(rpc) = details_bin.and_then(decode_details_bin) {
            if Code::from_i32(rpc.code) == status.code {
                status.number = rpc.code;
            }
            if status.message.is_empty() {
                status.message = rpc.message;
            }
            status.details = rpc.details;
        }
        status
    }

    /// The HTTP status this error is answered with.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// The JSON `google.rpc.Status` body, printed as Envoy prints it: proto3 JSON
    /// with the configured print options (empty `message`/`details` left out
    /// unless `always_print_primitive_fields`), details in field order. Details
    /// whose type the descriptor pool knows are printed as JSON, others as
    /// `{"@type", "value"}` base64, so an unknown detail type never hides the error.
    pub fn to_json(&self, pool: Option<&DescriptorPool>, printer: &Printer) -> Vec<u8> {
        const FALLBACK: &[u8] = br#"{"code":13,"message":"could not print the error"}"#;
        let body = StatusJson { status: self, pool, printer };
        // Printing strings, numbers and decoded messages cannot fail; keep a fallback anyway.
        let Ok(text) = printer.value(&body) else { return FALLBACK.to_vec() };
        // Map entries in details (ErrorInfo.metadata, ...) sorted by key, as protobuf prints them.
        let decoded: Vec<Option<DynamicMessage>> = self.details.iter().map(|any| decode_detail(any, pool)).collect();
        if !decoded.iter().flatten().any(json::has_multi_entry_maps) {
            return text;
        }
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&text) else { return text };
        if let Some(details) = value.get_mut("details").and_then(|d| d.as_array_mut()) {
            for (detail, message) in details.iter_mut().zip(&decoded) {
                let Some(message) = message else { continue };
                let desc = message.descriptor();
                let target = if json_is_special(desc.full_name()) { detail.get_mut("value") } else { Some(detail) };
                if let Some(target) = target {
                    json::sort_map_entries(&desc, target);
                }
            }
        }
        printer.value(&value).unwrap_or(text)
    }
}

struct StatusJson<'a> {
    status: &'a Status,
    pool: Option<&'a DescriptorPool>,
    printer: &'a Printer,
}

impl Serialize for StatusJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let all = self.printer.print_defaults();
        let mut map = serializer.serialize_map(None)?;
        if all || self.status.number != 0 {
            map.serialize_entry("code", &self.status.number)?;
        }
        if all || !self.status.message.is_empty() {
            map.serialize_entry("message", &self.status.message)?;
        }
        if all || !self.status.details.is_empty() {
            let details: Vec<DetailJson<'_>> = self
                .status
                .details
                .iter()
                .map(|any| DetailJson { any, pool: self.pool, options: self.printer.options() })
                .collect();
            map.serialize_entry("details", &details)?;
        }
        map.end()
    }
}

/// A detail decoded with its type from the descriptor pool, when the pool has it.
fn decode_detail(any: &prost_types::Any, pool: Option<&DescriptorPool>) -> Option<DynamicMessage> {
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    let desc = pool?.get_message_by_name(type_name)?;
    DynamicMessage::decode(desc, any.value.as_slice()).ok()
}

/// Well-known types whose JSON is not an object of their fields: inside an
/// `Any` they go under `"value"`.
fn json_is_special(full_name: &str) -> bool {
    matches!(
        full_name,
        "google.protobuf.Any"
            | "google.protobuf.Duration"
            | "google.protobuf.Timestamp"
            | "google.protobuf.FieldMask"
            | "google.protobuf.Struct"
            | "google.protobuf.Value"
            | "google.protobuf.ListValue"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

/// One detail (`google.protobuf.Any`) as proto3 JSON.
struct DetailJson<'a> {
    any: &'a prost_types::Any,
    pool: Option<&'a DescriptorPool>,
    options: &'a SerializeOptions,
}

impl Serialize for DetailJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Inline<'a> {
            #[serde(rename = "@type")]
            type_url: &'a str,
            #[serde(flatten)]
            message: MessageJson<'a>,
        }
        #[derive(Serialize)]
        struct Nested<'a, T: Serialize> {
            #[serde(rename = "@type")]
            type_url: &'a str,
            value: T,
        }
        let decoded = decode_detail(self.any, self.pool);
        let type_url = self.any.type_url.as_str();
        match decoded {
            Some(message) if json_is_special(message.descriptor().full_name()) => {
                Nested { type_url, value: MessageJson(&message, self.options) }.serialize(serializer)
            }
            Some(message) => Inline { type_url, message: MessageJson(&message, self.options) }.serialize(serializer),
            None => Nested { type_url, value: base64::engine::general_purpose::STANDARD.encode(&self.any.value) }
                .serialize(serializer),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

fn decode_details_bin(value: &str) -> Option<RpcStatus> {
    let trimmed = value.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .ok()?;
    RpcStatus::decode(bytes.as_slice()).ok()
}

/// Percent-encodes a `grpc-message` the way the gRPC spec says (bytes outside
/// printable ASCII, and '%').
pub fn encode_grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes a `grpc-message` value (the gRPC spec's encoding); bytes
/// that do not decode to UTF-8 stay escaped, so the message is never refused.
pub fn decode_grpc_message(value: &str) -> String {
    crate::percent::decode_query_component(value, false).unwrap_or_else(|e| e.lossless)
}
