//! Client-streaming requests: an HTTP body holding a JSON array of messages
//! (what Envoy's transcoder takes) or newline-delimited JSON values becomes one
//! gRPC frame per element, produced as soon as the element's last byte
//! arrived, however the body is chunked.
//!
//! [`ElementSplitter`] only finds where each top-level element starts and ends
//! (strings, escapes and nesting tracked byte by byte); the elements themselves
//! go through the same JSON-to-protobuf path as a unary body.

use crate::status::Status;

/// How the body lays out its elements, known from its first non-blank byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Nothing but whitespace seen yet.
    Unknown,
    /// `[e1, e2, ...]`.
    Array,
    /// `e1\ne2\n...` (any whitespace between values).
    Sequence,
}

/// Where the splitter is between elements of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    /// Just after `[`: an element or `]`.
    First,
    /// After `,`: an element.
    Next,
    /// After an element: `,` or `]`.
    Separator,
    /// After the closing `]`: only whitespace.
    Closed,
}

/// Splits a chunked body into its top-level JSON elements.
#[derive(Debug)]
pub struct ElementSplitter {
    layout: Layout,
    array: ArrayState,
    /// Bytes of the element in progress (empty between elements).
    element: Vec<u8>,
    in_element: bool,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Elements completed so far (for error messages).
    count: usize,
}

impl Default for ElementSplitter {
    fn default() -> Self {
        ElementSplitter {
            layout: Layout::Unknown,
            array: ArrayState::First,
            element: Vec::new(),
            in_element: false,
            depth: 0,
            in_string: false,
            escaped: false,
            count: 0,
        }
    }
}

impl ElementSplitter {
    /// Takes the next chunk; returns the elements it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, Status> {
        let mut done = Vec::new();
        for &b in chunk {
            if self.in_element {
                if self.scalar_ends_at(b) {
                    done.push(self.complete());
                    self.between(b)?;
                } else {
                    self.element.push(b);
                    if self.track(b) {
                        done.push(self.complete());
                    }
                }
            } else {
                self.between(b)?;
            }
        }
        Ok(done)
    }

    /// The body ended: returns a last element that ended with it (a bare
    /// value), or the error if the body stopped inside an element or array.
    pub fn finish(&mut self) -> Result<Option<Vec<u8>>, Status> {
        let last = if self.in_element {
            if self.depth > 0 || self.in_string {
                return Err(Status::invalid_argument(format!(
                    "the request body ended inside element {} of the request stream",
                    self.count + 1
                )));
            }
            Some(self.complete())
        } else {
            None
        };
        if self.layout == Layout::Array && self.array != ArrayState::Closed {
            return Err(Status::invalid_argument("the request body ended before the JSON array was closed with `]`"));
        }
        Ok(last)
    }

    /// Elements completed so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Nothing but whitespace so far: neither an array nor a value has begun.
    pub fn is_blank(&self) -> bool {
        self.layout == Layout::Unknown && !self.in_element
    }

    /// A byte outside any element.
    fn between(&mut self, b: u8) -> Result<(), Status> {
        if b.is_ascii_whitespace() {
            return Ok(());
        }
        match self.layout {
            Layout::Unknown if b == b'[' => {
                self.layout = Layout::Array;
                self.array = ArrayState::First;
                Ok(())
            }
            Layout::Unknown => {
                self.layout = Layout::Sequence;
                self.start(b);
                Ok(())
            }
            Layout::Sequence => {
                self.start(b);
                Ok(())
            }
            Layout::Array => match (self.array, b) {
                (ArrayState::First, b']') | (ArrayState::Separator, b']') => {
                    self.array = ArrayState::Closed;
                    Ok(())
                }
                (ArrayState::Separator, b',') => {
                    self.array = ArrayState::Next;
                    Ok(())
                }
                (ArrayState::First | ArrayState::Next, _) if b != b',' && b != b']' => {
                    self.start(b);
                    Ok(())
                }
                (ArrayState::Closed, _) => {
                    Err(Status::invalid_argument("the request body has data after the closing `]` of its JSON array"))
                }
                _ => Err(Status::invalid_argument(format!(
                    "the request body's JSON array is malformed after element {}: unexpected `{}`",
                    self.count,
                    char::from(b).escape_default()
                ))),
            },
        }
    }

    fn start(&mut self, b: u8) {
        self.in_element = true;
        self.element.push(b);
        if self.track(b) {
            // Cannot happen for a first byte, but keep the state consistent.
            let _ = self.complete();
        }
    }

    /// Follows strings and nesting; true when the byte ends the element.
    fn track(&mut self, b: u8) -> bool {
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                return self.depth == 0;
            }
            return false;
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                return self.depth == 0;
            }
            _ => {}
        }
        false
    }

    /// A bare value (number, true, ...) at the top level ends before a delimiter.
    fn scalar_ends_at(&self, b: u8) -> bool {
        self.depth == 0 && !self.in_string && (b.is_ascii_whitespace() || b == b',' || b == b']')
    }

    fn complete(&mut self) -> Vec<u8> {
        self.in_element = false;
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
        self.count += 1;
        if self.layout == Layout::Array {
            self.array = ArrayState::Separator;
        }
        std::mem::take(&mut self.element)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_in_chunks(body: &[u8], size: usize) -> Result<Vec<String>, Status> {
        let mut s = ElementSplitter::default();
        let mut out = Vec::new();
        for chunk in body.chunks(size.max(1)) {
            out.extend(s.push(chunk)?);
        }
        out.extend(s.finish()?);
        Ok(out.into_iter().map(|e| String::from_utf8(e).unwrap()).collect())
    }

    #[test]
    fn arrays_and_sequences_split_the_same_at_any_chunk_size() {
        let elements = [r#"{"a":"x,]}\"{"}"#, r#"{"b":[1,{"c":2}]}"#, "{}"];
        let array = format!(" [ {} ] \n", elements.join(" ,\n"));
        let ndjson = format!("{}\n", elements.join("\n"));
        for body in [array, ndjson] {
            for size in 1..body.len() + 1 {
                assert_eq!(split_in_chunks(body.as_bytes(), size).unwrap(), elements, "{body:?} by {size}");
            }
        }
    }

    #[test]
    fn empty_bodies_and_arrays_have_no_elements() {
        for body in ["", "  \n", "[]", " [ ] "] {
            assert!(split_in_chunks(body.as_bytes(), 1).unwrap().is_empty(), "{body:?}");
        }
    }

    #[test]
    fn bare_values_end_at_delimiters() {
        assert_eq!(split_in_chunks(b"[1, true ,\"s\"]", 2).unwrap(), ["1", "true", "\"s\""]);
        assert_eq!(split_in_chunks(b"1 2\n3", 1).unwrap(), ["1", "2", "3"]);
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_place() {
        for (body, needle) in [
            ("[{}", "before the JSON array was closed"),
            ("[{},]", "malformed after element 1"),
            ("[,{}]", "malformed after element 0"),
            ("[{} {}]", "malformed after element 1"),
            ("[{}] x", "after the closing `]`"),
            ("{\"a\": [1", "inside element 1"),
            ("{} {\"a\": \"", "inside element 2"),
        ] {
            let e = split_in_chunks(body.as_bytes(), 1).unwrap_err();
            assert!(e.message.contains(needle), "{body:?}: {e}");
        }
    }
}
