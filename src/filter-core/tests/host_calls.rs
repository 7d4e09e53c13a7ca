//! How many host calls each request shape costs. Under Wasm every [`Host`]
//! method is one proxy-wasm call into Envoy (see `src/filter/src/wasm_host.rs`;
//! `rewrite_headers` is one `set_map`, plus a `get_map` when the map is not at hand),
//! and each crossing of the V8 boundary costs more than the transcoding of a
//! small message, so the counts are a budget: a change that adds calls fails here.
//! `cargo test -p filter-core --test host_calls -- --nocapture` prints the table
//! recorded in bench/RESULTS.md.

#[path = "../../engine/tests/support/mod.rs"]
#[macro_use]
mod support;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use filter_core::metrics::{Counter, Gauge};
use filter_core::{Action, Host, HostError, Live, Metrics, OwnCall, OwnCallError, Request, Side};

/// How a host gives a request without a body its frame.
#[derive(Default, Clone, Copy, PartialEq)]
enum Bodiless {
    /// The Wasm build with its Lua companion: in a header of the rewrite.
    #[default]
    Companion,
    /// The dynamic module: appended as the body.
    Appended,
}

/// A host that keeps headers and bodies in memory and counts every call by name.
#[derive(Default)]
struct Counting {
    calls: RefCell<BTreeMap<&'static str, usize>>,
    request_headers: Vec<(String, Vec<u8>)>,
    response_headers: Vec<(String, Vec<u8>)>,
    response_trailers: Vec<(String, Vec<u8>)>,
    request_body: Vec<u8>,
    response_body: Vec<u8>,
    /// How a request without a body gets its frame.
    bodiless: Bodiless,
    replied: Cell<Option<u16>>,
}

impl Counting {
    fn call(&self, name: &'static str) {
        *self.calls.borrow_mut().entry(name).or_default() += 1;
    }

    fn total(&self) -> usize {
        self.calls.borrow().values().sum()
    }
}

fn set(map: &mut Vec<(String, Vec<u8>)>, name: &str, value: &[u8]) {
    map.retain(|(k, _)| k != name);
    map.push((name.to_string(), value.to_vec()));
}

fn get(map: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    map.iter().find(|(k, _)| k == name).and_then(|(_, v)| String::from_utf8(v.clone()).ok())
}

impl Metrics for Counting {
    fn count(&self, _counter: Counter<'_>) {
        self.call("count");
    }
    fn gauge(&self, _gauge: Gauge, _value: u64) {
        self.call("gauge");
    }
}

impl Host for Counting {
    fn request_header(&self, name: &str) -> Option<String> {
        self.call("request_header");
        get(&self.request_headers, name)
    }
    fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.call("request_headers");
        self.request_headers.clone()
    }
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.call("set_request_header");
        set(&mut self.request_headers, name, value.as_bytes());
        Ok(())
    }
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.call("remove_request_header");
        self.request_headers.retain(|(k, _)| k != name);
        Ok(())
    }
    /// As the Wasm host does it: the whole map written at once, read first if the caller has it not.
    fn rewrite_headers(
        &mut self,
        side: Side,
        current: Option<Vec<(String, Vec<u8>)>>,
        set_values: &[(&str, &str)],
        remove: &[&str],
    ) -> Result<(), HostError> {
        if current.is_none() {
            self.call("get_map");
        }
        self.call("set_map");
        let map = match side {
            Side::Request => &mut self.request_headers,
            Side::Response => &mut self.response_headers,
        };
        map.retain(|(k, _)| !remove.contains(&k.as_str()));
        for (name, value) in set_values {
            set(map, name, value.as_bytes());
        }
        Ok(())
    }
    fn frame_header(&self) -> Option<&'static str> {
        (self.bodiless == Bodiless::Companion).then_some("x-rust-grpc-proxy-frame")
    }
    fn frame_as_header(&self, frame: &[u8]) -> Option<String> {
        (self.bodiless == Bodiless::Companion).then(|| frame.iter().map(|b| format!("{b:02x}")).collect())
    }
    fn response_header(&self, name: &str) -> Option<String> {
        self.call("response_header");
        get(&self.response_headers, name)
    }
    fn response_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.call("response_headers");
        self.response_headers.clone()
    }
    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.call("set_response_header");
        set(&mut self.response_headers, name, value.as_bytes());
        Ok(())
    }
    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        self.call("remove_response_header");
        self.response_headers.retain(|(k, _)| k != name);
        Ok(())
    }
    fn response_trailers(&self) -> Vec<(String, Vec<u8>)> {
        self.call("response_trailers");
        self.response_trailers.clone()
    }
    fn response_code_details(&self) -> Option<String> {
        self.call("response_code_details");
        None
    }
    fn body(&self, side: Side) -> Result<Vec<u8>, HostError> {
        self.call("body");
        Ok(match side {
            Side::Request => self.request_body.clone(),
            Side::Response => self.response_body.clone(),
        })
    }
    fn replace_body(&mut self, side: Side, held: usize, new: &[u8]) -> Result<(), HostError> {
        self.call("replace_body");
        let body = match side {
            Side::Request => &mut self.request_body,
            Side::Response => &mut self.response_body,
        };
        body.splice(..held.min(body.len()), new.iter().copied());
        Ok(())
    }
    fn send_response(&mut self, status: u16, _headers: &[(String, String)], _body: &[u8]) -> Result<(), HostError> {
        self.call("send_response");
        self.replied.set(Some(status));
        set(&mut self.response_headers, ":status", status.to_string().as_bytes());
        Ok(())
    }
    fn can_append_request_body(&self) -> bool {
        true
    }
    fn append_request_body(&mut self, frame: &[u8]) -> Result<(), HostError> {
        self.call("append_request_body");
        self.request_body = frame.to_vec();
        Ok(())
    }
    fn own_call(&mut self, _call: OwnCall) -> Result<u32, OwnCallError> {
        self.call("own_call");
        Ok(1)
    }
    fn cancel_own_call(&mut self, _token: u32) {
        self.call("cancel_own_call");
    }
    fn release_stream(&mut self, _live: &Rc<RefCell<Live>>, _end: bool) -> Action {
        Action::Continue
    }
    fn forget_stream(&mut self) {}
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

