#!/usr/bin/env python3
"""Stream throughput through a TLS-terminating proxy.

  stream.py sink PORT            plain TCP sink: reads an 8-byte length, then that many
                                 bytes, then answers b"done" (one connection at a time)
  stream.py send HOST:PORT MIB CA CERT KEY SNI
                                 sends MIB MiB over mutual TLS and prints the seconds
                                 until the sink confirmed receipt
The same client and sink measure every proxy, so only the proxy differs.
"""
import socket
import ssl
import struct
import sys
import time

CHUNK = 1 << 20


def sink(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            head = b""
            while len(head) < 8:
                part = conn.recv(8 - len(head))
                if not part:
                    break
                head += part
            if len(head) < 8:
                continue
            (want,) = struct.unpack("!Q", head)
            got = 0
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while got < want:
                n = conn.recv_into(view)
                if n == 0:
                    break
                got += n
            conn.sendall(b"done")


def send(target, mib, ca, cert, key, sni):
    host, port = target.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    total = int(mib) * CHUNK
    payload = b"\x5a" * CHUNK
    with socket.create_connection((host, int(port))) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            start = time.monotonic()
            s.sendall(struct.pack("!Q", total))
            sent = 0
            while sent < total:
                s.sendall(payload)
                sent += CHUNK
            answer = s.recv(4)
            took = time.monotonic() - start
    if answer != b"done":
        sys.exit("the sink did not confirm")
    print(f"{took:.6f}")


if __name__ == "__main__":
    if sys.argv[1] == "sink":
        sink(int(sys.argv[2]))
    else:
        send(*sys.argv[2:8])
