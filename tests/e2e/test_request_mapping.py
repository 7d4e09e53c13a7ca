"""Request mapping: how the body, path variables and query parameters fill the
gRPC request message, compared with Envoy's native transcoder.

EchoTypes (`GET /v1/types/{string_value}/{nested.name}`, `POST /v1/types:echo`
with body "*", `PUT /v1/types/{int64_value}` with body "nested") answers with
its request, so the answer shows exactly what the backend received.
"""

import pytest

from checks import (JSON, assert_answer, assert_native_text_error, assert_own_error,
                    assert_passed_through, assert_same)
from harness import with_defaults

TYPES = "/v1/types/s/n"
BASE = {"stringValue": "s", "nested": {"name": "n"}}


def echoed(**fields):
    return {**BASE, **fields}


# ------------------------------------------------------------------ bodies

def test_body_star(both):
    r = assert_same(both(None, "POST", "/api/v1/echo/hi/post", body={"query": "12"}))
    assert_answer(r, 200, {"response": "POST md-hello= request=hi query=12"})


def test_body_field(both):
    r = assert_same(both(None, "POST", "/v1/shelves/2/books", body={"title": "T", "author": {"name": "A", "born": 1950}}))
    assert_answer(r, 200, {"name": "shelves/2/books/new", "title": "T", "author": {"name": "A", "born": 1950}})


def test_empty_body_on_a_body_field_sets_an_empty_message(both):
    """Native sets the body field to an empty message (nested: {}), not unset."""
    r = assert_same(both(None, "PUT", "/v1/types/77", body=b"", headers={"content-type": JSON}))
    assert_answer(r, 200, {"int64Value": "77", "nested": {}})


@pytest.mark.parametrize("method, path", [("POST", "/v1/shelves"), ("POST", "/v1/types:echo"), ("PUT", "/v1/types/4")])
def test_whitespace_only_body_is_invalid_json(both, method, path):
    """Deliberate difference in form only: both refuse it (400); ours is a JSON
    google.rpc.Status, native's text/plain."""
    native, wasm = both(None, method, path, body=b"  \n ", headers={"content-type": JSON})
    assert_own_error(wasm, 400, 3, "not valid JSON")
    assert_native_text_error(native, 400)


def test_empty_body_with_body_star_is_an_empty_message(both):
    r = assert_same(both(None, "POST", "/v1/types:echo", body=b"", headers={"content-type": JSON}))
    assert_answer(r, 200, {})


def test_unknown_body_fields_are_ignored(both):
    body = {"int32Value": 2, "nope": [1, {"x": None}], "nested": {"name": "n", "zzz": 1}, "empty": {"x": 1}}
    r = assert_same(both(None, "POST", "/v1/types:echo", body=body))
    assert_answer(r, 200, {"int32Value": 2, "nested": {"name": "n"}, "empty": {}})


def test_body_on_a_route_without_body_mapping(both):
    """GetShelf's rule has no `body`; a body sent anyway is read as the whole
    message, as Envoy's transcoder reads it (its body field path is empty for
    no `body:` and for `body: "*"` alike), so the body's shelf 9 wins over the
    path's 1 (Envoy's request weaver). Dropping what the client sent would lose
    data silently; test_envoy_cases.py has the other rules without `body`."""
    r = assert_same(both(None, "GET", "/v1/shelves/1", body=b'{"shelf": 9}', headers={"content-type": JSON}))
    assert_answer(r, 200, {"id": "9", "theme": "Shelf 9"})


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded",
                                   None, "application/grpc-web", "application/grpc-web+json"])
def test_json_body_whatever_the_content_type(both, ctype):
    """Both transcode the body as JSON whatever content-type says; gRPC-Web is not
    gRPC for Envoy (only application/grpc and application/grpc+<subtype>)."""
    headers = {"content-type": ctype} if ctype else {}
    r = assert_same(both(None, "POST", "/v1/shelves", headers=headers, body=b'{"theme": "ct"}'))
    assert_answer(r, 200, {"id": "3", "theme": "ct"})


