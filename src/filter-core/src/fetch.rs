//! Driving the descriptor fetches of a [`Remote`], the same for every host:
//! when to start one, what to ask, what an answer means. A host only starts
//! calls and streams ([`FetchHost`]) and passes their events back here.

use std::time::{Duration, SystemTime};

use log::{debug, warn};
use transcoder::reflection::{self, ReflectionFetch};
use transcoder::Transcoder;

use crate::descriptors::{Exchange, Remote, Source};
use crate::metrics::Counter;
use crate::Metrics;

/// gRPC's UNIMPLEMENTED: the server has no such reflection service.
const UNIMPLEMENTED: u32 = 12;

/// What a host does for the descriptor fetches; tokens are the host's own
/// (proxy-wasm's call tokens, a dynamic module's callout ids).
pub trait FetchHost: Metrics {
    /// The current time.
    fn now(&self) -> SystemTime;
    /// Starts an HTTP call with these headers (`:method`, `:path`,
    /// `:authority`, ...) and no body on `cluster`.
    fn http_call(&mut self, cluster: &str, headers: &[(&str, &str)], timeout: Duration) -> Result<u64, String>;
    /// Opens a gRPC stream to `service`/`method` on `cluster`.
    fn open_grpc_stream(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        timeout: Duration,
    ) -> Result<u64, String>;
    /// Sends one message (unframed) on a stream opened by [`FetchHost::open_grpc_stream`].
    fn send_grpc_message(&mut self, token: u64, message: &[u8]) -> Result<(), String>;
    /// Ends a stream opened by [`FetchHost::open_grpc_stream`]; no event about it follows.
    fn cancel_grpc_stream(&mut self, token: u64);
}

/// A fetched set the core accepted: the host puts it in service with [`crate::install`].
pub struct Loaded {
    /// The new transcoder.
    pub transcoder: Transcoder,
    /// Where it came from, for the log.
    pub origin: String,
    /// How long checking and loading it took.
    pub elapsed: Duration,
    /// The size of the fetched set in bytes.
    pub size: usize,
}

impl Remote {
    /// Called on the host's timer: cancels a reflection exchange past its
    /// deadline and starts a fetch when one is due. `loaded`: a set is in service.
    pub fn poll(&mut self, host: &mut dyn FetchHost, loaded: bool) -> Option<Loaded> {
        let now = host.now();
        if let Some(expired) = self.expire_reflection(host, now, loaded) {
            return Some(expired);
        }
        if !self.due(now, loaded) {
            return None;
        }
        match &self.source {
            Source::Url(url) => {
                let (authority, path) = match url.authority_and_path() {
                    Ok(parts) => parts,
                    Err(e) => return self.result(host, loaded, Err(e)),
                };
                let headers = [
                    (":method", "GET"),
                    (":path", path),
                    (":authority", authority),
                    ("accept", "application/octet-stream"),
                ];
                match host.http_call(&url.cluster, &headers, url.timeout()) {
                    Ok(token) => self.pending = Some(token),
                    Err(e) => {
                        host.count(Counter::DescriptorFailure);
                        warn!(
                            "rust_grpc_proxy: cannot fetch the descriptor set from {} on cluster {:?}: {e}",
                            url.url, url.cluster
                        );
                    }
                }
                None
            }
            Source::Reflection(_) => self.start_reflection(host, 0, now, loaded),
        }
    }

