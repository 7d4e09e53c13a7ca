//! A Wasm filter that transcodes nothing: `make bench` puts it in front of Envoy's
//! native transcoder to measure what a Wasm filter costs Envoy before it does any work
//! of its own. Two modes, by plugin configuration:
//! - empty (the toll row): it only returns Continue, so it measures a VM call per
//!   callback and the SDK's dispatch;
//! - `"io"` (the io-toll row): it also makes the host calls the transcoder makes for
//!   a unary request (bench/RESULTS.md, "Host calls per request"), each writing back
//!   what it read, so the request and its answer are unchanged. It measures what
//!   moving a request's data across the Wasm boundary costs, apart from transcoding it;
//! - `"<call> <n>"` (bench/host_calls.py): one kind of host call made n times per
//!   request, to price each kind: `get_map`, `set_map` (read, then write back),
//!   `get_value`, `set_value` (a header of its own), `get_body`, `set_body` (read,
//!   then write back) and `metric`.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { io: false, repeat: None, requests: None })
    });
}}

/// The root: the mode, and the counter the io mode bumps once per request (as the transcoder does).
struct Root {
    io: bool,
    repeat: Option<(Call, usize)>,
    requests: Option<u32>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten();
        let config = String::from_utf8(config.unwrap_or_default()).unwrap_or_default();
        self.io = config.trim() == "io";
        if let Some((call, n)) = config.split_once(' ') {
            // A mode it does not know would price nothing: refuse it rather than measure it.
            match (Call::parse(call), n.trim().parse()) {
                (Some(call), Ok(n)) => self.repeat = Some((call, n)),
                _ => {
                    proxy_wasm::hostcalls::log(LogLevel::Error, &format!("noop-filter: unknown mode {config:?}")).ok();
                    return false;
                }
            }
        }
        if self.io || self.repeat.is_some() {
            self.requests = hostcalls::define_metric(MetricType::Counter, "noop_filter.requests").ok();
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        if let Some((call, n)) = self.repeat {
            return Some(Box::new(Repeat { call, n, metric: self.requests }));
        }
        if self.io {
            Some(Box::new(Io { requests: self.requests, trailers_read: false }))
        } else {
            Some(Box::new(Noop))
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Every request in the toll mode: the SDK's defaults, which continue at every step.
struct Noop;

impl Context for Noop {}

impl HttpContext for Noop {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
}

/// Every request in the io mode. Errors are ignored: a bench filter must not fail a request.
struct Io {
    requests: Option<u32>,
    trailers_read: bool,
}

impl Io {
    /// Reads a header map and writes it back whole (the transcoder's one read, one write).
    fn rewrite(map: MapType) {
        if let Ok(pairs) = hostcalls::get_map_bytes(map) {
            let pairs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_ref())).collect();
            let _ = hostcalls::set_map_bytes(map, pairs);
        }
    }

    /// Reads a body and writes it back (the transcoder reads the JSON and writes the frame).
    fn rebody(buffer: BufferType, size: usize) {
        if let Ok(Some(body)) = hostcalls::get_buffer(buffer, 0, size) {
            let _ = hostcalls::set_buffer(buffer, 0, body.len(), &body);
        }
    }

    /// The response's trailers, read once (at the trailers, or at the body's end without them).
    fn read_trailers(&mut self) {
        if !self.trailers_read {
            self.trailers_read = true;
            let _ = hostcalls::get_map_bytes(MapType::HttpResponseTrailers);
        }
    }
}

impl Context for Io {}

impl HttpContext for Io {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        Self::rewrite(MapType::HttpRequestHeaders);
        if end_of_stream {
            // A request without a body: the transcoder hands its frame over in one more header.
            if let Ok(Some(value)) = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, ":path") {
                let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, ":path", Some(&value));
            }
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            Self::rebody(BufferType::HttpRequestBody, size);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let _ = hostcalls::get_map_bytes(MapType::HttpResponseHeaders);
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        Self::rebody(BufferType::HttpResponseBody, size);
        if end_of_stream {
            self.read_trailers();
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        self.read_trailers();
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Some(id) = self.requests {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

/// The kinds of host call the `"<call> <n>"` mode prices.
#[derive(Clone, Copy, PartialEq)]
enum Call {
    GetMap,
    SetMap,
    GetValue,
    SetValue,
    GetBody,
    SetBody,
    Metric,
}

impl Call {
    fn parse(name: &str) -> Option<Call> {
        Some(match name {
            "get_map" => Call::GetMap,
            "set_map" => Call::SetMap,
            "get_value" => Call::GetValue,
            "set_value" => Call::SetValue,
            "get_body" => Call::GetBody,
            "set_body" => Call::SetBody,
            "metric" => Call::Metric,
            _ => return None,
        })
    }
}

/// Every request in the `"<call> <n>"` mode: `n` calls of one kind at the request's headers
/// (the body calls at its body's end).
struct Repeat {
    call: Call,
    n: usize,
    metric: Option<u32>,
}

impl Context for Repeat {}

impl HttpContext for Repeat {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let map = MapType::HttpRequestHeaders;
        for _ in 0..self.n {
            match self.call {
                Call::GetMap => drop(hostcalls::get_map_bytes(map)),
                Call::SetMap => Io::rewrite(map),
                Call::GetValue => drop(hostcalls::get_map_value_bytes(map, ":path")),
                Call::SetValue => drop(hostcalls::set_map_value_bytes(map, "x-noop-filter", Some(b"1"))),
                Call::Metric => {
                    if let Some(id) = self.metric {
                        let _ = hostcalls::increment_metric(id, 1);
                    }
                }
                Call::GetBody | Call::SetBody => {}
            }
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            for _ in 0..self.n {
                match self.call {
                    Call::GetBody => drop(hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)),
                    Call::SetBody => Io::rebody(BufferType::HttpRequestBody, size),
                    _ => {}
                }
            }
        }
        Action::Continue
    }
}