fn client_headers(method: &str, path: &str, content_type: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let mut out = headers(&[
        (":method", method),
        (":path", path),
        (":authority", "library.example.test"),
        (":scheme", "http"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
        ("x-request-id", "6a3c1d9e-2f41-4b8e-9d0a-1c2b3d4e5f60"),
        ("x-forwarded-proto", "http"),
    ]);
    if let Some(ct) = content_type {
        out.push(("content-type".into(), ct.as_bytes().to_vec()));
    }
    out
}

/// Shelf {id: 1, theme: "fake"}, as a gRPC server answers GetShelf and CreateShelf.
const SHELF: &[u8] = b"\x08\x01\x12\x04fake";

/// One request through the core, as Envoy drives it; returns the host with its counts.
fn drive(method: &str, path: &str, body: Option<&[u8]>, bodiless: Bodiless, answer: &[Vec<u8>]) -> Counting {
    let transcoder = Arc::new(support::transcoder(serde_json::json!({})));
    let mut request = Request::new(Some(transcoder), None);
    let content_type = body.map(|_| "application/json");
    let mut host =
        Counting { bodiless, request_headers: client_headers(method, path, content_type), ..Default::default() };
    let mut action = request.on_request_headers(&mut host, body.is_none());
    if let Some(body) = body {
        host.request_body = body.to_vec();
        action = request.on_request_body(&mut host, true);
    }
    if host.replied.get().is_none() && request.transcoding() {
        assert_eq!(action, Action::Continue, "{method} {path}: the request goes on");
        host.response_headers = headers(&[(":status", "200"), ("content-type", "application/grpc")]);
        request.on_response_headers(&mut host, false);
        for message in answer {
            host.response_body = frame(message);
            request.on_response_body(&mut host, false);
        }
        host.response_body.clear();
        host.response_trailers = headers(&[("grpc-status", "0")]);
        request.on_response_trailers(&mut host);
    }
    request.on_log(&host);
    host
}

/// The shapes and their budgets: the most host calls each may make (before the
/// whole-map reads and writes: 21, 21, 30, 4 and 2 with the companion's strip).
fn shapes() -> Vec<(&'static str, Counting, usize)> {
    let books = [b"\x0a\x11shelves/1/books/1".to_vec(), b"\x0a\x11shelves/1/books/2".to_vec()];
    vec![
        (
            "POST unary",
            drive("POST", "/v1/shelves", Some(br#"{"theme":"x"}"#), Bodiless::Companion, &[SHELF.to_vec()]),
            10,
        ),
        (
            "GET unary (Wasm + companion)",
            drive("GET", "/v1/shelves/1", None, Bodiless::Companion, &[SHELF.to_vec()]),
            8,
        ),
        ("GET unary (module)", drive("GET", "/v1/shelves/1", None, Bodiless::Appended, &[SHELF.to_vec()]), 9),
        (
            "POST server stream, 2 messages",
            drive("POST", "/v1/shelves/1/books:stream", Some(br#"{"count":2}"#), Bodiless::Companion, &books),
            15,
        ),
        ("GET, not transcoded", drive("GET", "/healthz", None, Bodiless::Companion, &[]), 1),
        (
            "native gRPC, passed through",
            {
                let transcoder = Arc::new(support::transcoder(serde_json::json!({})));
                let mut request = Request::new(Some(transcoder), None);
                let mut host = Counting {
                    request_headers: client_headers(
                        "POST",
                        "/bookstore.v1.Bookstore/GetShelf",
                        Some("application/grpc"),
                    ),
                    ..Default::default()
                };
                request.on_request_headers(&mut host, false);
                request.on_log(&host);
                host
            },
            1,
        ),
    ]
}

#[test]
fn host_calls_per_request_shape_stay_within_budget() {
    let mut over = Vec::new();
    for (shape, host, budget) in shapes() {
        let calls = host.calls.borrow();
        let detail: Vec<String> = calls.iter().map(|(name, n)| format!("{name} {n}")).collect();
        println!("| {shape} | {} | {} |", host.total(), detail.join(", "));
        if host.total() > budget {
            over.push(format!("{shape}: {} host calls, budget {budget}", host.total()));
        }
    }
    assert!(over.is_empty(), "{over:?}");
}

/// A route's own transcoder (the dynamic module's per-route configuration) serves the
/// request instead of none or a set still awaited; this in-memory host is reused for it.
#[test]
fn a_route_transcoder_serves_requests_the_filter_level_would_not() {
    let rest = || client_headers("POST", "/v1/shelves", Some("application/json"));
    // No filter-level set (`{}`): the request passes through untouched.
    let mut host = Counting { request_headers: rest(), ..Default::default() };
    let mut request = Request::new(None, None);
    assert_eq!(request.on_request_headers(&mut host, false), Action::Continue);
    assert!(!request.transcoding() && get(&host.request_headers, ":path").as_deref() == Some("/v1/shelves"));
    // A filter-level set still awaited (503) is no reason to hold a route that has its own.
    for not_ready in [None, Some(Rc::from("http://descriptors/set.pb"))] {
        let mut host = Counting { request_headers: rest(), ..Default::default() };
        let mut request = Request::new(None, not_ready);
        request.use_route_transcoder(Arc::new(support::transcoder(serde_json::json!({}))));
        assert_eq!(request.on_request_headers(&mut host, false), Action::Pause);
        assert!(request.transcoding() && host.replied.get().is_none());
        let path = get(&host.request_headers, ":path");
        assert_eq!(path.as_deref(), Some("/bookstore.v1.Bookstore/CreateShelf"));
    }
}

/// A GET's frame reaches the companion in the one header rewrite (the Wasm build), in
/// place of any marker a client sent, or the body (the module): the same bytes either way.
#[test]
fn a_bodiless_request_hands_its_frame_over_with_its_headers() {
    let transcoder = Arc::new(support::transcoder(serde_json::json!({})));
    let mut frames = Vec::new();
    for bodiless in [Bodiless::Companion, Bodiless::Appended] {
        let mut request_headers = client_headers("GET", "/v1/shelves/7", None);
        if bodiless == Bodiless::Companion {
            request_headers.push(("x-rust-grpc-proxy-frame".to_string(), b"00000000020801".to_vec()));
        }
        let mut host = Counting { bodiless, request_headers, ..Default::default() };
        let mut request = Request::new(Some(transcoder.clone()), None);
        assert_eq!(request.on_request_headers(&mut host, true), Action::Continue);
        assert_eq!(get(&host.request_headers, ":path").as_deref(), Some("/bookstore.v1.Bookstore/GetShelf"));
        frames.push(match bodiless {
            Bodiless::Companion => {
                assert_eq!(host.calls.borrow().get("set_map"), Some(&1), "one header write");
                assert!(!host.calls.borrow().contains_key("append_request_body"));
                let marked = host.request_headers.iter().filter(|(k, _)| k == "x-rust-grpc-proxy-frame").count();
                assert_eq!(marked, 1, "the client's marker is replaced, not kept beside ours");
                get(&host.request_headers, "x-rust-grpc-proxy-frame").expect("the frame in the marker")
            }
            Bodiless::Appended => host.request_body.iter().map(|b| format!("{b:02x}")).collect(),
        });
    }
    // GetShelfRequest { shelf: 7 }, framed.
    assert_eq!(frames, ["00000000020807", "00000000020807"]);
}
