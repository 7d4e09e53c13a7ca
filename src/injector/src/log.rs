//! One line per event on stderr, `key=value` pairs (values quoted when needed).
//! Only names and namespaces of pods are ever logged, never their spec.

use std::time::{SystemTime, UNIX_EPOCH};

/// Write one log line: `ts=<unix seconds> level=<level> msg="..." k=v ...`.
pub fn line(level: &str, msg: &str, fields: &[(&str, &str)]) {
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let mut out = format!("ts={ts:.3} level={level} msg={}", quote(msg));
    for (k, v) in fields {
        out.push(' ');
        out.push_str(k);
        out.push('=');
        out.push_str(&quote(v));
    }
    eprintln!("{out}");
}

pub fn info(msg: &str, fields: &[(&str, &str)]) {
    line("info", msg, fields)
}

pub fn warn(msg: &str, fields: &[(&str, &str)]) {
    line("warn", msg, fields)
}

pub fn error(msg: &str, fields: &[(&str, &str)]) {
    line("error", msg, fields)
}

fn quote(v: &str) -> String {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:*".contains(c)) {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}
