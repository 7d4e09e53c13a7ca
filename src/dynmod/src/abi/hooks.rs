//! The event hooks Envoy 1.40 looks up by name in the module (it refuses a
//! module missing any `envoy_dynamic_module_on_http_filter_*` it knows). Each
//! one catches panics: unwinding into Envoy's C++ is undefined behaviour and a
//! panic in a native module would otherwise take the whole Envoy down.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use filter_core::Action;

use super::callbacks::{
    self, envoy_bytes, envoy_chunks, envoy_headers, ConfigHandle, EnvoyBuffer, EnvoyHeader, LogLevel, Stream,
};
use crate::filter::{Filter, FilterConfig, RouteConfig};
use crate::remote::{Event, TICK_EVENT};

/// `Continue` in every `*_status` enum of the ABI.
const CONTINUE: i32 = 0;
/// `StopIteration` (headers, trailers) and `StopIterationAndBuffer` (body) in the ABI's enums.
const STOP: i32 = 1;

fn status(action: Action) -> i32 {
    match action {
        Action::Continue => CONTINUE,
        Action::Pause => STOP,
    }
}

/// Runs `f`, turning a panic into `fallback` (and a log line).
fn guard<T>(what: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(_) => {
            callbacks::log(LogLevel::Error, &format!("rust_grpc_proxy: panic in {what}"));
            fallback
        }
    }
}

/// A request hook that panicked: the stream gets a JSON 500 and stops here.
fn fail_stream(stream: &Stream<'_>) -> i32 {
    let body = br#"{"code":13,"message":"rust_grpc_proxy: internal error in the filter"}"#;
    let _ = catch_unwind(AssertUnwindSafe(|| {
        stream.send_response(500, &[("content-type".into(), "application/json".into())], body, "rust_grpc_proxy_panic")
    }));
    STOP
}

/// The in-module stream behind the pointer Envoy passes back to us.
///
/// # Safety
/// `ptr` must be a pointer returned by [`envoy_dynamic_module_on_http_filter_new`]
/// and not yet destroyed; Envoy calls a stream's hooks on one thread, one at a time.
unsafe fn filter<'a>(ptr: *const c_void) -> Option<&'a mut Filter> {
    (ptr as *mut Filter).as_mut()
}

/// Runs a stream hook: the filter, the stream wrapper, panic handling.
fn stream_hook(
    what: &str,
    envoy: *mut c_void,
    module: *const c_void,
    f: impl FnOnce(&mut Filter, &Stream<'_>) -> Action,
) -> i32 {
    let stream = Stream::new(envoy);
    // SAFETY: Envoy passes the pointer we returned from on_http_filter_new, alive until on_http_filter_destroy.
    let Some(filter) = (unsafe { filter(module) }) else { return CONTINUE };
    if filter.failed() {
        // A hook of this stream panicked: its state is unknown, so the filter stays out
        // of the way of the 500 it sent (and of anything else still passing).
        return CONTINUE;
    }
    let run = || {
        #[cfg(feature = "panic-probe")]
        panic_probe(what, &stream);
        f(&mut *filter, &stream)
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(action) => status(action),
        Err(_) => {
            filter.fail();
            callbacks::log(LogLevel::Error, &format!("rust_grpc_proxy: panic in {what}; the request gets a 500"));
            fail_stream(&stream)
        }
    }
}

/// Test builds only (`--features panic-probe`, tests/e2e/test_dynmod.py): a request whose
/// `x-rust-grpc-proxy-panic` header names a hook panics in that hook, to show that a panic
/// costs one request a 500 and never the Envoy process.
#[cfg(feature = "panic-probe")]
fn panic_probe(what: &str, stream: &Stream<'_>) {
    use callbacks::HeaderMap;
    if stream.header(HeaderMap::RequestHeaders, "x-rust-grpc-proxy-panic").as_deref() == Some(what.as_bytes()) {
        panic!("panic probe in {what}");
    }
}

/// Runs a configuration-level hook (main thread): hands the event `make` builds
/// to the configuration's descriptor fetches, catching panics.
fn config_event(what: &str, envoy: *mut c_void, config: *const c_void, make: impl FnOnce() -> Event) {
    guard(what, (), || {
        // SAFETY: Envoy passes the pointer we returned from config_new, alive until config_destroy.
        let Some(config) = (unsafe { (config as *const FilterConfig).as_ref() }) else { return };
        config.fetch_event(&ConfigHandle::new(envoy), make());
    })
}

static ABI_VERSION: &[u8] = b"v0.2.0\0";

/// Process-wide start: installs the logger and reports the ABI version.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    guard("program init", std::ptr::null(), || {
        crate::logger::install();
        debug_assert_eq!(&ABI_VERSION[..ABI_VERSION.len() - 1], super::ABI_VERSION.as_bytes());
        ABI_VERSION.as_ptr()
    })
}

