"""Query parameters as grpc-gateway maps them, where Envoy's native filter falls
short (grpc-gateway's `PopulateParameters` cases, on EchoTypes, which answers
with the request it received). Each test records native's answer too, so the
README's list of where we go beyond native stays true.
"""

import pytest

from checks import assert_answer, assert_native_text_error, assert_own_error, assert_passed_through, assert_same, describe
from harness import with_defaults

TYPES = "/v1/types/s/n"
BASE = {"stringValue": "s", "nested": {"name": "n"}}
STRICT = with_defaults(request_validation_options={"reject_unknown_query_parameters": True})
LENIENT = with_defaults(ignore_unknown_query_parameters=True)


@pytest.mark.parametrize("query", ["fieldMask=floatValue,doubleValue", "fieldMask=float_value,double_value",
                                   "field_mask=float_value,doubleValue"])
def test_field_masks_in_proto_or_json_names(both, query):
    """Both spellings reach the backend as proto names, as native sends them."""
    r = assert_same(both(None, "GET", f"{TYPES}?{query}"))
    assert_answer(r, 200, {**BASE, "fieldMask": "floatValue,doubleValue"})


@pytest.mark.parametrize("query, fields", [
    ("structValue=%7B%22a%22%3A%7B%22b%22%3A1%7D%7D", {"structValue": {"a": {"b": 1}}}),
    ("listValue=%5B1%2C%22x%22%5D", {"listValue": [1, "x"]}),
    ("value=%5B%5D", {"value": []}),
    ("value=true", {"value": True}),
    ("value=0", {"value": 0}),
])
def test_struct_and_value_parameters_are_json(both, query, fields):
    """Beyond native: grpc-gateway reads these as JSON; native refuses a Struct or
    ListValue (400 text/plain) and makes every Value a string."""
    native, wasm = both(None, "GET", f"{TYPES}?{query}")
    assert_answer(wasm, 200, {**BASE, **fields})
    if "structValue" in query or "listValue" in query:
        assert_native_text_error(native, 400, "invalid value")
    else:
        assert native.status_code == 200 and isinstance(native.json()["value"], str), describe(native)


@pytest.mark.parametrize("query, fields", [
    ("int32Wrapper.value=3", {"int32Wrapper": 3}),
    ("timestamp.seconds=5&timestamp.nanos=500000000", {"timestamp": "1970-01-01T00:00:05.500Z"}),
])
def test_fields_inside_well_known_types(both, query, fields):
    r = assert_same(both(None, "GET", f"{TYPES}?{query}"))
    assert_answer(r, 200, {**BASE, **fields})


@pytest.mark.parametrize("options", [None, LENIENT, STRICT], ids=["default", "ignore-unknown", "strict"])
@pytest.mark.parametrize("query, needle", [
    ("floatValue.nested=test", "`floatValue` is a float field"),
    ("repeatedColor.nested=x", "`repeatedColor` is an enum"),
    ("stringMap.a=1", "`stringMap` is a map"),
])
def test_a_path_through_a_scalar_is_refused(both, options, query, needle):
    """A client mistake, refused in every mode as grpc-gateway refuses it; native
    treats the name as unknown (passes the request on untranscoded, or drops the
    parameter with ignore_unknown_query_parameters)."""
    native, wasm = both(options, "GET", f"{TYPES}?{query}")
    assert_own_error(wasm, 400, 3, needle)
    if options is None:
        assert_passed_through(native)
    elif options is LENIENT:
        assert_answer(native, 200, BASE)
    else:
        assert_native_text_error(native, 400)


def test_a_singular_field_given_twice(both):
    """Native keeps the last value, and so do we by default; strict mode
    (reject_unknown_query_parameters) refuses it, as grpc-gateway does."""
    r = assert_same(both(None, "GET", f"{TYPES}?uint64Value=1&uint64Value=2"))
    assert_answer(r, 200, {**BASE, "uint64Value": "2"})
    native, wasm = both(STRICT, "GET", f"{TYPES}?uint64Value=1&uint64Value=2")
    assert_own_error(wasm, 400, 3, "`uint64Value`", "more than once")
    assert native.status_code == 200, describe(native)


def test_a_path_through_a_repeated_well_known_type_is_refused(both):
    """As grpc-gateway: the elements of a repeated Timestamp (or wrapper) are set
    whole, once per element; native builds one element from its fields."""
    native, wasm = both(None, "GET", f"{TYPES}?repeatedTimestamp.seconds=1")
    assert_own_error(wasm, 400, 3, "repeated message field `repeatedTimestamp`", "repeatedTimestamp=value")
    assert_answer(native, 200, {**BASE, "repeatedTimestamp": ["1970-01-01T00:00:01Z"]})
