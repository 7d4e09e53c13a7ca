//! Percent-decoding of path variables and query parameters with the rules of
//! Envoy's transcoding library (grpc-httpjson-transcoding, `percent_encoding.h`
//! and `ExtractBindingsFromPath` in `path_matcher.h`), so a field gets the same
//! value through this filter as through Envoy's native one.
//!
//! Envoy keeps decoded bytes as they are; a proto `string` field must be UTF-8,
//! so here a value whose escapes decode to invalid UTF-8 is an [`InvalidUtf8`]
//! error that still carries a usable, lossless string.

use std::borrow::Cow;

/// Which `%XX` escapes of multi-segment path variables are decoded (Envoy's `url_unescape_spec`).
///
/// Single-segment variables (`{var}`, `{var=*}`) are always fully decoded, whatever
/// this says, because that is what Envoy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UrlUnescapeSpec {
    /// Keep RFC 6570 reserved characters (`!#$&'()*+,/:;=?@[]`) encoded; Envoy's default.
    #[default]
    AllCharactersExceptReserved,
    /// Decode everything except `%2F` (`/`).
    AllCharactersExceptSlash,
    /// Decode everything.
    AllCharacters,
}

/// A value whose escapes decode to bytes that are not UTF-8, so no proto string can hold it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} does not percent-decode to UTF-8 text (the escape at byte {offset} starts an invalid \
     sequence); percent-encode the UTF-8 bytes of each character, e.g. \"%C3%A9\" for \"é\""
)]
pub struct InvalidUtf8 {
    /// The text as received, before decoding.
    pub input: String,
    /// Byte offset in `input` of the first escape whose byte is not part of valid UTF-8.
    pub offset: usize,
    /// The decoded text, with every escape that would break UTF-8 left as written.
    pub lossless: String,
}

/// RFC 6570 reserved characters, the set Envoy leaves encoded by default.
fn is_reserved(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b'/'
            | b':'
            | b';'
            | b'='
            | b'?'
            | b'@'
            | b'['
            | b']'
    )
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte `%XX` at `i` stands for, when it is a well-formed escape the spec lets us decode.
fn escaped_byte(bytes: &[u8], i: usize, spec: UrlUnescapeSpec) -> Option<u8> {
    if bytes.get(i) != Some(&b'%') {
        return None;
    }
    let byte = (hex_value(*bytes.get(i + 1)?)? << 4) | hex_value(*bytes.get(i + 2)?)?;
    let allowed = match spec {
        UrlUnescapeSpec::AllCharactersExceptReserved => !is_reserved(byte),
        UrlUnescapeSpec::AllCharactersExceptSlash => byte != b'/',
        UrlUnescapeSpec::AllCharacters => true,
    };
    allowed.then_some(byte)
}

/// Decodes into bytes plus, for each output byte, the input offset it came from.
///
/// The offsets let a UTF-8 failure point at the escape the user wrote.
fn decode_with_sources(input: &str, spec: UrlUnescapeSpec, unescape_plus: bool) -> (Vec<u8>, Vec<usize>) {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut sources = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        sources.push(i);
        if unescape_plus && b == b'+' {
            out.push(b' ');
            i += 1;
        } else if let Some(decoded) = escaped_byte(bytes, i, spec) {
            out.push(decoded);
            i += 3;
        } else {
            // Malformed or disallowed escapes stay as written, like Envoy.
            out.push(b);
            i += 1;
        }
    }
    (out, sources)
}

/// Decodes `%XX` escapes allowed by `spec` (and `+` as a space when `unescape_plus`) into raw bytes.
///
/// `%` not followed by two hex digits is kept as is, as Envoy does. Use this when
/// bytes are wanted; the string functions below add the UTF-8 check.
pub fn unescape_bytes(input: &str, spec: UrlUnescapeSpec, unescape_plus: bool) -> Cow<'_, [u8]> {
    if !needs_decoding(input, unescape_plus) {
        return Cow::Borrowed(input.as_bytes());
    }
    Cow::Owned(decode_with_sources(input, spec, unescape_plus).0)
}

fn needs_decoding(input: &str, unescape_plus: bool) -> bool {
    input.bytes().any(|b| b == b'%' || (unescape_plus && b == b'+'))
}