# ------------------------------------------------------------------ bindings and the body

PRECEDENCE = [
    # (id, path, body, what the backend gets)
    ("path var vs body: body wins", "/api/v1/echo/path/post", {"request": "body"},
     {"response": "POST md-hello= request=body query=0"}),
    ("query vs body: body wins", "/api/v1/echo/path/post?query=5", {"query": "6"},
     {"response": "POST md-hello= request=path query=6"}),
    ("nested path var vs body field", None, None, None),
    ("proto-name key: body wins", "/v1/types:echo?int32Value=3", {"int32_value": 7}, {"int32Value": 7}),
    ("proto-name key with default value: body wins", "/v1/types:echo?int32Value=3", {"int32_value": 0}, {}),
    ("json-name key: binding wins", "/v1/types:echo?int32Value=3", {"int32Value": 7}, {"int32Value": 3}),
    ("null in body: binding wins", "/v1/types:echo?int32Value=3", {"int32_value": None}, {"int32Value": 3}),
    ("merged into a body message", "/v1/types:echo?nested.count=3&nested.name=q", {"nested": {"name": "b"}},
     {"nested": {"name": "b", "count": 3}}),
    ("deep merge", "/v1/types:echo?nested.child.name=q", {"nested": {"name": "x"}},
     {"nested": {"name": "x", "child": {"name": "q"}}}),
    ("repeated: body first, then the URL", "/v1/types:echo?repeatedInt32=1&repeatedInt32=5", {"repeatedInt32": [2, 3]},
     {"repeatedInt32": [2, 3, 1, 5]}),
    ("repeated message: URL element appended", "/v1/types:echo?repeatedNested.name=q", {"repeatedNested": [{"name": "b"}]},
     {"repeatedNested": [{"name": "b"}, {"name": "q"}]}),
    ("oneof member by proto name: body wins", "/v1/types:echo?choiceInt=3", {"choice_int": 4}, {"choiceInt": 4}),
    ("oneof null in body", "/v1/types:echo?choiceInt=3", {"choiceString": None}, {"choiceInt": 3}),
    ("oneof message opened by the body", "/v1/types:echo?choiceNested.name=3", {"choice_nested": {"count": 1}},
     {"choiceNested": {"name": "3", "count": 1}}),
    ("path var outside a body field", "/v1/types/5?int64Value=6", {"name": "b"}, {"int64Value": "6", "nested": {"name": "b"}}),
    ("query inside a body field: body wins", "/v1/types/5?nested.name=q", {"name": "b"},
     {"int64Value": "5", "nested": {"name": "b"}}),
    ("query inside a body field: merged", "/v1/types/5?nested.count=4", {"name": "b"},
     {"int64Value": "5", "nested": {"name": "b", "count": 4}}),
]
PRECEDENCE = [p for p in PRECEDENCE if p[1]]


@pytest.mark.parametrize("path, body, expected", [p[1:] for p in PRECEDENCE], ids=[p[0] for p in PRECEDENCE])
def test_bindings_and_body_combine_like_native(both, path, body, expected):
    """Envoy's RequestWeaver: a binding is dropped when the body holds the field
    under its proto name; otherwise it is merged after the body."""
    method = "PUT" if path.startswith("/v1/types/5") else "POST"
    r = assert_same(both(None, method, path, body=body))
    assert_answer(r, 200, expected)


def test_nested_path_variable_and_body_field(both):
    r = assert_same(both(None, "PATCH", "/v1/shelves/1/books/2", body={"name": "shelves/9/books/9", "title": "t"}))
    assert_answer(r, 200, {"name": "shelves/9/books/9", "title": "t"})