    /// Opens a reflection stream (`version`: index in [`reflection::SERVICES`]) and asks for the services' files.
    fn start_reflection(
        &mut self,
        host: &mut dyn FetchHost,
        version: usize,
        now: SystemTime,
        loaded: bool,
    ) -> Option<Loaded> {
        let Source::Reflection(r) = &self.source else { return None };
        let service = reflection::SERVICES.get(version)?;
        let (fetch, requests) = ReflectionFetch::new(&self.config.services);
        let timeout = r.timeout();
        let opened = host
            .open_grpc_stream(&r.cluster, service, reflection::METHOD, timeout)
            .map_err(|e| format!("cannot open a stream to cluster {:?}: {e}", r.cluster))
            .and_then(|token| {
                for request in &requests {
                    if let Err(e) = host.send_grpc_message(token, request) {
                        host.cancel_grpc_stream(token);
                        return Err(format!("cannot send on the reflection stream: {e}"));
                    }
                }
                Ok(token)
            });
        match opened {
            Ok(token) => {
                self.pending = Some(token);
                let deadline = now.checked_add(timeout).unwrap_or(now);
                self.exchange = Some(Exchange { fetch, version, answered: false, deadline });
                None
            }
            Err(e) => self.result(host, loaded, Err(e)),
        }
    }

    /// Gives up on a reflection exchange past its deadline.
    fn expire_reflection(&mut self, host: &mut dyn FetchHost, now: SystemTime, loaded: bool) -> Option<Loaded> {
        let (Some(token), Some(exchange)) = (self.pending, self.exchange.as_ref()) else { return None };
        if now < exchange.deadline {
            return None;
        }
        self.pending = None;
        self.exchange = None;
        host.cancel_grpc_stream(token);
        self.result(host, loaded, Err("the reflection service did not send every file in time".into()))
    }

    /// The answer to the `descriptor_url` call `token`: its `:status` (None when
    /// the call failed in Envoy: no host, reset, timeout) and its body.
    pub fn http_answer(
        &mut self,
        host: &mut dyn FetchHost,
        loaded: bool,
        token: u64,
        status: Option<&str>,
        body: Result<Vec<u8>, String>,
    ) -> Option<Loaded> {
        if self.pending != Some(token) {
            return None;
        }
        self.pending = None;
        let fetched = match status {
            Some("200") => {
                body.map(|set| (set, self.config.services.clone())).map_err(|e| format!("cannot read the body: {e}"))
            }
            None => Err("no answer (connection failed, reset or timed out)".to_string()),
            Some(other) => Err(format!("HTTP status {other}")),
        };
        self.result(host, loaded, fetched)
    }

    /// One message (unframed) received on the reflection stream `token`.
    pub fn grpc_message(
        &mut self,
        host: &mut dyn FetchHost,
        loaded: bool,
        token: u64,
        message: Result<Vec<u8>, String>,
    ) -> Option<Loaded> {
        let (Some(pending), Some(exchange)) = (self.pending, self.exchange.as_mut()) else { return None };
        if pending != token {
            return None;
        }
        exchange.answered = true;
        let step = message
            .map_err(|e| format!("cannot read a reflection message: {e}"))
            .and_then(|message| exchange.fetch.on_response(&message));
        let result = match step {
            Ok(more) => {
                for request in &more {
                    if let Err(e) = host.send_grpc_message(token, request) {
                        debug!("rust_grpc_proxy: reflection stream send failed: {e}");
                    }
                }
                if !exchange.fetch.is_complete() {
                    return None;
                }
                exchange.fetch.descriptor_set().map(|set| (set, exchange.fetch.services().to_vec()))
            }
            Err(e) => Err(e),
        };
        self.pending = None;
        self.exchange = None;
        host.cancel_grpc_stream(token);
        self.result(host, loaded, result)
    }

    /// The reflection stream `token` closed with this gRPC status (and the
    /// message the server or Envoy gave, if any) before the exchange was complete.
    pub fn grpc_close(
        &mut self,
        host: &mut dyn FetchHost,
        loaded: bool,
        token: u64,
        status: u32,
        message: Option<String>,
    ) -> Option<Loaded> {
        if self.pending != Some(token) {
            return None;
        }
        self.pending = None;
        let exchange = self.exchange.take()?;
        // UNIMPLEMENTED before any answer: the server has no v1 reflection; try v1alpha.
        if status == UNIMPLEMENTED && !exchange.answered && exchange.version + 1 < reflection::SERVICES.len() {
            let now = host.now();
            return self.start_reflection(host, exchange.version + 1, now, loaded);
        }
        self.result(
            host,
            loaded,
            Err(format!(
                "the {} stream ended (grpc-status {status} {}) before every file arrived",
                reflection::SERVICES.get(exchange.version).copied().unwrap_or("reflection"),
                message.unwrap_or_default()
            )),
        )
    }

