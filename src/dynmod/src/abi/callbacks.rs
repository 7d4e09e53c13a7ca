//! The Envoy callbacks the module calls, declared from Envoy 1.40.0's ABI
//! header, and safe wrappers over them that only live as long as the event
//! hook that received the pointer they act on.

use std::ffi::c_void;
use std::marker::PhantomData;

use crate::filter::RouteConfig;

/// A buffer owned by Envoy (`envoy_dynamic_module_type_envoy_buffer`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub(super) ptr: *const u8,
    pub(super) length: usize,
}

/// A buffer owned by the module (`envoy_dynamic_module_type_module_buffer`).
#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleBuffer {
    ptr: *const u8,
    length: usize,
}

impl ModuleBuffer {
    fn of(bytes: &[u8]) -> Self {
        ModuleBuffer { ptr: bytes.as_ptr(), length: bytes.len() }
    }

    const NULL: ModuleBuffer = ModuleBuffer { ptr: std::ptr::null(), length: 0 };
}

/// A header owned by Envoy (`envoy_dynamic_module_type_envoy_http_header`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

/// A header owned by the module (`envoy_dynamic_module_type_module_http_header`).
#[repr(C)]
struct ModuleHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

/// `envoy_dynamic_module_type_http_header_type`.
#[derive(Clone, Copy)]
#[repr(i32)]
pub enum HeaderMap {
    RequestHeaders = 0,
    ResponseHeaders = 2,
    ResponseTrailers = 3,
}

/// `envoy_dynamic_module_type_http_body_type`.
#[derive(Clone, Copy)]
#[repr(i32)]
pub enum Body {
    ReceivedRequest = 0,
    BufferedRequest = 1,
    ReceivedResponse = 2,
    BufferedResponse = 3,
}

/// `envoy_dynamic_module_type_log_level`.
#[derive(Clone, Copy)]
#[repr(i32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

