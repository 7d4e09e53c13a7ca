//! The `google.api.http` path template parser.
//!
//! ```text
//! Template = "/" | "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! What is accepted follows Envoy's library (grpc-httpjson-transcoding,
//! `src/http_template.cc`), so a configuration Envoy loads loads here too:
//! `"/"` alone is valid; a LITERAL is any text without `/`, `:` or `}` that does
//! not start with `*` or `{`; an IDENT is any text without `.`, `=` or `}` (field
//! names are checked against the message later, as Envoy does); only literal
//! segments may follow `**`. On top of that, a field path may be bound once.

use std::fmt;

/// One segment of a template, variables flattened into their patterns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this text (compared with the raw, still percent-encoded request segment).
    Literal(String),
    /// `*`: any one segment.
    Wildcard,
    /// `**`: zero or more segments.
    DoubleWildcard,
}

/// A `{field.path=pattern}` variable, as a range of [`PathTemplate::segments`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Variable {
    /// The field names, e.g. `["book", "name"]` for `{book.name}`.
    pub field_path: Vec<String>,
    /// Index of the first segment the variable covers.
    pub start_segment: usize,
    /// Index one past the last segment it covers, always an index into `segments`:
    /// a variable holding `**` may be followed by literals (Envoy allows
    /// `/{name=**}/edit`), so "to the end of the path" would be wrong.
    pub end_segment: usize,
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathTemplate {
    /// The segments after the leading `/`; empty for the template `"/"`.
    pub segments: Vec<Segment>,
    /// The custom verb after `:`, if any.
    pub verb: Option<String>,
    /// The variables, in template order.
    pub variables: Vec<Variable>,
}

/// What is wrong with a template; see [`TemplateError`] for where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateErrorKind {
    /// Nothing at all.
    #[error("empty template")]
    Empty,
    /// The first character is not `/`.
    #[error("missing leading '/'")]
    MissingLeadingSlash,
    /// Two `/` in a row, a trailing `/`, or nothing where a segment should be.
    #[error("empty path segment")]
    EmptySegment,
    /// A character that cannot appear here.
    #[error("unexpected {found:?}")]
    Unexpected {
        /// The character found.
        found: char,
        /// What the grammar allows at this point.
        expected: &'static str,
    },
    /// The template stops in the middle of something.
    #[error("unexpected end of template")]
    UnexpectedEnd {
        /// What the grammar needs at this point.
        expected: &'static str,
    },
    /// `{}`, `{.a}`, `{a.}` or `{a..b}`.
    #[error("empty field name")]
    EmptyFieldName,
    /// `{` inside a variable.
    #[error("nested variable")]
    NestedVariable,
    /// `:` with nothing after it.
    #[error("empty verb after ':'")]
    EmptyVerb,
    /// The same field path in two variables.
    #[error("field path {0:?} is bound a second time")]
    DuplicateVariable(String),
    /// `*`, `**` or `{var}` after `**`.
    #[error("wildcard after '**'")]
    WildcardAfterDoubleWildcard,
}

impl TemplateErrorKind {
    /// Advice appended to the message, so the user knows what to write instead.
    fn hint(&self) -> String {
        match self {
            TemplateErrorKind::Empty | TemplateErrorKind::MissingLeadingSlash => {
                "; a template starts with '/', e.g. \"/v1/{name}\"".to_string()
            }
            TemplateErrorKind::EmptySegment => {
                "; segments are separated by a single '/', and only \"/\" itself may end with '/'".to_string()
            }
            TemplateErrorKind::Unexpected { expected, .. } | TemplateErrorKind::UnexpectedEnd { expected } => {
                format!("; expected {expected}")
            }
            TemplateErrorKind::EmptyFieldName => "; a variable is {field} or {field.sub=pattern}".to_string(),
            TemplateErrorKind::NestedVariable => "; a variable's pattern holds only literals, '*' and '**'".to_string(),
            TemplateErrorKind::EmptyVerb => "; write the verb after ':', e.g. \"/v1/{name}:cancel\"".to_string(),
            TemplateErrorKind::DuplicateVariable(_) => "; each field may appear in one variable only".to_string(),
            TemplateErrorKind::WildcardAfterDoubleWildcard => {
                "; '**' matches the rest of the path, so only literal segments (and a verb) may follow it".to_string()
            }
        }
    }
}

