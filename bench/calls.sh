#!/usr/bin/env bash
# Load benchmark: N concurrent SIPp calls with G.711 RTP (a generated tone, played by SIPp with
# play_pcap_audio) against a release voxgate in echo mode on loopback, for T seconds per call.
# Prints calls attempted/answered/failed, voxgate CPU seconds per call-minute and RSS per call.
#
#   bench/calls.sh [CALLS] [SECONDS] [RATE]      defaults: 50 calls, 20 s each, 25 calls/s
#
# Needs root (SIPp's play_pcap_audio uses raw sockets) and scripts/setup.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-50}
SECS=${2:-20}
RATE=${3:-25}
work=$(mktemp -d)
trap 'kill $VG 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet --bin voxgate
cargo run --release --quiet --example gen_pcap -- "$work/tone.pcap" $((SECS * 1000)) >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/voxgate.yaml" <<YAML
sip: { listen: "127.0.0.1:$port", max_calls: $((CALLS * 2)) }
rtp: { port_min: 30000, port_max: $((30000 + CALLS * 4 + 100)), timeout: 60s }
media: { mode: echo }
log: { format: text, level: warn }
YAML
ulimit -n 65536 || true
target/release/voxgate serve --config "$work/voxgate.yaml" 2>"$work/voxgate.log" &
VG=$!
for _ in $(seq 100); do
  grep -q "" "$work/voxgate.log" 2>/dev/null && break
  ss -lun | grep -q ":$port " && break
  sleep 0.1
done
ticks() { awk '{print $14 + $15}' "/proc/$VG/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
start=$(date +%s.%N)
set +e
sipp "127.0.0.1:$port" -sf sipp-scenarios/uac_basic.xml -i 127.0.0.1 -mi 127.0.0.1 \
  -p 0 -mp 40000 -t u1 -nostdin -timeout $((SECS * 3 + 60))s -timeout_error \
  -m "$CALLS" -l "$CALLS" -r "$RATE" \
  -key pcap "$work/tone.pcap" -key hold_ms $((SECS * 1000 + 500)) \
  -trace_stat -stf "$work/stat.csv" -fd 1 >/dev/null 2>"$work/sipp.err"
rc=$?
set -e
end=$(date +%s.%N)
t1=$(ticks)
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$VG/status")
base_kb=$(awk '/VmRSS/ {print $2}' "/proc/$VG/status")
last=$(tail -n 1 "$work/stat.csv")
header=$(head -n 1 "$work/stat.csv")
col() { echo "$header" | tr ';' '\n' | grep -n -x "$1" | cut -d: -f1; }
get() { echo "$last" | cut -d';' -f"$(col "$1")"; }
ok=$(get "SuccessfulCall(C)")
failed=$(get "FailedCall(C)")
created=$(get "TotalCallCreated")
cpu=$(echo "($t1 - $t0) / $hz" | bc -l)
call_min=$(echo "$ok * $SECS / 60" | bc -l)
printf 'calls attempted:            %s\n' "$created"
printf 'calls answered (ok):        %s\n' "$ok"
printf 'calls failed:               %s   (sipp exit %s)\n' "$failed" "$rc"
printf 'wall time:                  %.1f s\n' "$(echo "$end - $start" | bc -l)"
printf 'voxgate CPU:                %.2f s total, %.3f s per call-minute\n' "$cpu" "$(echo "$cpu / ($call_min + 0.000001)" | bc -l)"
printf 'voxgate peak RSS:           %s KiB (%.1f KiB per concurrent call)\n' "$hwm_kb" "$(echo "$hwm_kb / $CALLS" | bc -l)"