/// A filter configuration: null refuses it (Envoy then refuses the listener's config).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: *mut c_void,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guard("config_new", std::ptr::null(), || {
        // SAFETY: Envoy's configuration buffer is valid for the duration of this hook.
        let json = unsafe { envoy_bytes(config) };
        match FilterConfig::new(&json, &ConfigHandle::new(config_envoy)) {
            Ok(config) => Box::into_raw(Box::new(config)) as *const c_void,
            Err(e) => {
                callbacks::log(LogLevel::Error, &format!("rust_grpc_proxy: {e}"));
                std::ptr::null()
            }
        }
    })
}

/// The configuration is gone.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    guard("config_destroy", (), || {
        if !config.is_null() {
            // SAFETY: the pointer came from Box::into_raw in config_new and Envoy destroys it once.
            drop(unsafe { Box::from_raw(config as *mut FilterConfig) });
        }
    })
}

/// A new HTTP stream.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(config: *const c_void, _envoy: *mut c_void) -> *const c_void {
    guard("filter_new", std::ptr::null(), || {
        // SAFETY: the pointer came from config_new; Envoy keeps the configuration alive while it has streams.
        let Some(config) = (unsafe { (config as *const FilterConfig).as_ref() }) else { return std::ptr::null() };
        Box::into_raw(Box::new(config.new_filter())) as *const c_void
    })
}

/// The stream is gone.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: *const c_void) {
    guard("filter_destroy", (), || {
        if !module.is_null() {
            // SAFETY: the pointer came from Box::into_raw in filter_new and Envoy destroys it once.
            drop(unsafe { Box::from_raw(module as *mut Filter) });
        }
    })
}

/// Envoy's `request headers` hook: passed to the stream's filter.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: *mut c_void,
    module: *const c_void,
    end_of_stream: bool,
) -> i32 {
    stream_hook("request_headers", envoy, module, |f, s| f.request_headers(s, end_of_stream))
}

/// Envoy's `request body` hook: passed to the stream's filter.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: *mut c_void,
    module: *const c_void,
    end_of_stream: bool,
) -> i32 {
    stream_hook("request_body", envoy, module, |f, s| f.request_body(s, end_of_stream))
}

/// Envoy's `request trailers` hook: passed to the stream's filter.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    envoy: *mut c_void,
    module: *const c_void,
) -> i32 {
    stream_hook("request_trailers", envoy, module, |f, s| f.request_trailers(s))
}

/// Envoy's `response headers` hook: passed to the stream's filter.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: *mut c_void,
    module: *const c_void,
    end_of_stream: bool,
) -> i32 {
    stream_hook("response_headers", envoy, module, |f, s| f.response_headers(s, end_of_stream))
}

/// Envoy's `response body` hook: passed to the stream's filter.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    envoy: *mut c_void,
    module: *const c_void,
    end_of_stream: bool,
) -> i32 {
    stream_hook("response_body", envoy, module, |f, s| f.response_body(s, end_of_stream))
}

/// Envoy's `response trailers` hook: passed to the stream's filter.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    envoy: *mut c_void,
    module: *const c_void,
) -> i32 {
    stream_hook("response_trailers", envoy, module, |f, s| f.response_trailers(s))
}

/// The stream ended (before access logs): the answer is final.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(envoy: *mut c_void, module: *const c_void) {
    guard("stream_complete", (), || {
        // SAFETY: as in stream_hook.
        if let Some(filter) = unsafe { filter(module) } {
            filter.stream_complete(&Stream::new(envoy));
        }
    })
}

/// A local reply is being sent on the stream: keep its details (Envoy's reason).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _envoy: *mut c_void,
    module: *const c_void,
    _response_code: u32,
    details: EnvoyBuffer,
    _reset_imminent: bool,
) -> i32 {
    guard("local_reply", CONTINUE, || {
        // SAFETY: as in stream_hook; the details buffer is valid for this hook.
        if let Some(filter) = unsafe { filter(module) } {
            let details = unsafe { envoy_bytes(details) };
            filter.local_reply(String::from_utf8_lossy(&details).into_owned());
        }
        CONTINUE
    })
}

/// A route's own configuration (`DynamicModuleFilterPerRoute`): null refuses it (Envoy
/// then refuses the route configuration). `name` (`per_route_config_name`) is not used.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guard("per_route_config_new", std::ptr::null(), || {
        // SAFETY: Envoy's configuration buffer is valid for the duration of this hook.
        let json = unsafe { envoy_bytes(config) };
        match RouteConfig::new(&json) {
            Ok(config) => Box::into_raw(Box::new(config)) as *const c_void,
            Err(e) => {
                callbacks::log(LogLevel::Error, &format!("rust_grpc_proxy: {e}"));
                std::ptr::null()
            }
        }
    })
}

/// The route's configuration is gone (streams that took its transcoder keep their `Arc`).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(config: *const c_void) {
    guard("per_route_config_destroy", (), || {
        if !config.is_null() {
            // SAFETY: the pointer came from Box::into_raw in per_route_config_new and Envoy destroys it once.
            drop(unsafe { Box::from_raw(config as *mut RouteConfig) });
        }
    })
}