/// A template that does not parse: what, where (byte offset) and in which template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at {offset} in {template:?}{}", .kind.hint())]
pub struct TemplateError {
    /// What is wrong.
    pub kind: TemplateErrorKind,
    /// Byte offset in `template` where it was found.
    pub offset: usize,
    /// The template as given.
    pub template: String,
}

impl PathTemplate {
    /// Parses a `google.api.http` path template.
    pub fn parse(template: &str) -> Result<PathTemplate, TemplateError> {
        // Envoy's library special-cases "/" the same way: no segments at all.
        if template == "/" {
            return Ok(PathTemplate { segments: Vec::new(), verb: None, variables: Vec::new() });
        }
        let mut parser = Parser {
            text: template,
            pos: 0,
            segments: Vec::new(),
            segment_offsets: Vec::new(),
            variables: Vec::new(),
            variable_offsets: Vec::new(),
        };
        match parser.peek() {
            None => return Err(parser.error(TemplateErrorKind::Empty, 0)),
            Some(b'/') => parser.pos += 1,
            Some(_) => return Err(parser.error(TemplateErrorKind::MissingLeadingSlash, 0)),
        }
        parser.segments(false)?;
        let verb = if parser.peek() == Some(b':') {
            parser.pos += 1;
            let start = parser.pos;
            let verb = parser.literal();
            if verb.is_empty() {
                return Err(parser.error(TemplateErrorKind::EmptyVerb, start));
            }
            Some(verb.to_string())
        } else {
            None
        };
        if parser.peek().is_some() {
            let expected = if verb.is_some() {
                "the end of the template after the verb"
            } else {
                "'/', ':' or the end of the template"
            };
            return Err(parser.unexpected(expected));
        }
        parser.check_double_wildcard()?;
        parser.check_duplicates()?;
        Ok(PathTemplate { segments: parser.segments, verb, variables: parser.variables })
    }

    /// Index of the `**` segment, if the template has one.
    pub fn double_wildcard_index(&self) -> Option<usize> {
        self.segments.iter().position(|s| *s == Segment::DoubleWildcard)
    }

    /// Whether `variable` binds several segments (or holds `**`), which decides how Envoy percent-decodes it.
    pub fn is_multi_segment(&self, variable: &Variable) -> bool {
        let covered = self.segments.get(variable.start_segment..variable.end_segment).unwrap_or_default();
        covered.len() > 1 || covered.contains(&Segment::DoubleWildcard)
    }
}