@pytest.mark.parametrize("path, body, member", [
    ("/v1/types:echo?choiceInt=3", {"choiceString": "x"}, "choice_string"),
    ("/v1/types:echo?choiceInt=3", {"choiceInt": 4}, "choice_int"),
    ("/v1/types:echo?choiceInt=3", {"choiceNested": {}}, "choice_nested"),
    ("/v1/types:echo?choiceNested.name=3", {"choiceInt": 5}, "choice_int"),
    ("/v1/types:echo?optionalInt32=1", {"optionalInt32": 2}, "optional_int32"),
])
def test_binding_setting_a_oneof_the_body_set(both, path, body, member):
    """Both refuse it (400); ours names the parameter and the member the body set."""
    native, wasm = both(None, "POST", path, body=body)
    assert_own_error(wasm, 400, 3, "oneof", member, path.split("?")[1].split("=")[0])
    assert_native_text_error(native, 400, "oneof")


COLLISIONS = with_defaults(request_validation_options={"reject_binding_body_field_collisions": True})


@pytest.mark.parametrize("method, path, body, name", [
    ("POST", "/api/v1/echo/path/post", {"request": "body"}, "request"),
    ("POST", "/api/v1/echo/path/post?query=5", {"query": "6"}, "query"),
    ("PATCH", "/v1/shelves/1/books/2", {"name": "shelves/9/books/9"}, "book.name"),
    ("POST", "/v1/types:echo?int32Value=3", {"int32_value": 7}, "int32Value"),
])
def test_reject_binding_body_field_collisions(both, method, path, body, name):
    """Deliberate difference in form only: both refuse (400); ours is JSON naming the binding."""
    native, wasm = both(COLLISIONS, method, path, body=body)
    assert_own_error(wasm, 400, 3, name, "conflicts")
    source = "path variable" if "?" not in path else "query parameter"
    value = {"request": "path", "query": "5", "book.name": "shelves/1/books/2", "int32Value": "3"}[name]
    assert wasm.json() == {"code": 3, "message": f'{source} `{name}` = "{value}" conflicts with the value the '
                                                 f'request body gives the same field'}
    assert_native_text_error(native, 400, "conflicting")


@pytest.mark.parametrize("method, path, body, expected", [
    ("POST", "/api/v1/echo/same/post", {"request": "same"}, {"response": "POST md-hello= request=same query=0"}),
    ("POST", "/v1/types:echo?int32Value=3", {"int32Value": 7}, {"int32Value": 3}),
    ("POST", "/v1/types:echo?repeatedInt32=1", {"repeated_int32": [2]}, {"repeatedInt32": [2, 1]}),
    ("POST", "/v1/types:echo?int64Value=3", {"int64_value": 3}, {"int64Value": "3"}),
])
def test_no_collision_where_values_agree_or_the_binding_is_merged(both, method, path, body, expected):
    r = assert_same(both(COLLISIONS, method, path, body=body))
    assert_answer(r, 200, expected)


def test_collision_of_an_enum_given_by_number_and_by_name(both):
    """Deliberate difference (native is buggy here): color=1 and "RED" are the
    same enum value, so we see no collision; native compares the two spellings
    as text and refuses the request."""
    native, wasm = both(COLLISIONS, "POST", "/v1/types:echo?color=1", body={"color": "RED"})
    assert_answer(wasm, 200, {"color": "RED"})
    assert_native_text_error(native, 400, "conflicting")


# ------------------------------------------------------------------ query parameters

