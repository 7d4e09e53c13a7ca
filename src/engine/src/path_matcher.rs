//! Route lookup: which registered `(HTTP method, path template)` a request
//! path matches, and the decoded values of the template's variables.
//!
//! The matching rules are those of Envoy's library (grpc-httpjson-transcoding,
//! `path_matcher.h` and `path_matcher_node.cc`), so the same request reaches the
//! same method as with Envoy's native filter:
//! - per segment, a literal child is tried first, then `*`, then `**`, with
//!   backtracking when a branch dead-ends;
//! - `**` takes one or more segments, and zero only when it ends the template;
//! - trailing empty segments are dropped (`/a/` is `/a`), inner ones are kept;
//! - `/path:verb` splits off `verb` only if the last `:` is after the last `/`
//!   and some template has that verb (or `match_unregistered_custom_verb`);
//!   otherwise the `:verb` stays part of the last segment.
//!
//! Each HTTP method has its own trie, so a lookup only walks templates of its
//! method; the walk uses an explicit stack, so a path of tens of thousands of
//! segments cannot overflow the (small) Wasm stack.

use std::collections::{BTreeMap, BTreeSet};

use crate::path_template::{PathTemplate, Segment, Variable};
use crate::percent::{decode_path_variable, InvalidUtf8, UrlUnescapeSpec};

/// The HTTP method under which a route matches requests of any method, as in Envoy's library.
const ANY_METHOD: &str = "*";

/// The lookup settings of Envoy's `GrpcJsonTranscoder` config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchOptions {
    /// How multi-segment path variables are percent-decoded (`url_unescape_spec`).
    pub url_unescape_spec: UrlUnescapeSpec,
    /// Split `:verb` off the last segment even when no template has that verb.
    pub match_unregistered_custom_verb: bool,
}

/// A second route with the same method, verb and path shape as an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{http_method} {template} has the same method and path pattern as {http_method} {existing}, registered \
     before it (variable names do not make routes different); remove one of them or change its path"
)]
pub struct DuplicateRoute {
    /// The HTTP method of both routes.
    pub http_method: String,
    /// The refused template, in canonical form.
    pub template: String,
    /// The template already registered, in canonical form.
    pub existing: String,
}

/// A route found for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMatch<'a, T> {
    /// The value registered with the route.
    pub value: &'a T,
    /// The template's variables with their values, in template order.
    pub bindings: Vec<Binding<'a>>,
}

/// The value a path variable took in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The field the variable sets, e.g. `["book", "name"]`.
    pub field_path: &'a [String],
    /// The matched segments joined with `/`, percent-decoded as Envoy does.
    pub value: String,
    /// Set when the decoded bytes are not UTF-8; `value` then keeps the offending
    /// escapes as written. Its message suits a 400 answer (Envoy would send the bytes on).
    pub invalid_utf8: Option<InvalidUtf8>,
}

/// Templates to values, looked up by HTTP method and request path.
#[derive(Debug, Clone)]
pub struct PathMatcher<T> {
    options: MatchOptions,
    /// Trie root per HTTP method.
    roots: BTreeMap<String, usize>,
    /// Trie nodes of all methods; children refer to them by index.
    nodes: Vec<Node>,
    routes: Vec<Route<T>>,
    /// Every verb some template has: only these are split off request paths by default.
    custom_verbs: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    literals: BTreeMap<String, usize>,
    wildcard: Option<usize>,
    double_wildcard: Option<usize>,
    /// Reached through `**`: it may swallow further segments itself.
    is_double_wildcard: bool,
    /// Routes ending here, by verb (`""` for none).
    routes: BTreeMap<String, usize>,
}

#[derive(Debug, Clone)]
struct Route<T> {
    value: T,
    /// Canonical template, for duplicate messages.
    template: String,
    variables: Vec<Variable>,
    multi_segment: Vec<bool>,
    segment_count: usize,
    double_wildcard: Option<usize>,
}

impl<T> PathMatcher<T> {
    /// An empty matcher.
    pub fn new(options: MatchOptions) -> Self {
        PathMatcher {
            options,
            roots: BTreeMap::new(),
            nodes: Vec::new(),
            routes: Vec::new(),
            custom_verbs: BTreeSet::new(),
        }
    }

