//! Descriptor-set loading: arbitrary bytes as `proto_descriptor_bin`, through
//! the import check, the pool, the route table of every service and the
//! surface analysis `rgp check` runs. Input: the FileDescriptorSet bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use transcoder::{decode_descriptor_set, surface, Transcoder, TranscoderConfig};

fuzz_target!(|data: &[u8]| {
    let _ = surface::missing_imports(data);
    let Ok(pool) = decode_descriptor_set(data) else { return };
    let services = surface::all_services(&pool);
    let config = TranscoderConfig {
        proto_descriptor_bin: Some(data.to_vec()),
        services: services.clone(),
        auto_mapping: true,
        ..Default::default()
    };
    let _ = surface::analyze(&pool, &services, &config);
    if let Ok(t) = Transcoder::new(config) {
        // Each route's own template as a request path (variables stay `{...}`).
        for route in t.routes() {
            let _ = t.route_request(&route.http_method, &route.template);
        }
    }
});
