//! The protobuf wire format, as much as the fast path writes and reads:
//! varints, keys, length-delimited fields (lengths reserved then patched), and
//! a descriptor set's files without their source info; and `bytes` fields'
//! base64 form in JSON.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A `bytes` field's JSON text, when it is standard base64 with its padding
/// (what protobuf prints); URL-safe or unpadded forms go to the general path.
pub(super) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// A `bytes` field's value as protobuf prints it: standard base64, padded.
pub(super) fn encode_base64(data: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + data.len().div_ceil(3) * 4, 0);
    let written = STANDARD.encode_slice(data, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
}

pub(super) fn field_bytes(wire: &[u8], pos: usize, wire_type: u8) -> Option<(&[u8], usize)> {
    match wire_type {
        0 => {
            let (_, next) = get_varint(wire, pos)?;
            Some((&wire[pos..next], next))
        }
        1 => Some((wire.get(pos..pos + 8)?, pos + 8)),
        5 => Some((wire.get(pos..pos + 4)?, pos + 4)),
        2 => {
            let (len, start) = get_varint(wire, pos)?;
            let end = start.checked_add(usize::try_from(len).ok()?)?;
            Some((wire.get(start..end)?, end))
        }
        _ => None, // groups (3, 4) and invalid types
    }
}

pub(super) fn get_varint(wire: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *wire.get(pos)?;
        pos += 1;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte < 0x80 {
            return Some((value, pos));
        }
    }
    None
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

/// Reserves one byte for a length written by [`end_len`].
pub(super) fn begin_len(out: &mut Vec<u8>) -> usize {
    out.push(0);
    out.len()
}

/// Writes the length of what follows `start`, widening the reserved byte if needed.
pub(super) fn end_len(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    if len < 0x80 {
        out[start - 1] = len as u8;
        return;
    }
    let mut prefix = Vec::with_capacity(5);
    put_varint(&mut prefix, len as u64);
    out.splice(start - 1..start, prefix);
}

/// A FileDescriptorSet without its files' `source_code_info` (comments and
/// spans: 70% of a set built with `--include_source_info`), which nothing here
/// reads and which `DescriptorPool::decode` would otherwise decode in every
/// VM. `None` if the bytes are not a well-formed set (the caller then decodes
/// them as they are, for the precise error).
pub fn without_source_info(set: &[u8]) -> Option<Vec<u8>> {
    const FILE: u64 = 1 << 3 | 2; // FileDescriptorSet.file
    const SOURCE_CODE_INFO: u64 = 9 << 3 | 2; // FileDescriptorProto.source_code_info
    let mut out = Vec::with_capacity(set.len());
    let mut pos = 0;
    while pos < set.len() {
        let (key, next) = get_varint(set, pos)?;
        let (value, end) = field_bytes(set, next, (key & 7) as u8)?;
        if key == FILE {
            let mut file = Vec::with_capacity(value.len());
            let mut at = 0;
            while at < value.len() {
                let (field_key, next) = get_varint(value, at)?;
                let (_, field_end) = field_bytes(value, next, (field_key & 7) as u8)?;
                if field_key != SOURCE_CODE_INFO {
                    file.extend_from_slice(&value[at..field_end]);
                }
                at = field_end;
            }
            put_key(&mut out, 1, 2);
            put_varint(&mut out, file.len() as u64);
            out.extend_from_slice(&file);
        } else {
            out.extend_from_slice(&set[pos..end]);
        }
        pos = end;
    }
    Some(out)
}
