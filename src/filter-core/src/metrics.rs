//! Metric names, the same in both hosts: every name starts with
//! `rust_grpc_proxy.` (Envoy's stats store: admin `/stats`, Prometheus).
//! Metrics never fail a request: a host that refuses one skips it.

/// Prefix of every metric the filter defines.
pub const PREFIX: &str = "rust_grpc_proxy.";

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
