#!/usr/bin/env bash
# Load benchmark: N concurrent SIPp calls with G.711 RTP (generated audio, played by SIPp with
# play_pcap_audio) against a release voxgate on loopback, T seconds per call.
#
#   bench/calls.sh [CALLS] [SECONDS] [RATE] [MODE]   defaults: 50 calls, 20 s, 10 calls/s, echo
#
# MODE echo:  voxgate echoes the caller (the G.711 media path alone).
# MODE model: voxgate bridges every call to `voxgate sim-model` running as a SEPARATE process
#             (so voxgate's CPU figure excludes the simulator); the caller talks 1 s in every 4.
# MODE setup: call-setup rate: CALLS short calls (SECONDS each, no RTP) placed at RATE calls/s,
#             e.g. `bench/calls.sh 2000 1 100 setup` is 100 calls/s for 20 s.
#
# Prints calls attempted/answered/failed, call setup time (INVITE → 200, SIPp's rtd) p50/p99,
# voxgate CPU per call and per call-minute, RSS per concurrent call, RTP in/out/lost/late from
# the per-call summaries, the load average, and in model mode the latency figures from the
# per-call summaries: (a) RTP in → audio handed to the model connection, (b) first model audio
# delta → first RTP out, (c) speech_started → playout flushed — as the median of the per-call
# p50s and the worst per-call p99. Admission rate limits are off (every call comes from one
# address). Needs root (SIPp's play_pcap_audio uses raw sockets) and scripts/setup.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-50}
SECS=${2:-20}
RATE=${3:-10}
MODE=${4:-echo}
work=$(mktemp -d)
VG=""; SIM=""
trap 'kill $VG $SIM 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT

cargo build --release --quiet --bin voxgate --example gen_pcap
rel=${CARGO_TARGET_DIR:-target}/release
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if [ "$MODE" = model ]; then
  $rel/examples/gen_pcap "$work/audio.pcap" $((SECS * 1000)) talk >/dev/null 2>&1
elif [ "$MODE" = setup ]; then
  : # no media
else
  $rel/examples/gen_pcap "$work/audio.pcap" $((SECS * 1000)) >/dev/null 2>&1
fi

port=$(free_port)
model_yaml="media: { mode: echo }"
if [ "$MODE" = model ]; then
  simport=$(free_port)
  cat > "$work/sim.yaml" <<YAML
voice: tone
greeting_reply: "Hello."
default_reply: "I see. Tell me more about that please, and take all the time you need."
YAML
  $rel/voxgate sim-model --listen "127.0.0.1:$simport" --script "$work/sim.yaml" 2>"$work/sim.log" &
  SIM=$!
  model_yaml="media: { mode: model }