fn unescape_string(input: &str, spec: UrlUnescapeSpec, unescape_plus: bool) -> Result<String, InvalidUtf8> {
    if !needs_decoding(input, unescape_plus) {
        return Ok(input.to_string());
    }
    let (decoded, sources) = decode_with_sources(input, spec, unescape_plus);
    let decoded = match String::from_utf8(decoded) {
        Ok(text) => return Ok(text),
        Err(e) => e.into_bytes(),
    };
    let mut lossless = String::with_capacity(input.len());
    let mut first_bad: Option<usize> = None;
    let mut index = 0;
    for chunk in decoded.utf8_chunks() {
        lossless.push_str(chunk.valid());
        index += chunk.valid().len();
        for _ in chunk.invalid() {
            let source = sources.get(index).copied().unwrap_or(0);
            first_bad.get_or_insert(source);
            // Only escapes can yield invalid bytes (the input itself is a str),
            // so putting the escape back restores UTF-8 without losing anything.
            match input.get(source..source + 3) {
                Some(escape) if escape.starts_with('%') => lossless.push_str(escape),
                _ => lossless.push(char::REPLACEMENT_CHARACTER),
            }
            index += 1;
        }
    }
    Err(InvalidUtf8 { input: input.to_string(), offset: first_bad.unwrap_or(0), lossless })
}

/// Decodes what a path variable matched (its segments joined with `/`), as Envoy does.
///
/// A single-segment variable is fully decoded (`%2F` becomes `/`); a multi-segment one
/// (several segments, or any `**`) decodes only what `spec` allows. `+` stays `+`.
pub fn decode_path_variable(raw: &str, multi_segment: bool, spec: UrlUnescapeSpec) -> Result<String, InvalidUtf8> {
    let spec = if multi_segment { spec } else { UrlUnescapeSpec::AllCharacters };
    unescape_string(raw, spec, false)
}

