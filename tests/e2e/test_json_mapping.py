"""The proto3 JSON mapping both ways, through `POST /v1/types:echo` (EchoTypes
answers with its request, so JSON in = JSON out after two transcodings),
compared with Envoy's native transcoder.

Bodies are compared parsed and, where it matters, byte for byte (number
format, map order, add_whitespace indentation).
"""

import json

import pytest

from checks import JSON, assert_answer, assert_native_text_error, assert_own_error, assert_same
from harness import with_defaults

ECHO = "/v1/types:echo"

# Every field kind of AllTypes (bool-keyed maps aside: they crash native Envoy,
# see test_bool_map_keys), in proto3 JSON canonical form, so the echo must give
# it back unchanged.
ALL_TYPES = {
    "doubleValue": 1.5, "floatValue": "Infinity", "int32Value": -3, "int64Value": "-9223372036854775808",
    "uint32Value": 4294967295, "uint64Value": "18446744073709551615", "sint32Value": -5, "sint64Value": "-6",
    "fixed32Value": 7, "fixed64Value": "8", "sfixed32Value": -9, "sfixed64Value": "-10",
    "boolValue": True, "stringValue": "ü\U0001F600\u0000\n\"", "bytesValue": "AAEC/w==", "color": "BLUE",
    "nested": {"name": "n", "count": 2, "child": {"name": "c"}},
    "repeatedInt32": [1, 2], "repeatedString": ["a", ""], "repeatedColor": ["RED", "GREEN"],
    "repeatedNested": [{"name": "x"}, {}], "repeatedInt64": ["1", "-2"],
    "stringMap": {"k": "v"}, "int32Map": {"-1": "m"}, "int64Map": {"5": {"name": "five"}},
    "colorMap": {"c": "RED"},
    "choiceNested": {"name": "oneof"},
    "optionalInt32": 0, "optionalString": "",
    "timestamp": "1972-01-01T10:00:20.021Z", "duration": "-1.000340012s", "fieldMask": "fooBar,baz.qux",
    "structValue": {"a": [1.5, "two", None, {"b": False}]}, "value": "text", "listValue": [-2.5, {"x": None}],
    "any": {"@type": "type.googleapis.com/bookstore.v1.Shelf", "id": "1", "theme": "t"},
    "empty": {},
    "int32Wrapper": 0, "int64Wrapper": "64", "uint32Wrapper": 32, "uint64Wrapper": "65",
    "floatWrapper": 1.25, "doubleWrapper": 2.5, "boolWrapper": False, "stringWrapper": "", "bytesWrapper": "Yg==",
    "repeatedTimestamp": ["2020-01-01T00:00:00Z"],
}


def test_every_field_kind_round_trips_like_native(both):
    r = assert_same(both(None, "POST", ECHO, body=ALL_TYPES), exact_text=True)
    assert_answer(r, 200, ALL_TYPES)


@pytest.mark.parametrize("field", sorted(ALL_TYPES))
def test_each_field_alone_like_native(both, field):
    r = assert_same(both(None, "POST", ECHO, body={field: ALL_TYPES[field]}), exact_text=True)
    assert_answer(r, 200, {field: ALL_TYPES[field]})


