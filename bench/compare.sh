#!/usr/bin/env bash
# Side-by-side: nginx, haproxy, caddy and portcullis, each with one worker
# pinned to CPU 0 in front of the same plain upstream, driven by
# `portcullis bench` on CPU 1. Metric: the proxy's own CPU time per operation
# (utime+stime from /proc/PID/stat), plus ops/s and p99. Targets are
# interleaved (A B C D A B C D …) and repeated. Every proxy prefers the same
# TLS 1.3 cipher (AES-128-GCM-SHA256), logs nothing per request, and offers
# h2 and http/1.1. Prints Markdown tables with ratios to nginx (haproxy for
# bulk, which nginx does not do here).
#
#   bench/compare.sh [SECONDS_PER_RUN] [ROUNDS]      default 5 s, 3 rounds
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
ROUNDS=${2:-3}
need=()
for c in nginx haproxy caddy socat taskset python3; do command -v "$c" >/dev/null || need+=("$c"); done
if ((${#need[@]})); then
  pkgs=(); for c in "${need[@]}"; do case $c in taskset) pkgs+=(util-linux);; python3) pkgs+=(python3);; *) pkgs+=("$c");; esac; done
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
[ "$(nproc)" -ge 2 ] || { echo "compare.sh needs two CPUs (proxy on one, load on the other)" >&2; exit 1; }
cargo build --release -q
BIN=$PWD/target/release/portcullis
W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; nginx -p "$W/ngx" -c "$W/ngx/nginx.conf" -s stop 2>/dev/null || true; nginx -p "$W/up" -c "$W/up/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
cd "$W"
"$BIN" ca init --out ca --cn "compare CA" >/dev/null
"$BIN" cert issue --ca ca --profile server --out srv --dns bench.test --ip 127.0.0.1 >/dev/null
"$BIN" cert issue --ca ca --profile client --out cli --cn bench-client >/dev/null
# A fleet of clients: more distinct certificates than any verification memo
# holds (portcullis remembers verified chains per host entry).
FLEET=${FLEET:-4000}
# The fixed request rate of the `paced` row (what a proxy costs at a load it
# keeps up with, rather than flat out).
RATE=${RATE:-8000}
mkdir -p fleet
seq "$FLEET" | xargs -P 2 -I{} "$BIN" cert issue --ca ca --profile client --out fleet/c{} --cn fleet-{} >/dev/null
cat srv.crt srv.key > srv.pem
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(port); ECHO=$(port)
NG=$(port); NGB=$(port); HA=$(port); HAB=$(port); PC=$(port); PCB=$(port); CA=$(port)

# The plain upstream (nginx answering "ok") and a TCP echo, both on CPU 1.
mkdir -p up/logs ngx/logs
cat > up/nginx.conf <<CFG
worker_processes 1; pid $W/up/nginx.pid; error_log $W/up/logs/error.log; daemon on;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } } }
CFG
taskset -c 1 nginx -p "$W/up" -c "$W/up/nginx.conf"
taskset -c 1 socat TCP-LISTEN:$ECHO,fork,reuseaddr,nodelay PIPE & PIDS+=($!)

# nginx as the mTLS proxy.
cat > ngx/nginx.conf <<CFG
worker_processes 1; pid $W/ngx/nginx.pid; error_log $W/ngx/logs/error.log; daemon on;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NG ssl http2; server_name bench.test;
    ssl_certificate $W/srv.crt; ssl_certificate_key $W/srv.key;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    ssl_client_certificate $W/ca/ca.crt; ssl_verify_client on;
    ssl_session_cache shared:SSL:10m; ssl_session_tickets on;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CFG
taskset -c 0 nginx -p "$W/ngx" -c "$W/ngx/nginx.conf"
NGX_WORKER=$(pgrep -P "$(cat ngx/nginx.pid)" | head -1)

# haproxy.
cat > haproxy.cfg <<CFG
global
  nbthread 1
  tune.ssl.default-dh-param 2048
  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend web
  mode http
  bind 127.0.0.1:$HA ssl crt $W/srv.pem ca-file $W/ca/ca.crt verify required alpn h2,http/1.1
  default_backend up
backend up
  mode http
  http-reuse always
  server u1 127.0.0.1:$UP