// Hooks for features this module does not use (per-stream callouts and streams,
// watermarks). Envoy requires them all to exist.

/// An event the stream scheduled: resuming a response whose trailers were held
/// until the stream's closing bytes went out.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    envoy: *mut c_void,
    _module: *const c_void,
    event: u64,
) {
    guard("scheduled", (), || {
        if event == callbacks::CONTINUE_ENCODING {
            Stream::new(envoy).continue_encoding();
        }
    })
}

/// The configuration's scheduler fired (the descriptor fetch timer's tick), on the main thread.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    envoy: *mut c_void,
    config: *const c_void,
    event: u64,
) {
    if event == TICK_EVENT {
        config_event("config_scheduled", envoy, config, || Event::Tick);
    }
}

/// Envoy's `http callout done` hook: unused by this module (Envoy requires it).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _envoy: *mut c_void,
    _module: *const c_void,
    _id: u64,
    _result: i32,
    _headers: *const EnvoyHeader,
    _headers_size: usize,
    _body: *const EnvoyBuffer,
    _body_size: usize,
) {
}

/// A `descriptor_url` call ended (`result` 0: an answer came; else reset or too large).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    envoy: *mut c_void,
    config: *const c_void,
    id: u64,
    result: i32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    body: *const EnvoyBuffer,
    body_size: usize,
) {
    config_event("config_http_callout_done", envoy, config, || {
        // SAFETY: Envoy's headers and body chunks are valid for the duration of this hook (or null).
        let (headers, body) = unsafe { (envoy_headers(headers, headers_size), envoy_chunks(body, body_size)) };
        let status = (result == 0)
            .then(|| headers.into_iter().find(|(name, _)| name == ":status"))
            .flatten()
            .map(|(_, value)| String::from_utf8_lossy(&value).into_owned());
        Event::CalloutDone { id, status, body }
    });
}

/// Envoy's `http stream headers` hook: unused by this module (Envoy requires it).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _headers: *const EnvoyHeader,
    _headers_size: usize,
    _end: bool,
) {
}

/// Envoy's `http stream data` hook: unused by this module (Envoy requires it).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _data: *const EnvoyBuffer,
    _count: usize,
    _end: bool,
) {
}

/// Envoy's `http stream trailers` hook: unused by this module (Envoy requires it).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _trailers: *const EnvoyHeader,
    _size: usize,
) {
}

/// Envoy's `http stream complete` hook: unused by this module (Envoy requires it).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
) {
}

/// Envoy's `http stream reset` hook: unused by this module (Envoy requires it).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: *mut c_void,
    _module: *const c_void,
    _stream: u64,
    _reason: i32,
) {
}

/// Response headers on a reflection stream.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    envoy: *mut c_void,
    config: *const c_void,
    stream: u64,
    headers: *const EnvoyHeader,
    headers_size: usize,
    end: bool,
) {
    config_event("config_http_stream_headers", envoy, config, || {
        // SAFETY: Envoy's headers are valid for the duration of this hook (or null).
        let headers = unsafe { envoy_headers(headers, headers_size) };
        Event::StreamHeaders { id: stream, headers, end }
    });
}

/// Response data on a reflection stream.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    envoy: *mut c_void,
    config: *const c_void,
    stream: u64,
    data: *const EnvoyBuffer,
    count: usize,
    end: bool,
) {
    config_event("config_http_stream_data", envoy, config, || {
        // SAFETY: Envoy's data chunks are valid for the duration of this hook (or null).
        let data = unsafe { envoy_chunks(data, count) };
        Event::StreamData { id: stream, data, end }
    });
}

/// Response trailers on a reflection stream (the gRPC status).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    envoy: *mut c_void,
    config: *const c_void,
    stream: u64,
    trailers: *const EnvoyHeader,
    size: usize,
) {
    config_event("config_http_stream_trailers", envoy, config, || {
        // SAFETY: Envoy's trailers are valid for the duration of this hook (or null).
        let trailers = unsafe { envoy_headers(trailers, size) };
        Event::StreamTrailers { id: stream, trailers }
    });
}

/// A reflection stream ended.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    envoy: *mut c_void,
    config: *const c_void,
    stream: u64,
) {
    config_event("config_http_stream_complete", envoy, config, || Event::StreamComplete { id: stream });
}

/// A reflection stream was reset (no connection, timeout, or our own cancel).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    envoy: *mut c_void,
    config: *const c_void,
    stream: u64,
    reason: i32,
) {
    config_event("config_http_stream_reset", envoy, config, || Event::StreamReset { id: stream, reason });
}

/// Envoy's `downstream above write buffer high watermark` hook: unused by this module (Envoy requires it).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: *mut c_void,
    _module: *const c_void,
) {
}

/// Envoy's `downstream below write buffer low watermark` hook: unused by this module (Envoy requires it).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: *mut c_void,
    _module: *const c_void,
) {
}
