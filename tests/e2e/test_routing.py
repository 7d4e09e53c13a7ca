"""Routing: which REST request reaches which gRPC method, through Envoy's native
transcoder and through the Wasm filter (same Envoy binary, backend, options).

Every differential case also pins the expected answer, so a route both
flavours miss (and pass through untranscoded) cannot pass as "same".
"""

import pytest

from checks import (GRPC, assert_answer, assert_native_text_error, assert_own_error, assert_passed_through,
                    assert_same, content_type)
from harness import with_defaults

BOOK_2 = {"name": "shelves/1/books/2", "title": "Title of shelves/1/books/2",
          "author": {"name": "Anon", "born": 1900}, "genre": "FICTION", "tags": ["a", "b"],
          "published": "2020-01-02T03:04:05Z", "pages": "300"}


def book(name):
    return {**BOOK_2, "name": name, "title": f"Title of {name}"}


# (id, method, path, body, expected JSON answer)
BINDINGS = [
    ("get", "GET", "/v1/shelves", None,
     {"shelves": [{"id": "1", "theme": "Fiction"}, {"id": "2", "theme": "History"}]}),
    ("get {var}", "GET", "/v1/shelves/7", None, {"id": "7", "theme": "Shelf 7"}),
    ("delete {var}", "DELETE", "/v1/shelves/7", None, {}),
    ("post body field", "POST", "/v1/shelves", {"theme": "Poetry"}, {"id": "3", "theme": "Poetry"}),
    ("post {var} + body field", "POST", "/v1/shelves/2/books", {"title": "T"},
     {"name": "shelves/2/books/new", "title": "T"}),
    ("put body *", "PUT", "/api/v1/echo/x/put", {"query": "4"}, {"response": "PUT md-hello= request=x query=4"}),
    ("patch nested {book.name=...}", "PATCH", "/v1/shelves/1/books/2", {"title": "new"},
     {"name": "shelves/1/books/2", "title": "new"}),
    ("custom SEARCH (additional binding)", "SEARCH", "/v1/shelves/4/books", None,
     {"books": [{"name": "shelves/4/books/1", "title": "Book 1"}], "query": {"shelf": "4"}}),
    ("{name=shelves/*/books/*}", "GET", "/v1/shelves/1/books/2", None, BOOK_2),
    ("** additional binding", "GET", "/v1/archive/a/b/c", None, book("a/b/c")),
    ("** matching nothing", "GET", "/v1/archive/", None, {k: v for k, v in book("").items() if k != "name"}),
    (":archive custom verb", "POST", "/v1/shelves/1/books/2:archive", {"reason": "old"},
     {"name": "shelves/1/books/2", "title": "archived: old"}),
    ("additional binding put body field", "PUT", "/v1/types/77", {"name": "n"},
     {"int64Value": "77", "nested": {"name": "n"}}),
    ("additional binding get two vars", "GET", "/v1/types/s/n", None, {"stringValue": "s", "nested": {"name": "n"}}),
    ("GET with a trailing slash", "GET", "/v1/shelves/1/", None, {"id": "1", "theme": "Shelf 1"}),
    ("empty segment in a * variable", "GET", "/v1/shelves//books/2", None, book("shelves//books/2")),
    ("%3A is not a verb", "GET", "/v1/shelves/1/books/2%3Aarchive", None, book("shelves/1/books/2%3Aarchive")),
]


@pytest.mark.parametrize("method, path, body, expected", [b[1:] for b in BINDINGS], ids=[b[0] for b in BINDINGS])
def test_binding_reaches_its_method_like_native(both, method, path, body, expected):
    r = assert_same(both(None, method, path, body=body))
    assert_answer(r, 200, expected)


# ------------------------------------------------------------------ percent-decoding

