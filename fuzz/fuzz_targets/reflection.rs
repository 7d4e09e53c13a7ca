//! A gRPC server reflection exchange, whose every byte comes from the backend:
//! the responses decoded one by one (file lists, service lists, errors, garbage),
//! the further requests they trigger, and the set built from the files sent,
//! through to the filter's own load of that set. Input: a selector byte (bit 0:
//! services configured, or listed by the server), then responses, each behind a
//! two-byte big-endian length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use transcoder::reflection::ReflectionFetch;
use transcoder::{Transcoder, TranscoderConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut rest)) = data.split_first() else { return };
    let configured = if pick & 1 == 0 { vec!["bookstore.v1.Bookstore".to_string()] } else { Vec::new() };
    let (mut fetch, first) = ReflectionFetch::new(&configured);
    assert!(!first.is_empty(), "an exchange starts with a request");
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let (message, tail) = rest[2..].split_at(len.min(rest.len() - 2));
        rest = tail;
        if fetch.on_response(message).is_err() {
            return;
        }
    }
    if !fetch.is_complete() {
        return;
    }
    let Ok(set) = fetch.descriptor_set() else { return };
    let config = TranscoderConfig { services: fetch.services().to_vec(), ..Default::default() };
    let _ = Transcoder::with_descriptor_set(&config, set);
});
