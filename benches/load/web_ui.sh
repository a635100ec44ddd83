#!/usr/bin/env bash
# Web UI and sign-in costs on the release binary: how long a sign-in takes
# (Argon2id verification, m = 19 MiB, t = 2, p = 1), a cookie-authenticated
# API call, the dashboard's /api/v1/system, and what the embedded UI weighs
# on the wire (first load of every file, gzip) and on revalidation (304).
#
#   bash benches/load/web_ui.sh [sign-ins]
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-20}"
cargo build --release --locked --bin camgate >&2
BIN=target/release/camgate
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
HTTP=127.0.0.1:18382
echo "bench-password-1" | CAMGATE_DATA_DIR="$WORK/data" CAMGATE_LOG=warn "$BIN" user add bench --role admin >/dev/null
CAMGATE_DATA_DIR="$WORK/data" CAMGATE_HTTP_LISTEN=$HTTP CAMGATE_SIP_LISTEN=127.0.0.1:0 \
  CAMGATE_RTP_LISTEN=127.0.0.1:0 CAMGATE_RTSP_SERVER_LISTEN=127.0.0.1:0 \
  CAMGATE_RTSP_SERVER_UDP_PORT=0 CAMGATE_WEBRTC_LISTEN=127.0.0.1:0 \
  CAMGATE_LOG=warn "$BIN" >"$WORK/gw.log" 2>&1 &
GW=$!
for _ in $(seq 50); do curl -sf "http://$HTTP/api/v1/health" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$GW/status"; }
echo "idle RSS: $(rss) kB"
stats() { sort -n | awk '{a[NR]=$1} END {printf "p50 %.1f ms, max %.1f ms (n=%d)\n", a[int((NR+1)/2)]*1000, a[NR]*1000, NR}'; }
: >"$WORK/login.t"
for _ in $(seq "$N"); do
  curl -s -o /dev/null -c "$WORK/jar" -w '%{time_total}\n' -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"bench-password-1"}' "http://$HTTP/api/v1/auth/login" >>"$WORK/login.t"
done
echo "sign-in: $(stats <"$WORK/login.t")"
echo "RSS after $N sign-ins: $(rss) kB"
: >"$WORK/api.t"
for _ in $(seq 200); do
  curl -s -o /dev/null -b "$WORK/jar" -w '%{time_total}\n' "http://$HTTP/api/v1/devices" >>"$WORK/api.t"
done
echo "GET /api/v1/devices with the cookie: $(stats <"$WORK/api.t")"
: >"$WORK/sys.t"
for _ in $(seq 200); do
  curl -s -o /dev/null -b "$WORK/jar" -w '%{time_total}\n' "http://$HTTP/api/v1/system" >>"$WORK/sys.t"
done
echo "GET /api/v1/system: $(stats <"$WORK/sys.t")"
raw=0; gz=0; files=0
while IFS= read -r f; do
  rel="${f#web-ui/}"
  b=$(curl -s -o /dev/null -w '%{size_download}' "http://$HTTP/$rel")
  z=$(curl -s -o /dev/null -H 'Accept-Encoding: gzip' -w '%{size_download}' "http://$HTTP/$rel")
  raw=$((raw + b)); gz=$((gz + z)); files=$((files + 1))
done < <(find web-ui -type f ! -name '*.md' ! -name 'LICENSE*' ! -name '*.txt' | sort)
echo "web UI: $files files, $raw bytes plain, $gz bytes with gzip"
etag=$(curl -s -D - -o /dev/null "http://$HTTP/" | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r')
code=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -H "If-None-Match: $etag" "http://$HTTP/")
echo "revalidating index.html: HTTP $code bytes"
