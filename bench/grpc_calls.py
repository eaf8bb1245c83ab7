"""Drives unary gRPC calls for bench/grpc (not named grpc.py: that would
shadow the grpc package): TARGET is `direct:HOST:PORT`
(plaintext h2c to the service) or `tls:HOST:PORT` (mutual TLS through a
proxy, as grpc.test). Makes CALLS calls on one channel from THREADS
threads, after a warm-up, and prints one JSON object: calls, seconds,
calls/s, p50 and p99 latency in microseconds."""

import json
import sys
import threading
import time

import grpc


def main():
    target, calls, threads, pki = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    kind, address = target.split(":", 1)
    if kind == "direct":
        ch = grpc.insecure_channel(address)
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=open(f"{pki}/ca/ca.crt", "rb").read(),
            private_key=open(f"{pki}/cli.key", "rb").read(),
            certificate_chain=open(f"{pki}/cli.crt", "rb").read(),
        )
        ch = grpc.secure_channel(
            address,
            creds,
            options=[
                ("grpc.ssl_target_name_override", "grpc.test"),
                ("grpc.default_authority", "grpc.test"),
            ],
        )
    unary = ch.unary_unary("/portcullis.test.Echo/Unary")
    for _ in range(200):
        unary(b"warm-up", timeout=10)
    per = calls // threads
    lat = [[] for _ in range(threads)]

    def run(i):
        own = lat[i]
        for _ in range(per):
            t = time.perf_counter()
            unary(b"x" * 64, timeout=10)
            own.append(time.perf_counter() - t)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.perf_counter() - start
    all_ = sorted(x for l in lat for x in l)
    n = len(all_)
    print(
        json.dumps(
            {
                "calls": n,
                "seconds": secs,
                "calls_per_s": n / secs,
                "p50_us": all_[n // 2] * 1e6,
                "p99_us": all_[min(n - 1, n * 99 // 100)] * 1e6,
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