extern "C" {
    fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;
    fn envoy_dynamic_module_callback_http_get_header(
        filter: *mut c_void,
        map: HeaderMap,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_headers_size(filter: *mut c_void, map: HeaderMap) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: *mut c_void,
        map: HeaderMap,
        result: *mut EnvoyHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: *mut c_void,
        map: HeaderMap,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_send_response(
        filter: *mut c_void,
        status_code: u32,
        headers: *const ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_get_body_chunks_size(filter: *mut c_void, body: Body) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: *mut c_void,
        body: Body,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_append_body(filter: *mut c_void, body: Body, data: ModuleBuffer) -> bool;
    fn envoy_dynamic_module_callback_http_drain_body(filter: *mut c_void, body: Body, bytes: usize) -> bool;
    fn envoy_dynamic_module_callback_http_filter_scheduler_new(filter: *mut c_void) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_scheduler_commit(scheduler: *mut c_void, event_id: u64);
    fn envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_continue_encoding(filter: *mut c_void);
    fn envoy_dynamic_module_callback_http_set_buffer_limit(filter: *mut c_void, limit: u64);
    fn envoy_dynamic_module_callback_http_get_buffer_limit(filter: *mut c_void) -> u64;
    fn envoy_dynamic_module_callback_http_clear_route_cache(filter: *mut c_void);
    fn envoy_dynamic_module_callback_get_most_specific_route_config(filter: *mut c_void) -> *const c_void;
    fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: *mut c_void,
        callout_id: *mut u64,
        cluster: ModuleBuffer,
        headers: *const ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> i32;
    fn envoy_dynamic_module_callback_http_filter_config_start_http_stream(
        config: *mut c_void,
        stream_id: *mut u64,
        cluster: ModuleBuffer,
        headers: *const ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        end_stream: bool,
        timeout_milliseconds: u64,
    ) -> i32;
    fn envoy_dynamic_module_callback_http_filter_config_stream_send_data(
        config: *mut c_void,
        stream_id: u64,
        data: ModuleBuffer,
        end_stream: bool,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_config_reset_http_stream(config: *mut c_void, stream_id: u64);
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(config: *mut c_void) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(scheduler: *mut c_void, event_id: u64);
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        counter_id: *mut usize,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        gauge_id: *mut usize,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: *mut c_void,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
}

/// `envoy_dynamic_module_type_metrics_result`: 0 is Success, then MetricNotFound,
/// InvalidLabels, Frozen (a metric defined after the configuration was created).
type MetricsResult = i32;

/// Module buffers over label names or values, for the metrics calls.
fn module_buffers(texts: &[&str]) -> Vec<ModuleBuffer> {
    texts.iter().map(|t| ModuleBuffer::of(t.as_bytes())).collect()
}

/// The event [`Stream::continue_encoding_soon`] schedules.
pub const CONTINUE_ENCODING: u64 = 1;

/// Every callback this module declares, for the test that checks them
/// against the symbols the Envoy binary exports.
pub const DECLARED: &[&str] = &[
    "envoy_dynamic_module_callback_log",
    "envoy_dynamic_module_callback_log_enabled",
    "envoy_dynamic_module_callback_http_get_header",
    "envoy_dynamic_module_callback_http_get_headers_size",
    "envoy_dynamic_module_callback_http_get_headers",
    "envoy_dynamic_module_callback_http_set_header",
    "envoy_dynamic_module_callback_http_send_response",
    "envoy_dynamic_module_callback_http_get_body_chunks_size",
    "envoy_dynamic_module_callback_http_get_body_chunks",
    "envoy_dynamic_module_callback_http_append_body",
    "envoy_dynamic_module_callback_http_drain_body",
    "envoy_dynamic_module_callback_http_filter_scheduler_new",
    "envoy_dynamic_module_callback_http_filter_scheduler_commit",
    "envoy_dynamic_module_callback_http_filter_scheduler_delete",
    "envoy_dynamic_module_callback_http_filter_continue_encoding",
    "envoy_dynamic_module_callback_http_set_buffer_limit",
    "envoy_dynamic_module_callback_http_get_buffer_limit",
    "envoy_dynamic_module_callback_http_clear_route_cache",
    "envoy_dynamic_module_callback_get_most_specific_route_config",
    "envoy_dynamic_module_callback_http_filter_config_http_callout",
    "envoy_dynamic_module_callback_http_filter_config_start_http_stream",
    "envoy_dynamic_module_callback_http_filter_config_stream_send_data",
    "envoy_dynamic_module_callback_http_filter_config_reset_http_stream",
    "envoy_dynamic_module_callback_http_filter_config_scheduler_new",
    "envoy_dynamic_module_callback_http_filter_config_scheduler_commit",
    "envoy_dynamic_module_callback_http_filter_config_scheduler_delete",
    "envoy_dynamic_module_callback_http_filter_config_define_counter",
    "envoy_dynamic_module_callback_http_filter_config_define_gauge",
    "envoy_dynamic_module_callback_http_filter_config_increment_counter",
    "envoy_dynamic_module_callback_http_filter_config_set_gauge",
    "envoy_dynamic_module_callback_http_filter_increment_counter",
];

/// Logs through Envoy (`[dynamic_modules]` logger).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: both are plain calls; the message buffer outlives the call and Envoy copies it.
    unsafe {
        if envoy_dynamic_module_callback_log_enabled(level) {
            envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes()));
        }
    }
}

/// Copies an Envoy-owned buffer.
///
/// # Safety
/// `buffer` must describe `length` readable bytes (or have a null pointer).
unsafe fn copy(ptr: *const u8, length: usize) -> Vec<u8> {
    if ptr.is_null() || length == 0 {
        return Vec::new();
    }
    std::slice::from_raw_parts(ptr, length).to_vec()
}

/// Copies the bytes of an Envoy buffer handed to an event hook.
///
/// # Safety
/// As [`copy`]: Envoy guarantees this for buffers it passes to a hook, for the hook's duration.
pub(super) unsafe fn envoy_bytes(buffer: EnvoyBuffer) -> Vec<u8> {
    copy(buffer.ptr, buffer.length)
}