# (id, input body, canonical output)
NORMALISED = [
    ("int64 from JSON numbers", {"int64Value": 5, "uint64Value": 7, "sfixed64Value": -1},
     {"int64Value": "5", "uint64Value": "7", "sfixed64Value": "-1"}),
    ("int32 from a string", {"int32Value": "5", "uint32Value": "6"}, {"int32Value": 5, "uint32Value": 6}),
    ("integral float for an int", {"int32Value": 1.0, "int64Value": 1e3}, {"int32Value": 1, "int64Value": "1000"}),
    ("enum by number", {"color": 2, "repeatedColor": [1, "BLUE"]}, {"color": "GREEN", "repeatedColor": ["RED", "BLUE"]}),
    ("unknown enum number kept", {"color": 7, "colorMap": {"a": 99}}, {"color": 7, "colorMap": {"a": 99}}),
    ("bytes base64url and unpadded", {"bytesValue": "YW-_", "bytesWrapper": "YWJ"}, {"bytesValue": "YW+/", "bytesWrapper": "YWI="}),
    ("timestamp with offset", {"timestamp": "2020-01-02T03:04:05.5+01:30"}, {"timestamp": "2020-01-02T01:34:05.500Z"}),
    ("timestamp precision", {"timestamp": "2020-01-01T00:00:00.123456789Z"}, {"timestamp": "2020-01-01T00:00:00.123456789Z"}),
    ("duration precision", {"duration": "1.5s", "any": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"}},
     {"duration": "1.500s", "any": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"}}),
    ("NaN and infinities", {"doubleValue": "NaN", "floatValue": "-Infinity", "doubleWrapper": "Infinity", "floatWrapper": "NaN"},
     {"doubleValue": "NaN", "floatValue": "-Infinity", "doubleWrapper": "Infinity", "floatWrapper": "NaN"}),
    ("float strings", {"doubleValue": "1e5", "floatValue": "0x10", "doubleWrapper": "0x1p3"},
     {"doubleValue": 100000, "floatValue": 16, "doubleWrapper": 8}),
    ("default scalars omitted", {"int32Value": 0, "stringValue": "", "boolValue": False, "color": "COLOR_UNSPECIFIED",
                                 "doubleValue": -0.0, "bytesValue": ""}, {}),
    ("nulls", {"int32Value": None, "nested": None, "repeatedInt32": None, "color": None, "optionalInt32": None,
               "choiceString": None, "value": None}, {"value": None}),
    ("oneof: int member", {"choiceInt": 0}, {"choiceInt": 0}),
    ("oneof: empty message member", {"choiceNested": {}}, {"choiceNested": {}}),
    ("oneof: null member then another", {"choiceString": None, "choiceInt": 1}, {"choiceInt": 1}),
    ("struct and value kinds", {"value": {"a": [1, True, None, "s", {"b": 2.5}]}, "listValue": [None, 1], "structValue": {}},
     {"value": {"a": [1, True, None, "s", {"b": 2.5}]}, "listValue": [None, 1], "structValue": {}}),
    ("any of a nested type", {"any": {"@type": "type.googleapis.com/bookstore.v1.Nested", "name": "x", "child": {"count": 1}}},
     {"any": {"@type": "type.googleapis.com/bookstore.v1.Nested", "name": "x", "child": {"count": 1}}}),
    ("any of a wrapper", {"any": {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "5"}},
     {"any": {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "5"}}),
    ("maps with several entries, sorted by key",
     {"stringMap": {"b": "1", "a": "2", "B": "3", "é": "4"}, "int32Map": {"5": "x", "-1": "y", "10": "z"},
      "int64Map": {"20": {"name": "n"}, "3": {"name": "m"}}, "colorMap": {"z": "RED", "a": 3}},
     {"stringMap": {"B": "3", "a": "2", "b": "1", "é": "4"}, "int32Map": {"-1": "y", "5": "x", "10": "z"},
      "int64Map": {"3": {"name": "m"}, "20": {"name": "n"}}, "colorMap": {"a": "BLUE", "z": "RED"}}),
    ("struct fields sorted", {"structValue": {"z": 1, "a": {"y": True, "b": [{"d": 1, "c": 2}]}}},
     {"structValue": {"a": {"b": [{"c": 2, "d": 1}], "y": True}, "z": 1}}),
    ("duplicate keys: last wins", None, None),
    ("unknown fields ignored", {"nope": 1, "nested": {"name": "n", "zzz": [1]}, "empty": {"x": 1}},
     {"nested": {"name": "n"}, "empty": {}}),
]
NORMALISED = [n for n in NORMALISED if n[1] is not None]


@pytest.mark.parametrize("body, expected", [n[1:] for n in NORMALISED], ids=[n[0] for n in NORMALISED])
def test_json_is_read_and_printed_like_native(both, body, expected):
    r = assert_same(both(None, "POST", ECHO, body=body), exact_text=True)
    assert_answer(r, 200, expected)


def test_duplicate_keys_last_one_wins(both):
    body = b'{"int32Value": 1, "int32Value": 2, "nested": {"name": "a"}, "int32_value": 3}'
    r = assert_same(both(None, "POST", ECHO, body=body, headers={"content-type": JSON}))
    assert_answer(r, 200, {"int32Value": 3, "nested": {"name": "a"}})


def test_camel_case_and_proto_names_on_input(both):
    body = {"int64_value": 5, "repeated_string": ["x"], "choice_int": 3, "nested": {"name": "n"},
            "stringMap": {"a": "b"}, "optional_string": "o", "int32_wrapper": 4}
    r = assert_same(both(None, "POST", ECHO, body=body), exact_text=True)
    assert_answer(r, 200, {"int64Value": "5", "repeatedString": ["x"], "choiceInt": 3, "nested": {"name": "n"},
                           "stringMap": {"a": "b"}, "optionalString": "o", "int32Wrapper": 4})


# ------------------------------------------------------------------ numbers, byte for byte

NUMBERS = [1.0, 1e21, 1e-7, 0.1, 1.5e300, 123456789.125, -2.5, 1e15, 5e-324, 1.7976931348623157e308, 0.30000000000000004,
           3.4028234663852886e38, 1.1754943508222875e-38, 16777217.0, 0.2]


@pytest.mark.parametrize("number", NUMBERS, ids=[repr(n) for n in NUMBERS])
def test_floats_and_doubles_print_like_native(both, number):
    """protobuf prints doubles as %.15g (%.17g when needed) and floats as %.6g
    (%.9g when needed): 1 for 1.0, 1e-07, 123456792 for that float."""
    body = {"doubleValue": number, "doubleWrapper": number, "structValue": {"n": number}, "listValue": [number]}
    if abs(number) <= 3.4028234663852886e38:
        body.update(floatValue=number, floatWrapper=number)
    assert_same(both(None, "POST", ECHO, body=body), exact_text=True)


# ------------------------------------------------------------------ print options

PRINT_DEFAULTS = {"add_whitespace": False, "always_print_primitive_fields": False,
                  "always_print_enums_as_ints": False, "preserve_proto_field_names": False}

PRINT_BODY = {"int32Value": 1, "color": "RED", "nested": {"name": "x", "child": {}}, "repeatedColor": ["BLUE"],
              "colorMap": {"b": "GREEN", "a": "RED"}, "choiceNested": {"count": 2}, "optionalInt32": 0,
              "doubleValue": 2.0, "int64Wrapper": "7", "timestamp": "2020-01-01T00:00:00Z", "structValue": {"k": [1, 2.5]}}


@pytest.mark.parametrize("option", [None, "add_whitespace", "always_print_primitive_fields",
                                    "always_print_enums_as_ints", "preserve_proto_field_names", "all"])
def test_print_options_like_native(both, option):
    """Compared byte for byte: with add_whitespace the indentation (one space per
    level, as protobuf's printer) and the final newline match native too."""
    print_options = dict(PRINT_DEFAULTS)
    if option == "all":
        print_options = {k: True for k in PRINT_DEFAULTS}
    elif option:
        print_options[option] = True
    options = with_defaults(print_options=print_options)
    for method, path, body in [("POST", ECHO, PRINT_BODY), ("POST", ECHO, {}), ("GET", "/v1/shelves/1/books/2", None),
                               ("GET", "/v1/shelves/1/books?filter.genre=SCIENCE", None), ("DELETE", "/v1/shelves/1", None)]:
        r = assert_same(both(options, method, path, body=body), exact_text=True)
        assert r.status_code == 200


def test_add_whitespace_indents_by_one_space_with_a_final_newline(both):
    options = with_defaults(print_options={**PRINT_DEFAULTS, "add_whitespace": True})
    r = assert_same(both(options, "POST", ECHO, body={"nested": {"name": "x"}, "repeatedInt32": [1]}), exact_text=True)
    assert r.text == '{\n "nested": {\n  "name": "x"\n },\n "repeatedInt32": [\n  1\n ]\n}\n'


def test_print_options_values(both):
    options = with_defaults(print_options={**PRINT_DEFAULTS, "always_print_enums_as_ints": True,
                                           "preserve_proto_field_names": True})
    r = assert_same(both(options, "POST", ECHO, body={"repeatedColor": ["BLUE"], "colorMap": {"a": "RED"}, "int32Value": 1}))
    assert_answer(r, 200, {"int32_value": 1, "repeated_color": [3], "color_map": {"a": 1}})
    options = with_defaults(print_options={**PRINT_DEFAULTS, "always_print_primitive_fields": True})
    r = assert_same(both(options, "POST", ECHO, body={}))
    printed = r.json()
    assert printed["int64Value"] == "0" and printed["color"] == "COLOR_UNSPECIFIED" and printed["stringMap"] == {}
    assert "nested" not in printed and "optionalInt32" not in printed and "choiceInt" not in printed


# ------------------------------------------------------------------ maps native cannot print

@pytest.mark.parametrize("body", [
    {"boolMap": {"true": "yes", "false": "no"}},
    {"boolMap": {"true": "t"}},
    {"int32Map": {"0": "zero key"}},
    {"stringMap": {"": "empty key", "k": ""}},
    {"int64Map": {"-5": {}}},
])
def test_map_entries_with_default_keys_or_values_and_bool_keys(wasm_envoy, body):
    """Ours only: native Envoy 1.40 crashes (SIGSEGV, the whole Envoy process)
    printing a map entry whose key or value is the default (the backend, like
    any proto3 encoder, leaves such fields out of the entry) and on bool-keyed
    maps, so there is no native answer to compare with."""
    r = wasm_envoy.post(ECHO, body=body)
    assert_answer(r, 200, body)


# ------------------------------------------------------------------ errors

BAD_BODIES = [
    # (body, the field our message names)
    ({"int32Value": "x"}, "int32Value"),
    ({"int32Value": 3000000000}, "int32Value"),
    ({"int32Value": 1.5}, "int32Value"),
    ({"uint32Value": -1}, "uint32Value"),
    ({"int64Value": "9223372036854775808"}, "int64Value"),
    ({"uint64Value": "-1"}, "uint64Value"),
    ({"floatValue": 3.5e38}, "floatValue"),
    ({"doubleValue": "nan"}, "doubleValue"),
    ({"doubleValue": "1e400"}, "doubleValue"),
    ({"boolValue": 1}, "boolValue"),
    ({"stringValue": 5}, "stringValue"),
    ({"bytesValue": "!!"}, "bytesValue"),
    ({"color": "PURPLE"}, "color"),
    ({"repeatedColor": ["blue"]}, "repeatedColor[0]"),
    ({"nested": {"count": "x"}}, "nested.count"),
    ({"nested": [1]}, "nested"),
    ({"int32Map": {"x": "a"}}, "int32Map"),
    ({"int64Map": {"1.5": {}}}, "int64Map"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"timestamp": "2020-01-01T00:00:00.1234567891Z"}, "timestamp"),
    ({"timestamp": "10000-01-01T00:00:00Z"}, "timestamp"),
    ({"duration": "5"}, "duration"),
    ({"duration": "315576000001s"}, "duration"),
    ({"any": {"@type": "type.googleapis.com/nope.Nope"}}, "any"),
    ({"any": {"id": 1}}, "any"),
    ({"choiceString": "a", "choiceInt": 1}, "oneof"),
]


@pytest.mark.parametrize("body, field", BAD_BODIES, ids=[json.dumps(b) for b, _ in BAD_BODIES])
def test_invalid_values_are_400_naming_the_field(both, body, field):
    """Deliberate difference in form only: both refuse (400); ours is a JSON
    google.rpc.Status naming the field, native's text/plain."""
    native, wasm = both(None, "POST", ECHO, body=body)
    assert_own_error(wasm, 400, 3, field)
    assert_native_text_error(native, 400)


@pytest.mark.parametrize("body, message", [
    (b'{"int32Value": "x"}', "invalid request body: field `int32Value`: invalid digit found in string"),
    (b"{", "the request body is not valid JSON: EOF while parsing an object at line 1 column 1"),
    (b'{"color": "PURPLE"}', "invalid request body: field `color`: unrecognized enum value 'PURPLE'"),
])
def test_body_error_answer_exactly(wasm_envoy, body, message):
    r = wasm_envoy.post(ECHO, body=body, headers={"content-type": JSON})
    assert_answer(r, 400, {"code": 3, "message": message})


@pytest.mark.parametrize("body", [b"[]", b'"str"', b"null", b"123", b"{} x", b'{"a": 1',
                                  b'{"stringValue": "\\ud800"}', b'{"theme": "\xff"}', b"\xff\xfe\x00garbage"])
def test_malformed_json_is_400(both, body):
    """Deliberate difference in form only: both refuse (400); ours is JSON."""
    native, wasm = both(None, "POST", ECHO, body=body, headers={"content-type": JSON})
    assert_own_error(wasm, 400, 3)
    assert_native_text_error(native, 400)


# Native's converter is lenient in ways the proto3 JSON spec is not; we follow the spec.
LENIENT = [
    ({"boolValue": "true"}, {"boolValue": True}),
    ({"repeatedInt32": [1, None, 2]}, {"repeatedInt32": [1, 2]}),
    ({"any": {}}, {"any": {}}),
    ({"boolMap": {"yes": "a"}}, {"boolMap": {"true": "a"}}),
    ({"fieldMask": "a_b"}, {"fieldMask": "aB"}),
    ({"repeatedInt32": 5, "repeatedNested": {"name": "x"}}, {"repeatedInt32": [5], "repeatedNested": [{"name": "x"}]}),
    ("{'int32Value': 1, 'stringValue': 'single'}", {"int32Value": 1, "stringValue": "single"}),
]


@pytest.mark.xfail(strict=True, reason="Not worth fixing now: native Envoy accepts these non-canonical inputs "
                                       "(bool as a string, null inside a repeated field, an Any without @type, a "
                                       "bool map key 'yes', a snake_case field mask, a lone value for a repeated "
                                       "field, single-quoted JSON strings) through protobuf's legacy lenient "
                                       "converter; the filter answers 400 as the proto3 JSON spec and RFC 8259 say.")
@pytest.mark.parametrize("body, expected", LENIENT, ids=[b if isinstance(b, str) else json.dumps(b) for b, _ in LENIENT])
def test_native_leniencies(both, body, expected):
    headers = {"content-type": JSON}
    r = assert_same(both(None, "POST", ECHO, body=body, headers=headers))
    assert_answer(r, 200, expected)