model: { url: \"ws://127.0.0.1:$simport/v1/realtime\" }"
fi
cat > "$work/voxgate.yaml" <<YAML
sip: { listen: "127.0.0.1:$port", max_calls: $((CALLS * 2)), rate_limit: { invites_per_second: 0 } }
rtp: { port_min: 30000, port_max: $((30000 + CALLS * 4 + 100)), timeout: 60s }
$model_yaml
http: { listen: "127.0.0.1:$(free_port)" }
log: { format: json, level: info }
YAML
ulimit -n 65536 2>/dev/null || true
OPENAI_API_KEY=unused $rel/voxgate serve --config "$work/voxgate.yaml" 2>"$work/voxgate.log" &
VG=$!
for _ in $(seq 100); do grep -q "answering calls" "$work/voxgate.log" 2>/dev/null && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' "/proc/$VG/stat"; }
hz=$(getconf CLK_TCK)
idle_kb=$(awk '/VmRSS/ {print $2}' "/proc/$VG/status")
t0=$(ticks)
start=$(date +%s.%N)
if [ "$MODE" = setup ]; then
  scenario=(-sf "$PWD/sipp-scenarios/uac_short.xml" -key hold_ms $((SECS * 1000)))
else
  scenario=(-sf "$PWD/sipp-scenarios/uac_basic.xml" -key pcap "$work/audio.pcap" -key hold_ms $((SECS * 1000 + 500)))
fi
set +e
# From the work dir: SIPp writes its per-call response-time file (-trace_rtt) to the cwd.
(cd "$work" && sipp "127.0.0.1:$port" "${scenario[@]}" -i 127.0.0.1 -mi 127.0.0.1 \
  -p "$(free_port)" -mp 40000 -t u1 -nostdin -timeout $((SECS * 3 + CALLS / RATE + 60))s -timeout_error \
  -m "$CALLS" -l "$CALLS" -r "$RATE" -trace_rtt -rtt_freq 1 \
  -trace_stat -stf "$work/stat.csv" -fd 1 >/dev/null 2>"$work/sipp.err")
rc=$?
set -e
end=$(date +%s.%N)
t1=$(ticks)
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$VG/status")
# Give the summaries a moment to be written, then stop.
for _ in $(seq 50); do [ "$(grep -c '"call_end"' "$work/voxgate.log")" -ge "$CALLS" ] && break; sleep 0.1; done
python3 - "$work" "$CALLS" "$SECS" "$rc" "$t0" "$t1" "$hz" "$idle_kb" "$hwm_kb" "$start" "$end" "$MODE" "$RATE" <<'PY'
import csv, glob, json, statistics, sys
work, calls, secs, rc, t0, t1, hz, idle, hwm, start, end, mode, rate = sys.argv[1:]
calls, secs, rate = int(calls), int(secs), float(rate)
rows = list(csv.reader(open(f"{work}/stat.csv"), delimiter=";"))
head, last = rows[0], rows[-1]
get = lambda k: int(last[head.index(k)])
ok, failed, created = get("SuccessfulCall(C)"), get("FailedCall(C)"), get("TotalCallCreated")
cpu = (int(t1) - int(t0)) / int(hz)
call_min = max(ok * secs / 60.0, 1e-9)
ends = [json.loads(l) for l in open(f"{work}/voxgate.log") if '"call_end"' in l]
print(f"mode:                       {mode}, {calls} calls of {secs} s at {rate:g}/s, sipp exit {rc}")
print(f"calls attempted:            {created}")
print(f"calls answered (ok):        {ok}")
print(f"calls failed:               {failed}")
print(f"wall time:                  {float(end) - float(start):.1f} s")
rtts = []
for f in glob.glob(f"{work}/*_rtt.csv"):
    for row in csv.reader(open(f), delimiter=";"):
        try:
            rtts.append(float(row[1]))
        except (IndexError, ValueError):
            pass  # header
rtts.sort()
pct = lambda p: rtts[min(len(rtts) - 1, int(p / 100 * len(rtts)))]
if rtts:
    # SIPp's clock advances in coarse ticks (about 1-4 ms): 0 means "within one tick".
    print(f"call setup (INVITE->200):   p50 {pct(50):.0f} ms, p99 {pct(99):.0f} ms, max {rtts[-1]:.0f} ms "
          f"({len(rtts)} calls; SIPp clock, ms ticks)")
else:
    print("call setup (INVITE->200):   no samples")
conc = max(1, min(calls, int(rate * secs)))
print(f"voxgate CPU:                {cpu:.2f} s total, {cpu / max(ok, 1) * 1000:.2f} ms per call, "
      f"{cpu / call_min:.3f} s per call-minute "
      f"({cpu / (float(end) - float(start)) * 100:.0f}% of one core on average)")
print(f"voxgate RSS:                idle {int(idle)} KiB, peak {int(hwm)} KiB, "
      f"{(int(hwm) - int(idle)) / conc:.0f} KiB per concurrent call (~{conc} concurrent)")
rin = sum(e.get("rtp_in", 0) for e in ends); rout = sum(e.get("rtp_out", 0) for e in ends)
lost = sum(e.get("rtp_lost", 0) for e in ends); late = sum(e.get("rtp_late", 0) for e in ends)
print(f"RTP:                        {rin} in, {rout} out, {lost} lost, {late} late ({len(ends)} summaries)")
print(f"load average (1/5/15 min):  {' '.join(open('/proc/loadavg').read().split()[:3])}")
if mode == "model":
    for key, label in [("rtp_to_model", "(a) RTP in -> model send"),
                       ("delta_to_rtp", "(b) model delta -> RTP out"),
                       ("barge_in", "(c) speech_started -> flush")]:
        p50 = [e[f"lat_{key}_p50_us"] for e in ends if e.get(f"lat_{key}_p50_us", -1) >= 0]
        p99 = [e[f"lat_{key}_p99_us"] for e in ends if e.get(f"lat_{key}_p99_us", -1) >= 0]
        if p50:
            print(f"{label:28}median p50 {statistics.median(p50)/1000:.3f} ms, worst p99 {max(p99)/1000:.3f} ms ({len(p50)} calls)")
        else:
            print(f"{label:28}no samples")
    print(f"model turns:                {sum(e.get('model_commits', 0) for e in ends)} commits, "
          f"{sum(e.get('model_responses', 0) for e in ends)} responses, "
          f"{sum(e.get('barge_ins', 0) for e in ends)} barge-ins")
PY