/// The HTTP stream an event hook was called for; valid only during that hook
/// (the lifetime ties it to the hook's frame).
pub struct Stream<'hook> {
    ptr: *mut c_void,
    _hook: PhantomData<&'hook ()>,
}

impl Stream<'_> {
    /// Made by the hooks only, from the pointer Envoy passed them.
    pub(super) fn new(ptr: *mut c_void) -> Self {
        Stream { ptr, _hook: PhantomData }
    }

    /// Adds one to counter `id` (defined by this stream's configuration) with these label values.
    pub fn increment_counter(&self, id: usize, labels: &[&str]) -> bool {
        let labels = module_buffers(labels);
        // SAFETY: `self.ptr` is the stream of the running hook; the label buffers outlive
        // the call and Envoy only reads them (it interns the values it keeps).
        unsafe {
            envoy_dynamic_module_callback_http_filter_increment_counter(self.ptr, id, labels.as_ptr(), labels.len(), 1)
                == 0
        }
    }

    /// One header's first value.
    pub fn header(&self, map: HeaderMap, name: &str) -> Option<Vec<u8>> {
        let mut result = EnvoyBuffer { ptr: std::ptr::null(), length: 0 };
        let mut count = 0usize;
        // SAFETY: `self.ptr` is the filter pointer of the running hook; the key outlives the
        // call; `result` and `count` are valid for writes. The value Envoy points to stays
        // valid until a setter is called, and is copied before returning.
        unsafe {
            let found = envoy_dynamic_module_callback_http_get_header(
                self.ptr,
                map,
                ModuleBuffer::of(name.as_bytes()),
                &mut result,
                0,
                &mut count,
            );
            if !found || count == 0 || result.ptr.is_null() {
                return None;
            }
            Some(copy(result.ptr, result.length))
        }
    }

    /// All entries of a header map, in order.
    pub fn headers(&self, map: HeaderMap) -> Vec<(String, Vec<u8>)> {
        // SAFETY: plain call on the running hook's filter pointer.
        let size = unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.ptr, map) };
        if size == 0 {
            return Vec::new();
        }
        let empty =
            EnvoyHeader { key_ptr: std::ptr::null(), key_length: 0, value_ptr: std::ptr::null(), value_length: 0 };
        let mut headers = vec![empty; size];
        // SAFETY: `headers` has room for the `size` entries Envoy reported for this map;
        // the buffers they point to are copied before any setter can run.
        unsafe {
            if !envoy_dynamic_module_callback_http_get_headers(self.ptr, map, headers.as_mut_ptr()) {
                return Vec::new();
            }
            headers
                .iter()
                .map(|h| {
                    let key = String::from_utf8_lossy(&copy(h.key_ptr, h.key_length)).into_owned();
                    (key, copy(h.value_ptr, h.value_length))
                })
                .collect()
        }
    }

    /// Sets a header (replacing its values); `None` removes it, and so does an empty value
    /// (Envoy 1.40 removes a header set to empty; the ABI cannot send one empty).
    pub fn set_header(&self, map: HeaderMap, name: &str, value: Option<&str>) -> bool {
        let value = value.map(|v| ModuleBuffer::of(v.as_bytes())).unwrap_or(ModuleBuffer::NULL);
        // SAFETY: the buffers outlive the call and Envoy copies them; a null value means removal.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(self.ptr, map, ModuleBuffer::of(name.as_bytes()), value)
        }
    }

    /// Answers with a local reply.
    pub fn send_response(&self, status: u16, headers: &[(String, String)], body: &[u8], details: &str) {
        let headers: Vec<ModuleHeader> = headers
            .iter()
            .map(|(k, v)| ModuleHeader {
                key_ptr: k.as_ptr(),
                key_length: k.len(),
                value_ptr: v.as_ptr(),
                value_length: v.len(),
            })
            .collect();
        // SAFETY: every pointer describes a live buffer that outlives the call; Envoy copies them.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.ptr,
                u32::from(status),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(details.as_bytes()),
            )
        }
    }

    /// The bytes of a body buffer (empty when absent).
    pub fn body(&self, body: Body) -> Vec<u8> {
        // SAFETY: plain call on the running hook's filter pointer.
        let chunks = unsafe { envoy_dynamic_module_callback_http_get_body_chunks_size(self.ptr, body) };
        if chunks == 0 {
            return Vec::new();
        }
        let mut slices = vec![EnvoyBuffer { ptr: std::ptr::null(), length: 0 }; chunks];
        // SAFETY: `slices` has room for the `chunks` slices Envoy reported; they are copied
        // before any call that could change the buffer.
        unsafe {
            if !envoy_dynamic_module_callback_http_get_body_chunks(self.ptr, body, slices.as_mut_ptr()) {
                return Vec::new();
            }
            let mut out = Vec::with_capacity(slices.iter().map(|s| s.length).sum());
            for s in &slices {
                if !s.ptr.is_null() {
                    out.extend_from_slice(std::slice::from_raw_parts(s.ptr, s.length));
                }
            }
            out
        }
    }

    /// Drains `bytes` from the front of a body buffer.
    pub fn drain(&self, body: Body, bytes: usize) -> bool {
        // SAFETY: plain call on the running hook's filter pointer.
        unsafe { envoy_dynamic_module_callback_http_drain_body(self.ptr, body, bytes) }
    }

    /// Appends to a body buffer (a buffered body is created when there is none).
    pub fn append(&self, body: Body, data: &[u8]) -> bool {
        // SAFETY: the data outlives the call and Envoy copies it.
        unsafe { envoy_dynamic_module_callback_http_append_body(self.ptr, body, ModuleBuffer::of(data)) }
    }

    /// Has Envoy call the stream's `scheduled` hook with [`CONTINUE_ENCODING`] on its
    /// worker, once the running hook returned (which then resumes the response).
    pub fn continue_encoding_soon(&self) -> bool {
        // SAFETY: the scheduler is created for the running hook's filter; commit posts an
        // event holding only a weak reference to the filter (dropped if the stream is gone),
        // so the scheduler can be deleted at once.
        unsafe {
            let scheduler = envoy_dynamic_module_callback_http_filter_scheduler_new(self.ptr);
            if scheduler.is_null() {
                return false;
            }
            envoy_dynamic_module_callback_http_filter_scheduler_commit(scheduler, CONTINUE_ENCODING);
            envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler);
        }
        true
    }

    /// Resumes a response this filter stopped.
    pub fn continue_encoding(&self) {
        // SAFETY: plain call on the running hook's filter pointer.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_encoding(self.ptr) }
    }

    /// Envoy's buffer limit for this stream (0 when it has none to say).
    pub fn buffer_limit(&self) -> u64 {
        // SAFETY: `self.ptr` is the stream of the running hook; a plain read.
        unsafe { envoy_dynamic_module_callback_http_get_buffer_limit(self.ptr) }
    }

    /// Sets the stream's buffer limit.
    pub fn set_buffer_limit(&self, limit: u64) {
        // SAFETY: plain call on the running hook's filter pointer.
        unsafe { envoy_dynamic_module_callback_http_set_buffer_limit(self.ptr, limit) }
    }

    /// Has Envoy pick the route again (the request headers changed).
    pub fn clear_route_cache(&self) {
        // SAFETY: plain call on the running hook's filter pointer.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.ptr) }
    }

    /// The per-route configuration (`DynamicModuleFilterPerRoute` under this filter's name)
    /// of the stream's route, the most specific one (route, else virtual host, else route
    /// configuration); None without a route or without one.
    pub fn route_config(&self) -> Option<&RouteConfig> {
        // SAFETY: plain call on the running hook's filter pointer; Envoy answers null when
        // the route (or its absence) carries no configuration for this filter.
        let ptr = unsafe { envoy_dynamic_module_callback_get_most_specific_route_config(self.ptr) };
        // SAFETY: a non-null pointer is one our per_route_config_new returned (Box<RouteConfig>,
        // the `dynamic_module_config` of a per-route configuration must name this module, as
        // the README says); the route that owns it is held by the stream during this hook,
        // and the borrow ends with `self`, which lives no longer than the hook.
        unsafe { (ptr as *const RouteConfig).as_ref() }
    }
}

