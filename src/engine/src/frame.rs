//! gRPC length-prefixed message framing (the 5-byte header of the gRPC wire
//! protocol), decoded incrementally because bodies arrive in arbitrary chunks.

/// Bytes in a frame header: one flag byte and a big-endian u32 length.
pub const HEADER_LEN: usize = 5;

/// Frames one message: flag 0 (not compressed) and its length.
pub fn encode_frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + message.len());
    push_frame_header(&mut out, message.len());
    out.extend_from_slice(message);
    out
}

/// Appends the header of an uncompressed frame of `len` bytes.
pub fn push_frame_header(out: &mut Vec<u8>, len: usize) {
    out.push(0);
    // Messages over 4 GiB cannot be framed; the body limits stop them long before.
    out.extend_from_slice(&(len.min(u32::MAX as usize) as u32).to_be_bytes());
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The compressed-flag bit: the message is compressed with `grpc-encoding`.
    pub compressed: bool,
    /// The message bytes.
    pub data: Vec<u8>,
}

/// Why a byte stream is not valid gRPC framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The flag byte has bits other than the compressed bit.
    #[error("invalid gRPC frame flag byte {0:#04x}")]
    BadFlag(u8),
    /// The stream ended inside a frame.
    #[error("the gRPC stream ended inside a frame ({0} bytes left over)")]
    Truncated(usize),
    /// A frame is larger than allowed.
    #[error("a gRPC message of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// Announced size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// Splits a byte stream into frames, whatever the chunking.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    max_message: Option<usize>,
}

impl FrameDecoder {
    /// A decoder refusing messages larger than `max_message` bytes (no limit with None).
    pub fn new(max_message: Option<usize>) -> Self {
        FrameDecoder { buffer: Vec::new(), max_message }
    }

    /// Adds bytes and returns every frame completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Frame>, FrameError> {
        self.buffer.extend_from_slice(chunk);
        let mut frames = Vec::new();
        let mut start = 0;
        while let Some(header) = self.buffer.get(start..start + HEADER_LEN) {
            let flag = header[0];
            if flag & !1 != 0 {
                return Err(FrameError::BadFlag(flag));
            }
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            if let Some(limit) = self.max_message {
                if len > limit {
                    return Err(FrameError::TooLarge { size: len, limit });
                }
            }
            let body = start + HEADER_LEN;
            let Some(data) = self.buffer.get(body..body + len) else {
                break;
            };
            frames.push(Frame { compressed: flag & 1 == 1, data: data.to_vec() });
            start = body + len;
        }
        self.buffer.drain(..start);
        Ok(frames)
    }

    /// Checks that the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated(self.buffer.len()))
        }
    }

    /// Bytes held while waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

/// Why a compressed message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// The compressed-flag bit is set but `grpc-encoding` names nothing we read.
    #[error("the gRPC server sent a compressed message with grpc-encoding {0:?}; only gzip and deflate are supported")]
    Unsupported(String),
    /// The bytes are not valid for the encoding.
    #[error("a {encoding}-compressed gRPC message is corrupt: {reason}")]
    Corrupt {
        /// `gzip` or `deflate`.
        encoding: String,
        /// What the decoder said.
        reason: String,
    },
    /// The message inflates past the limit.
    #[error("a compressed gRPC message inflates past the limit of {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: usize,
    },
}

/// Decompresses one message whose compressed-flag bit was set, by its
/// `grpc-encoding` (`gzip`, or `deflate`, which gRPC defines as zlib), never
/// inflating more than `limit` bytes.
pub fn decompress(encoding: Option<&str>, data: &[u8], limit: Option<usize>) -> Result<Vec<u8>, DecompressError> {
    use std::io::Read;
    let encoding = encoding.unwrap_or("identity").trim().to_ascii_lowercase();
    let reader: Box<dyn Read + '_> = match encoding.as_str() {
        "gzip" => Box::new(flate2::read::GzDecoder::new(data)),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(data)),
        _ => return Err(DecompressError::Unsupported(encoding)),
    };
    let cap = limit.map_or(u64::MAX, |l| l as u64 + 1);
    let mut out = Vec::with_capacity(data.len().saturating_mul(2).min(limit.unwrap_or(usize::MAX)));
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Corrupt { encoding: encoding.clone(), reason: e.to_string() })?;
    if let Some(limit) = limit {
        if out.len() > limit {
            return Err(DecompressError::TooLarge { limit });
        }
    }
    Ok(out)
}

/// Decodes a complete body into its frames.
pub fn decode_all(body: &[u8], max_message: Option<usize>) -> Result<Vec<Frame>, FrameError> {
    let mut decoder = FrameDecoder::new(max_message);
    let frames = decoder.push(body)?;
    decoder.finish()?;
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn frames_split_anywhere_reassemble() {
        let mut stream = encode_frame(b"hello");
        stream.extend(encode_frame(b""));
        stream.extend(encode_frame(&[7u8; 300]));
        for split in 0..stream.len() {
            let mut decoder = FrameDecoder::new(None);
            let mut frames = decoder.push(&stream[..split]).unwrap();
            frames.extend(decoder.push(&stream[split..]).unwrap());
            decoder.finish().unwrap();
            assert_eq!(frames.len(), 3, "split at {split}");
            assert_eq!(frames[0].data, b"hello");
            assert!(frames[1].data.is_empty());
            assert_eq!(frames[2].data.len(), 300);
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn gzip_and_deflate_messages_decompress_within_limits() {
        use std::io::Write;
        let message = b"hello hello hello hello".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&message).unwrap();
        let gz = gz.finish().unwrap();
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(&message).unwrap();
        let zl = zl.finish().unwrap();
        assert_eq!(decompress(Some("gzip"), &gz, None).unwrap(), message);
        assert_eq!(decompress(Some("deflate"), &zl, Some(message.len())).unwrap(), message);
        assert_eq!(decompress(Some("gzip"), &gz, Some(100)), Err(DecompressError::TooLarge { limit: 100 }));
        assert!(matches!(decompress(Some("gzip"), &gz[..10], None), Err(DecompressError::Corrupt { .. })));
        assert!(matches!(decompress(Some("gzip"), b"junk", None), Err(DecompressError::Corrupt { .. })));
        assert!(matches!(decompress(Some("snappy"), &gz, None), Err(DecompressError::Unsupported(_))));
        assert!(matches!(decompress(None, &gz, None), Err(DecompressError::Unsupported(_))));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(decode_all(&[2, 0, 0, 0, 0], None), Err(FrameError::BadFlag(2)));
        assert_eq!(decode_all(&[0, 0, 0], None), Err(FrameError::Truncated(3)));
        assert_eq!(decode_all(&[0, 0, 0, 0, 9, 1], None), Err(FrameError::Truncated(6)));
        assert!(matches!(decode_all(&[0, 255, 255, 255, 255], Some(10)), Err(FrameError::TooLarge { .. })));
        let compressed = decode_all(&[1, 0, 0, 0, 1, 42], None).unwrap();
        assert!(compressed[0].compressed);
    }
}
