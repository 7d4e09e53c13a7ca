//! The filter's metrics, through proxy-wasm's `define_metric`: Envoy keeps them
//! in its stats store (admin `/stats`, Prometheus), shared by every worker's VM.
//! All names start with `rust_grpc_proxy.`. A metric the host refuses is
//! skipped: metrics never fail a request.

use std::cell::RefCell;
use std::collections::HashMap;

use proxy_wasm::types::MetricType;

/// Prefix of every metric the filter defines.
pub const PREFIX: &str = "rust_grpc_proxy.";

thread_local! {
    /// Metric ids by full name, per VM (defining is not free: once per name).
    static IDS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

fn id(kind: MetricType, name: &str) -> Option<u32> {
    let full = format!("{PREFIX}{name}");
    IDS.with(|ids| {
        if let Some(id) = ids.borrow().get(&full) {
            return Some(*id);
        }
        let id = proxy_wasm::hostcalls::define_metric(kind, &full).ok()?;
        ids.borrow_mut().insert(full, id);
        Some(id)
    })
}

/// Adds one to the counter `rust_grpc_proxy.<name>`.
pub fn count(name: &str) {
    if let Some(id) = id(MetricType::Counter, name) {
        let _ = proxy_wasm::hostcalls::increment_metric(id, 1);
    }
}

/// Sets the gauge `rust_grpc_proxy.<name>`.
pub fn gauge(name: &str, value: u64) {
    if let Some(id) = id(MetricType::Gauge, name) {
        let _ = proxy_wasm::hostcalls::record_metric(id, value);
    }
}

/// A stat-name element from free text: Envoy splits names on `.`, so a
/// method's dots become `_` and anything outside `[A-Za-z0-9_-]` too.
pub fn element(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// The metric-name form of a gRPC code (`invalid_argument`).
pub fn code_name(code: transcoder::Code) -> String {
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
        assert_eq!(code_name(transcoder::Code::InvalidArgument), "invalid_argument");
        assert_eq!(code_name(transcoder::Code::Ok), "ok");
    }
}
