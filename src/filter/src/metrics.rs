//! The filter's metrics through proxy-wasm's `define_metric`: Envoy keeps them
//! in its stats store, shared by every worker's VM. Names come from the core
//! ([`filter_core::metrics`]); a metric the host refuses is skipped.

use std::cell::RefCell;
use std::collections::HashMap;

use filter_core::metrics::{Counter, Gauge, PREFIX};
use proxy_wasm::types::MetricType;

thread_local! {
    /// Metric ids by full name, per VM (defining is not free: once per name).
    static IDS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

fn id(kind: MetricType, name: &str) -> Option<u32> {
    let full = format!("{PREFIX}{name}");
    IDS.with(|ids| {
        if let Some(id) = ids.borrow().get(&full) {
            return Some(*id);
        }
        let id = proxy_wasm::hostcalls::define_metric(kind, &full).ok()?;
        ids.borrow_mut().insert(full, id);
        Some(id)
    })
}

/// The VM's metrics, as the core sees them.
pub struct WasmMetrics;

impl filter_core::Metrics for WasmMetrics {
    fn count(&self, counter: Counter<'_>) {
        if let Some(id) = id(MetricType::Counter, &counter.name()) {
            let _ = proxy_wasm::hostcalls::increment_metric(id, 1);
        }
    }

    fn gauge(&self, gauge: Gauge, value: u64) {
        if let Some(id) = id(MetricType::Gauge, gauge.name()) {
            let _ = proxy_wasm::hostcalls::record_metric(id, value);
        }
    }
}