/// Recursive-descent state; offsets are kept so errors can point at the culprit.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
    segments: Vec<Segment>,
    segment_offsets: Vec<usize>,
    variables: Vec<Variable>,
    variable_offsets: Vec<usize>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn error(&self, kind: TemplateErrorKind, offset: usize) -> TemplateError {
        TemplateError { kind, offset, template: self.text.to_string() }
    }

    fn unexpected(&self, expected: &'static str) -> TemplateError {
        let kind = match self.text.get(self.pos..).and_then(|rest| rest.chars().next()) {
            Some(found) => TemplateErrorKind::Unexpected { found, expected },
            None => TemplateErrorKind::UnexpectedEnd { expected },
        };
        self.error(kind, self.pos)
    }

    fn push_segment(&mut self, segment: Segment, offset: usize) {
        self.segments.push(segment);
        self.segment_offsets.push(offset);
    }

    /// Consumes up to the next `/`, `:` or `}` (the library's literal rule).
    fn literal(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b'/' | b':' | b'}') {
                break;
            }
            self.pos += 1;
        }
        // The stops are ASCII, so both ends are char boundaries.
        self.text.get(start..self.pos).unwrap_or_default()
    }

    fn segments(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        loop {
            self.segment(in_variable)?;
            if self.peek() == Some(b'/') {
                self.pos += 1;
            } else {
                return Ok(());
            }
        }
    }

    fn segment(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        let start = self.pos;
        match self.peek() {
            Some(b'*') => {
                self.pos += 1;
                if self.peek() == Some(b'*') {
                    self.pos += 1;
                    self.push_segment(Segment::DoubleWildcard, start);
                } else {
                    self.push_segment(Segment::Wildcard, start);
                }
                Ok(())
            }
            Some(b'{') if in_variable => Err(self.error(TemplateErrorKind::NestedVariable, start)),
            Some(b'{') => self.variable(),
            Some(b'}') if !in_variable => Err(self.unexpected("a path segment")),
            _ => {
                let literal = self.literal();
                if literal.is_empty() {
                    return Err(self.error(TemplateErrorKind::EmptySegment, start));
                }
                self.push_segment(Segment::Literal(literal.to_string()), start);
                Ok(())
            }
        }
    }

    fn variable(&mut self) -> Result<(), TemplateError> {
        let open = self.pos;
        self.pos += 1;
        let mut field_path = Vec::new();
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if matches!(b, b'.' | b'=' | b'}') {
                    break;
                }
                self.pos += 1;
            }
            let name = self.text.get(start..self.pos).unwrap_or_default();
            if name.is_empty() {
                return Err(match self.peek() {
                    None => self.unexpected("a field name"),
                    Some(_) => self.error(TemplateErrorKind::EmptyFieldName, start),
                });
            }
            field_path.push(name.to_string());
            if self.peek() == Some(b'.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let start_segment = self.segments.len();
        match self.peek() {
            Some(b'=') => {
                self.pos += 1;
                self.segments(true)?;
            }
            // `{var}` is `{var=*}`.
            Some(b'}') => self.push_segment(Segment::Wildcard, open),
            _ => return Err(self.unexpected("'.', '=' or '}'")),
        }
        if self.peek() != Some(b'}') {
            return Err(self.unexpected("'/' or '}' to close the variable"));
        }
        self.pos += 1;
        self.variables.push(Variable { field_path, start_segment, end_segment: self.segments.len() });
        self.variable_offsets.push(open);
        Ok(())
    }

    fn check_double_wildcard(&self) -> Result<(), TemplateError> {
        let Some(first) = self.segments.iter().position(|s| *s == Segment::DoubleWildcard) else {
            return Ok(());
        };
        let after = self.segments.iter().zip(&self.segment_offsets).skip(first + 1);
        for (segment, &offset) in after {
            if !matches!(segment, Segment::Literal(_)) {
                return Err(self.error(TemplateErrorKind::WildcardAfterDoubleWildcard, offset));
            }
        }
        Ok(())
    }

    fn check_duplicates(&self) -> Result<(), TemplateError> {
        for (index, (variable, &offset)) in self.variables.iter().zip(&self.variable_offsets).enumerate() {
            let earlier = self.variables.get(..index).unwrap_or_default();
            if earlier.iter().any(|v| v.field_path == variable.field_path) {
                return Err(self.error(TemplateErrorKind::DuplicateVariable(variable.field_path.join(".")), offset));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Literal(text) => f.write_str(text),
            Segment::Wildcard => f.write_str("*"),
            Segment::DoubleWildcard => f.write_str("**"),
        }
    }
}

