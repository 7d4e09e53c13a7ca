//! Descriptor sets fetched at run time (`descriptor_url`, gRPC server
//! reflection) in the dynamic module. The core ([`Remote`], [`FetchHost`])
//! decides when to fetch, what to ask and whether a set goes into service;
//! this moves its calls onto Envoy's configuration-level callouts and streams,
//! which run on the main thread, and carries gRPC's framing and status over the
//! plain HTTP stream the ABI offers.
//!
//! The module has no timer: a thread of ours commits a tick event to the
//! configuration's scheduler, which Envoy runs on the main thread.

use std::collections::HashMap;
use std::mem;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use filter_core::metrics::{Counter, Gauge};
use filter_core::{FetchHost, Loaded, Metrics, Remote};
use log::{error, warn};
use transcoder::frame::{encode_frame, FrameDecoder};

use crate::abi::callbacks::{ConfigHandle, ConfigScheduler};
use crate::metrics::MetricIds;

/// How often the main thread looks whether a fetch is due or an exchange is late.
const TICK: Duration = Duration::from_millis(100);

/// The scheduler event of [`TICK`].
pub const TICK_EVENT: u64 = 1;

/// gRPC's UNAVAILABLE, for a stream that ended without a gRPC status.
const UNAVAILABLE: u32 = 14;

/// Something Envoy reported on the main thread about our fetches.
pub enum Event {
    /// The ticker's event.
    Tick,
    /// A `descriptor_url` call ended: its `:status` (None: it failed in Envoy) and body.
    CalloutDone { id: u64, status: Option<String>, body: Vec<u8> },
    /// Response headers on a reflection stream (`end`: a trailers-only answer).
    StreamHeaders { id: u64, headers: Vec<(String, Vec<u8>)>, end: bool },
    /// Response data on a reflection stream (`end`: the server ended it without trailers).
    StreamData { id: u64, data: Vec<u8>, end: bool },
    /// Response trailers on a reflection stream.
    StreamTrailers { id: u64, trailers: Vec<(String, Vec<u8>)> },
    /// The stream ended normally.
    StreamComplete { id: u64 },
    /// The stream was reset (Envoy's reason code).
    StreamReset { id: u64, reason: i32 },
}

/// The state of one reflection stream on the wire.
#[derive(Default)]
struct GrpcStream {
    decoder: FrameDecoder,
    http_status: Option<String>,
    grpc_status: Option<u32>,
    grpc_message: Option<String>,
}

impl GrpcStream {
    fn headers(&mut self, headers: &[(String, Vec<u8>)]) {
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value).into_owned();
            match name.as_str() {
                ":status" => self.http_status = Some(value),
                "grpc-status" => self.grpc_status = value.parse().ok(),
                "grpc-message" => self.grpc_message = Some(value),
                _ => {}
            }
        }
    }

    /// The stream's gRPC status and message, as the server or Envoy gave them.
    fn status(&self) -> (u32, Option<String>) {
        match (self.grpc_status, self.http_status.as_deref()) {
            (Some(code), _) => (code, self.grpc_message.clone()),
            (None, Some(http)) => (UNAVAILABLE, Some(format!("HTTP status {http} without grpc-status"))),
            (None, None) => (UNAVAILABLE, Some("no response".into())),
        }
    }
}

/// What [`FilterConfig`](crate::filter::FilterConfig) keeps for its remote source.
pub struct Fetcher {
    remote: Mutex<Driver>,
    /// Events that arrived while [`Fetcher::remote`] was busy: Envoy may call a
    /// hook from inside one of our calls (a reset stream, a callout that failed at once).
    queued: Mutex<Vec<Event>>,
    /// Joined before the configuration goes (field order: dropped first).
    _ticker: Option<Ticker>,
}

/// The core's remote source and the streams it has open.
struct Driver {
    remote: Remote,
    streams: HashMap<u64, GrpcStream>,
}

impl Fetcher {
    /// Starts ticking for `remote` on the configuration's scheduler (made during config_new).
    pub fn new(remote: Remote, config: &ConfigHandle<'_>) -> Fetcher {
        let ticker = match config.scheduler().map(Ticker::start) {
            Some(Ok(ticker)) => Some(ticker),
            Some(Err(e)) => {
                error!(
                    "rust_grpc_proxy: cannot start the descriptor fetch timer: {e}; {} will not be fetched",
                    remote.name
                );
                None
            }
            None => {
                error!("rust_grpc_proxy: Envoy gave no scheduler; {} will not be fetched", remote.name);
                None
            }
        };
        Fetcher {
            remote: Mutex::new(Driver { remote, streams: HashMap::new() }),
            queued: Mutex::new(Vec::new()),
            _ticker: ticker,
        }
    }

    /// The source's name, and whether requests wait for it (503) until a set is loaded.
    pub fn waiting_for(&self) -> Option<String> {
        let driver = self.remote.lock().unwrap_or_else(PoisonError::into_inner);
        (!driver.remote.config.pass_through_until_loaded).then(|| driver.remote.name.clone())
    }

    /// Handles an event on the main thread; `loaded` says whether a set is in service,
    /// `install` puts a new one in service.
    pub fn event(
        &self,
        config: &ConfigHandle<'_>,
        metrics: &MetricIds,
        event: Event,
        loaded: &dyn Fn() -> bool,
        install: &dyn Fn(Loaded),
    ) {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner).push(event);
        // Only the outermost hook handles events: a hook Envoy calls from inside
        // one of our calls leaves its event queued for it.
        let mut driver = match self.remote.try_lock() {
            Ok(driver) => driver,
            // A hook that panicked was caught by its guard; the state is still consistent
            // enough to go on fetching, which beats never fetching again.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        loop {
            let events = mem::take(&mut *self.queued.lock().unwrap_or_else(PoisonError::into_inner));
            if events.is_empty() {
                return;
            }
            for event in events {
                if let Some(set) = driver.handle(config, metrics, event, loaded()) {
                    install(set);
                }
            }
        }
    }
}

