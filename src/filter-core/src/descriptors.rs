//! Descriptor sets fetched at run time (`descriptor_url`, gRPC server
//! reflection): when to fetch, and whether a fetched set replaces the one in
//! service. The fetches are driven by [`crate::fetch`]; the calls and streams
//! themselves are the host's.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use log::{error, info, warn};
use transcoder::reflection::ReflectionFetch;
use transcoder::source::{self, DescriptorReflection, DescriptorUrl};
use transcoder::{Transcoder, TranscoderConfig};

use crate::metrics::{Counter, Gauge};
use crate::Metrics;

/// How often a worker retries the descriptor fetch while it has no set at all
/// (or the refresh interval, when shorter).
pub const FIRST_LOAD_RETRY: Duration = Duration::from_secs(1);

/// Where the descriptor set is fetched from.
pub enum Source {
    /// `descriptor_url`: an HTTP GET on a cluster.
    Url(DescriptorUrl),
    /// `descriptor_reflection`: gRPC server reflection on a cluster.
    Reflection(DescriptorReflection),
}

/// A reflection exchange in progress.
pub(crate) struct Exchange {
    /// The exchange's state (requests sent, files received).
    pub(crate) fetch: ReflectionFetch,
    /// Index in [`transcoder::reflection::SERVICES`] (v1, then v1alpha).
    pub(crate) version: usize,
    /// The server answered at least once on this stream.
    pub(crate) answered: bool,
    /// The stream has no timeout of its own: the tick cancels it past this.
    pub(crate) deadline: SystemTime,
}

/// A descriptor set fetched by a worker, on its timer.
pub struct Remote {
    /// The configuration the fetched sets are loaded with (no descriptor bytes).
    pub config: TranscoderConfig,
    /// Where the set comes from.
    pub(crate) source: Source,
    /// What the log and the 503 answer call the source.
    pub name: String,
    /// The in-flight fetch (the host's token for its call or stream), if any.
    pub(crate) pending: Option<u64>,
    /// The reflection exchange of the pending stream.
    pub(crate) exchange: Option<Exchange>,
    /// When the next fetch is due (None: never again).
    pub(crate) next_fetch: Option<SystemTime>,
    /// Digest of the fetched set in service.
    digest: Option<[u8; 32]>,
    /// Digest of the last set refused, so that an unchanged broken set is
    /// reported once, not at every poll.
    refused: Option<[u8; 32]>,
}

impl Remote {
    /// The remote source `config` names, if any; its first fetch is due at `now`.
    pub fn from_config(config: &TranscoderConfig, now: Option<SystemTime>) -> Option<Remote> {
        let (name, source) = match (config.descriptor_url.clone(), config.descriptor_reflection.clone()) {
            (Some(url), _) => (url.url.clone(), Source::Url(url)),
            (None, Some(r)) => (format!("gRPC server reflection on cluster {:?}", r.cluster), Source::Reflection(r)),
            (None, None) => return None,
        };
        let mut template = config.clone();
        template.proto_descriptor_bin = None;
        Some(Remote {
            config: template,
            source,
            name,
            pending: None,
            exchange: None,
            next_fetch: now.or(Some(SystemTime::UNIX_EPOCH)),
            digest: None,
            refused: None,
        })
    }

    /// Whether a fetch should start now; if so, the next one is scheduled
    /// (before the call: a failed dispatch is retried at the next period, not at every tick).
    pub(crate) fn due(&mut self, now: SystemTime, loaded: bool) -> bool {
        let Some(due) = self.next_fetch else { return false };
        if self.pending.is_some() || now < due {
            return false;
        }
        self.next_fetch = next_fetch(now, loaded, self.config.refresh_interval);
        true
    }

