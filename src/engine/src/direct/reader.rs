//! The JSON reader of the fast path: a cursor over a body already checked to be UTF-8.

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