QUERY = [
    # (id, query, expected fields besides string_value/nested.name)
    ("int64/uint64 as strings", "int64Value=123&uint64Value=18446744073709551615",
     {"int64Value": "123", "uint64Value": "18446744073709551615"}),
    ("proto field name", "int64_value=-5", {"int64Value": "-5"}),
    ("all integer kinds", "int32Value=-1&uint32Value=4294967295&sint32Value=-2&sint64Value=-3&fixed32Value=4"
     "&fixed64Value=5&sfixed32Value=-6&sfixed64Value=-7&int32Value=%2B8",
     {"int32Value": 8, "uint32Value": 4294967295, "sint32Value": -2, "sint64Value": "-3", "fixed32Value": 4,
      "fixed64Value": "5", "sfixed32Value": -6, "sfixed64Value": "-7"}),
    ("bool true", "boolValue=true", {"boolValue": True}),
    ("bool 1", "boolValue=1", {"boolValue": True}),
    ("bool t", "boolValue=t", {"boolValue": True}),
    ("bool yes", "boolValue=yes", {"boolValue": True}),
    ("bool mixed case", "boolValue=tRuE", {"boolValue": True}),
    ("bool False", "boolValue=False", {}),
    ("bool n", "boolValue=n", {}),
    ("enum by name", "color=BLUE", {"color": "BLUE"}),
    ("enum by number", "color=2", {"color": "GREEN"}),
    ("repeated enum, names and numbers", "repeatedColor=RED&repeatedColor=3", {"repeatedColor": ["RED", "BLUE"]}),
    ("repeated keys", "repeatedInt32=1&repeatedInt32=2&repeatedString=a&repeatedString=b",
     {"repeatedInt32": [1, 2], "repeatedString": ["a", "b"]}),
    ("double NaN", "doubleValue=NaN", {"doubleValue": "NaN"}),
    ("double Infinity", "doubleValue=Infinity", {"doubleValue": "Infinity"}),
    ("double -Infinity", "doubleValue=-Infinity", {"doubleValue": "-Infinity"}),
    ("float", "floatValue=1.5&doubleValue=.25", {"floatValue": 1.5, "doubleValue": 0.25}),
    ("double hexadecimal", "doubleValue=0x10", {"doubleValue": 16}),
    ("double exponent", "doubleValue=1e308", {"doubleValue": 1e308}),
    ("timestamp", "timestamp=2020-01-02T03:04:05Z", {"timestamp": "2020-01-02T03:04:05Z"}),
    ("timestamp with offset", "timestamp=2020-01-02T03:04:05.123%2B01:00", {"timestamp": "2020-01-02T02:04:05.123Z"}),
    ("duration", "duration=1.5s", {"duration": "1.500s"}),
    ("negative duration", "duration=-3s", {"duration": "-3s"}),
    ("field mask", "fieldMask=a.b,cD", {"fieldMask": "a.b,cD"}),
    ("wrappers", "int32Wrapper=5&int64Wrapper=6&uint32Wrapper=7&uint64Wrapper=8&boolWrapper=true&stringWrapper=x"
     "&bytesWrapper=YWJj&floatWrapper=1.5&doubleWrapper=NaN",
     {"int32Wrapper": 5, "int64Wrapper": "6", "uint32Wrapper": 7, "uint64Wrapper": "8", "boolWrapper": True,
      "stringWrapper": "x", "bytesWrapper": "YWJj", "floatWrapper": 1.5, "doubleWrapper": "NaN"}),
    ("zero wrappers are set", "int32Wrapper=0&stringWrapper=", {"int32Wrapper": 0, "stringWrapper": ""}),
    ("bytes base64", "bytesValue=YW%2B/", {"bytesValue": "YW+/"}),
    ("bytes base64url", "bytesValue=YW-_", {"bytesValue": "YW+/"}),
    ("google.protobuf.Value: a string when not JSON", "value=hello", {"value": "hello"}),
    ("optional zero values are set", "optionalInt32=0&optionalString=", {"optionalInt32": 0, "optionalString": ""}),
    ("oneof member", "choiceString=a", {"choiceString": "a"}),
    ("repeated timestamp", "repeatedTimestamp=2020-01-01T00:00:00Z", {"repeatedTimestamp": ["2020-01-01T00:00:00Z"]}),
    ("query overrides a path variable", "stringValue=override&nested.name=o", {"stringValue": "override", "nested": {"name": "o"}}),
    ("nested", "nested.count=3&nested.child.name=deep", {"nested": {"name": "n", "count": 3, "child": {"name": "deep"}}}),
    ("through a repeated message", "repeatedNested.name=a&repeatedNested.name=b&repeatedNested.count=3",
     {"repeatedNested": [{"name": "b", "count": 3}]}),
    ("percent-decoded values", "stringValue=a%20b%2Bc%E2%82%AC", {"stringValue": "a b+c€"}),
    ("plus is kept by default", "stringValue=a+b", {"stringValue": "a+b"}),
    ("bad escapes kept", "stringValue=%zz%", {"stringValue": "%zz%"}),
    ("empty parameters skipped", "&&stringValue=x&", {"stringValue": "x"}),
]