/// Copies headers Envoy handed to an event hook.
///
/// # Safety
/// `headers` must point to `size` valid headers (or be null), valid for the hook's duration.
pub(super) unsafe fn envoy_headers(headers: *const EnvoyHeader, size: usize) -> Vec<(String, Vec<u8>)> {
    if headers.is_null() || size == 0 {
        return Vec::new();
    }
    std::slice::from_raw_parts(headers, size)
        .iter()
        .map(|h| {
            (String::from_utf8_lossy(&copy(h.key_ptr, h.key_length)).into_owned(), copy(h.value_ptr, h.value_length))
        })
        .collect()
}

/// Copies and joins body chunks Envoy handed to an event hook.
///
/// # Safety
/// `chunks` must point to `count` valid buffers (or be null), valid for the hook's duration.
pub(super) unsafe fn envoy_chunks(chunks: *const EnvoyBuffer, count: usize) -> Vec<u8> {
    if chunks.is_null() || count == 0 {
        return Vec::new();
    }
    let chunks = std::slice::from_raw_parts(chunks, count);
    let mut out = Vec::with_capacity(chunks.iter().map(|c| c.length).sum());
    for c in chunks {
        out.extend_from_slice(&copy(c.ptr, c.length));
    }
    out
}

/// Why Envoy refused to start a configuration-level callout or stream
/// (`envoy_dynamic_module_type_http_callout_init_result`).
fn init_error(code: i32) -> String {
    match code {
        1 => "a required header (:method, :path, host) is missing".into(),
        2 => "no such cluster".into(),
        3 => "duplicate callout id".into(),
        4 => "cannot create the request (no healthy host?)".into(),
        other => format!("refused (code {other})"),
    }
}

