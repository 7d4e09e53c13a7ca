//! The root context's descriptor fetches on proxy-wasm: an HTTP call for
//! `descriptor_url`, a gRPC stream for reflection. The core ([`Remote`],
//! [`FetchHost`]) decides when to fetch, what to ask and whether a fetched
//! set goes into service; this only makes the host calls.

use std::time::{Duration, SystemTime};

use filter_core::metrics::{Counter, Gauge};
use filter_core::{FetchHost, Loaded, Metrics};
use proxy_wasm::traits::Context;
use proxy_wasm::types::{BufferType, MapType};

use crate::metrics::WasmMetrics;
use crate::wasm_host::grpc_service_for_cluster;
use crate::{host, now, Root};

/// The proxy-wasm calls the core's fetches need.
struct WasmFetch;

impl Metrics for WasmFetch {
    fn count(&self, counter: Counter<'_>) {
        WasmMetrics.count(counter);
    }

    fn gauge(&self, gauge: Gauge, value: u64) {
        WasmMetrics.gauge(gauge, value);
    }
}

impl FetchHost for WasmFetch {
    fn now(&self) -> SystemTime {
        now()
    }

    fn http_call(&mut self, cluster: &str, headers: &[(&str, &str)], timeout: Duration) -> Result<u64, String> {
        proxy_wasm::hostcalls::dispatch_http_call(cluster, headers.to_vec(), None, Vec::new(), timeout)
            .map(u64::from)
            .map_err(|e| format!("{e:?}"))
    }

    fn open_grpc_stream(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        _timeout: Duration,
    ) -> Result<u64, String> {
        // Wasm's gRPC streams have no timeout: the core's deadline cancels the exchange.
        let grpc_service = grpc_service_for_cluster(cluster, None);
        proxy_wasm::hostcalls::open_grpc_stream(&grpc_service, service, method, Vec::new())
            .map(u64::from)
            .map_err(|e| format!("{e:?}"))
    }

    fn send_grpc_message(&mut self, token: u64, message: &[u8]) -> Result<(), String> {
        let token = u32::try_from(token).map_err(|_| format!("no stream {token}"))?;
        proxy_wasm::hostcalls::send_grpc_stream_message(token, Some(message), false).map_err(|e| format!("{e:?}"))
    }

    fn cancel_grpc_stream(&mut self, token: u64) {
        if let Ok(token) = u32::try_from(token) {
            let _ = proxy_wasm::hostcalls::cancel_grpc_stream(token);
        }
    }
}

impl Root {
    /// Starts a descriptor fetch when one is due (called on every tick).
    pub(crate) fn poll_descriptors(&mut self) {
        let loaded = self.transcoder.is_some();
        let Some(remote) = self.remote.as_mut() else { return };
        let fetched = remote.poll(&mut WasmFetch, loaded);
        self.put_in_service(fetched);
    }

    /// Installs a set the core accepted.
    fn put_in_service(&mut self, fetched: Option<Loaded>) {
        if let Some(l) = fetched {
            filter_core::install(&mut self.transcoder, l.transcoder, &l.origin, l.elapsed, l.size);
        }
    }
}

impl Context for Root {
    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        let loaded = self.transcoder.is_some();
        let Some(remote) = self.remote.as_mut() else { return };
        let message = host::get_buffer(BufferType::GrpcReceiveBuffer, 0, size).map_err(|e| e.to_string());
        let fetched = remote.grpc_message(&mut WasmFetch, loaded, u64::from(token), message);
        self.put_in_service(fetched);
    }

    fn on_grpc_stream_close(&mut self, token: u32, status_code: u32) {
        let loaded = self.transcoder.is_some();
        let Some(remote) = self.remote.as_mut() else { return };
        let message = proxy_wasm::hostcalls::get_grpc_status().ok().and_then(|(_, m)| m);
        let fetched = remote.grpc_close(&mut WasmFetch, loaded, u64::from(token), status_code, message);
        self.put_in_service(fetched);
    }

    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let loaded = self.transcoder.is_some();
        let Some(remote) = self.remote.as_mut() else { return };
        // No headers: the call failed in Envoy (no host, reset, timeout).
        let status = host::get_header(MapType::HttpCallResponseHeaders, ":status");
        let body = host::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).map_err(|e| e.to_string());
        let fetched = remote.http_answer(&mut WasmFetch, loaded, u64::from(token), status.as_deref(), body);
        self.put_in_service(fetched);
    }
}