# (path, the value the backend received)
DECODING = [
    # Single-segment variables are decoded fully, whatever url_unescape_spec says.
    ("/api/v1/echo/h%C3%A9llo%20%E2%82%AC/get", "héllo €"),
    ("/api/v1/echo/a%2Fb/get", "a/b"),
    ("/api/v1/echo/a%2fb/get", "a/b"),
    ("/api/v1/echo/a%3Ab%40c%2Bd%21/get", "a:b@c+d!"),
    ("/api/v1/echo/a+b/get", "a+b"),
    ("/api/v1/echo/%zz/get", "%zz"),
    ("/api/v1/echo/%/get", "%"),
    ("/api/v1/echo/a%25b/get", "a%b"),
    ("/api/v1/echo/%F0%9F%98%80/get", "😀"),
]


@pytest.mark.parametrize("path, value", DECODING, ids=[p for p, _ in DECODING])
def test_single_segment_variables_are_percent_decoded_like_native(both, path, value):
    r = assert_same(both(None, "GET", path))
    assert r.json() == {"response": f"GET md-hello= request={value} query=0"}


# Multi-segment variables ({name=**}, {name=shelves/*/books/*}) under each url_unescape_spec.
MULTI = [
    # (spec, path, name received)
    (None, "/v1/archive/a%2Fb/c%20d", "a%2Fb/c d"),
    (None, "/v1/archive/x%3Ay%2B%40/%E2%82%AC", "x%3Ay%2B%40/€"),
    (None, "/v1/shelves/1/books/a%2Fb", "shelves/1/books/a%2Fb"),
    ("ALL_CHARACTERS_EXCEPT_SLASH", "/v1/archive/a%2Fb/c%20d", "a%2Fb/c d"),
    ("ALL_CHARACTERS_EXCEPT_SLASH", "/v1/archive/x%3Ay%2B%40/%E2%82%AC", "x:y+@/€"),
    ("ALL_CHARACTERS", "/v1/archive/a%2Fb/c%20d", "a/b/c d"),
    ("ALL_CHARACTERS", "/v1/archive/x%3Ay%2B%40", "x:y+@"),
    ("ALL_CHARACTERS", "/v1/shelves/1/books/a%2Fb", "shelves/1/books/a/b"),
]


@pytest.mark.parametrize("spec, path, name", MULTI, ids=[f"{s or 'default'} {p}" for s, p, _ in MULTI])
def test_multi_segment_variables_follow_url_unescape_spec_like_native(both, spec, path, name):
    options = None if spec is None else with_defaults(url_unescape_spec=spec)
    r = assert_same(both(options, "GET", path))
    assert r.json()["name"] == name


def test_invalid_utf8_in_a_path_variable(both):
    """Deliberate difference: %FF decodes to a byte that is not UTF-8, which no
    proto string can hold. We answer 400 naming the variable; native sends the
    bytes on and the backend fails to decode the message (500, INTERNAL)."""
    native, wasm = both(None, "GET", "/api/v1/echo/%FF/get")
    assert_own_error(wasm, 400, 3, "request", "%FF", "UTF-8")
    assert wasm.json()["message"] == (
        'path variable `request`: "%FF" does not percent-decode to UTF-8 text (the escape at byte 0 starts an '
        'invalid sequence); percent-encode the UTF-8 bytes of each character, e.g. "%C3%A9" for "é"')
    assert native.status_code == 500 and native.json()["code"] == 13


# ------------------------------------------------------------------ custom verbs

def test_unregistered_verb_is_part_of_the_last_segment_by_default(both):
    """Only `:archive` is a registered verb; any other `:suffix` is plain text of
    the last segment, so it lands in the variable."""
    r = assert_same(both(None, "GET", "/v1/shelves/1/books/2:unarchive"))
    assert_answer(r, 200, book("shelves/1/books/2:unarchive"))
    assert_passed_through(assert_same(both(None, "GET", "/v1/shelves:list")))
    # "1:foo" is then the value of the int64 variable `shelf`.
    native, wasm = both(None, "GET", "/v1/shelves/1:foo")
    assert_own_error(wasm, 400, 3, "shelf", "1:foo")
    assert_native_text_error(native, 400, "1:foo")