impl Driver {
    fn handle(&mut self, config: &ConfigHandle<'_>, metrics: &MetricIds, event: Event, loaded: bool) -> Option<Loaded> {
        let Driver { remote, streams } = self;
        let mut host = DynFetch { config, metrics, streams };
        match event {
            Event::Tick => remote.poll(&mut host, loaded),
            Event::CalloutDone { id, status, body } => {
                remote.http_answer(&mut host, loaded, id, status.as_deref(), Ok(body))
            }
            Event::StreamHeaders { id, headers, end } => {
                host.streams.get_mut(&id)?.headers(&headers);
                if end {
                    return host.closed(remote, loaded, id);
                }
                None
            }
            Event::StreamTrailers { id, trailers } => {
                host.streams.get_mut(&id)?.headers(&trailers);
                host.closed(remote, loaded, id)
            }
            Event::StreamData { id, data, end } => {
                let frames = host.streams.get_mut(&id)?.decoder.push(&data).map_err(|e| e.to_string());
                let mut loaded_set = None;
                match frames {
                    Ok(frames) => {
                        for frame in frames {
                            if let Some(set) = remote.grpc_message(&mut host, loaded, id, Ok(frame.data)) {
                                loaded_set = Some(set);
                            }
                        }
                    }
                    Err(e) => loaded_set = remote.grpc_message(&mut host, loaded, id, Err(e)),
                }
                if end {
                    loaded_set = loaded_set.or_else(|| host.closed(remote, loaded, id));
                }
                loaded_set
            }
            Event::StreamComplete { id } => host.closed(remote, loaded, id),
            Event::StreamReset { id, reason } => {
                host.streams.remove(&id)?;
                let message = Some(format!("stream reset by Envoy (reason {reason}): connection failed or timed out"));
                remote.grpc_close(&mut host, loaded, id, UNAVAILABLE, message)
            }
        }
    }
}

/// The core's fetch calls on Envoy's configuration-level callouts and streams.
struct DynFetch<'a, 'h> {
    config: &'a ConfigHandle<'h>,
    metrics: &'a MetricIds,
    streams: &'a mut HashMap<u64, GrpcStream>,
}

impl DynFetch<'_, '_> {
    /// The server ended stream `id`: the exchange ends with its status. Our side of the
    /// stream is still open (the exchange asks as answers come), so it is reset, as
    /// Envoy's own gRPC client does when the server closes first.
    fn closed(&mut self, remote: &mut Remote, loaded: bool, id: u64) -> Option<Loaded> {
        let (status, message) = self.streams.remove(&id)?.status();
        self.config.reset_stream(id);
        remote.grpc_close(self, loaded, id, status, message)
    }
}

impl Metrics for DynFetch<'_, '_> {
    fn count(&self, counter: Counter<'_>) {
        self.metrics.count_on_config(self.config, counter);
    }

    fn gauge(&self, gauge: Gauge, value: u64) {
        self.metrics.gauge_on_config(self.config, gauge, value);
    }
}

fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

impl FetchHost for DynFetch<'_, '_> {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn http_call(&mut self, cluster: &str, headers: &[(&str, &str)], timeout: Duration) -> Result<u64, String> {
        self.config.http_callout(cluster, headers, millis(timeout))
    }

    fn open_grpc_stream(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        timeout: Duration,
    ) -> Result<u64, String> {
        let path = format!("/{service}/{method}");
        let headers = [
            (":method", "POST"),
            (":path", path.as_str()),
            (":authority", cluster),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ];
        let id = self.config.start_stream(cluster, &headers, millis(timeout))?;
        self.streams.insert(id, GrpcStream::default());
        Ok(id)
    }

    fn send_grpc_message(&mut self, token: u64, message: &[u8]) -> Result<(), String> {
        if !self.streams.contains_key(&token) {
            return Err("the stream is gone".into());
        }
        if self.config.send_data(token, &encode_frame(message), false) {
            Ok(())
        } else {
            Err("Envoy refused the data".into())
        }
    }

    fn cancel_grpc_stream(&mut self, token: u64) {
        if self.streams.remove(&token).is_some() {
            self.config.reset_stream(token);
        }
    }
}

/// A thread committing [`TICK_EVENT`] every [`TICK`] until dropped.
struct Ticker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Deleted after the thread stopped using it.
    _scheduler: Arc<ConfigScheduler>,
}

impl Ticker {
    fn start(scheduler: ConfigScheduler) -> std::io::Result<Ticker> {
        let scheduler = Arc::new(scheduler);
        let (stop, stopped) = mpsc::channel::<()>();
        let ticking = scheduler.clone();
        let thread = std::thread::Builder::new().name("rgp-descriptors".into()).spawn(move || loop {
            match stopped.recv_timeout(TICK) {
                Err(RecvTimeoutError::Timeout) => ticking.commit(TICK_EVENT),
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        })?;
        Ok(Ticker { stop: Some(stop), thread: Some(thread), _scheduler: scheduler })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("rust_grpc_proxy: the descriptor fetch timer ended with a panic");
            }
        }
    }
}