frontend bulk
  mode tcp
  bind 127.0.0.1:$HAB ssl crt $W/srv.pem ca-file $W/ca/ca.crt verify required
  default_backend echo
backend echo
  mode tcp
  server e1 127.0.0.1:$ECHO
CFG
taskset -c 0 haproxy -f haproxy.cfg >haproxy.log 2>&1 & HA_PID=$!; PIDS+=($HA_PID)

# caddy (Go: one OS thread runs Go code, pinned like the others).
cat > Caddyfile <<CFG
{
  admin off
  auto_https off
}
https://bench.test:$CA {
  bind 127.0.0.1
  tls $W/srv.crt $W/srv.key {
    client_auth {
      mode require_and_verify
      trusted_ca_cert_file $W/ca/ca.crt
    }
  }
  reverse_proxy 127.0.0.1:$UP
}
CFG
XDG_CONFIG_HOME=$W XDG_DATA_HOME=$W GOMAXPROCS=1 taskset -c 0 caddy run --config Caddyfile --adapter caddyfile >caddy.log 2>&1 & CA_PID=$!; PIDS+=($CA_PID)

# portcullis.
cat > portcullis.yaml <<CFG
certificates: { srv: { certFile: srv.crt, keyFile: srv.key } }
trustBundles: { ca: { caFile: ca/ca.crt } }
logging: { access: false }
listeners:
  - { name: web, address: "127.0.0.1:$PC", protocol: https,
      hosts: [ { hostnames: [bench.test], certificate: srv, clientAuth: { mode: require, trustBundle: ca },
                 routes: [ { pathPrefix: /, upstream: up } ] } ] }
  - { name: bulk, address: "127.0.0.1:$PCB", protocol: tls, certificate: srv,
      clientAuth: { mode: require, trustBundle: ca }, upstream: echo }
upstreams: { up: { url: "http://127.0.0.1:$UP" }, echo: { address: "127.0.0.1:$ECHO" } }
CFG
taskset -c 0 "$BIN" run -c portcullis.yaml --threads 1 --log-format json >pc.log 2>&1 & PC_PID=$!; PIDS+=($PC_PID)
for p in $NG $HA $CA $PC $HAB $PCB; do until python3 -c "import socket; socket.create_connection(('127.0.0.1',$p)).close()" 2>/dev/null; do sleep 0.1; done; done

