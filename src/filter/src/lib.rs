//! The Envoy HTTP filter on proxy-wasm: thin glue between Envoy's Wasm host
//! and the shared core ([`filter_core`]), which holds everything a request
//! goes through. This crate only moves headers, bodies, calls and timers:
//! - [`wasm_host`]: the core's `Host` on proxy-wasm (held stream data released
//!   on the worker's tick; the gRPC call of a request without a body);
//! - [`descriptor_fetch`]: the root context's descriptor fetches (HTTP call,
//!   reflection stream), whose results the core checks and swaps in;
//! - [`host`]: panic-free raw host calls; [`metrics`]: `define_metric`.

mod descriptor_fetch;
mod host;
mod metrics;
mod wasm_host;

use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use filter_core::{Action as CoreAction, Remote};
use log::{error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use transcoder::{Transcoder, TranscoderConfig};

use wasm_host::{Deadline, Deadlines, WasmHost, DEADLINE_TICK};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { transcoder: None, deadlines: Rc::default(), remote: None, companion: false })
    });
}}

/// Per-worker state: the loaded configuration, shared by every request.
struct Root {
    transcoder: Option<Arc<Transcoder>>,
    /// The calls the filter made itself and when they must have answered.
    deadlines: Deadlines,
    /// The descriptor set comes (also) from a `descriptor_url` or reflection.
    remote: Option<Remote>,
    /// `lua_companion` is set: see [`wasm_host::COMPANION_HEADER`].
    companion: bool,
}

impl Root {
    /// Answers bodiless calls past their deadline with 504.
    fn expire_deadlines(&self) {
        let Ok(now) = proxy_wasm::hostcalls::get_current_time() else { return };
        let expired: Vec<Deadline> = {
            let mut all = self.deadlines.borrow_mut();
            let (expired, pending) = all.drain(..).partition(|d| d.at <= now);
            *all = pending;
            expired
        };
        let Some(t) = self.transcoder.clone() else { return };
        for d in expired {
            let _ = proxy_wasm::hostcalls::cancel_grpc_stream(d.token);
            if host::set_effective_context(d.context_id).is_err() {
                continue; // the request is gone already
            }
            let mut host = WasmHost { context_id: d.context_id, deadlines: &self.deadlines, companion: self.companion };
            filter_core::own_call_expired(&mut host, &t, d.timeout);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = match host::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(bytes) => bytes,
            Err(e) => {
                error!("rust_grpc_proxy: cannot read the plugin configuration: {e}");
                return false;
            }
        };
        // Timed so that `make bench` (bench/footprint.py) can report each worker's load time.
        let started = proxy_wasm::hostcalls::get_current_time().ok();
        let config = match TranscoderConfig::from_json(&bytes) {
            Ok(config) => config,
            Err(e) => {
                error!("rust_grpc_proxy: configuration refused: {e}");
                return false;
            }
        };
        self.remote = Remote::from_config(&config, started);
        self.companion = config.lua_companion;
        if config.proto_descriptor_bin.is_some() {
            match Transcoder::new(config) {
                Ok(transcoder) => {
                    let elapsed = started
                        .and_then(|t| proxy_wasm::hostcalls::get_current_time().ok()?.duration_since(t).ok())
                        .unwrap_or_default();
                    filter_core::install(&mut self.transcoder, transcoder, "the configuration", elapsed, bytes.len());
                }
                Err(e) => {
                    error!("rust_grpc_proxy: configuration refused: {e}");
                    return false;
                }
            }
        } else if let Some(remote) = &self.remote {
            info!("rust_grpc_proxy: waiting for the descriptor set from {}", remote.name);
        }
        // One tick serves deadlines, held streams and descriptor fetches.
        if let Err(e) = proxy_wasm::hostcalls::set_tick_period(DEADLINE_TICK) {
            warn!("rust_grpc_proxy: no tick, deadlines of requests without a body are not enforced and descriptors not fetched: {e:?}");
        }
        true
    }

