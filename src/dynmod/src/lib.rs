//! rust-grpc-proxy as an Envoy dynamic module (`envoy.filters.http.dynamic_modules`,
//! Envoy 1.40): the same filter as the Wasm build, configured with the same
//! JSON, running natively in Envoy's workers.
//!
//! - [`abi`]: the FFI edge (the only `unsafe`): Envoy's callbacks, wrapped,
//!   and the event hooks Envoy calls, each catching panics;
//! - [`filter`]: per-configuration and per-stream state, and the core's
//!   `Host` over the callbacks: it only moves headers and bodies;
//! - [`metrics`]: the filter's metrics, defined with each configuration;
//! - [`remote`]: descriptor sets fetched at run time, on the main thread, over
//!   the configuration-level callouts and streams (the core decides what and when);
//! - everything a request goes through is in [`filter_core`].
//!
//! What the ABI allows that Wasm does not: a request without a body gets its
//! gRPC frame appended in the headers phase and goes through the router like
//! any other (route timeouts, retries, router stats and access logs apply);
//! stream data is rewritten as it passes, with no timer; and a route may carry its
//! own configuration (`DynamicModuleFilterPerRoute`), so one filter can serve several
//! services, each route with its own descriptor set and options.

#![deny(unsafe_code)]

#[allow(unsafe_code)] // the FFI edge: every unsafe block there says why it is sound
pub mod abi;
mod filter;
mod logger;
mod metrics;
mod remote;
