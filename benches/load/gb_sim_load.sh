#!/usr/bin/env bash
# GB28181 ingest load: `camgate sim` streams N channels of an H.264 file as
# PS/RTP into one gateway over UDP, N HTTP-FLV viewers (curl) keep every
# stream running, and the gateway's CPU and memory are sampled from /proc.
#
#   bash benches/load/gb_sim_load.sh 50 [seconds]    # 50 channels
#   bash benches/load/gb_sim_load.sh 200
#
# Input: ../shared/fixtures/h264-es/240x320.h264 by default (CAMGATE_LOAD_INPUT
# to change it); its bitrate decides the load (see docs/benchmarks.md).
# Release binaries; no other heavy process should run.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-50}"
SECS="${2:-20}"
INPUT="${CAMGATE_LOAD_INPUT:-$(cd ../shared/fixtures && pwd)/h264-es/240x320.h264}"
BIN=target/release/camgate
cargo build --release --locked >&2
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
TOKEN=load-token-0123456789abcdefghij
HTTP=127.0.0.1:18181
SIP=127.0.0.1:15161
CAMGATE_DATA_DIR="$WORK/data" CAMGATE_HTTP_LISTEN=$HTTP CAMGATE_SIP_LISTEN=$SIP \
  CAMGATE_RTP_LISTEN=127.0.0.1:10100 CAMGATE_ADMIN_TOKEN=$TOKEN CAMGATE_LOG=warn \
  "$BIN" >"$WORK/gw.log" 2>&1 &
GW=$!
sleep 1
curl -sf -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"password":"load-test-password","auto_accept":true}' "http://$HTTP/api/v1/settings/sip" >/dev/null
DEVICES=$(( (N + 49) / 50 ))
PER=$(( N / DEVICES ))
CAMGATE_LOG=warn "$BIN" sim --platform "$SIP" --devices "$DEVICES" --channels "$PER" \
  --password load-test-password --keepalive-secs 30 --listen 127.0.0.1:0 --input "$INPUT" \
  >"$WORK/sim.log" 2>&1 &
SIM=$!
# Wait for every catalog.
for _ in $(seq 1 120); do
  got=0
  for d in $(seq 1 "$DEVICES"); do
    id=$(printf '34020000001320%06d' "$d")
    c=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://$HTTP/api/v1/devices/$id/channels" | jq length 2>/dev/null || echo 0)
    got=$((got + c))
  done
  [ "$got" -ge "$N" ] && break
  sleep 1
done
echo "channels in catalogs: $got" >&2
for d in $(seq 1 "$DEVICES"); do
  id=$(printf '34020000001320%06d' "$d")
  for ch in $(curl -sf -H "Authorization: Bearer $TOKEN" "http://$HTTP/api/v1/devices/$id/channels" | jq -r '.[].id'); do
    curl -s -o /dev/null "http://$HTTP/live/${id}_${ch}.flv" &
  done
done
sleep 10   # INVITEs, first keyframes, steady state
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
g0=$(ticks $GW); s0=$(ticks $SIM); t0=$(date +%s.%N)
sleep "$SECS"
g1=$(ticks $GW); s1=$(ticks $SIM); t1=$(date +%s.%N)
streams=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://$HTTP/api/v1/streams")
live=$(echo "$streams" | jq '[.[] | select(.source.state == "live")] | length')
lost=$(echo "$streams" | jq '[.[] | .gb28181.lost // 0] | add // 0')
packets=$(echo "$streams" | jq '[.[] | .gb28181.packets // 0] | add // 0')
kbps=$(echo "$streams" | jq '[.[] | (.bitrate_bps // 0) / 1000] | add // 0')
p50=$(echo "$streams" | jq '[.[] | .gb28181.added_latency_us_p50 // empty] | sort | if length > 0 then .[length/2|floor] else 0 end')
p99=$(echo "$streams" | jq '[.[] | .gb28181.added_latency_us_p99 // empty] | sort | if length > 0 then .[(length*99/100)|floor] else 0 end')
f50=$(echo "$streams" | jq '[.[] | .added_latency_us.flv.p50 // empty] | sort | if length > 0 then .[length/2|floor] else 0 end')
f99=$(echo "$streams" | jq '[.[] | .added_latency_us.flv.p99 // empty] | sort | if length > 0 then .[(length*99/100)|floor] else 0 end')
rss=$(rss_kb $GW)
awk -v n="$N" -v live="$live" -v g="$((g1 - g0))" -v s="$((s1 - s0))" -v hz="$HZ" \
    -v t0="$t0" -v t1="$t1" -v rss="$rss" -v lost="$lost" -v packets="$packets" -v kbps="$kbps" \
    -v p50="$p50" -v p99="$p99" -v f50="$f50" -v f99="$f99" 'BEGIN {
  dt = t1 - t0
  gcpu = 100 * g / hz / dt; scpu = 100 * s / hz / dt
  printf "channels=%d live_streams=%d window=%.1fs\n", n, live, dt
  printf "gateway: cpu=%.1f%% of one core (%.3f%% per stream), rss=%.1f MiB (%.0f KiB per stream)\n", gcpu, gcpu / n, rss / 1024, rss / n
  printf "sim: cpu=%.1f%% of one core\n", scpu
  printf "media in: %d kbit/s total, packets=%d lost=%d\n", kbps, packets, lost
  printf "added latency (last packet read -> frame published): median of stream p50 = %d us, p99 across streams = %d us\n", p50, p99
  printf "added latency (last packet read -> FLV tag): median of stream p50 = %d us, p99 across streams = %d us\n", f50, f99
}'
