"""A real gRPC client (grpcio) for the gateway's tests. Usage:
client.py ADDRESS NAME CA [CERT KEY]. Makes every call of the test plan over
one channel (mutual TLS when CERT and KEY are given, SNI and :authority
NAME) and prints one JSON object with what each call gave."""

import json
import sys
import time

import grpc

LIMIT = 16 << 20


def outcome(f):
    try:
        return {"ok": f()}
    except grpc.RpcError as e:
        return {
            "code": e.code().name,
            "details": e.details(),
            "trailers": {k: v for k, v in (e.trailing_metadata() or ()) if isinstance(v, str)},
        }


def main():
    address, name, ca = sys.argv[1:4]
    cert = key = None
    if len(sys.argv) > 5:
        cert = open(sys.argv[4], "rb").read()
        key = open(sys.argv[5], "rb").read()
    creds = grpc.ssl_channel_credentials(
        root_certificates=open(ca, "rb").read(), private_key=key, certificate_chain=cert
    )
    ch = grpc.secure_channel(
        address,
        creds,
        options=[
            ("grpc.ssl_target_name_override", name),
            ("grpc.default_authority", name),
            ("grpc.max_receive_message_length", LIMIT),
            ("grpc.max_send_message_length", LIMIT),
        ],
    )
    svc = "/portcullis.test.Echo/"
    unary = ch.unary_unary(svc + "Unary")
    out = {}

    # A client that sends identity metadata of its own.
    forged = (
        ("x-forwarded-client-cert", "By=spiffe://evil;Hash=00"),
        ("client-cert", ":ZXZpbA==:"),
        ("ssl-client-verify", "SUCCESS"),
    )

    def call_unary():
        resp, call = unary.with_call(b"hello", timeout=20, metadata=forged)
        trailers = {k: v for k, v in call.trailing_metadata() if isinstance(v, str)}
        return {"response": json.loads(resp), "trailers": trailers, "code": call.code().name}

    out["unary"] = outcome(call_unary)
    if "ok" not in out["unary"]:
        print(json.dumps(out))
        return
    size = 3 << 20
    out["server_stream"] = outcome(
        lambda: [
            (len(m), m[0])
            for m in ch.unary_stream(svc + "ServerStream")(
                json.dumps({"count": 3, "size": size}).encode(), timeout=60
            )
        ]
    )
    out["client_stream"] = outcome(
        lambda: json.loads(
            ch.stream_unary(svc + "ClientStream")(
                iter([b"a" * 1000] * 5 + [b"b" * size]), timeout=60
            )
        )
    )
    sent = [b"one", b"two", b"x" * size]
    out["bidi"] = outcome(
        lambda: [
            m == s[::-1]
            for m, s in zip(ch.stream_stream(svc + "Bidi")(iter(sent), timeout=60), sent)
        ]
    )
    out["fail"] = outcome(lambda: ch.unary_unary(svc + "Fail")(b"x", timeout=20))
    out["deadline"] = outcome(lambda: ch.unary_unary(svc + "Slow")(b"3", timeout=0.5))

    # One slow stream never blocks another: a quick call on the same
    # channel finishes while a slow one is still running.
    slow = ch.unary_unary(svc + "Slow").future(b"2", timeout=30)
    started = time.monotonic()
    quick = outcome(lambda: unary(b"quick", timeout=20) and "done")
    out["independent"] = {
        "quick": quick,
        "slow_still_running": not slow.done(),
        "quick_seconds": time.monotonic() - started,
        "slow": outcome(lambda: slow.result().decode()),
    }
    out["unreachable"] = outcome(
        lambda: ch.unary_unary("/portcullis.test.Dead/Unary")(b"x", timeout=20)
    )
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
