//! The JSON reader of the fast path: a cursor over a body already checked to be UTF-8.

use std::borrow::Cow;

pub(super) struct Reader<'a> {
    pub(super) json: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.json.get(self.pos).copied()
    }

    pub(super) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.pos += 1;
        }
    }

    pub(super) fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    pub(super) fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    pub(super) fn literal(&mut self, word: &[u8]) -> bool {
        let found = self.json.get(self.pos..self.pos + word.len()) == Some(word);
        if found {
            self.pos += word.len();
        }
        found
    }

    /// A string without escapes or control characters (others: general path).
    pub(super) fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.pos;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => return None,
                b if b < 0x20 => return None,
                _ => self.pos += 1,
            }
        }
        let text = &self.json[start..self.pos];
        self.pos += 1;
        // The whole body was checked to be UTF-8, and quotes are ASCII.
        std::str::from_utf8(text).ok()
    }

    /// A string value with its escapes decoded (text from browsers and PHP clients has
    /// `\"`, `\n`, `\/` and `\u` escapes in it); None for what the general path must
    /// judge: a bad escape, a lone surrogate, a raw control character.
    pub(super) fn string_value(&mut self) -> Option<Cow<'a, str>> {
        let start = self.pos + 1;
        let mut probe = Reader { json: self.json, pos: self.pos };
        if let Some(text) = probe.string() {
            self.pos = probe.pos;
            return Some(Cow::Borrowed(text));
        }
        // `string` stopped at an escape (or at something no string may hold).
        if self.json.get(probe.pos) != Some(&b'\\') {
            return None;
        }
        let mut out = self.json.get(start..probe.pos)?.to_vec();
        self.pos = probe.pos;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => {
                    let escaped = *self.json.get(self.pos + 1)?;
                    self.pos += 2;
                    let byte = match escaped {
                        b'"' | b'\\' | b'/' => escaped,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let c = self.unicode_escape()?;
                            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                            continue;
                        }
                        _ => return None,
                    };
                    out.push(byte);
                }
                b if b < 0x20 => return None,
                b => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        // Copied whole UTF-8 sequences and encoded chars: valid, but checked rather than assumed.
        String::from_utf8(out).ok().map(Cow::Owned)
    }

    /// The char of a `\uXXXX` escape (the `\u` already read), a surrogate pair taking two.
    fn unicode_escape(&mut self) -> Option<char> {
        let high = self.hex4()?;
        if !(0xD800..0xDC00).contains(&high) {
            // A lone low surrogate is no char: None.
            return char::from_u32(high);
        }
        if !self.literal(b"\\u") {
            return None;
        }
        let low = self.hex4()?;
        if !(0xDC00..0xE000).contains(&low) {
            return None;
        }
        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.json.get(self.pos..self.pos + 4)?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }

    /// A JSON number token, checked against JSON's grammar.
    pub(super) fn number(&mut self) -> Option<&'a str> {
        let start = self.pos;
        self.eat(b'-');
        let int_start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        let int_len = self.pos - int_start;
        if int_len == 0 || (int_len > 1 && self.json[int_start] == b'0') {
            return None;
        }
        if self.eat(b'.') {
            let frac = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            if self.pos == frac {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            let exp = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            if self.pos == exp {
                return None;
            }
        }
        std::str::from_utf8(&self.json[start..self.pos]).ok()
    }
}
