//! The filter's metrics, the same in both hosts: every name starts with
//! `rust_grpc_proxy.` (Envoy's stats store: admin `/stats`, Prometheus).
//! Metrics never fail a request: a host that refuses one skips it.
//!
//! The core reports typed events ([`Counter`], [`Gauge`]) rather than names, so a
//! host whose stats are defined up front (the dynamic module: Envoy freezes stat
//! creation once a configuration exists) can map each event to a metric it
//! defined, while the Wasm build defines each [`Counter::name`] on first use.

use transcoder::Code;

/// Prefix of every metric the filter defines.
pub const PREFIX: &str = "rust_grpc_proxy.";

/// Every gRPC code, in number order (the module defines one error counter per code).
pub const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// An event the filter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter<'a> {
    /// A transcoded request got its final answer; all three are stat-safe ([`element`]).
    Request { service: &'a str, method: &'a str, status: &'a str },
    /// The filter refused a request itself, with this gRPC code.
    TranscodingError(Code),
    /// A fetched descriptor set was put in service.
    DescriptorLoad,
    /// A descriptor fetch failed or its set was refused.
    DescriptorFailure,
    /// A 503 sent because no descriptor set was loaded yet.
    NotLoadedReply,
}

impl Counter<'_> {
    /// The name after [`PREFIX`] (the Wasm build's metric; the module's unlabelled ones).
    pub fn name(&self) -> String {
        match self {
            Counter::Request { service, method, status } => format!("requests.{service}.{method}.{status}"),
            Counter::TranscodingError(code) => format!("transcoding_errors.{}", code_name(*code)),
            Counter::DescriptorLoad => "descriptor.loads".into(),
            Counter::DescriptorFailure => "descriptor.failures".into(),
            Counter::NotLoadedReply => "descriptor.not_loaded_replies".into(),
        }
    }
}

/// A value the filter reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// The first 8 bytes of the SHA-256 of the set in service (`rgp` prints the same digest).
    DescriptorDigest,
}

impl Gauge {
    /// The name after [`PREFIX`].
    pub fn name(&self) -> &'static str {
        match self {
            Gauge::DescriptorDigest => "descriptor.digest",
        }
    }
}

/// A stat-name element from free text: Envoy splits names on `.`, so a
/// method's dots become `_` and anything outside `[A-Za-z0-9_-]` too.
pub fn element(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// The metric-name form of a gRPC code (`invalid_argument`).
pub fn code_name(code: Code) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stat_safe() {
        assert_eq!(element("bookstore.v1.Bookstore/GetShelf"), "bookstore_v1_Bookstore_GetShelf");
        assert_eq!(code_name(Code::InvalidArgument), "invalid_argument");
        assert_eq!(code_name(Code::Ok), "ok");
    }

    #[test]
    fn codes_are_listed_in_number_order() {
        for (i, code) in CODES.iter().enumerate() {
            assert_eq!(*code as usize, i);
        }
    }

    #[test]
    fn counters_have_the_documented_names() {
        let request = Counter::Request { service: "bookstore_v1_Bookstore", method: "GetShelf", status: "404" };
        assert_eq!(request.name(), "requests.bookstore_v1_Bookstore.GetShelf.404");
        assert_eq!(Counter::TranscodingError(Code::NotFound).name(), "transcoding_errors.not_found");
        assert_eq!(Counter::NotLoadedReply.name(), "descriptor.not_loaded_replies");
        assert_eq!(Gauge::DescriptorDigest.name(), "descriptor.digest");
    }
}
