#!/usr/bin/env python3
"""Reload under load: mutual-TLS clients send requests without pause while the
server certificate is rotated and the gateway reloaded ROUNDS times.

  reload.py BIN WORKDIR ROUNDS CLIENTS
Prints the number of reloads, requests that succeeded, and requests that failed.
"""
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

bin_, work, rounds, clients = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.chdir(work)


def run(*args):
    subprocess.run([bin_, *args], check=True, stdout=subprocess.DEVNULL)


run("ca", "init", "--out", "ca", "--cn", "reload bench CA")
for name in ("a", "b"):
    run("cert", "issue", "--ca", "ca", "--profile", "server", "--out", f"srv-{name}", "--dns", "bench.test")
run("cert", "issue", "--ca", "ca", "--profile", "client", "--out", "cli", "--cn", "bench-client")
for ext in ("crt", "key"):
    with open(f"srv-a.{ext}") as src, open(f"server.{ext}", "w") as dst:
        dst.write(src.read())
with open("portcullis.yaml", "w") as f:
    f.write(
        "certificates: { server: { certFile: server.crt, keyFile: server.key } }\n"
        "trustBundles: { ca: { caFile: ca/ca.crt } }\n"
        "logging: { access: false }\n"
        "listeners:\n"
        "  - { name: main, address: \"127.0.0.1:0\", protocol: https,\n"
        "      hosts: [ { hostnames: [bench.test], certificate: server,\n"
        "                 clientAuth: { mode: require, trustBundle: ca },\n"
        "                 routes: [ { pathPrefix: /, upstream: echo } ] } ] }\n"
        "upstreams: { echo: { builtin: echo } }\n"
    )

proc = subprocess.Popen([bin_, "run", "-c", "portcullis.yaml", "--log-format", "json"], stdout=subprocess.PIPE, text=True)
reloaded = 0
port = None
cond = threading.Condition()


def follow():
    global reloaded, port
    for line in proc.stdout:
        with cond:
            if '"message":"reloaded"' in line:
                reloaded += 1
            if '"message":"listening"' in line and port is None:
                port = int(line.split('"address":"127.0.0.1:')[1].split('"')[0])
            cond.notify_all()


threading.Thread(target=follow, daemon=True).start()
with cond:
    cond.wait_for(lambda: port is not None, timeout=20)

ok = 0
failed = 0
stop = False
lock = threading.Lock()
ctx = ssl.create_default_context(cafile="ca/ca.crt")
ctx.load_cert_chain("cli.crt", "cli.key")


def client():
    global ok, failed
    while not stop:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="bench.test") as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n")
                    head = s.recv(12)
                    while s.recv(65536):
                        pass
            good = head.startswith(b"HTTP/1.1 200")
        except Exception:
            good = False
        with lock:
            if good:
                ok += 1
            else:
                failed += 1


threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads:
    t.start()
start = time.monotonic()
for i in range(rounds):
    src = "srv-b" if i % 2 == 0 else "srv-a"
    for ext in ("key", "crt"):
        with open(f"{src}.{ext}") as s, open(f".server.{ext}.new", "w") as d:
            d.write(s.read())
        os.replace(f".server.{ext}.new", f"server.{ext}")
    with cond:
        want = reloaded + 1
        proc.send_signal(1)  # SIGHUP
        if not cond.wait_for(lambda: reloaded >= want, timeout=20):
            sys.exit(f"reload {i + 1} did not happen")
took = time.monotonic() - start
stop = True
for t in threads:
    t.join()
proc.terminate()
proc.wait()
print(f"reloads {reloaded} in {took:.1f} s, requests ok {ok}, failed {failed}")
sys.exit(1 if failed else 0)