@pytest.mark.parametrize("path", ["/v1/shelves/1/books/2:unarchive", "/v1/shelves/1:foo", "/v1/shelves:list"])
def test_match_unregistered_custom_verb(both, path):
    """With the option, `:suffix` is a verb even when no template registers it,
    so these paths match no template and pass through."""
    options = with_defaults(match_unregistered_custom_verb=True)
    assert_passed_through(assert_same(both(options, "GET", path)))


def test_match_unregistered_custom_verb_keeps_registered_verbs(both):
    options = with_defaults(match_unregistered_custom_verb=True)
    r = assert_same(both(options, "POST", "/v1/shelves/1/books/2:archive", body={"reason": "r"}))
    assert_answer(r, 200, {"name": "shelves/1/books/2", "title": "archived: r"})


# ------------------------------------------------------------------ unknown routes

@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/nope"),
    ("PUT", "/v1/shelves"),                      # known path, unbound method
    ("POST", "/v1/shelves/1"),
    ("GET", "/V1/SHELVES"),                      # paths are case-sensitive
    ("GET", "//v1/shelves"),
    ("HEAD", "/v1/shelves"),
    ("OPTIONS", "/v1/shelves"),
    ("GET", "/v1/shelves/1/books/2/cover/extra"),
])
def test_unknown_routes_pass_through_to_the_backend_like_native(both, method, path):
    """Neither flavour transcodes: the request reaches the gRPC backend as is,
    which answers UNIMPLEMENTED (gRPC status 12) with HTTP 200."""
    body = {} if method in ("PUT", "POST") else None
    r = assert_same(both(None, method, path, body=body), headers=["grpc-status", "grpc-message"])
    if method != "HEAD":
        assert_passed_through(r)
        assert r.headers["grpc-status"] == "12"


REJECT_UNKNOWN = with_defaults(request_validation_options={"reject_unknown_method": True})


@pytest.mark.parametrize("method, path", [("GET", "/v1/nope?x=1"), ("PUT", "/v1/shelves"), ("DELETE", "/v1/shelves")])
def test_reject_unknown_method(both, method, path):
    """Deliberate difference: both answer 404; ours is a JSON google.rpc.Status
    (NOT_FOUND) naming the method and path, native's is text/plain."""
    native, wasm = both(REJECT_UNKNOWN, method, path)
    assert_own_error(wasm, 404, 5, f"{method} {path.split('?')[0]}")
    assert wasm.json() == {"code": 5, "message": f"no method is bound to {method} {path.split('?')[0]}"}
    assert_native_text_error(native, 404, "Could not resolve")


def test_reject_unknown_method_still_transcodes_known_routes(both):
    r = assert_same(both(REJECT_UNKNOWN, "GET", "/v1/shelves/3"))
    assert_answer(r, 200, {"id": "3", "theme": "Shelf 3"})


# ------------------------------------------------------------------ auto_mapping

def test_unannotated_method_needs_auto_mapping(both):
    """Without auto_mapping the gRPC path is no REST route: the JSON request is
    passed on untranscoded by both (the backend refuses its content)."""
    r = assert_same(both(None, "POST", "/bookstore.v1.Bookstore/Unannotated", body={"id": 3}),
                    headers=["grpc-status"])
    assert content_type(r) == GRPC


def test_auto_mapping(both):
    options = with_defaults(auto_mapping=True)
    r = assert_same(both(options, "POST", "/bookstore.v1.Bookstore/Unannotated", body={"id": 3, "theme": "auto"}))
    assert_answer(r, 200, {"id": "3", "theme": "auto"})
    # Annotated methods keep only their annotated routes.
    assert_passed_through(assert_same(both(options, "POST", "/bookstore.v1.Bookstore/GetShelf", body={"shelf": 1})))

