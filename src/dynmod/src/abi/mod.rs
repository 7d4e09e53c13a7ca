//! The FFI edge with Envoy's dynamic-module ABI (Envoy 1.40.0,
//! `source/extensions/dynamic_modules/abi.h`): the only module with `unsafe`.
//!
//! - [`callbacks`]: the `envoy_dynamic_module_callback_*` functions we call,
//!   declared from the header (each checked against the symbols the 1.40
//!   binary exports, by tests/e2e/test_dynmod.py), wrapped in safe calls;
//!   signatures, struct layouts and enum values were compared one by one with
//!   the v0.2.0 `abi/abi.h` of a fork and the v1.38.0 release header (no stored
//!   copy of the v1.40.0 tag exists), with no mismatch;
//! - [`hooks`]: the `envoy_dynamic_module_on_*` event hooks Envoy looks up by
//!   name; each catches panics, since a panic here would take Envoy down.

pub mod callbacks;
mod hooks;

/// The ABI version string Envoy 1.40.0 expects from `envoy_dynamic_module_on_program_init`
/// (any other is loaded with a "deprecated" warning in Envoy's log).
pub const ABI_VERSION: &str = "v0.2.0";