/// Decodes one query parameter name or value: every escape, and `+` as a space when `unescape_plus`.
///
/// Envoy decodes names with `unescape_plus = false` and values with `query_param_unescape_plus`.
pub fn decode_query_component(raw: &str, unescape_plus: bool) -> Result<String, InvalidUtf8> {
    unescape_string(raw, UrlUnescapeSpec::AllCharacters, unescape_plus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use UrlUnescapeSpec::*;

    const ALL_RESERVED_ENCODED: &str = "%21%23%24%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D";
    const ALL_RESERVED: &str = "!#$&'()*+,/:;=?@[]";

    fn path(raw: &str, multi: bool, spec: UrlUnescapeSpec) -> String {
        match decode_path_variable(raw, multi, spec) {
            Ok(s) => s,
            Err(e) => format!("ERR {e}"),
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn default_is_all_characters_except_reserved() {
        assert_eq!(UrlUnescapeSpec::default(), AllCharactersExceptReserved);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn single_segment_always_fully_decoded() {
        for spec in [AllCharactersExceptReserved, AllCharactersExceptSlash, AllCharacters] {
            assert_eq!(path(ALL_RESERVED_ENCODED, false, spec), ALL_RESERVED);
            assert_eq!(path("p%20q%2Fr+", false, spec), "p q/r+");
            assert_eq!(path("a%2fb", false, spec), "a/b");
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn multi_segment_except_reserved_keeps_reserved() {
        assert_eq!(path(ALL_RESERVED_ENCODED, true, AllCharactersExceptReserved), ALL_RESERVED_ENCODED);
        assert_eq!(path("p/foo%20foo/q/bar%2Fbar+", true, AllCharactersExceptReserved), "p/foo foo/q/bar%2Fbar+");
        // '%' and '~' are not reserved, so they are decoded.
        assert_eq!(path("a%25b%7E", true, AllCharactersExceptReserved), "a%b~");
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn multi_segment_except_slash_keeps_only_slash() {
        assert_eq!(path(ALL_RESERVED_ENCODED, true, AllCharactersExceptSlash), "!#$&'()*+,%2F:;=?@[]");
        assert_eq!(path("a%2fb%2Fc", true, AllCharactersExceptSlash), "a%2fb%2Fc");
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn multi_segment_all_characters_decodes_everything() {
        assert_eq!(path(ALL_RESERVED_ENCODED, true, AllCharacters), ALL_RESERVED);
        assert_eq!(path("a%2Fb/c", true, AllCharacters), "a/b/c");
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn every_ascii_byte_decodes_in_both_letter_cases() {
        for b in 0u8..0x80 {
            let upper = format!("%{b:02X}");
            let lower = format!("%{b:02x}");
            let expected = (b as char).to_string();
            assert_eq!(path(&upper, false, AllCharactersExceptReserved), expected);
            assert_eq!(path(&lower, false, AllCharactersExceptReserved), expected);
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn multi_byte_utf8() {
        assert_eq!(path("%E4%BD%A0%E5%A5%BD", false, AllCharactersExceptReserved), "你好");
        assert_eq!(path("%e4%bd%a0/x", true, AllCharactersExceptReserved), "你/x");
        assert_eq!(path("caf%C3%A9", false, AllCharacters), "café");
        // Raw non-ASCII text passes through untouched.
        assert_eq!(path("你好%20é", false, AllCharacters), "你好 é");
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn invalid_and_truncated_escapes_are_kept() {
        for spec in [AllCharactersExceptReserved, AllCharactersExceptSlash, AllCharacters] {
            assert_eq!(path("%", false, spec), "%");
            assert_eq!(path("%4", false, spec), "%4");
            assert_eq!(path("a%4", false, spec), "a%4");
            assert_eq!(path("%zz", false, spec), "%zz");
            assert_eq!(path("%%41", false, spec), "%A");
            assert_eq!(path("%4g%41", false, spec), "%4gA");
            assert_eq!(path("100%", true, spec), "100%");
            assert_eq!(path("%é", true, spec), "%é");
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn decoding_happens_once() {
        assert_eq!(path("%2541", false, AllCharacters), "%41");
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn invalid_utf8_is_an_error_with_a_lossless_value() {
        let err = decode_path_variable("ab%FFc", false, AllCharacters).unwrap_err();
        assert_eq!(err.offset, 2);
        assert_eq!(err.lossless, "ab%FFc");
        assert_eq!(err.input, "ab%FFc");
        assert!(err.to_string().contains("byte 2"), "{err}");

        // A truncated sequence: the valid prefix is kept encoded, the rest decoded.
        let err = decode_path_variable("%E4%BD%41%C3%A9", false, AllCharacters).unwrap_err();
        assert_eq!(err.offset, 0);
        assert_eq!(err.lossless, "%E4%BDAé");

        // An escaped continuation byte after a raw character.
        let err = decode_path_variable("é%A9", false, AllCharacters).unwrap_err();
        assert_eq!(err.offset, 2);
        assert_eq!(err.lossless, "é%A9");

        // Lead byte at the very end.
        let err = decode_query_component("x%C3", false).unwrap_err();
        assert_eq!(err.lossless, "x%C3");
        assert_eq!(err.offset, 1);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn query_components() {
        assert_eq!(decode_query_component("Hello%20world", false).unwrap(), "Hello world");
        assert_eq!(decode_query_component("%24%25%2F%20%0A", false).unwrap(), "$%/ \n");
        assert_eq!(decode_query_component("Hello+world", false).unwrap(), "Hello+world");
        assert_eq!(decode_query_component("%2B+%20", false).unwrap(), "++ ");
        assert_eq!(decode_query_component("Hello+world", true).unwrap(), "Hello world");
        assert_eq!(decode_query_component("%2B+%20", true).unwrap(), "+  ");
        assert_eq!(decode_query_component("search%5Bfield%5D", false).unwrap(), "search[field]");
        assert_eq!(decode_query_component("", true).unwrap(), "");
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn bytes_are_kept_raw() {
        assert_eq!(&*unescape_bytes("a%FF%00", AllCharacters, false), b"a\xff\x00");
        assert_eq!(&*unescape_bytes("a+b%2F", AllCharactersExceptSlash, true), b"a b%2F");
        assert!(matches!(unescape_bytes("plain", AllCharacters, true), Cow::Borrowed(_)));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn pseudo_random_input_never_panics() {
        let alphabet: Vec<char> = "%%%+/aF09gé你\u{1F600}2fFEc3".chars().collect();
        let mut next = crate::test_rng::xorshift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let len = (next() % 12) as usize;
            let input: String = (0..len)
                .map(|_| alphabet.get((next() % alphabet.len() as u64) as usize).copied().unwrap_or('a'))
                .collect();
            for spec in [AllCharactersExceptReserved, AllCharactersExceptSlash, AllCharacters] {
                for multi in [false, true] {
                    match decode_path_variable(&input, multi, spec) {
                        Ok(s) => assert!(s.len() <= input.len()),
                        // Lossless means re-encoding nothing: the invalid escapes are still there.
                        Err(e) => assert!(e.lossless.contains('%')),
                    }
                }
            }
            let _ = decode_query_component(&input, true);
            let _ = unescape_bytes(&input, AllCharacters, true);
        }
    }
}
