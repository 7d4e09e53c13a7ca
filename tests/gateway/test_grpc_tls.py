"""Native gRPC through the gateway, untouched, over TLS: a real gRPC client (Python
grpcio) lists services by server reflection and calls methods, with the server name
demo.example.com (like `grpcurl -insecure -authority demo.example.com HOST:443 list`,
but verifying the certificate); mutual TLS accepts a good client certificate and
refuses none or one from another CA; HTTP/1.1 and h2 share the port (ALPN)."""

from __future__ import annotations

import socket

import grpc
import pytest
import urllib3
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

import harness
from gateway import SERVER_NAME

OPTIONS = [("grpc.ssl_target_name_override", SERVER_NAME), ("grpc.default_authority", SERVER_NAME)]


def channel(gw, certs, client: str | None = None) -> grpc.Channel:
    key = chain = None
    if client == "good":
        key, chain = certs.client_key.read_bytes(), certs.client_cert.read_bytes()
    elif client == "rogue":
        key, chain = certs.rogue_key.read_bytes(), certs.rogue_cert.read_bytes()
    creds = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes(), private_key=key,
                                         certificate_chain=chain)
    return grpc.secure_channel(f"127.0.0.1:{gw.port}", creds, options=OPTIONS)


def list_and_call(ch: grpc.Channel) -> tuple[list[str], str]:
    """Services listed by reflection, and SayHello called with the descriptors reflection gave."""
    db = ProtoReflectionDescriptorDatabase(ch)
    services = sorted(db.get_services())
    pool = descriptor_pool.DescriptorPool(db)
    method = pool.FindServiceByName("greeter.v1.Greeter").FindMethodByName("SayHello")
    req_cls = message_factory.GetMessageClass(method.input_type)
    rep_cls = message_factory.GetMessageClass(method.output_type)
    call = ch.unary_unary("/greeter.v1.Greeter/SayHello", request_serializer=req_cls.SerializeToString,
                          response_deserializer=rep_cls.FromString)
    reply = call(req_cls(name="reflection"), timeout=harness.REQUEST_TIMEOUT)
    return services, reply.message


def test_reflection_lists_and_calls_over_tls(tls_gw, certs):
    with channel(tls_gw, certs) as ch:
        services, message = list_and_call(ch)
    assert "greeter.v1.Greeter" in services and "grpc.reflection.v1alpha.ServerReflection" in services, services
    assert message == "Hello, reflection!"
    tls_gw.wait_for_log(r'"POST /grpc\.reflection\.v1alpha\.ServerReflection/ServerReflectionInfo HTTP/2" 200 ')
    tls_gw.wait_for_log(r'"POST /greeter\.v1\.Greeter/SayHello HTTP/2" 200 ')


def test_native_grpc_to_the_tonic_service_over_tls(tls_gw, certs):
    # The tonic service has no reflection: its descriptors come from the set the gateway uses.
    fds = descriptor_pb2.FileDescriptorSet.FromString(harness.DESCRIPTORS.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    method = pool.FindServiceByName("echo.v1.EchoService").FindMethodByName("EchoPost")
    req_cls = message_factory.GetMessageClass(method.input_type)
    rep_cls = message_factory.GetMessageClass(method.output_type)
    with channel(tls_gw, certs) as ch:
        call = ch.unary_unary("/echo.v1.EchoService/EchoPost", request_serializer=req_cls.SerializeToString,
                              response_deserializer=rep_cls.FromString)
        reply = call(req_cls(request="native"), timeout=harness.REQUEST_TIMEOUT)
    assert "request=native" in reply.response, reply


def test_grpc_status_passes_through_untouched(tls_gw, certs):
    with channel(tls_gw, certs) as ch:
        call = ch.unary_unary("/greeter.v1.Greeter/SayHello")  # raw bytes: an empty HelloRequest
        with pytest.raises(grpc.RpcError) as err:
            call(b"", timeout=harness.REQUEST_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "name is required"


@pytest.mark.parametrize("offer, chosen", [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")])
def test_alpn_offers_h2_and_http11_on_one_port(tls_gw, certs, offer, chosen):
    ctx = certs.context(None, offer)
    with socket.create_connection(("127.0.0.1", tls_gw.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
            assert tls.selected_alpn_protocol() == chosen


def test_mtls_accepts_a_good_client_certificate(mtls_gw, certs):
    status, body = mtls_gw.json("POST", "/greeter/v1/hello", {"name": "mtls"}, certs=certs, client="good")
    assert status == 200 and body["message"] == "Hello, mtls!", body
    with channel(mtls_gw, certs, "good") as ch:
        services, message = list_and_call(ch)
    assert "greeter.v1.Greeter" in services and message == "Hello, reflection!"


@pytest.mark.parametrize("client, stat", [(None, "ssl.fail_verify_no_cert"), ("rogue", "ssl.fail_verify_error")])
def test_mtls_refuses_a_missing_or_foreign_certificate(mtls_gw, certs, client, stat):
    before = mtls_gw.stat(stat)
    with pytest.raises((urllib3.exceptions.HTTPError, OSError)):
        mtls_gw.request("POST", "/greeter/v1/hello", {"name": "nobody"}, certs=certs, client=client)
    with channel(mtls_gw, certs, client) as ch:
        with pytest.raises(grpc.RpcError) as err:
            ch.unary_unary("/greeter.v1.Greeter/SayHello")(b"\n\x01x", timeout=harness.REQUEST_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    assert mtls_gw.stat(stat) - before >= 2, f"{stat} did not count the refused handshakes"
    assert "Hello, nobody" not in mtls_gw.log_text()