    /// Registers `template` for `http_method` (`GET`, `POST`, any custom method, or `*` for all).
    ///
    /// Err when the same HTTP method + (structurally same) template is already registered;
    /// the first registration stays. (Envoy accepts such duplicates silently and then
    /// matches neither, which is never what was meant.)
    pub fn insert(&mut self, http_method: &str, template: &PathTemplate, value: T) -> Result<(), DuplicateRoute> {
        let mut node = match self.roots.get(http_method) {
            Some(&root) => root,
            None => {
                let root = self.push_node(false);
                self.roots.insert(http_method.to_string(), root);
                root
            }
        };
        for segment in &template.segments {
            node = self.child(node, segment);
        }
        let verb = template.verb.clone().unwrap_or_default();
        if let Some(&existing) = self.nodes.get(node).and_then(|n| n.routes.get(&verb)) {
            return Err(DuplicateRoute {
                http_method: http_method.to_string(),
                template: template.to_string(),
                existing: self.routes.get(existing).map(|r| r.template.clone()).unwrap_or_default(),
            });
        }
        let index = self.routes.len();
        self.routes.push(Route {
            value,
            template: template.to_string(),
            multi_segment: template.variables.iter().map(|v| template.is_multi_segment(v)).collect(),
            variables: template.variables.clone(),
            segment_count: template.segments.len(),
            double_wildcard: template.double_wildcard_index(),
        });
        if let Some(n) = self.nodes.get_mut(node) {
            n.routes.insert(verb.clone(), index);
        }
        if !verb.is_empty() {
            self.custom_verbs.insert(verb);
        }
        Ok(())
    }

    /// Finds the route for a request, with its variable values.
    ///
    /// `path` is the raw request path WITHOUT the query string (the caller strips
    /// `?...` and `#...`; a `?` is still cut off here, as Envoy's library does).
    /// A path that does not start with `/` matches nothing.
    pub fn lookup(&self, http_method: &str, path: &str) -> Option<PathMatch<'_, T>> {
        let path = match path.find('?') {
            Some(end) => path.get(..end)?,
            None => path,
        };
        let rest = path.strip_prefix('/')?;
        let (rest, verb) = self.split_verb(rest);
        let mut parts: Vec<&str> = rest.split('/').collect();
        while parts.last() == Some(&"") {
            parts.pop();
        }
        let found = self.roots.get(http_method).and_then(|&root| self.search(root, &parts, verb));
        let found = found.or_else(|| {
            // Envoy's library falls back to routes registered for method "*".
            if http_method == ANY_METHOD {
                return None;
            }
            self.roots.get(ANY_METHOD).and_then(|&root| self.search(root, &parts, verb))
        })?;
        let route = self.routes.get(found)?;
        let bindings = route.bind(&parts, self.options.url_unescape_spec)?;
        Some(PathMatch { value: &route.value, bindings })
    }

    fn push_node(&mut self, is_double_wildcard: bool) -> usize {
        self.nodes.push(Node { is_double_wildcard, ..Node::default() });
        self.nodes.len() - 1
    }

    /// The child of `parent` for `segment`, created if needed.
    fn child(&mut self, parent: usize, segment: &Segment) -> usize {
        let existing = self.nodes.get(parent).and_then(|p| match segment {
            Segment::Literal(text) => p.literals.get(text).copied(),
            Segment::Wildcard => p.wildcard,
            Segment::DoubleWildcard => p.double_wildcard,
        });
        if let Some(child) = existing {
            return child;
        }
        let child = self.push_node(*segment == Segment::DoubleWildcard);
        if let Some(p) = self.nodes.get_mut(parent) {
            match segment {
                Segment::Literal(text) => {
                    p.literals.insert(text.clone(), child);
                }
                Segment::Wildcard => p.wildcard = Some(child),
                Segment::DoubleWildcard => p.double_wildcard = Some(child),
            }
        }
        child
    }

    /// Splits `rest:verb` when Envoy would: the last `:` follows the last `/`, and the verb is known
    /// (or any verb is accepted).
    fn split_verb<'p>(&self, rest: &'p str) -> (&'p str, &'p str) {
        if let Some(colon) = rest.rfind(':') {
            let in_last_segment = rest.rfind('/').is_none_or(|slash| colon > slash);
            if in_last_segment {
                let verb = rest.get(colon + 1..).unwrap_or_default();
                if self.options.match_unregistered_custom_verb || self.custom_verbs.contains(verb) {
                    return (rest.get(..colon).unwrap_or(rest), verb);
                }
            }
        }
        (rest, "")
    }

    /// Depth-first search in Envoy's precedence order; returns a route index.
    ///
    /// Every state is a trie node and a position in `parts`; alternatives are
    /// pushed in reverse preference so the preferred one is popped first.
    fn search(&self, root: usize, parts: &[&str], verb: &str) -> Option<usize> {
        let mut pending = vec![(root, 0usize)];
        while let Some((index, position)) = pending.pop() {
            let Some(node) = self.nodes.get(index) else {
                continue;
            };
            let Some(part) = parts.get(position) else {
                if let Some(&route) = node.routes.get(verb) {
                    return Some(route);
                }
                // `**` may match nothing when it ends the template: `/a/**` matches `/a`.
                let empty_tail = node
                    .double_wildcard
                    .and_then(|child| self.nodes.get(child))
                    .and_then(|child| child.routes.get(verb));
                if let Some(&route) = empty_tail {
                    return Some(route);
                }
                continue;
            };
            let next = position + 1;
            if node.is_double_wildcard {
                // Only literals follow `**`, so the alternative is `**` taking this segment too.
                pending.push((index, next));
            } else {
                if let Some(child) = node.double_wildcard {
                    pending.push((child, next));
                }
                if let Some(child) = node.wildcard {
                    pending.push((child, next));
                }
            }
            if let Some(&child) = node.literals.get(*part) {
                pending.push((child, next));
            }
        }
        None
    }
}

