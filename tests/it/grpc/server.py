"""A real gRPC server (grpcio) for the gateway's tests: service
portcullis.test.Echo with the four call shapes, an error and a slow call.
Raw bytes in and out (no generated code). Prints its port, then serves
plaintext HTTP/2 (h2c) on 127.0.0.1 until killed."""

import json
import sys
import time
from concurrent import futures

import grpc

LIMIT = 16 << 20


def metadata(ctx):
    """Every value of every key (a forged duplicate would show)."""
    out = {}
    for k, v in ctx.invocation_metadata():
        out.setdefault(k, []).append(v if isinstance(v, str) else repr(v))
    return out


def unary(req, ctx):
    ctx.set_trailing_metadata((("x-served-by", "python"),))
    md = metadata(ctx)
    return json.dumps(
        {
            "len": len(req),
            "xfcc": md.get("x-forwarded-client-cert", []),
            "client-cert": md.get("client-cert", []),
            "ssl-client-verify": md.get("ssl-client-verify", []),
        }
    ).encode()


def server_stream(req, ctx):
    ask = json.loads(req)
    for i in range(ask["count"]):
        yield bytes([i % 256]) * ask["size"]


def client_stream(reqs, ctx):
    sizes = [len(r) for r in reqs]
    return json.dumps({"count": len(sizes), "total": sum(sizes)}).encode()


def bidi(reqs, ctx):
    for r in reqs:
        yield r[::-1]


def fail(req, ctx):
    ctx.set_trailing_metadata((("x-detail", "yes"),))
    ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad thing")


def slow(req, ctx):
    time.sleep(float(req.decode() or "2"))
    return b"late"


def main():
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
    }
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[
            ("grpc.max_receive_message_length", LIMIT),
            ("grpc.max_send_message_length", LIMIT),
        ],
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("portcullis.test.Echo", handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
