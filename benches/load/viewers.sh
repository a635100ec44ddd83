#!/usr/bin/env bash
# Output load: one GB28181 stream (`camgate sim`, PS over RTP/UDP) watched by
# N viewers of ONE output; the gateway's CPU and memory are sampled from
# /proc and the stream info gives the output's added latency.
#
#   bash benches/load/viewers.sh flv|hls|rtsp|webrtc N [seconds]
#
# Viewers: curl (FLV), benches/load/hls_viewers.py (LL-HLS: blocking reload
# + parts), FFmpeg -c copy over RTSP/TCP, examples/whep_load.rs (str0m).
# Input: CAMGATE_LOAD_INPUT (an H.264 Annex B file; docs/benchmarks.md says
# how the 4 Mbit/s one is made), else the 240x320 fixture. Release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:?output: flv, hls, rtsp or webrtc}"
N="${2:-10}"
SECS="${3:-20}"
INPUT="${CAMGATE_LOAD_INPUT:-$(cd ../shared/fixtures && pwd)/h264-es/240x320.h264}"
cargo build --release --locked --bin camgate --example whep_load >&2
BIN=target/release/camgate
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
TOKEN=load-token-0123456789abcdefghij
HTTP=127.0.0.1:18282
SIP=127.0.0.1:15262
CAMGATE_DATA_DIR="$WORK/data" CAMGATE_HTTP_LISTEN=$HTTP CAMGATE_SIP_LISTEN=$SIP \
  CAMGATE_RTP_LISTEN=127.0.0.1:10200 CAMGATE_RTSP_SERVER_LISTEN=127.0.0.1:18554 \
  CAMGATE_RTSP_SERVER_UDP_PORT=0 CAMGATE_WEBRTC_LISTEN=127.0.0.1:18189 \
  CAMGATE_ADMIN_TOKEN=$TOKEN CAMGATE_LOG=warn "$BIN" >"$WORK/gw.log" 2>&1 &
GW=$!
sleep 1
curl -sf -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"password":"load-test-password","auto_accept":true}' "http://$HTTP/api/v1/settings/sip" >/dev/null
CAMGATE_LOG=warn "$BIN" sim --platform "$SIP" --devices 1 --channels 1 \
  --password load-test-password --keepalive-secs 30 --listen 127.0.0.1:0 --input "$INPUT" \
  >"$WORK/sim.log" 2>&1 &
SIM=$!
DEV=34020000001320000001
CH=""
for _ in $(seq 1 60); do
  CH=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://$HTTP/api/v1/devices/$DEV/channels" | jq -r '.[0].id // empty' 2>/dev/null || true)
  [ -n "$CH" ] && break
  sleep 1
done
[ -n "$CH" ] || { echo "no channel from the simulator" >&2; exit 1; }
S="${DEV}_${CH}"
RUN=$((SECS + 20))
CLIENT=""
case "$OUT" in
  flv)
    for _ in $(seq 1 "$N"); do curl -s -o /dev/null --max-time "$RUN" "http://$HTTP/live/$S.flv" & done ;;
  hls)
    python3 benches/load/hls_viewers.py "http://$HTTP/live/$S/index.m3u8" "$N" "$RUN" >"$WORK/client.txt" &
    CLIENT=$! ;;
  rtsp)
    for _ in $(seq 1 "$N"); do
      timeout "$RUN" /usr/bin/ffmpeg -nostdin -loglevel error -rtsp_transport tcp \
        -i "rtsp://127.0.0.1:18554/live/$S" -c copy -f null - >/dev/null 2>&1 &
    done ;;
  webrtc)
    target/release/examples/whep_load "http://$HTTP" "$S" "$N" "$RUN" >"$WORK/client.txt" 2>&1 &
    CLIENT=$! ;;
  *) echo "unknown output $OUT" >&2; exit 2 ;;
esac
sleep 12   # INVITE, first keyframe, every viewer joined
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
g0=$(ticks $GW); t0=$(date +%s.%N)
sleep "$SECS"
g1=$(ticks $GW); t1=$(date +%s.%N)
info=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://$HTTP/api/v1/streams/$S")
viewers=$(echo "$info" | jq ".viewers_by_output.$OUT")
kbps=$(echo "$info" | jq '.bitrate_bps / 1000 | floor')
p50=$(echo "$info" | jq ".added_latency_us.$OUT.p50 // 0")
p99=$(echo "$info" | jq ".added_latency_us.$OUT.p99 // 0")
rss=$(rss_kb $GW)
awk -v out="$OUT" -v n="$N" -v v="$viewers" -v g="$((g1 - g0))" -v hz="$HZ" -v t0="$t0" -v t1="$t1" \
    -v rss="$rss" -v kbps="$kbps" -v p50="$p50" -v p99="$p99" 'BEGIN {
  dt = t1 - t0; cpu = 100 * g / hz / dt
  printf "output=%s viewers=%d (counted %s) stream=%d kbit/s window=%.1fs\n", out, n, v, kbps, dt
  printf "gateway: cpu=%.1f%% of one core, rss=%.1f MiB\n", cpu, rss / 1024
  printf "added latency (frame read off the network -> first byte out / part listed): p50=%d us p99=%d us\n", p50, p99
}'
if [ -n "${CLIENT:-}" ]; then wait "$CLIENT" || true; sed 's/^/client: /' "$WORK/client.txt"; fi