impl<T> Route<T> {
    /// The variables' values for a path this route matched; None only for a hand-built,
    /// inconsistent template (never from [`PathTemplate::parse`]).
    fn bind(&self, parts: &[&str], spec: UrlUnescapeSpec) -> Option<Vec<Binding<'_>>> {
        let path_len = parts.len();
        // Segments up to `**` sit at the same index in the path; those after it
        // are counted from the end of the path, since `**` took the difference.
        let to_path_index = |template_index: usize| -> Option<usize> {
            match self.double_wildcard {
                Some(dw) if template_index > dw => {
                    path_len.checked_sub(self.segment_count.checked_sub(template_index)?)
                }
                _ => Some(template_index),
            }
        };
        self.variables
            .iter()
            .zip(&self.multi_segment)
            .map(|(variable, &multi_segment)| {
                let start = to_path_index(variable.start_segment)?;
                let end = to_path_index(variable.end_segment)?;
                let raw = parts.get(start..end)?.join("/");
                let (value, invalid_utf8) = match decode_path_variable(&raw, multi_segment, spec) {
                    Ok(value) => (value, None),
                    Err(e) => (e.lossless.clone(), Some(e)),
                };
                Some(Binding { field_path: &variable.field_path, value, invalid_utf8 })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(t: &str) -> PathTemplate {
        match PathTemplate::parse(t) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn matcher_with(options: MatchOptions, routes: &[(&str, &str)]) -> PathMatcher<usize> {
        let mut m = PathMatcher::new(options);
        for (i, (method, t)) in routes.iter().enumerate() {
            if let Err(e) = m.insert(method, &template(t), i) {
                panic!("{e}");
            }
        }
        m
    }

    fn matcher(routes: &[(&str, &str)]) -> PathMatcher<usize> {
        matcher_with(MatchOptions::default(), routes)
    }

    /// The index of the matched route and its bindings as `field.path=value`.
    fn find(m: &PathMatcher<usize>, method: &str, path: &str) -> Option<(usize, Vec<String>)> {
        m.lookup(method, path).map(|found| {
            let bindings = found.bindings.iter().map(|b| format!("{}={}", b.field_path.join("."), b.value)).collect();
            (*found.value, bindings)
        })
    }

    fn route(m: &PathMatcher<usize>, method: &str, path: &str) -> Option<usize> {
        find(m, method, path).map(|(index, _)| index)
    }

    fn bindings(m: &PathMatcher<usize>, method: &str, path: &str) -> Vec<String> {
        match find(m, method, path) {
            Some((_, b)) => b,
            None => panic!("{method} {path} should match"),
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn brief_templates() {
        let m = matcher(&[
            ("POST", "/v1/{name=shelves/*/books/*}:archive"),
            ("GET", "/v1/{book.name=shelves/*/books/*}"),
            ("GET", "/v1/archive/{name=**}"),
            ("GET", "/v1/types/{string_value}/{nested.name}"),
            ("POST", "/bookstore.v1.Bookstore/Unannotated"),
        ]);
        assert_eq!(find(&m, "POST", "/v1/shelves/1/books/2:archive"), Some((0, vec!["name=shelves/1/books/2".into()])));
        assert_eq!(find(&m, "GET", "/v1/shelves/1/books/2"), Some((1, vec!["book.name=shelves/1/books/2".into()])));
        assert_eq!(find(&m, "GET", "/v1/archive/a/b/c"), Some((2, vec!["name=a/b/c".into()])));
        assert_eq!(find(&m, "GET", "/v1/archive"), Some((2, vec!["name=".into()])));
        assert_eq!(
            find(&m, "GET", "/v1/types/hello/world"),
            Some((3, vec!["string_value=hello".into(), "nested.name=world".into()]))
        );
        assert_eq!(find(&m, "POST", "/bookstore.v1.Bookstore/Unannotated"), Some((4, vec![])));
        // Must fail: wrong method, wrong verb, too short, too long.
        assert_eq!(route(&m, "GET", "/v1/shelves/1/books/2:archive"), None);
        assert_eq!(route(&m, "POST", "/v1/shelves/1/books/2"), None);
        assert_eq!(route(&m, "POST", "/v1/shelves/1/books:archive"), None);
        assert_eq!(route(&m, "GET", "/v1/types/hello"), None);
        assert_eq!(route(&m, "GET", "/v1/types/a/b/c"), None);
        assert_eq!(route(&m, "POST", "/bookstore.v1.Bookstore/Unannotated/x"), None);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn wildcards_and_precedence() {
        let m = matcher(&[
            ("GET", "/a/**"),
            ("GET", "/b/*"),
            ("GET", "/c/*/d/**"),
            ("GET", "/c/*/d/e"),
            ("GET", "/c/f/d/e"),
            ("GET", "/"),
        ]);
        assert_eq!(route(&m, "GET", "/a/b"), Some(0));
        assert_eq!(route(&m, "GET", "/a/b/c"), Some(0));
        assert_eq!(route(&m, "GET", "/b/c"), Some(1));
        assert_eq!(route(&m, "GET", "b/c/d"), None);
        assert_eq!(route(&m, "GET", "/c/u/d/v"), Some(2));
        assert_eq!(route(&m, "GET", "/c/v/d/w/x"), Some(2));
        assert_eq!(route(&m, "GET", "/c/x/y/d/z"), None);
        assert_eq!(route(&m, "GET", "/c//v/d/w/x"), None);
        // Literal beats `**`, and literal beats `*`.
        assert_eq!(route(&m, "GET", "/c/x/d/e"), Some(3));
        assert_eq!(route(&m, "GET", "/c/f/d/e"), Some(4));
        assert_eq!(route(&m, "GET", "/"), Some(5));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn literal_then_wildcard_then_double_wildcard_with_backtracking() {
        let m = matcher(&[
            ("GET", "/v1/shelves/special/books"),
            ("GET", "/v1/shelves/{shelf}"),
            ("GET", "/v1/shelves/{shelf}/books"),
            ("GET", "/v1/{rest=**}"),
        ]);
        assert_eq!(route(&m, "GET", "/v1/shelves/special/books"), Some(0));
        assert_eq!(find(&m, "GET", "/v1/shelves/special"), Some((1, vec!["shelf=special".into()])));
        assert_eq!(find(&m, "GET", "/v1/shelves/7/books"), Some((2, vec!["shelf=7".into()])));
        // The literal branch `special` dead-ends on `authors`, `*` too; `**` takes it.
        assert_eq!(
            find(&m, "GET", "/v1/shelves/special/authors"),
            Some((3, vec!["rest=shelves/special/authors".into()]))
        );
        assert_eq!(find(&m, "GET", "/v1/x"), Some((3, vec!["rest=x".into()])));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn double_wildcard_matches_zero_or_more() {
        let m = matcher(&[("GET", "/**")]);
        assert_eq!(route(&m, "GET", "/"), Some(0));
        assert_eq!(route(&m, "GET", "/a"), Some(0));
        assert_eq!(route(&m, "GET", "/a/"), Some(0));
        assert_eq!(route(&m, "GET", "/a/b/c/d/e"), Some(0));

        let m = matcher(&[("GET", "/files/{path=**}")]);
        assert_eq!(bindings(&m, "GET", "/files"), ["path="]);
        assert_eq!(bindings(&m, "GET", "/files/"), ["path="]);
        assert_eq!(bindings(&m, "GET", "/files/a"), ["path=a"]);
        assert_eq!(bindings(&m, "GET", "/files/a/b/c.txt"), ["path=a/b/c.txt"]);

        // In the middle, `**` needs at least one segment, as in Envoy.
        let m = matcher(&[("GET", "/a/**/b")]);
        assert_eq!(route(&m, "GET", "/a/b"), None);
        assert_eq!(route(&m, "GET", "/a/x/b"), Some(0));
        assert_eq!(route(&m, "GET", "/a/x/b/y/b"), Some(0));
        assert_eq!(route(&m, "GET", "/a/x/b/y"), None);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn variable_bindings() {
        let m = matcher(&[
            ("GET", "/a/{x}/c/d/e"),
            ("GET", "/{x=a/*}/b/{y=*}/c"),
            ("GET", "/a/{x=b/*}/{y=d/**}"),
            ("GET", "/alpha/{x=*}/beta/{y=**}/gamma"),
            ("GET", "/{x=*}/a"),
            ("GET", "/{x=**}/a/b"),
            ("GET", "/a/b/{x=*}"),
            ("GET", "/a/b/c/{x=**}"),
            ("GET", "/{x=*}/d/e/f/{y=**}"),
        ]);
        assert_eq!(find(&m, "GET", "/a/book/c/d/e"), Some((0, vec!["x=book".into()])));
        assert_eq!(bindings(&m, "GET", "/a/hello/b/world/c"), ["x=a/hello", "y=world"]);
        assert_eq!(bindings(&m, "GET", "/a/b/zoo/d/animal/tiger"), ["x=b/zoo", "y=d/animal/tiger"]);
        assert_eq!(bindings(&m, "GET", "/alpha/dog/beta/eat/bones/gamma"), ["x=dog", "y=eat/bones"]);
        assert_eq!(bindings(&m, "GET", "/foo/a"), ["x=foo"]);
        assert_eq!(bindings(&m, "GET", "/foo/bar/a/b"), ["x=foo/bar"]);
        assert_eq!(bindings(&m, "GET", "/a/b/foo"), ["x=foo"]);
        assert_eq!(bindings(&m, "GET", "/a/b/c/foo/bar/baz"), ["x=foo/bar/baz"]);
        assert_eq!(bindings(&m, "GET", "/foo/d/e/f/bar/baz"), ["x=foo", "y=bar/baz"]);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn literal_suffixes_after_double_wildcard() {
        let m = matcher(&[
            ("GET", "/a/{x=b/**}"),
            ("GET", "/a/{x=b/**}/z"),
            ("GET", "/a/{x=b/**}/y/z"),
            ("GET", "/a/{x=b/**}:verb"),
            ("GET", "/a/{x=**}"),
            ("GET", "/c/{x=*}/{y=d/**}/e"),
            ("GET", "/c/{x=*}/{y=d/**}/e:verb"),
            ("GET", "/f/{x=*}/{y=**}/g"),
            ("GET", "/f/{x=*}/{y=**}/g:verb"),
            ("GET", "/a/{x=b/*/y/z/**}/foo"),
            ("GET", "/a/{x=b/*/**/y/z}/foo"),
            ("GET", "/m/**/{x=lit}/n"),
        ]);
        assert_eq!(find(&m, "GET", "/a/b/hello/world/c"), Some((0, vec!["x=b/hello/world/c".into()])));
        assert_eq!(find(&m, "GET", "/a/b/world/c/z"), Some((1, vec!["x=b/world/c".into()])));
        assert_eq!(find(&m, "GET", "/a/b/world/c/y/z"), Some((2, vec!["x=b/world/c".into()])));
        assert_eq!(find(&m, "GET", "/a/b/world/c:verb"), Some((3, vec!["x=b/world/c".into()])));
        assert_eq!(find(&m, "GET", "/a/hello/b/world/c"), Some((4, vec!["x=hello/b/world/c".into()])));
        assert_eq!(
            find(&m, "GET", "/c/hello/d/esp/world/e"),
            Some((5, vec!["x=hello".into(), "y=d/esp/world".into()]))
        );
        assert_eq!(
            find(&m, "GET", "/c/hola/d/esp/mundo/e:verb"),
            Some((6, vec!["x=hola".into(), "y=d/esp/mundo".into()]))
        );
        assert_eq!(find(&m, "GET", "/f/foo/bar/baz/g"), Some((7, vec!["x=foo".into(), "y=bar/baz".into()])));
        assert_eq!(find(&m, "GET", "/f/foo/bar/baz/g:verb"), Some((8, vec!["x=foo".into(), "y=bar/baz".into()])));
        assert_eq!(find(&m, "GET", "/a/b/foo/y/z/bar/baz/foo"), Some((9, vec!["x=b/foo/y/z/bar/baz".into()])));
        assert_eq!(find(&m, "GET", "/a/b/foo/bar/baz/y/z/foo"), Some((10, vec!["x=b/foo/bar/baz/y/z".into()])));
        // A literal-only variable after `**` binds the segment it really matched.
        assert_eq!(find(&m, "GET", "/m/1/2/lit/n"), Some((11, vec!["x=lit".into()])));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn registered_verbs() {
        let m = matcher(&[("GET", "/person"), ("GET", "/person/{id=*}"), ("GET", "/{x=**}:verb")]);
        assert_eq!(find(&m, "GET", "/person:verb"), Some((2, vec!["x=person".into()])));
        assert_eq!(find(&m, "GET", "/person/jason:verb"), Some((2, vec!["x=person/jason".into()])));
        assert_eq!(find(&m, "GET", "/animal/cat:verb"), Some((2, vec!["x=animal/cat".into()])));
        assert_eq!(route(&m, "GET", "/person"), Some(0));
        assert_eq!(route(&m, "GET", "/person/jason"), Some(1));
        assert_eq!(route(&m, "GET", "/animal"), None);
        // An unregistered verb stays part of the segment.
        assert_eq!(route(&m, "GET", "/person:other"), None);
        assert_eq!(find(&m, "GET", "/person/jason:other"), Some((1, vec!["id=jason:other".into()])));
        assert_eq!(route(&m, "GET", "/animal:other"), None);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn unregistered_verbs_when_option_is_set() {
        let options = MatchOptions { match_unregistered_custom_verb: true, ..MatchOptions::default() };
        let m = matcher_with(
            options,
            &[
                ("GET", "/person/{id=*}"),
                ("GET", "/person/**"),
                ("GET", "/person/{id=*}/name"),
                ("GET", "/{x=**}:verb"),
            ],
        );
        assert_eq!(find(&m, "GET", "/person:verb"), Some((3, vec!["x=person".into()])));
        assert_eq!(find(&m, "GET", "/person/jason:verb"), Some((3, vec!["x=person/jason".into()])));
        assert_eq!(route(&m, "GET", "/person/jason/name"), Some(2));
        // A colon before the last '/' is never a verb.
        assert_eq!(find(&m, "GET", "/person/jason:verb/name"), Some((2, vec!["id=jason:verb".into()])));
        // Any verb is split off now, so templates without it do not match.
        assert_eq!(route(&m, "GET", "/person:other"), None);
        assert_eq!(route(&m, "GET", "/person/jason:other"), None);
        assert_eq!(route(&m, "GET", "/animal/cat:other"), None);

        // Without the option, the same unregistered verb is part of the value.
        let m = matcher(&[("GET", "/foo/{a=*}")]);
        assert_eq!(find(&m, "GET", "/foo/other:verb"), Some((0, vec!["a=other:verb".into()])));
        let m = matcher_with(options, &[("GET", "/foo/{a=*}")]);
        assert_eq!(route(&m, "GET", "/foo/other:verb"), None);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn verb_corner_cases() {
        let m = matcher(&[
            ("GET", "/some/const:verb"),
            ("GET", "/some/*:verb"),
            ("GET", "/some/*/foo:verb"),
            ("GET", "/other/**:verb"),
            ("GET", "/other/**/const:verb"),
        ]);
        assert_eq!(route(&m, "GET", "/some/const:verb"), Some(0));
        assert_eq!(route(&m, "GET", "/some/other:verb"), Some(1));
        assert_eq!(route(&m, "GET", "/some/other:verb/"), None);
        assert_eq!(route(&m, "GET", "/some/bar/foo:verb"), Some(2));
        assert_eq!(route(&m, "GET", "/some/foo1/foo2/foo:verb"), None);
        assert_eq!(route(&m, "GET", "/some/foo/bar:verb"), None);
        assert_eq!(route(&m, "GET", "/other/bar/foo:verb"), Some(3));
        assert_eq!(route(&m, "GET", "/other/bar/foo/const:verb"), Some(4));

        let m = matcher(&[("GET", "/{a=*}/{b=*}:verb")]);
        assert_eq!(bindings(&m, "GET", "/some:verb/const:verb"), ["a=some:verb", "b=const"]);

        let m = matcher(&[("GET", "/{a=**}:verb"), ("GET", "/{a=**}")]);
        assert_eq!(find(&m, "GET", "/some:verb/const:verb"), Some((0, vec!["a=some:verb/const".into()])));
        assert_eq!(find(&m, "GET", "/some:verb/const"), Some((1, vec!["a=some:verb/const".into()])));
        assert_eq!(find(&m, "GET", "/some:verb2/const:verb2"), Some((1, vec!["a=some:verb2/const:verb2".into()])));

        let m = matcher(&[("GET", "/foo/*/hello")]);
        assert_eq!(route(&m, "GET", "/foo/other:verb/hello"), Some(0));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn partial_and_overlong_paths_fail() {
        let m = matcher(&[("GET", "/prefix/middle/suffix"), ("GET", "/prefix/middle"), ("GET", "/prefix")]);
        assert_eq!(route(&m, "GET", "/prefix/middle/suffix"), Some(0));
        assert_eq!(route(&m, "GET", "/prefix/middle"), Some(1));
        assert_eq!(route(&m, "GET", "/prefix"), Some(2));
        assert_eq!(route(&m, "GET", "/prefix/middle/suffix/other"), None);
        assert_eq!(route(&m, "GET", "/prefix/middle/other"), None);
        assert_eq!(route(&m, "GET", "/prefix/other"), None);
        assert_eq!(route(&m, "GET", "/other"), None);
        assert_eq!(route(&m, "GET", "/"), None);
        assert_eq!(route(&m, "GET", ""), None);
        assert_eq!(route(&m, "GET", "prefix"), None);
        // A stray query string is cut off as Envoy's library does.
        assert_eq!(route(&m, "GET", "/prefix?x=/y"), Some(2));
        // Literals compare with the raw segment.
        assert_eq!(route(&m, "GET", "/pre%66ix"), None);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn trailing_slashes_and_empty_segments() {
        let m = matcher(&[("GET", "/a/{x}"), ("GET", "/b/{x}/c")]);
        assert_eq!(bindings(&m, "GET", "/a/1/"), ["x=1"]);
        assert_eq!(bindings(&m, "GET", "/a/1///"), ["x=1"]);
        // Inner empty segments are kept, and `*` takes an empty one.
        assert_eq!(bindings(&m, "GET", "/b//c"), ["x="]);
        assert_eq!(route(&m, "GET", "//a/1"), None);
        assert_eq!(route(&m, "GET", "/a/"), None);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn methods_are_separate_and_custom_methods_work() {
        let m = matcher(&[("GET", "/a/b"), ("SEARCH", "/a/{q}"), ("search", "/a/{lower}"), ("POST", "/a/b")]);
        assert_eq!(route(&m, "GET", "/a/b"), Some(0));
        assert_eq!(route(&m, "POST", "/a/b"), Some(3));
        assert_eq!(find(&m, "SEARCH", "/a/books"), Some((1, vec!["q=books".into()])));
        // Methods are case-sensitive, like HTTP.
        assert_eq!(find(&m, "search", "/a/books"), Some((2, vec!["lower=books".into()])));
        assert_eq!(route(&m, "PUT", "/a/b"), None);
        assert_eq!(route(&m, "GET", "/a/c"), None);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn any_method_route_is_a_fallback() {
        let m = matcher(&[("*", "/any/{x}"), ("GET", "/any/special")]);
        assert_eq!(route(&m, "GET", "/any/special"), Some(1));
        assert_eq!(find(&m, "GET", "/any/thing"), Some((0, vec!["x=thing".into()])));
        assert_eq!(route(&m, "DELETE", "/any/special"), Some(0));
        assert_eq!(route(&m, "*", "/any/x"), Some(0));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn duplicates_are_refused() {
        let mut m = PathMatcher::new(MatchOptions::default());
        assert_eq!(m.insert("GET", &template("/v1/{name}"), 0), Ok(()));
        let err = m.insert("GET", &template("/v1/{id=*}"), 1).unwrap_err();
        assert_eq!(
            err,
            DuplicateRoute { http_method: "GET".into(), template: "/v1/{id}".into(), existing: "/v1/{name}".into() }
        );
        assert!(err.to_string().starts_with("GET /v1/{id} has the same method and path pattern as GET /v1/{name}"));
        assert!(m.insert("GET", &template("/v1/*"), 2).is_err());
        // A different verb, method, or shape is another route.
        assert_eq!(m.insert("GET", &template("/v1/{name}:undelete"), 3), Ok(()));
        assert_eq!(m.insert("DELETE", &template("/v1/{name}"), 4), Ok(()));
        assert_eq!(m.insert("GET", &template("/v1/{name=**}"), 5), Ok(()));
        assert_eq!(m.insert("GET", &template("/v1/x"), 6), Ok(()));
        // The first registration stays in force.
        assert_eq!(route(&m, "GET", "/v1/abc"), Some(0));
        assert_eq!(route(&m, "GET", "/v1/abc:undelete"), Some(3));
        assert_eq!(route(&m, "GET", "/v1/x"), Some(6));
    }

    fn decoding_matcher(spec: UrlUnescapeSpec) -> PathMatcher<usize> {
        matcher_with(
            MatchOptions { url_unescape_spec: spec, ..MatchOptions::default() },
            &[("GET", "/a/{x=*}/{y=**}/c"), ("GET", "/s/{x}/{y=p/*}")],
        )
    }

    const RESERVED_ENCODED: &str = "%21%23%24%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D";

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn percent_decoding_per_spec() {
        let path = format!("/a/{RESERVED_ENCODED}/{RESERVED_ENCODED}/c");
        for (spec, multi) in [
            (UrlUnescapeSpec::AllCharactersExceptReserved, RESERVED_ENCODED),
            (UrlUnescapeSpec::AllCharactersExceptSlash, "!#$&'()*+,%2F:;=?@[]"),
            (UrlUnescapeSpec::AllCharacters, "!#$&'()*+,/:;=?@[]"),
        ] {
            let m = decoding_matcher(spec);
            // The single segment is always fully decoded; the `**` one follows the spec.
            assert_eq!(bindings(&m, "GET", &path), ["x=!#$&'()*+,/:;=?@[]".to_string(), format!("y={multi}")]);
        }
        let m = decoding_matcher(UrlUnescapeSpec::default());
        assert_eq!(bindings(&m, "GET", "/s/p%20q%2Fr+/p/foo%20foo%2Fbar"), ["x=p q/r+", "y=p/foo foo%2Fbar"]);
        // `**` over one segment still counts as multi-segment.
        assert_eq!(bindings(&m, "GET", "/a/1/x%2Fy/c"), ["x=1", "y=x%2Fy"]);
        let m = decoding_matcher(UrlUnescapeSpec::AllCharactersExceptSlash);
        assert_eq!(bindings(&m, "GET", "/s/a%2fb/p/c%2fd%3F"), ["x=a/b", "y=p/c%2fd?"]);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn utf8_and_invalid_escapes_in_bindings() {
        let m = decoding_matcher(UrlUnescapeSpec::default());
        assert_eq!(bindings(&m, "GET", "/s/%E4%BD%A0%E5%A5%BD/p/caf%C3%A9"), ["x=你好", "y=p/café"]);
        assert_eq!(bindings(&m, "GET", "/s/你好/p/é"), ["x=你好", "y=p/é"]);
        assert_eq!(bindings(&m, "GET", "/s/100%/p/%zz%4"), ["x=100%", "y=p/%zz%4"]);

        let found = m.lookup("GET", "/s/ok%FF/p/fine");
        let found = found.as_ref().map(|f| &f.bindings[..]);
        let Some([x, y]) = found else {
            panic!("should match with two bindings: {found:?}");
        };
        assert_eq!(x.value, "ok%FF");
        assert_eq!(x.invalid_utf8.as_ref().map(|e| e.offset), Some(2));
        assert_eq!(y.value, "p/fine");
        assert_eq!(y.invalid_utf8, None);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn very_long_paths_do_not_overflow_the_stack() {
        let m = matcher(&[("GET", "/a/**/x"), ("GET", "/b/{rest=**}")]);
        let slashes = "/".repeat(64_000);
        assert_eq!(route(&m, "GET", &format!("/a/{slashes}/x")), Some(0));
        assert_eq!(route(&m, "GET", &format!("/a/{slashes}/y")), None);
        let many = "s/".repeat(30_000);
        assert_eq!(
            find(&m, "GET", &format!("/b/{many}end")).map(|(i, b)| (i, b.first().map(String::len))),
            Some((1, Some("rest=".len() + many.len() + 3)))
        );
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn empty_matcher_and_root() {
        let m: PathMatcher<usize> = PathMatcher::new(MatchOptions::default());
        assert_eq!(route(&m, "GET", "/"), None);
        assert_eq!(route(&m, "GET", "a/b/blue/foo"), None);
        let m = matcher(&[("GET", "/")]);
        assert_eq!(route(&m, "GET", "/"), Some(0));
        assert_eq!(route(&m, "GET", "//"), Some(0));
        assert_eq!(route(&m, "GET", "/x"), None);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn hand_built_inconsistent_template_does_not_panic() {
        let mut m = PathMatcher::new(MatchOptions::default());
        let broken = PathTemplate {
            segments: vec![Segment::Wildcard, Segment::DoubleWildcard, Segment::DoubleWildcard],
            verb: Some(String::new()),
            variables: vec![
                Variable { field_path: vec!["a".into()], start_segment: 5, end_segment: 2 },
                Variable { field_path: vec![], start_segment: 0, end_segment: 99 },
            ],
        };
        assert_eq!(m.insert("GET", &broken, 0), Ok(()));
        for path in ["/", "/a", "/a/b", "/a/b/c/d", "/a:"] {
            let _ = m.lookup("GET", path);
        }
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn pseudo_random_paths_never_panic() {
        let routes = [
            ("GET", "/v1/{name=shelves/*/books/*}:archive"),
            ("GET", "/v1/{book.name=shelves/*/books/*}"),
            ("GET", "/v1/archive/{name=**}"),
            ("GET", "/v1/types/{string_value}/{nested.name}"),
            ("GET", "/a/**/b"),
            ("GET", "/{x=**}/z:do"),
            ("GET", "/"),
            ("*", "/any/{x}"),
        ];
        let pieces = [
            "/", "/", "/", "v1", "shelves", "books", "archive", "types", "a", "b", "z", ":", ":archive", ":do", "%",
            "%2F", "%FF", "%E4%BD", "%A0", "?", "é", "你", "", "**", "*", "any",
        ];
        let mut next = crate::test_rng::xorshift(0xDEAD_BEEF_CAFE_F00D);
        for unregistered in [false, true] {
            for spec in [
                UrlUnescapeSpec::AllCharactersExceptReserved,
                UrlUnescapeSpec::AllCharactersExceptSlash,
                UrlUnescapeSpec::AllCharacters,
            ] {
                let m = matcher_with(
                    MatchOptions { url_unescape_spec: spec, match_unregistered_custom_verb: unregistered },
                    &routes,
                );
                let mut matched = 0;
                for _ in 0..1000 {
                    let count = (next() % 12) as usize;
                    let mut path = String::new();
                    if next() % 8 != 0 {
                        path.push('/');
                    }
                    for _ in 0..count {
                        path.push_str(pieces.get((next() % pieces.len() as u64) as usize).copied().unwrap_or(""));
                    }
                    let method = if next() % 4 == 0 { "POST" } else { "GET" };
                    if let Some(found) = m.lookup(method, &path) {
                        matched += 1;
                        let template = routes.get(*found.value).map(|(_, t)| template(t));
                        assert_eq!(template.map(|t| t.variables.len()), Some(found.bindings.len()));
                    }
                }
                assert!(matched > 0, "the generator should hit some routes");
            }
        }
    }
}
