//! Panic-free host calls.
//!
//! The SDK's wrappers `panic!` on any host status they do not expect, and a
//! panic traps the VM for every later request on the worker. The calls a
//! request can steer into an unusual state are declared here again with the
//! status kept as a plain number and handed back as an error.

use proxy_wasm::types::{BufferType, MapType};

/// A host status other than Ok, as the number the ABI returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            1 => "NotFound",
            2 => "BadArgument",
            3 => "SerializationFailure",
            4 => "ParseFailure",
            7 => "Empty",
            10 => "InternalFailure",
            _ => "unexpected status",
        };
        write!(f, "{name} ({})", self.0)
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map_type: MapType, return_map_data: *mut *mut u8, return_map_size: *mut usize)
        -> u32;
    fn proxy_get_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: MapType, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_set_header_map_pairs(map_type: MapType, map_data: *const u8, map_size: usize) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

fn check(status: u32) -> Result<(), HostError> {
    if status == 0 {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

/// Takes ownership of a buffer the host allocated with our allocator.
///
/// # Safety
/// `data` must be null or a pointer the host got from `proxy_on_memory_allocate` for `size` bytes.
unsafe fn host_bytes(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

/// Reads a body buffer; an absent buffer reads as empty.
pub fn get_buffer(buffer_type: BufferType, start: usize, max_size: usize) -> Result<Vec<u8>, HostError> {
    let mut data = std::ptr::null_mut();
    let mut size = 0;
    // SAFETY: the host writes a pointer it allocated through our allocator and its size.
    let status = unsafe { proxy_get_buffer_bytes(buffer_type, start, max_size, &mut data, &mut size) };
    match status {
        0 => Ok(unsafe { host_bytes(data, size) }),
        1 => Ok(Vec::new()),
        other => Err(HostError(other)),
    }
}

/// Replaces `size` bytes at `start` of a body buffer.
pub fn set_buffer(buffer_type: BufferType, start: usize, size: usize, value: &[u8]) -> Result<(), HostError> {
    // SAFETY: pointer and length describe a live slice.
    check(unsafe { proxy_set_buffer_bytes(buffer_type, start, size, value.as_ptr(), value.len()) })
}

/// All entries of a header map, values as bytes (they need not be UTF-8).
pub fn get_map(map_type: MapType) -> Result<Vec<(String, Vec<u8>)>, HostError> {
    let mut data = std::ptr::null_mut();
    let mut size = 0;
    // SAFETY: as in `get_buffer`.
    let status = unsafe { proxy_get_header_map_pairs(map_type, &mut data, &mut size) };
    check(status)?;
    let bytes = unsafe { host_bytes(data, size) };
    Ok(deserialize_map(&bytes))
}

/// One header's value; absent headers are None.
pub fn get_header(map_type: MapType, name: &str) -> Option<String> {
    let mut data = std::ptr::null_mut();
    let mut size = 0;
    // SAFETY: as in `get_buffer`.
    let status = unsafe { proxy_get_header_map_value(map_type, name.as_ptr(), name.len(), &mut data, &mut size) };
    if status != 0 {
        return None;
    }
    let bytes = unsafe { host_bytes(data, size) };
    String::from_utf8(bytes).ok()
}

/// Sets a header, replacing any value it had.
pub fn set_header(map_type: MapType, name: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: pointers and lengths describe live strings.
    check(unsafe { proxy_replace_header_map_value(map_type, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

/// Replaces a whole header map (one host call however many headers change).
pub fn set_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(map_type: MapType, pairs: &[(K, V)]) -> Result<(), HostError> {
    let serialized = serialize_map(pairs);
    // SAFETY: pointer and length describe a live buffer.
    check(unsafe { proxy_set_header_map_pairs(map_type, serialized.as_ptr(), serialized.len()) })
}

/// Removes a header.
pub fn remove_header(map_type: MapType, name: &str) -> Result<(), HostError> {
    // SAFETY: pointer and length describe a live string.
    check(unsafe { proxy_remove_header_map_value(map_type, name.as_ptr(), name.len()) })
}

/// Makes the next host calls act on the given HTTP context (from the root context's
/// tick); fails (BadArgument) when that request is gone.
pub fn set_effective_context(context_id: u32) -> Result<(), HostError> {
    // SAFETY: plain integer argument.
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// Answers the request with a local reply.
pub fn send_response(status: u16, headers: &[(String, String)], body: &[u8]) -> Result<(), HostError> {
    let serialized = serialize_map(headers);
    let details = "rust_grpc_proxy";
    // SAFETY: pointers and lengths describe live buffers.
    check(unsafe {
        proxy_send_local_response(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            serialized.as_ptr(),
            serialized.len(),
            -1,
        )
    })
}

/// Serializes header pairs in the proxy-wasm map format.
pub fn serialize_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let size = 4 + pairs.iter().map(|(k, v)| 10 + k.as_ref().len() + v.as_ref().len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Parses the proxy-wasm map format; a malformed map yields the entries before the damage.
pub fn deserialize_map(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let read_u32 = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(count) = read_u32(0) else { return Vec::new() };
    let mut out = Vec::with_capacity(count.min(256));
    let mut data = 4 + count.saturating_mul(8);
    for i in 0..count {
        let (Some(klen), Some(vlen)) = (read_u32(4 + i * 8), read_u32(8 + i * 8)) else { break };
        let Some(key) = bytes.get(data..data + klen) else { break };
        let value_start = data + klen + 1;
        let Some(value) = bytes.get(value_start..value_start + vlen) else { break };
        out.push((String::from_utf8_lossy(key).into_owned(), value.to_vec()));
        data = value_start + vlen + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_and_garbage_is_harmless() {
        let pairs = vec![("a".to_string(), b"1".to_vec()), (":path".to_string(), b"/x".to_vec())];
        assert_eq!(deserialize_map(&serialize_map(&pairs)), pairs);
        assert!(deserialize_map(&[9, 0, 0, 0, 1]).is_empty());
        assert!(deserialize_map(&[]).is_empty());
    }
}