    /// Checks a fetch's result; the set to put in service, if it is one.
    fn result(
        &mut self,
        host: &mut dyn FetchHost,
        loaded: bool,
        fetched: Result<(Vec<u8>, Vec<String>), String>,
    ) -> Option<Loaded> {
        let started = host.now();
        let (transcoder, origin, size) = self.fetched(&*host, loaded, fetched)?;
        let now = host.now();
        if !loaded {
            self.first_loaded(now);
        }
        let elapsed = now.duration_since(started).unwrap_or_default();
        Some(Loaded { transcoder, origin, elapsed, size })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use transcoder::TranscoderConfig;

    use super::*;
    use crate::FIRST_LOAD_RETRY;

    /// Records what the core asks of its host; the clock moves only when told.
    #[derive(Default)]
    struct FakeHost {
        now: Duration,
        calls: Vec<(String, Vec<(String, String)>)>,
        streams: Vec<(String, String)>,
        sent: Vec<u64>,
        cancelled: Vec<u64>,
        counters: RefCell<HashMap<String, u64>>,
        next_token: u64,
    }

    impl FakeHost {
        fn failures(&self) -> u64 {
            self.counters.borrow().get("descriptor.failures").copied().unwrap_or(0)
        }
    }

    impl Metrics for FakeHost {
        fn count(&self, counter: Counter<'_>) {
            *self.counters.borrow_mut().entry(counter.name()).or_default() += 1;
        }

        fn gauge(&self, _gauge: crate::metrics::Gauge, _value: u64) {}
    }

    impl FetchHost for FakeHost {
        fn now(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH + self.now
        }

        fn http_call(&mut self, cluster: &str, headers: &[(&str, &str)], _timeout: Duration) -> Result<u64, String> {
            let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            self.calls.push((cluster.to_string(), headers));
            self.next_token += 1;
            Ok(self.next_token)
        }

        fn open_grpc_stream(
            &mut self,
            cluster: &str,
            service: &str,
            _method: &str,
            _timeout: Duration,
        ) -> Result<u64, String> {
            self.streams.push((cluster.to_string(), service.to_string()));
            self.next_token += 1;
            Ok(self.next_token)
        }

        fn send_grpc_message(&mut self, token: u64, _message: &[u8]) -> Result<(), String> {
            self.sent.push(token);
            Ok(())
        }

        fn cancel_grpc_stream(&mut self, token: u64) {
            self.cancelled.push(token);
        }
    }

    fn remote(json: &str) -> Remote {
        let config = TranscoderConfig::from_json(json.as_bytes()).expect("a valid test configuration");
        Remote::from_config(&config, Some(SystemTime::UNIX_EPOCH)).expect("a remote source")
    }

    const URL: &str = r#"{"services": ["bookstore.v1.Bookstore"], "descriptor_url": {"cluster": "descriptors", "url": "http://host.test/set.pb"}}"#;
    const REFLECTION: &str = r#"{"services": ["bookstore.v1.Bookstore"], "descriptor_reflection": {"cluster": "grpc_backend", "timeout": "2s"}}"#;

    #[test]
    fn a_url_is_fetched_with_its_authority_and_path_then_retried_after_a_failure() {
        let mut host = FakeHost::default();
        let mut remote = remote(URL);
        assert!(remote.poll(&mut host, false).is_none());
        let (cluster, headers) = &host.calls[0];
        assert_eq!(cluster, "descriptors");
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(
            (header(":method"), header(":path"), header(":authority")),
            (Some("GET"), Some("/set.pb"), Some("host.test"))
        );

        // Nothing new while the call is out, however late.
        host.now += FIRST_LOAD_RETRY * 3;
        assert!(remote.poll(&mut host, false).is_none());
        assert_eq!(host.calls.len(), 1);

        // An answer for another call changes nothing; this call's 404 is a counted failure.
        assert!(remote.http_answer(&mut host, false, 99, Some("200"), Ok(vec![1])).is_none());
        assert!(remote.http_answer(&mut host, false, 1, Some("404"), Ok(Vec::new())).is_none());
        assert_eq!(host.failures(), 1);

        // The next fetch is due at once (its period passed while the call was out).
        assert!(remote.poll(&mut host, false).is_none());
        assert_eq!(host.calls.len(), 2);
        assert!(remote.http_answer(&mut host, false, 2, None, Err("reset".into())).is_none());
        assert_eq!(host.failures(), 2);
    }

    #[test]
    fn an_unchanged_broken_set_is_reported_once() {
        let mut host = FakeHost::default();
        let mut remote = remote(URL);
        for token in 1..=2 {
            remote.poll(&mut host, false);
            let broken = Ok(b"\x0a\xff\xff not a FileDescriptorSet".to_vec());
            assert!(remote.http_answer(&mut host, false, token, Some("200"), broken).is_none());
            host.now += FIRST_LOAD_RETRY;
        }
        assert_eq!(host.calls.len(), 2);
        assert_eq!(host.failures(), 1);
    }

    #[test]
    fn reflection_falls_back_to_v1alpha_when_v1_is_unimplemented_then_reports_the_end() {
        let mut host = FakeHost::default();
        let mut remote = remote(REFLECTION);
        remote.poll(&mut host, false);
        assert_eq!(host.streams, [("grpc_backend".to_string(), reflection::SERVICES[0].to_string())]);
        assert_eq!(host.sent, [1]);

        assert!(remote.grpc_close(&mut host, false, 1, UNIMPLEMENTED, None).is_none());
        assert_eq!(host.streams[1].1, reflection::SERVICES[1]);
        assert_eq!(host.failures(), 0);

        // v1alpha unimplemented too: no version left, a failure.
        assert!(remote.grpc_close(&mut host, false, 2, UNIMPLEMENTED, Some("unknown service".into())).is_none());
        assert_eq!(host.streams.len(), 2);
        assert_eq!(host.failures(), 1);
    }

    #[test]
    fn a_reflection_exchange_past_its_timeout_is_cancelled_and_counted() {
        let mut host = FakeHost::default();
        let mut remote = remote(REFLECTION);
        remote.poll(&mut host, false);
        host.now += Duration::from_millis(1999);
        remote.poll(&mut host, false);
        assert!(host.cancelled.is_empty());
        host.now += Duration::from_millis(1);
        remote.poll(&mut host, false);
        assert_eq!(host.cancelled, [1]);
        assert_eq!(host.failures(), 1);
        // A late message on the cancelled stream is ignored.
        assert!(remote.grpc_message(&mut host, false, 1, Ok(Vec::new())).is_none());
        assert_eq!(host.failures(), 1);
    }

    #[test]
    fn a_malformed_reflection_answer_ends_the_exchange() {
        let mut host = FakeHost::default();
        let mut remote = remote(REFLECTION);
        remote.poll(&mut host, false);
        assert!(remote.grpc_message(&mut host, false, 1, Ok(b"\xff\xff\xff".to_vec())).is_none());
        assert_eq!(host.cancelled, [1]);
        assert_eq!(host.failures(), 1);
        // The close that follows the cancel is not a second failure.
        assert!(remote.grpc_close(&mut host, false, 1, 1, None).is_none());
        assert_eq!(host.failures(), 1);
    }
}
