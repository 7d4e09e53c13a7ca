//! `google.api.http` path templates: the parser, the canonical printing (which
//! must parse back to the same template) and the matcher a template goes into.
//! Input: `template` [`\n` `request path`].
#![no_main]

use libfuzzer_sys::fuzz_target;
use transcoder::path_matcher::{MatchOptions, PathMatcher};
use transcoder::path_template::PathTemplate;
use transcoder::percent::UrlUnescapeSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (template, path) = text.split_once('\n').unwrap_or((text, "/"));
    let Ok(parsed) = PathTemplate::parse(template) else { return };
    let printed = parsed.to_string();
    let reparsed = PathTemplate::parse(&printed);
    assert_eq!(reparsed.as_ref(), Ok(&parsed), "{template:?} printed as {printed:?}");
    for spec in [
        UrlUnescapeSpec::AllCharactersExceptReserved,
        UrlUnescapeSpec::AllCharactersExceptSlash,
        UrlUnescapeSpec::AllCharacters,
    ] {
        let mut matcher = PathMatcher::new(MatchOptions {
            url_unescape_spec: spec,
            match_unregistered_custom_verb: path.len() % 2 == 0,
        });
        if matcher.insert("GET", &parsed, ()).is_err() {
            return;
        }
        let _ = matcher.insert("*", &parsed, ());
        if let Some(found) = matcher.lookup("GET", path) {
            assert!(found.bindings.len() <= parsed.variables.len());
        }
        let _ = matcher.lookup("POST", path);
    }
});
