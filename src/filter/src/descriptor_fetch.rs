//! The root context's descriptor fetches on proxy-wasm: an HTTP call for
//! `descriptor_url`, a gRPC stream for reflection. The core ([`Remote`])
//! decides when to fetch and whether a fetched set goes into service.

use std::time::SystemTime;

use filter_core::{Exchange, Source};
use log::{debug, warn};
use proxy_wasm::traits::Context;
use proxy_wasm::types::{BufferType, MapType};
use transcoder::reflection::{self, ReflectionFetch};

use crate::metrics::WasmMetrics;
use crate::wasm_host::grpc_service_for_cluster;
use crate::{host, now, Root};
use filter_core::Metrics as _;

impl Root {
    /// Starts a descriptor fetch when one is due (called on every tick).
    pub(crate) fn poll_descriptors(&mut self) {
        let Ok(now) = proxy_wasm::hostcalls::get_current_time() else { return };
        self.expire_reflection(now);
        let loaded = self.transcoder.is_some();
        let Some(remote) = self.remote.as_mut() else { return };
        if !remote.due(now, loaded) {
            return;
        }
        match &remote.source {
            Source::Url(url) => {
                let Ok((authority, path)) = url.authority_and_path() else { return };
                let headers = [
                    (":method", "GET"),
                    (":path", path),
                    (":authority", authority),
                    ("accept", "application/octet-stream"),
                ];
                match proxy_wasm::hostcalls::dispatch_http_call(
                    &url.cluster,
                    headers.to_vec(),
                    None,
                    Vec::new(),
                    url.timeout(),
                ) {
                    Ok(token) => remote.pending = Some(token),
                    Err(e) => {
                        WasmMetrics.count("descriptor.failures");
                        warn!(
                            "rust_grpc_proxy: cannot fetch the descriptor set from {} on cluster {:?}: {e:?}",
                            url.url, url.cluster
                        );
                    }
                }
            }
            Source::Reflection(_) => self.start_reflection(0, now),
        }
    }

    /// Opens a reflection stream (`version`: index in [`reflection::SERVICES`]) and asks for the services' files.
    fn start_reflection(&mut self, version: usize, now: SystemTime) {
        let Some(remote) = self.remote.as_mut() else { return };
        let Source::Reflection(r) = &remote.source else { return };
        let Some(service_name) = reflection::SERVICES.get(version) else { return };
        let (fetch, requests) = ReflectionFetch::new(&remote.config.services);
        let service = grpc_service_for_cluster(&r.cluster, None);
        let opened = proxy_wasm::hostcalls::open_grpc_stream(&service, service_name, reflection::METHOD, Vec::new())
            .map_err(|e| format!("cannot open a stream to cluster {:?}: {e:?}", r.cluster))
            .and_then(|token| {
                for request in &requests {
                    proxy_wasm::hostcalls::send_grpc_stream_message(token, Some(request), false)
                        .map_err(|e| format!("cannot send on the reflection stream: {e:?}"))?;
                }
                Ok(token)
            });
        match opened {
            Ok(token) => {
                remote.pending = Some(token);
                let deadline = now.checked_add(r.timeout()).unwrap_or(now);
                remote.exchange = Some(Exchange { fetch, version, answered: false, deadline });
            }
            Err(e) => self.descriptor_fetched(Err(e)),
        }
    }

    /// Gives up on a reflection exchange past its deadline.
    fn expire_reflection(&mut self, now: SystemTime) {
        let Some(remote) = self.remote.as_mut() else { return };
        let (Some(token), Some(exchange)) = (remote.pending, remote.exchange.as_ref()) else { return };
        if now < exchange.deadline {
            return;
        }
        remote.pending = None;
        remote.exchange = None;
        let _ = proxy_wasm::hostcalls::cancel_grpc_stream(token);
        self.descriptor_fetched(Err("the reflection service did not send every file in time".into()));
    }

    /// Hands a fetch's result to the core, and installs the set it accepts.
    fn descriptor_fetched(&mut self, fetched: Result<(Vec<u8>, Vec<String>), String>) {
        let loaded = self.transcoder.is_some();
        let Some(remote) = self.remote.as_mut() else { return };
        let started = proxy_wasm::hostcalls::get_current_time().ok();
        let Some((transcoder, origin, size)) = remote.fetched(&WasmMetrics, loaded, fetched) else { return };
        let elapsed = started
            .and_then(|t| proxy_wasm::hostcalls::get_current_time().ok()?.duration_since(t).ok())
            .unwrap_or_default();
        if !loaded {
            remote.first_loaded(now());
        }
        filter_core::install(&mut self.transcoder, transcoder, &origin, elapsed, size);
    }
}

impl Context for Root {
    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        let Some(remote) = self.remote.as_mut() else { return };
        let (Some(pending), Some(exchange)) = (remote.pending, remote.exchange.as_mut()) else { return };
        if pending != token {
            return;
        }
        exchange.answered = true;
        let step = host::get_buffer(BufferType::GrpcReceiveBuffer, 0, size)
            .map_err(|e| format!("cannot read a reflection message: {e}"))
            .and_then(|message| exchange.fetch.on_response(&message));
        let result = match step {
            Ok(more) => {
                for request in &more {
                    if let Err(e) = proxy_wasm::hostcalls::send_grpc_stream_message(token, Some(request), false) {
                        debug!("rust_grpc_proxy: reflection stream send failed: {e:?}");
                    }
                }
                if !exchange.fetch.is_complete() {
                    return;
                }
                exchange.fetch.descriptor_set().map(|set| (set, exchange.fetch.services().to_vec()))
            }
            Err(e) => Err(e),
        };
        remote.pending = None;
        remote.exchange = None;
        let _ = proxy_wasm::hostcalls::cancel_grpc_stream(token);
        self.descriptor_fetched(result);
    }

    fn on_grpc_stream_close(&mut self, token: u32, status_code: u32) {
        let Some(remote) = self.remote.as_mut() else { return };
        if remote.pending != Some(token) {
            return;
        }
        remote.pending = None;
        let Some(exchange) = remote.exchange.take() else { return };
        // UNIMPLEMENTED before any answer: the server has no v1 reflection; try v1alpha.
        if status_code == 12 && !exchange.answered && exchange.version + 1 < reflection::SERVICES.len() {
            self.start_reflection(exchange.version + 1, now());
            return;
        }
        let message = proxy_wasm::hostcalls::get_grpc_status().ok().and_then(|(_, m)| m).unwrap_or_default();
        self.descriptor_fetched(Err(format!(
            "the {} stream ended (grpc-status {status_code} {message}) before every file arrived",
            reflection::SERVICES.get(exchange.version).copied().unwrap_or("reflection")
        )));
    }

    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(remote) = self.remote.as_mut() else { return };
        if remote.pending != Some(token) {
            return;
        }
        remote.pending = None;
        let status = host::get_header(MapType::HttpCallResponseHeaders, ":status");
        let fetched = match status.as_deref() {
            Some("200") => host::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .map(|set| (set, remote.config.services.clone()))
                .map_err(|e| format!("cannot read the body: {e}")),
            // No headers: the call failed in Envoy (no host, reset, timeout).
            None => Err("no answer (connection failed, reset or timed out)".to_string()),
            Some(other) => Err(format!("HTTP status {other}")),
        };
        self.descriptor_fetched(fetched);
    }
}