B=(taskset -c 1 "$BIN" bench)
BASE=(--sni bench.test --ca ca/ca.crt --threads 1 --json)
ONE=(--cert cli.crt --key cli.key)
# Every proxy must refuse a client without a certificate.
for p in $NG $HA $CA $PC; do
  ops=$("${B[@]}" handshake "https://127.0.0.1:$p/" --sni bench.test --ca ca/ca.crt --requests 3 --json --threads 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ops"])' || true)
  [ "$ops" = "0" ] || { echo "the proxy on port $p answered a client without a certificate" >&2; exit 1; }
done

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
TICK=$(getconf CLK_TCK)
declare -A OPS CPU SEC P99
measure() { # key pid mode url concurrency [identity…]
  local c0 c1 out id=("${ONE[@]}")
  [ $# -gt 5 ] && id=("${@:6}")
  c0=$(cpu "$2")
  out=$("${B[@]}" "$3" "$4" "${BASE[@]}" "${id[@]}" --duration "${SECS}s" --concurrency "$5")
  c1=$(cpu "$2")
  read -r ops secs p99 < <(python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["ops"], r["seconds"], r["latency_us"].get("p99",0))' <<<"$out")
  OPS[$1]=$(( ${OPS[$1]:-0} + ops ))
  CPU[$1]=$(( ${CPU[$1]:-0} + c1 - c0 ))
  SEC[$1]=$(python3 -c "print(${SEC[$1]:-0} + $secs)")
  P99[$1]=$(python3 -c "print(max(${P99[$1]:-0}, $p99))")
}
# Idle memory first, on fresh processes: a worker's RSS after other loads
# depends on what its allocator kept, which made this figure swing by 2x.
# Each connection sends one request first: what a keep-alive client leaves
# open between requests (a bare handshaken connection holds less).
idle() { # pid port
  local before after log
  before=$(rss "$1")
  log=$(mktemp)
  "${B[@]}" idle "https://127.0.0.1:$2/" "${BASE[@]}" "${ONE[@]}" --concurrency 1000 --duration 4s >/dev/null 2>"$log" &
  local bp=$!
  until grep -q established "$log"; do sleep 0.2; done
  after=$(rss "$1")
  wait "$bp" || true
  python3 -c "print(f'{($after - $before) / 1000:.1f}')"
}
IDLE_NG=$(idle "$NGX_WORKER" "$NG"); IDLE_HA=$(idle "$HA_PID" "$HA"); IDLE_CA=$(idle "$CA_PID" "$CA"); IDLE_PC=$(idle "$PC_PID" "$PC")
PROXIES=(nginx:$NG haproxy:$HA caddy:$CA portcullis:$PC)
declare -A PID_OF=([nginx]=$NGX_WORKER [haproxy]=$HA_PID [caddy]=$CA_PID [portcullis]=$PC_PID)
for _ in $(seq "$ROUNDS"); do
  for w in handshake:16 fleet:16 resume:16 keepalive:32 paced:32 h2:32; do
    name=${w%%:*}; conc=${w##*:}
    for pp in "${PROXIES[@]}"; do
      p=${pp%%:*}; port=${pp##*:}
      case $name in
        fleet) measure "fleet/$p" "${PID_OF[$p]}" handshake "https://127.0.0.1:$port/" "$conc" --client-certs fleet ;;
        paced) measure "paced/$p" "${PID_OF[$p]}" keepalive "https://127.0.0.1:$port/" "$conc" "${ONE[@]}" --rate "$RATE" ;;
        *) measure "$name/$p" "${PID_OF[$p]}" "$name" "https://127.0.0.1:$port/" "$conc" ;;
      esac
    done
  done
  measure "stream/haproxy" "$HA_PID" stream "127.0.0.1:$HAB" 4
  measure "stream/portcullis" "$PC_PID" stream "127.0.0.1:$PCB" 4
done


row() { # workload proxy base-proxy
  local k="$1/$2" b="$1/$3"
  python3 - "$1" "$2" "${OPS[$k]}" "${CPU[$k]}" "${SEC[$k]}" "${P99[$k]}" "${OPS[$b]}" "${CPU[$b]}" "$TICK" <<'PY'
import sys
w, p, ops, cpu, sec, p99, bops, bcpu, tick = sys.argv[1:]
ops, cpu, sec, bops, bcpu, tick = int(ops), int(cpu), float(sec), int(bops), int(bcpu), int(tick)
us = cpu / tick * 1e6 / max(ops, 1)
bus = bcpu / tick * 1e6 / max(bops, 1)
unit = "µs/64KiB" if w == "stream" else "µs/op"
print(f"| {w} | {p} | {us:.1f} {unit} | {ops / sec:.0f} | {float(p99) / 1000:.2f} ms | {us / bus:.2f} |")
PY
}
echo
echo "CPU per operation on one pinned core, ${ROUNDS}×${SECS} s per target, interleaved:"
echo
echo "| workload | proxy | proxy CPU | ops/s | p99 (max of rounds) | ratio to nginx |"
echo "|---|---|---:|---:|---:|---:|"
for w in handshake fleet resume keepalive paced h2; do for p in nginx haproxy caddy portcullis; do row "$w" "$p" nginx; done; done
echo
echo "fleet: full handshakes, each connection presenting the next of $FLEET client certificates."
echo "paced: keep-alive GETs at a fixed $RATE requests/s in all (open loop; p99 counts from each request's scheduled time)."
echo
echo "| workload | proxy | proxy CPU | ops/s | p99 | ratio to haproxy |"
echo "|---|---|---:|---:|---:|---:|"
for p in haproxy portcullis; do row stream "$p" haproxy; done
echo
echo "| idle memory | nginx | haproxy | caddy | portcullis | ratio to nginx |"
echo "|---|---:|---:|---:|---:|---:|"
python3 -c "print(f'| RSS per idle mTLS connection after one request | $IDLE_NG KiB | $IDLE_HA KiB | $IDLE_CA KiB | $IDLE_PC KiB | {$IDLE_PC / max($IDLE_NG, 0.1):.2f} |')"
