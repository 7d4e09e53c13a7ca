#!/usr/bin/env python3
"""The second gRPC backend of the gateway tests: greeter.v1.Greeter in Python grpcio,
with server reflection (grpcio-reflection), built from a descriptor set at run time
(no generated code).

  greeter_server.py --descriptor greeter.pb --listen 127.0.0.1:0 --version v1

prints `listening on HOST:PORT` once it serves; SIGTERM stops it.

Names that steer the reply, for the route-policy tests:
  sleep-<ms>      the reply comes after <ms> milliseconds (route timeouts)
  flaky-<tag>     the first two calls with this name fail UNAVAILABLE, the third succeeds (retries)
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections import Counter

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection

SERVICE = "greeter.v1.Greeter"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--descriptor", required=True, help="FileDescriptorSet with greeter/v1/greeter.proto")
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--version", default="v1", help="put in every reply's `version` (canary tests)")
    a = p.parse_args(argv)

    fds = descriptor_pb2.FileDescriptorSet.FromString(open(a.descriptor, "rb").read())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    svc = pool.FindServiceByName(SERVICE)
    request_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("greeter.v1.HelloRequest"))
    reply_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("greeter.v1.HelloReply"))

    attempts: Counter[str] = Counter()
    lock = threading.Lock()

    def say_hello(request, context):
        if not request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is required")
        if request.name.startswith("sleep-"):
            time.sleep(int(request.name.removeprefix("sleep-")) / 1000)
        if request.name.startswith("flaky-"):
            with lock:
                attempts[request.name] += 1
                n = attempts[request.name]
            if n <= 2:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"attempt {n} of {request.name} fails")
        return reply_cls(message=f"Hello, {request.name}!", version=a.version)

    def get_greeting(request, context):
        if request.name.startswith("sleep-"):
            time.sleep(int(request.name.removeprefix("sleep-")) / 1000)
        return reply_cls(message=f"Greetings, {request.name}.", version=a.version)

    handlers = {
        "SayHello": say_hello,
        "GetGreeting": get_greeting,
    }
    assert {m.name for m in svc.methods} == set(handlers), "greeter.proto and the handlers disagree"
    generic = grpc.method_handlers_generic_handler(SERVICE, {
        name: grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=request_cls.FromString, response_serializer=reply_cls.SerializeToString)
        for name, fn in handlers.items()
    })
    from concurrent import futures
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((generic,))
    reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), server, pool=pool)
    port = server.add_insecure_port(a.listen)
    if port == 0:
        print(f"cannot listen on {a.listen}", file=sys.stderr)
        return 2
    server.start()
    host = a.listen.rsplit(":", 1)[0]
    print(f"listening on {host}:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
