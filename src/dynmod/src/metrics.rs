//! The filter's metrics in the module. Envoy freezes stat creation once a
//! configuration exists, so every metric is defined when the configuration is
//! created: the fixed names as the Wasm build has them, and the per-method
//! request counter as one counter with labels (its services come from sets
//! fetched later too). Admin `/stats` shows them under Envoy's namespace for
//! module metrics, `dynamicmodulescustom.` (the Wasm build's is `wasmcustom.`).

use filter_core::metrics::{Counter, Gauge, CODES, PREFIX};
use log::warn;
use transcoder::Code;

use crate::abi::callbacks::{ConfigHandle, Stream};

/// The labels of the request counter, in the order its values are given.
pub const REQUEST_LABELS: [&str; 3] = ["service", "method", "status"];

/// The ids Envoy gave this configuration's metrics; a missing id is a metric Envoy
/// refused, which is skipped (metrics never fail a request).
#[derive(Debug, Default)]
pub struct MetricIds {
    requests: Option<usize>,
    errors: [Option<usize>; CODES.len()],
    loads: Option<usize>,
    failures: Option<usize>,
    not_loaded: Option<usize>,
    digest: Option<usize>,
}

impl MetricIds {
    /// Defines every metric on the configuration being created.
    pub fn define(config: &ConfigHandle<'_>) -> MetricIds {
        let counter = |c: Counter<'_>| define(config, &c.name(), &[]);
        let ids = MetricIds {
            requests: define(config, "requests", &REQUEST_LABELS),
            // No request is refused with OK: no counter for it.
            errors: CODES.map(|code| if code == Code::Ok { None } else { counter(Counter::TranscodingError(code)) }),
            loads: counter(Counter::DescriptorLoad),
            failures: counter(Counter::DescriptorFailure),
            not_loaded: counter(Counter::NotLoadedReply),
            digest: config.define_gauge(&format!("{PREFIX}{}", Gauge::DescriptorDigest.name())),
        };
        if ids.digest.is_none() {
            warn!("rust_grpc_proxy: Envoy refused the gauge {}", Gauge::DescriptorDigest.name());
        }
        ids
    }

    /// The id of a counter event's metric, and the request counter's label values.
    fn counter<'a>(&self, counter: &Counter<'a>) -> Option<(usize, Option<[&'a str; 3]>)> {
        match *counter {
            Counter::Request { service, method, status } => Some((self.requests?, Some([service, method, status]))),
            Counter::TranscodingError(code) => Some((self.errors[code as usize]?, None)),
            Counter::DescriptorLoad => Some((self.loads?, None)),
            Counter::DescriptorFailure => Some((self.failures?, None)),
            Counter::NotLoadedReply => Some((self.not_loaded?, None)),
        }
    }

    /// Counts an event of a stream.
    pub fn count_on_stream(&self, stream: &Stream<'_>, counter: Counter<'_>) {
        if let Some((id, labels)) = self.counter(&counter) {
            stream.increment_counter(id, labels.as_ref().map_or(&[], |l| l.as_slice()));
        }
    }

    /// Counts an event of the configuration (descriptor fetches).
    pub fn count_on_config(&self, config: &ConfigHandle<'_>, counter: Counter<'_>) {
        if let Some((id, labels)) = self.counter(&counter) {
            config.increment_counter(id, labels.as_ref().map_or(&[], |l| l.as_slice()));
        }
    }

    /// Sets a gauge of the configuration.
    pub fn gauge_on_config(&self, config: &ConfigHandle<'_>, gauge: Gauge, value: u64) {
        match gauge {
            Gauge::DescriptorDigest => {
                if let Some(id) = self.digest {
                    config.set_gauge(id, value);
                }
            }
        }
    }
}

fn define(config: &ConfigHandle<'_>, name: &str, labels: &[&str]) -> Option<usize> {
    let id = config.define_counter(&format!("{PREFIX}{name}"), labels);
    if id.is_none() {
        warn!("rust_grpc_proxy: Envoy refused the counter {PREFIX}{name}");
    }
    id
}