@pytest.mark.parametrize("query, fields", [q[1:] for q in QUERY], ids=[q[0] for q in QUERY])
def test_query_parameters_like_native(both, query, fields):
    r = assert_same(both(None, "GET", f"{TYPES}?{query}"))
    assert_answer(r, 200, echoed(**fields))


def test_query_parameters_on_a_real_method(both):
    r = assert_same(both(None, "GET", "/v1/shelves/1/books?filter.author=Ann&tags=a&tags=b&pageSize=3&filter.genre=HISTORY"))
    assert_answer(r, 200, {"books": [{"name": "shelves/1/books/1", "title": "Book 1"}],
                           "query": {"shelf": "1", "filter": {"author": "Ann", "genre": "HISTORY"}, "pageSize": 3,
                                     "tags": ["a", "b"]}})


BAD_QUERY = [
    # (query, the parameter our message names)
    ("int32Value=3000000000", "int32Value"),
    ("int32Value=abc", "int32Value"),
    ("int32Value=1.0", "int32Value"),
    ("int32Value=", "int32Value"),
    ("int32Value=0x10", "int32Value"),
    ("uint32Value=-1", "uint32Value"),
    ("uint64Value=-0", "uint64Value"),
    ("int64Value=9223372036854775808", "int64Value"),
    ("boolValue=on", "boolValue"),
    ("boolValue=2", "boolValue"),
    ("boolWrapper=bogus", "boolWrapper"),
    ("color=PURPLE", "color"),
    ("color=blue", "color"),
    ("color=7", "color"),
    ("repeatedColor=1&repeatedColor=9", "repeatedColor"),
    ("doubleValue=inf", "doubleValue"),
    ("doubleValue=nan", "doubleValue"),
    ("doubleValue=1.8e308", "doubleValue"),
    ("floatValue=3.5e38", "floatValue"),
    ("doubleValue=1_0", "doubleValue"),
    ("timestamp=bad", "timestamp"),
    ("duration=5", "duration"),
    ("bytesValue=%25%25%25", "bytesValue"),
    ("nested=x", "nested"),
    ("stringMap=x", "stringMap"),
    ("structValue=1", "structValue"),
    ("listValue=1", "listValue"),
    ("any=1", "any"),
    ("choiceInt=1&choiceString=a", "oneof"),
]


@pytest.mark.parametrize("query, name", BAD_QUERY, ids=[q for q, _ in BAD_QUERY])
def test_bad_query_values(both, query, name):
    """Deliberate difference in form only: both refuse the value (400); ours is a
    JSON google.rpc.Status naming the parameter, native's text/plain."""
    native, wasm = both(None, "GET", f"{TYPES}?{query}")
    assert_own_error(wasm, 400, 3, name)
    assert_native_text_error(native, 400)


@pytest.mark.parametrize("path, message", [
    (f"{TYPES}?int32Value=abc", 'query parameter `int32Value` = "abc": invalid digit found in string'),
    (f"{TYPES}?color=PURPLE", 'query parameter `color` = "PURPLE": "PURPLE" is not a value of enum bookstore.v1.Color'),
    (f"{TYPES}?boolValue=on",
     'query parameter `boolValue` = "on": "on" is not a boolean (true/false, t/f, yes/no, y/n or 1/0)'),
])
def test_bad_query_value_answer_exactly(wasm_envoy, path, message):
    r = wasm_envoy.get(path)
    assert_answer(r, 400, {"code": 3, "message": message})


def test_invalid_utf8_in_a_query_value(both):
    """Deliberate difference: %FF is no UTF-8, which no proto string can hold. We
    answer 400 naming the parameter; native sends the bytes on and the backend
    fails to decode the message (500, INTERNAL)."""
    native, wasm = both(None, "GET", f"{TYPES}?stringValue=%FF")
    assert_own_error(wasm, 400, 3, "stringValue", "UTF-8")
    assert native.status_code == 500 and native.json()["code"] == 13