    /// Checks a fetched set (`services`: those to transcode, the configured
    /// ones or the ones reflection listed) and returns the transcoder to put in
    /// service with its origin's name, or None to keep the set in service.
    pub(crate) fn fetched(
        &mut self,
        metrics: &(impl Metrics + ?Sized),
        loaded: bool,
        fetched: Result<(Vec<u8>, Vec<String>), String>,
    ) -> Option<(Transcoder, String, usize)> {
        let (bytes, services) = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                metrics.count(Counter::DescriptorFailure);
                let kept = if loaded { "the set in service stays" } else { "no set loaded yet, retrying" };
                warn!("rust_grpc_proxy: descriptor fetch from {} failed: {e}; {kept}", self.name);
                return None;
            }
        };
        let listed = self.config.services.is_empty().then_some(services.as_slice());
        let digest = source::fetch_digest(&bytes, listed);
        if self.digest == Some(digest) || self.refused == Some(digest) {
            return None; // unchanged since the last look
        }
        let size = bytes.len();
        let mut config = self.config.clone();
        config.services = services;
        match Transcoder::with_descriptor_set(&config, bytes) {
            Ok(transcoder) => {
                self.digest = Some(digest);
                self.refused = None;
                metrics.count(Counter::DescriptorLoad);
                metrics.gauge(Gauge::DescriptorDigest, source::digest_gauge(&digest));
                let origin = format!("{} (sha256 {})", self.name, source::digest_hex(&digest));
                Some((transcoder, origin, size))
            }
            Err(e) => {
                self.refused = Some(digest);
                metrics.count(Counter::DescriptorFailure);
                let kept = if loaded { "the set in service stays" } else { "no set loaded yet" };
                error!(
                    "rust_grpc_proxy: descriptor set from {} (sha256 {}) refused: {e}; {kept}",
                    self.name,
                    source::digest_hex(&digest)
                );
                None
            }
        }
    }

    /// After the first set was loaded: from the fast first-load retry to the refresh interval.
    pub(crate) fn first_loaded(&mut self, now: SystemTime) {
        self.next_fetch = next_fetch(now, true, self.config.refresh_interval);
    }
}

/// Puts `transcoder` in service for new requests; requests in flight keep
/// the one they started with (they hold their own `Arc`).
pub fn install(
    slot: &mut Option<Arc<Transcoder>>,
    transcoder: Transcoder,
    origin: &str,
    elapsed: Duration,
    size: usize,
) {
    for warning in transcoder.warnings() {
        warn!("rust_grpc_proxy: {warning}");
    }
    info!(
        "rust_grpc_proxy: loaded {} routes for {} in {:.1} ms ({} bytes from {origin})",
        transcoder.routes().len(),
        service_list(&transcoder.config().services),
        elapsed.as_secs_f64() * 1000.0,
        size
    );
    *slot = Some(Arc::new(transcoder));
}

/// How many services a load's log line names before it counts the rest.
const LOGGED_SERVICES: usize = 8;

/// The services a load serves, for its log line: the first few by name, then how
/// many more (a gateway's hundreds would make one line of kilobytes per worker).
fn service_list(services: &[String]) -> String {
    if services.len() <= LOGGED_SERVICES {
        return services.join(", ");
    }
    let named = services[..LOGGED_SERVICES].join(", ");
    format!("{named} and {} more services", services.len() - LOGGED_SERVICES)
}

/// When to fetch the descriptor set next: soon while none is loaded, then at
/// the refresh interval (never, without one).
pub fn next_fetch(now: SystemTime, loaded: bool, refresh: Option<Duration>) -> Option<SystemTime> {
    let period = match (loaded, refresh) {
        (false, Some(r)) => r.min(FIRST_LOAD_RETRY),
        (false, None) => FIRST_LOAD_RETRY,
        (true, Some(r)) => r,
        (true, None) => return None,
    };
    now.checked_add(period)
}

#[cfg(test)]
mod tests {
    use super::service_list;

    #[test]
    fn a_load_names_a_few_services_and_counts_the_rest() {
        let services: Vec<String> = (0..10).map(|i| format!("pkg.S{i}")).collect();
        assert_eq!(service_list(&services[..2]), "pkg.S0, pkg.S1");
        assert_eq!(service_list(&services[..8]).matches(", ").count(), 7);
        assert_eq!(
            service_list(&services),
            "pkg.S0, pkg.S1, pkg.S2, pkg.S3, pkg.S4, pkg.S5, pkg.S6, pkg.S7 and 2 more services"
        );
    }
}