/// Module-owned headers pointing into `pairs` (which must outlive their use).
fn module_headers(pairs: &[(&str, &str)]) -> Vec<ModuleHeader> {
    pairs
        .iter()
        .map(|(k, v)| ModuleHeader {
            key_ptr: k.as_ptr(),
            key_length: k.len(),
            value_ptr: v.as_ptr(),
            value_length: v.len(),
        })
        .collect()
}

/// The filter configuration an event hook on the main thread was called for
/// (`DynamicModuleHttpFilterConfig`); valid only during that hook.
pub struct ConfigHandle<'hook> {
    ptr: *mut c_void,
    _hook: PhantomData<&'hook ()>,
}

impl ConfigHandle<'_> {
    /// Made by the hooks only, from the pointer Envoy passed them.
    pub(super) fn new(ptr: *mut c_void) -> Self {
        ConfigHandle { ptr, _hook: PhantomData }
    }

    /// Defines a counter (with label names, if any); None once Envoy froze stat creation.
    pub fn define_counter(&self, name: &str, labels: &[&str]) -> Option<usize> {
        let labels = module_buffers(labels);
        let mut id = 0usize;
        // SAFETY: `self.ptr` is the configuration of the running hook; the name and label
        // buffers outlive the call (Envoy copies them into its symbol table); `id` is ours.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_counter(
                self.ptr,
                ModuleBuffer::of(name.as_bytes()),
                labels.as_ptr(),
                labels.len(),
                &mut id,
            )
        };
        (result == 0).then_some(id)
    }

    /// Defines a gauge without labels; None once Envoy froze stat creation.
    pub fn define_gauge(&self, name: &str) -> Option<usize> {
        let mut id = 0usize;
        // SAFETY: as in define_counter, with no labels (a null pointer and a zero length).
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_gauge(
                self.ptr,
                ModuleBuffer::of(name.as_bytes()),
                std::ptr::null(),
                0,
                &mut id,
            )
        };
        (result == 0).then_some(id)
    }

    /// Adds one to counter `id` of this configuration, outside any stream.
    pub fn increment_counter(&self, id: usize, labels: &[&str]) -> bool {
        let labels = module_buffers(labels);
        // SAFETY: `self.ptr` is the configuration of the running hook; the label buffers
        // outlive the call and Envoy only reads them.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_increment_counter(
                self.ptr,
                id,
                labels.as_ptr(),
                labels.len(),
                1,
            ) == 0
        }
    }

    /// Sets gauge `id` of this configuration.
    pub fn set_gauge(&self, id: usize, value: u64) -> bool {
        // SAFETY: `self.ptr` is the configuration of the running hook; no labels.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_set_gauge(self.ptr, id, std::ptr::null(), 0, value) == 0
        }
    }

    /// Starts an HTTP call without a body on `cluster`; its answer comes to the
    /// `config_http_callout_done` hook with the returned id.
    pub fn http_callout(&self, cluster: &str, headers: &[(&str, &str)], timeout_ms: u64) -> Result<u64, String> {
        let headers = module_headers(headers);
        let mut id = 0u64;
        // SAFETY: `self.ptr` is the configuration pointer of the running hook; every buffer
        // outlives the call (Envoy copies them) and `id` is valid for writes.
        let code = unsafe {
            envoy_dynamic_module_callback_http_filter_config_http_callout(
                self.ptr,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::NULL,
                timeout_ms,
            )
        };
        if code == 0 {
            Ok(id)
        } else {
            Err(init_error(code))
        }
    }

    /// Opens an HTTP stream on `cluster` (request body to follow); its events come to
    /// the `config_http_stream_*` hooks with the returned id.
    pub fn start_stream(&self, cluster: &str, headers: &[(&str, &str)], timeout_ms: u64) -> Result<u64, String> {
        let headers = module_headers(headers);
        let mut id = 0u64;
        // SAFETY: as in http_callout.
        let code = unsafe {
            envoy_dynamic_module_callback_http_filter_config_start_http_stream(
                self.ptr,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::NULL,
                false,
                timeout_ms,
            )
        };
        if code == 0 {
            Ok(id)
        } else {
            Err(init_error(code))
        }
    }

    /// Sends request data on a stream opened by [`ConfigHandle::start_stream`].
    pub fn send_data(&self, stream: u64, data: &[u8], end_stream: bool) -> bool {
        // SAFETY: the data outlives the call and Envoy copies it; an unknown id is refused by Envoy.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_stream_send_data(
                self.ptr,
                stream,
                ModuleBuffer::of(data),
                end_stream,
            )
        }
    }

    /// Resets a stream opened by [`ConfigHandle::start_stream`].
    pub fn reset_stream(&self, stream: u64) {
        // SAFETY: plain call on the running hook's configuration pointer; Envoy ignores unknown ids.
        unsafe { envoy_dynamic_module_callback_http_filter_config_reset_http_stream(self.ptr, stream) }
    }

    /// A scheduler posting [`ConfigScheduler::commit`]'s events to this configuration's
    /// `config_scheduled` hook on the main thread.
    pub fn scheduler(&self) -> Option<ConfigScheduler> {
        // SAFETY: plain call on the configuration pointer (valid during config_new and every config hook).
        let ptr = unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.ptr) };
        (!ptr.is_null()).then_some(ConfigScheduler { ptr })
    }
}

/// Envoy's scheduler of a filter configuration: posts events to the main thread.
pub struct ConfigScheduler {
    ptr: *mut c_void,
}

// SAFETY: Envoy's configuration scheduler is made to be committed from any thread (it posts to
// the main dispatcher and holds only a weak reference to the configuration, so an event for a
// configuration that is gone is dropped); the pointer stays valid until `Drop` deletes it.
unsafe impl Send for ConfigScheduler {}
// SAFETY: as above: `commit` is the only method and is thread-safe on Envoy's side.
unsafe impl Sync for ConfigScheduler {}

impl ConfigScheduler {
    /// Has Envoy call the configuration's `config_scheduled` hook with `event` on the main thread.
    pub fn commit(&self, event: u64) {
        // SAFETY: `self.ptr` came from scheduler_new and is deleted only in Drop.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.ptr, event) }
    }
}

impl Drop for ConfigScheduler {
    fn drop(&mut self) {
        // SAFETY: the pointer came from scheduler_new and is deleted once, here.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.ptr) }
    }
}