impl fmt::Display for PathTemplate {
    /// The canonical form: `{x=*}` is written `{x}`, everything else as parsed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            f.write_str("/")?;
        }
        let mut index = 0;
        while let Some(segment) = self.segments.get(index) {
            f.write_str("/")?;
            let variable = self.variables.iter().find(|v| v.start_segment == index && v.end_segment > index);
            match variable {
                Some(variable) => {
                    write!(f, "{{{}", variable.field_path.join("."))?;
                    let pattern = self.segments.get(variable.start_segment..variable.end_segment).unwrap_or_default();
                    if pattern != [Segment::Wildcard] {
                        f.write_str("=")?;
                        for (i, part) in pattern.iter().enumerate() {
                            if i > 0 {
                                f.write_str("/")?;
                            }
                            write!(f, "{part}")?;
                        }
                    }
                    f.write_str("}")?;
                    index = variable.end_segment;
                }
                None => {
                    write!(f, "{segment}")?;
                    index += 1;
                }
            }
        }
        if let Some(verb) = &self.verb {
            write!(f, ":{verb}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Segment::{DoubleWildcard as DW, Wildcard as W};

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.to_string())
    }

    fn var(path: &str, start: usize, end: usize) -> Variable {
        Variable { field_path: path.split('.').map(str::to_string).collect(), start_segment: start, end_segment: end }
    }

    fn parse(t: &str) -> PathTemplate {
        match PathTemplate::parse(t) {
            Ok(p) => p,
            Err(e) => panic!("{t:?} should parse: {e}"),
        }
    }

    fn error(t: &str) -> TemplateError {
        match PathTemplate::parse(t) {
            Ok(p) => panic!("{t:?} should be rejected, got {p:?}"),
            Err(e) => e,
        }
    }

    fn check(t: &str, segments: Vec<Segment>, verb: Option<&str>, variables: Vec<Variable>) {
        let p = parse(t);
        assert_eq!(p.segments, segments, "segments of {t:?}");
        assert_eq!(p.verb.as_deref(), verb, "verb of {t:?}");
        assert_eq!(p.variables, variables, "variables of {t:?}");
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn literals_and_wildcards() {
        check("/", vec![], None, vec![]);
        check("/shelves", vec![lit("shelves")], None, vec![]);
        check("/shelves/**", vec![lit("shelves"), DW], None, vec![]);
        check("/**", vec![DW], None, vec![]);
        check("/*/**", vec![W, DW], None, vec![]);
        check("/*/a/**", vec![W, lit("a"), DW], None, vec![]);
        check(
            "/bookstore.v1.Bookstore/Unannotated",
            vec![lit("bookstore.v1.Bookstore"), lit("Unannotated")],
            None,
            vec![],
        );
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn variables() {
        check(
            "/shelves/{shelf}/books/{book}",
            vec![lit("shelves"), W, lit("books"), W],
            None,
            vec![var("shelf", 1, 2), var("book", 3, 4)],
        );
        check("/a/{a.b.c}", vec![lit("a"), W], None, vec![var("a.b.c", 1, 2)]);
        check("/a/{a.b.c=*}", vec![lit("a"), W], None, vec![var("a.b.c", 1, 2)]);
        check("/a/{b=**}", vec![lit("a"), DW], None, vec![var("b", 1, 2)]);
        check("/a/{b=c/*}", vec![lit("a"), lit("c"), W], None, vec![var("b", 1, 3)]);
        check("/a/{b=c/*/d}", vec![lit("a"), lit("c"), W, lit("d")], None, vec![var("b", 1, 4)]);
        check("/a/{b=c/**}", vec![lit("a"), lit("c"), DW], None, vec![var("b", 1, 3)]);
        check("/a/{b=c/**}/d/e", vec![lit("a"), lit("c"), DW, lit("d"), lit("e")], None, vec![var("b", 1, 3)]);
        check("/{x.y.z=*/a/b}/c", vec![W, lit("a"), lit("b"), lit("c")], None, vec![var("x.y.z", 0, 3)]);
        check("/{x=a/**/b}", vec![lit("a"), DW, lit("b")], None, vec![var("x", 0, 3)]);
        check("/v1/{name=a}", vec![lit("v1"), lit("a")], None, vec![var("name", 1, 2)]);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn brief_examples() {
        check(
            "/v1/{name=shelves/*/books/*}:archive",
            vec![lit("v1"), lit("shelves"), W, lit("books"), W],
            Some("archive"),
            vec![var("name", 1, 5)],
        );
        check(
            "/v1/{book.name=shelves/*/books/*}",
            vec![lit("v1"), lit("shelves"), W, lit("books"), W],
            None,
            vec![var("book.name", 1, 5)],
        );
        check("/v1/archive/{name=**}", vec![lit("v1"), lit("archive"), DW], None, vec![var("name", 2, 3)]);
        check(
            "/v1/types/{string_value}/{nested.name}",
            vec![lit("v1"), lit("types"), W, W],
            None,
            vec![var("string_value", 2, 3), var("nested.name", 3, 4)],
        );
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn verbs() {
        check("/a:foo", vec![lit("a")], Some("foo"), vec![]);
        check("/a/b/c:foo", vec![lit("a"), lit("b"), lit("c")], Some("foo"), vec![]);
        check("/*:verb", vec![W], Some("verb"), vec![]);
        check("/**:verb", vec![DW], Some("verb"), vec![]);
        check("/{a}:verb", vec![W], Some("verb"), vec![var("a", 0, 1)]);
        check("/a/{b=*}/**:verb", vec![lit("a"), W, DW], Some("verb"), vec![var("b", 1, 2)]);
        check("/{x=**}:myverb", vec![DW], Some("myverb"), vec![var("x", 0, 1)]);
        check(
            "/{x.y.z=a/**/b}/c/d:custom",
            vec![lit("a"), DW, lit("b"), lit("c"), lit("d")],
            Some("custom"),
            vec![var("x.y.z", 0, 3)],
        );
        check("/{x.y.z=*/*}:verb", vec![W, W], Some("verb"), vec![var("x.y.z", 0, 2)]);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn library_literal_and_identifier_rules() {
        // Envoy's parser takes any text up to '/', ':' or '}' as a literal.
        check("/a=b/c.d/e{f/g*h", vec![lit("a=b"), lit("c.d"), lit("e{f"), lit("g*h")], None, vec![]);
        check("/v1/caf\u{e9}/%41", vec![lit("v1"), lit("caf\u{e9}"), lit("%41")], None, vec![]);
        // ... and any text up to '.', '=' or '}' as a field name; the message check comes later.
        check("/{a-b}", vec![W], None, vec![var("a-b", 0, 1)]);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn literals_may_follow_double_wildcard() {
        check("/a/**/b", vec![lit("a"), DW, lit("b")], None, vec![]);
        check("/{x=**}/a/b", vec![DW, lit("a"), lit("b")], None, vec![var("x", 0, 1)]);
        check("/**/{x=lit}", vec![DW, lit("lit")], None, vec![var("x", 1, 2)]);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn rejected_by_envoy_too() {
        for t in [
            "",
            "//",
            "/{}",
            "/a/",
            "/a//b",
            ":verb",
            "/:verb",
            "/a/:verb",
            ":",
            "/:",
            "/*:",
            "/**:",
            "/{var}:",
            "/a/b/:",
            "/a/b/*:",
            "/a/b/**:",
            "/a/b/{var}:",
            "/a/{",
            "/a/{var",
            "/a/{var.",
            "/a/{x=var:verb}",
            "a",
            "{x}",
            "{x=/a}",
            "{x=/a/b}",
            "a/b",
            "a/b/{x}",
            "a/{x}/b",
            "a/{x}/b:verb",
            "/a/{var=/b}",
            "/{var=a/{nested=b}}",
            "/a{x}",
            "/{x}a",
            "/a{x}b",
            "/{x}a{y}",
            "/a/b{x}",
            "/a/{x}b",
            "/a/b{x}c",
            "/a/{x}b{y}",
            "/a/b{x}/s",
            "/a/{x}b/s",
            "/a/b{x}c/s",
            "/a/{x}b{y}/s",
            "/a/**/*",
            "/a/**/foo/*",
            "/a/**/**",
            "/a/**/foo/**",
            "/a{x=b/**}/{y=*}",
            "/a/{x=b/**}/{y=*}",
            "/a/{x=b/**}/bb/{y=**}",
            "/a/{b=*}/**:",
            "/a:b:c",
            "/a:b/c",
            "/***",
            "/*a",
            "/}",
            "/a}",
            "/{a=}",
            "/{a.}",
            "/{.a}",
            "/{a..b}",
            "/{a=b}}",
            "/{a}}",
        ] {
            let _ = error(t);
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn error_messages_say_what_and_where() {
        assert_eq!(
            error("/v1/{a}}").to_string(),
            "unexpected '}' at 7 in \"/v1/{a}}\"; expected '/', ':' or the end of the template"
        );
        assert_eq!(
            error("").to_string(),
            "empty template at 0 in \"\"; a template starts with '/', e.g. \"/v1/{name}\""
        );
        let e = error("v1/a");
        assert_eq!((e.kind, e.offset), (TemplateErrorKind::MissingLeadingSlash, 0));
        let e = error("/v1//a");
        assert_eq!((e.kind, e.offset), (TemplateErrorKind::EmptySegment, 4));
        let e = error("/v1/");
        assert_eq!((e.kind, e.offset), (TemplateErrorKind::EmptySegment, 4));
        let e = error("/v1/{name");
        assert_eq!((e.kind, e.offset), (TemplateErrorKind::UnexpectedEnd { expected: "'.', '=' or '}'" }, 9));
        let e = error("/v1/{name=a/b");
        assert_eq!(
            (e.kind, e.offset),
            (TemplateErrorKind::UnexpectedEnd { expected: "'/' or '}' to close the variable" }, 13)
        );
        let e = error("/v1/{name=a/{id}}");
        assert_eq!((e.kind, e.offset), (TemplateErrorKind::NestedVariable, 12));
        let e = error("/v1/{}");
        assert_eq!((e.kind, e.offset), (TemplateErrorKind::EmptyFieldName, 5));
        let e = error("/v1/{a..b}");
        assert_eq!((e.kind, e.offset), (TemplateErrorKind::EmptyFieldName, 7));
        let e = error("/v1/x:");
        assert_eq!((e.kind, e.offset), (TemplateErrorKind::EmptyVerb, 6));
        let e = error("/v1/x:a:b");
        assert_eq!(
            (e.kind, e.offset),
            (TemplateErrorKind::Unexpected { found: ':', expected: "the end of the template after the verb" }, 7)
        );
        let e = error("/v1/**/{id}");
        assert_eq!((e.kind.clone(), e.offset), (TemplateErrorKind::WildcardAfterDoubleWildcard, 7));
        assert!(e.to_string().contains("only literal segments"), "{e}");
        let e = error("/v1/{a.b}/x/{a.b=**}");
        assert_eq!((e.kind.clone(), e.offset), (TemplateErrorKind::DuplicateVariable("a.b".into()), 12));
        assert_eq!(
            e.to_string(),
            "field path \"a.b\" is bound a second time at 12 in \"/v1/{a.b}/x/{a.b=**}\"; \
             each field may appear in one variable only"
        );
        // A multi-byte character is reported whole.
        let e = error("/v1/*\u{e9}");
        assert_eq!(
            (e.kind, e.offset),
            (TemplateErrorKind::Unexpected { found: '\u{e9}', expected: "'/', ':' or the end of the template" }, 5)
        );
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn distinct_field_paths_with_common_prefix_are_fine() {
        check("/{a}/{a.b}", vec![W, W], None, vec![var("a", 0, 1), var("a.b", 1, 2)]);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn display_is_canonical_and_round_trips() {
        for (input, canonical) in [
            ("/", "/"),
            ("/v1/{name=shelves/*/books/*}:archive", "/v1/{name=shelves/*/books/*}:archive"),
            ("/v1/{name=*}", "/v1/{name}"),
            ("/v1/{book.name}", "/v1/{book.name}"),
            ("/v1/archive/{name=**}", "/v1/archive/{name=**}"),
            ("/{x=a/**/b}/c:do", "/{x=a/**/b}/c:do"),
            ("/a/*/**", "/a/*/**"),
            ("/v1/{name=a}", "/v1/{name=a}"),
            ("/bookstore.v1.Bookstore/Unannotated", "/bookstore.v1.Bookstore/Unannotated"),
        ] {
            let parsed = parse(input);
            assert_eq!(parsed.to_string(), canonical);
            assert_eq!(parse(canonical), parsed, "round trip of {input:?}");
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn multi_segment_classification() {
        let p = parse("/v1/{a}/{b=x}/{c=x/*}/{d=**}");
        let multi: Vec<bool> = p.variables.iter().map(|v| p.is_multi_segment(v)).collect();
        assert_eq!(multi, [false, false, true, true]);
        assert_eq!(p.double_wildcard_index(), Some(5));
        assert_eq!(parse("/a").double_wildcard_index(), None);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn hand_built_nonsense_does_not_panic() {
        let t = PathTemplate {
            segments: vec![W],
            verb: Some(String::new()),
            variables: vec![var("a", 3, 9), var("b", 1, 0)],
        };
        let _ = t.to_string();
        for v in &t.variables {
            let _ = t.is_multi_segment(v);
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn pseudo_random_templates_never_panic() {
        let pieces = [
            "/", "/", "/", "{", "}", "*", "**", ":", "=", ".", "a", "bc", "x.y", "é", "你", "%2F", "{a}", "{b=*}",
            "{c=**}", "verb", "",
        ];
        let mut next = crate::test_rng::xorshift(0x2545_F491_4F6C_DD1D);
        let mut parsed = 0;
        for _ in 0..4000 {
            let count = (next() % 10) as usize;
            let mut t = String::new();
            if next() % 4 != 0 {
                t.push('/');
            }
            for _ in 0..count {
                t.push_str(pieces.get((next() % pieces.len() as u64) as usize).copied().unwrap_or(""));
            }
            if let Ok(p) = PathTemplate::parse(&t) {
                parsed += 1;
                // Whatever parses prints to something that parses back to the same thing.
                let printed = p.to_string();
                assert_eq!(PathTemplate::parse(&printed).as_ref(), Ok(&p), "{t:?} printed as {printed:?}");
            }
        }
        assert!(parsed > 100, "the generator should produce valid templates too ({parsed})");
    }
}
