//! A tiny deterministic generator for the never-panics tests (no dependency,
//! the same sequence natively and on wasm32).

/// Marsaglia's xorshift64: each call returns the next pseudo-random number.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