    fn on_tick(&mut self) {
        wasm_host::release_held_streams();
        self.expire_deadlines();
        self.poll_descriptors();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let not_ready = match (&self.transcoder, &self.remote) {
            (None, Some(remote)) if !remote.config.pass_through_until_loaded => Some(Rc::from(remote.name.as_str())),
            _ => None,
        };
        Some(Box::new(Request {
            core: filter_core::Request::new(self.transcoder.clone(), not_ready),
            context_id,
            deadlines: self.deadlines.clone(),
            companion: self.companion,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One HTTP context: the core's request and what the Wasm host needs beside it.
struct Request {
    core: filter_core::Request,
    context_id: u32,
    deadlines: Deadlines,
    companion: bool,
}

impl Request {
    /// The core and a host for it, borrowed apart so that a hook can take both.
    fn split(&mut self) -> (&mut filter_core::Request, WasmHost<'_>) {
        let host = WasmHost { context_id: self.context_id, deadlines: &self.deadlines, companion: self.companion };
        (&mut self.core, host)
    }

    /// The call answered (or the request ended): its deadline no longer applies.
    fn forget_deadline(&self) {
        self.deadlines.borrow_mut().retain(|d| d.context_id != self.context_id);
    }
}

fn action(action: CoreAction) -> Action {
    match action {
        CoreAction::Continue => Action::Continue,
        CoreAction::Pause => Action::Pause,
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.forget_deadline();
    }
}

impl Context for Request {
    fn on_done(&mut self) -> bool {
        wasm_host::forget_held(self.context_id);
        true
    }

    fn on_grpc_stream_initial_metadata(&mut self, _token: u32, entries: u32) {
        let pairs = host::get_map(MapType::GrpcReceiveInitialMetadata).unwrap_or_default();
        self.core.call_initial_metadata(entries, pairs);
    }

    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        let message = match host::get_buffer(BufferType::GrpcReceiveBuffer, 0, size) {
            Ok(message) => message,
            Err(e) => {
                warn!("rust_grpc_proxy: cannot read a gRPC message: {e}");
                return;
            }
        };
        let (core, mut host) = self.split();
        core.call_message(&mut host, token, message);
    }

    fn on_grpc_stream_trailing_metadata(&mut self, _token: u32, _n: u32) {
        if let Ok(pairs) = host::get_map(MapType::GrpcReceiveTrailingMetadata) {
            self.core.call_trailing_metadata(pairs);
        }
    }

    fn on_grpc_stream_close(&mut self, _token: u32, status_code: u32) {
        self.forget_deadline();
        // Envoy's own reason (no upstream, reset, ...), if any.
        let host_message = proxy_wasm::hostcalls::get_grpc_status().ok().and_then(|(_, m)| m);
        let (core, mut host) = self.split();
        core.call_close(&mut host, status_code, host_message);
    }
}

impl HttpContext for Request {
    fn on_log(&mut self) {
        let (core, host) = self.split();
        core.on_log(&host);
    }

    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let (core, mut host) = self.split();
        action(core.on_request_headers(&mut host, end_of_stream))
    }

    fn on_http_request_body(&mut self, _size: usize, end_of_stream: bool) -> Action {
        let (core, mut host) = self.split();
        action(core.on_request_body(&mut host, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _n: usize) -> Action {
        let (core, mut host) = self.split();
        action(core.on_request_trailers(&mut host))
    }

    fn on_http_response_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let (core, mut host) = self.split();
        action(core.on_response_headers(&mut host, end_of_stream))
    }

    fn on_http_response_body(&mut self, _size: usize, end_of_stream: bool) -> Action {
        let (core, mut host) = self.split();
        action(core.on_response_body(&mut host, end_of_stream))
    }

    fn on_http_response_trailers(&mut self, _n: usize) -> Action {
        let (core, mut host) = self.split();
        action(core.on_response_trailers(&mut host))
    }
}

/// The current time, or the epoch when the host has none (never seen).
fn now() -> SystemTime {
    proxy_wasm::hostcalls::get_current_time().unwrap_or(SystemTime::UNIX_EPOCH)
}