def test_query_param_unescape_plus(both):
    options = with_defaults(query_param_unescape_plus=True)
    r = assert_same(both(options, "GET", f"{TYPES}?stringValue=a+b%2Bc"))
    assert_answer(r, 200, echoed(stringValue="a b+c"))
    # Path variables keep their '+'.
    r = assert_same(both(options, "GET", "/api/v1/echo/a+b/get"))
    assert_answer(r, 200, {"response": "GET md-hello= request=a+b query=0"})


# ------------------------------------------------------------------ unknown query parameters

@pytest.mark.parametrize("path", ["/v1/shelves/1?foo=bar", f"{TYPES}?nested.unknown=1", f"{TYPES}?int32Value=1&x=2",
                                  "/v1/shelves?foo=bar"])
def test_unknown_query_parameter_passes_the_request_through_by_default(both, path):
    """Envoy's default: a parameter that names no field makes the request
    untranscodable, and it is passed on to the backend as is (which answers
    UNIMPLEMENTED for the REST path)."""
    r = assert_same(both(None, "GET", path), headers=["grpc-status"])
    assert_passed_through(r)


@pytest.mark.parametrize("query, transcoded", [
    ("=&==&&=x&int32Value=2", True),        # empty names are skipped
    ("%FF=1", False),                        # a name that is not UTF-8 names no field
    ("zzz=%FF", False),                      # an undecodable value of an unknown parameter
])
def test_odd_query_strings_like_native(both, query, transcoded):
    r = assert_same(both(None, "GET", f"{TYPES}?{query}"))
    if transcoded:
        assert_answer(r, 200, echoed(int32Value=2))
    else:
        assert_passed_through(r)


def test_ignored_query_parameters(both):
    options = with_defaults(ignored_query_parameters=["api_key", "trace"])
    r = assert_same(both(options, "GET", "/v1/shelves/1?api_key=x&trace=1"))
    assert_answer(r, 200, {"id": "1", "theme": "Shelf 1"})
    # Even with a value that is not UTF-8.
    assert_answer(assert_same(both(options, "GET", "/v1/shelves/1?api_key=%FF")), 200, {"id": "1", "theme": "Shelf 1"})
    # Other unknown parameters still pass the request through.
    assert_passed_through(assert_same(both(options, "GET", "/v1/shelves/1?api_key=x&foo=1")))


def test_ignore_unknown_query_parameters(both):
    options = with_defaults(ignore_unknown_query_parameters=True)
    r = assert_same(both(options, "GET", "/v1/shelves/1?foo=bar&shelf=9"))
    assert_answer(r, 200, {"id": "9", "theme": "Shelf 9"})
    r = assert_same(both(options, "GET", f"{TYPES}?foo=bar&int32Value=4&nested.zzz=1"))
    assert_answer(r, 200, echoed(int32Value=4))


REJECT_QUERY = with_defaults(request_validation_options={"reject_unknown_query_parameters": True})


@pytest.mark.parametrize("query, name", [("foo=bar", "foo"), ("shelf=2&zzz=1", "zzz"), ("filter.nope=1", "filter.nope")])
def test_reject_unknown_query_parameters(both, query, name):
    """Deliberate difference in form only: both refuse (400); ours is JSON naming
    the parameter, native's text/plain."""
    native, wasm = both(REJECT_QUERY, "GET", f"/v1/shelves/1/books?{query}")
    assert_own_error(wasm, 400, 3, f"`{name}`")
    assert_native_text_error(native, 400, "Could not find field")


def test_reject_unknown_query_parameters_answer_exactly(envoy_factory):
    r = envoy_factory("filter", REJECT_QUERY).get("/v1/shelves/1/books?foo=bar")
    assert_answer(r, 400, {"code": 3, "message": 'unknown query parameter `foo`: no field "foo" in message '
                                                 'bookstore.v1.ListBooksRequest'})


def test_reject_unknown_query_parameters_accepts_known_ones(both):
    r = assert_same(both(REJECT_QUERY, "GET", "/v1/shelves/1?shelf=3"))
    assert_answer(r, 200, {"id": "3", "theme": "Shelf 3"})


# ------------------------------------------------------------------ enums

CASE_INSENSITIVE = with_defaults(case_insensitive_enum_parsing=True)


def test_case_insensitive_enum_parsing(both):
    r = assert_same(both(CASE_INSENSITIVE, "GET", f"{TYPES}?color=blue&repeatedColor=Red"))
    assert_answer(r, 200, echoed(color="BLUE", repeatedColor=["RED"]))
    r = assert_same(both(CASE_INSENSITIVE, "GET", "/v1/shelves/1/books?filter.genre=history"))
    assert r.json()["query"]["filter"] == {"genre": "HISTORY"}
    body = {"color": "green", "repeatedColor": ["red"], "colorMap": {"a": "Blue"}, "nested": {"name": "x"}}
    r = assert_same(both(CASE_INSENSITIVE, "POST", "/v1/types:echo", body=body))
    assert_answer(r, 200, {"color": "GREEN", "nested": {"name": "x"}, "repeatedColor": ["RED"], "colorMap": {"a": "BLUE"}})


def test_enum_names_are_case_sensitive_by_default(both):
    native, wasm = both(None, "POST", "/v1/types:echo", body={"color": "green"})
    assert_own_error(wasm, 400, 3, "color")
    assert_native_text_error(native, 400, "green")


# ------------------------------------------------------------------ HttpBody requests

@pytest.mark.parametrize("ctype, data", [
    ("image/png", b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary"),
    ("application/octet-stream", bytes(range(256))),
    ("text/plain; charset=latin1", "caf\xe9".encode("latin1")),
    ("application/json", b'{"not": "parsed"}'),
    ("image/png", b"x" * 300_000),
])
def test_http_body_request_takes_the_raw_body(both, ctype, data):
    r = assert_same(both(None, "PUT", "/v1/shelves/1/books/2/cover", headers={"content-type": ctype}, body=data))
    assert_answer(r, 200, {"name": "shelves/1/books/2", "contentType": ctype, "size": str(len(data))})


def test_http_body_request_without_body(both):
    r = assert_same(both(None, "PUT", "/v1/shelves/1/books/2/cover", body=b""))
    assert_answer(r, 200, {"name": "shelves/1/books/2"})


# ------------------------------------------------------------------ map fields in the query (ours only)

def test_map_fields_from_the_query(both):
    """Deliberate difference: grpc-gateway's `m[key]=value` syntax sets map
    entries; native cannot (it is an unknown parameter to it, so the request is
    passed through untranscoded)."""
    native, wasm = both(None, "GET", "/v1/shelves/1/books?labels[lang]=en&labels[tier]=gold&labels%5Bx%20y%5D=z")
    assert_answer(wasm, 200, {"books": [{"name": "shelves/1/books/1", "title": "Book 1"}],
                              "query": {"shelf": "1", "labels": {"lang": "en", "tier": "gold", "x y": "z"}}})
    assert_passed_through(native)
    native, wasm = both(None, "GET", f"{TYPES}?int32Map[-1]=m&colorMap[c]=2")
    assert_answer(wasm, 200, echoed(int32Map={"-1": "m"}, colorMap={"c": "GREEN"}))
    assert_passed_through(native)


def test_map_query_params_with_ignore_unknown(both):
    """Deliberate difference: with ignore_unknown_query_parameters native drops
    `m[key]` parameters; we set the entries."""
    options = with_defaults(ignore_unknown_query_parameters=True)
    native, wasm = both(options, "GET", f"{TYPES}?stringMap[a]=b&int32Value=4")
    assert_answer(wasm, 200, echoed(int32Value=4, stringMap={"a": "b"}))
    assert_answer(native, 200, echoed(int32Value=4))


def test_map_query_errors_name_the_parameter(wasm_envoy):
    r = wasm_envoy.get(f"{TYPES}?int32Map[x]=m")
    assert_own_error(r, 400, 3, "int32Map[x]")
    r = wasm_envoy.get(f"{TYPES}?int32Value[k]=1")
    assert_own_error(r, 400, 3, "not a map")
