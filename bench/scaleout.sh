#!/usr/bin/env bash
# Scale-out proof: Kamailio (deploy/kamailio/kamailio.cfg, Debian package) on loopback
# dispatches SIPp calls to three voxgate nodes that share one Postgres.
#
#   bench/scaleout.sh [CALLS] [RATE] [HOLD_MS] [MODE]   defaults: 60 calls, 6 calls/s, 3000 ms, echo
#
# Phase A: CALLS calls with all three nodes up; phase B: CALLS more calls, and once a third of
# them are placed node 2 gets SIGTERM (it drains: 503 to new INVITEs and to the dispatcher's
# OPTIONS, live calls finish, then it exits). Prints SIPp's failed calls per phase (must be 0),
# the calls each node took, the nodes new calls went to after the drain, node 2's exit status,
# and from Postgres: rows, distinct SIP Call-IDs and duplicates (each call must be logged once).
# Exits 1 if any check fails.
#
# MODE echo: each node echoes the caller (no model); model: each node uses the built-in
# simulator (model.url: sim). PROFILE=release (default) or any cargo profile (e.g. dev) selects
# the build. Needs root (SIPp's play_pcap_audio uses raw sockets), scripts/setup, and kamailio
# (installed here with apt-get when missing). KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${1:-60}
RATE=${2:-6}
HOLD=${3:-3000}
MODE=${4:-echo}
PROFILE=${PROFILE:-release}
NODES=3

if ! command -v kamailio >/dev/null 2>&1; then
  echo "scaleout: installing kamailio" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends kamailio >/dev/null
fi
for tool in sipp curl python3; do
  command -v "$tool" >/dev/null || { echo "scaleout: $tool missing (run scripts/setup)" >&2; exit 1; }
done

# A short path: the Postgres unix socket lives in it.
work=$(mktemp -d /tmp/vg-scale.XXXXXX)
chmod 755 "$work"  # the postgres OS user (root runs) must reach its cluster folder
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/pg stop "$work/pg" >/dev/null 2>&1 || true
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

cargo build --quiet --profile "$PROFILE" --bin voxgate --example gen_pcap
case "$PROFILE" in dev) pdir=debug ;; *) pdir=$PROFILE ;; esac
bin=$(realpath "${CARGO_TARGET_DIR:-target}/$pdir")
vg="$bin/voxgate"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

url=$(scripts/pg start "$work/pg" --watch $$)
DATABASE_URL="$url" "$vg" migrate >/dev/null 2>&1
psql_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)/psql
[ -x "$psql_bin" ] || psql_bin=psql
sql() { (cd / && "$psql_bin" "$url" -At -c "$1"); }

"$bin/examples/gen_pcap" "$work/audio.pcap" "$HOLD" >/dev/null 2>&1

mkdir -p "$work/dialplans"
cat > "$work/dialplans/default.yaml" <<'YAML'
name: default
match: { default: true }
agent:
  instructions: You answer test calls.
  greeting: Hello.
YAML
mode_yaml="media: { mode: echo }"
[ "$MODE" = model ] && mode_yaml="media: { mode: model }
model: { url: sim }"

declare -a sip_port http_port vg_pid
for i in $(seq 1 $NODES); do
  sip_port[$i]=$(free_port)
  http_port[$i]=$(free_port)
  rtp_min=$((32000 + i * 1000))
  mkdir -p "$work/node$i"
  cat > "$work/node$i/voxgate.yaml" <<YAML
sip: { listen: "127.0.0.1:${sip_port[$i]}", max_calls: 200, drain_timeout: 60s }
rtp: { port_min: $rtp_min, port_max: $((rtp_min + 998)), timeout: 60s }
$mode_yaml
database: { spool_dir: "$work/node$i/spool" }
dialplans: "$work/dialplans"
http: { listen: "127.0.0.1:${http_port[$i]}" }
log: { format: json, level: info }
YAML
  (cd "$work/node$i" && DATABASE_URL="$url" exec "$vg" serve --config voxgate.yaml 2>voxgate.log) &
  vg_pid[$i]=$!
  pids+=("${vg_pid[$i]}")
done
for i in $(seq 1 $NODES); do
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:${http_port[$i]}/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:${http_port[$i]}/readyz" >/dev/null || { echo "node $i not ready" >&2; cat "$work/node$i/voxgate.log" >&2; exit 1; }
done

# Kamailio with the deploy/ config, on a free loopback port, pointing at the three nodes.
kport=$(free_port)
for i in $(seq 1 $NODES); do
  echo "1 sip:127.0.0.1:${sip_port[$i]} 0 0 duid=node$i"
done > "$work/dispatcher.list"
sed -e "s|^listen=udp:0.0.0.0:5060|listen=udp:127.0.0.1:$kport|" \
    -e "/^listen=tcp:/d" \
    -e "s|/etc/kamailio/dispatcher.list|$work/dispatcher.list|" \
    -e "s|unix:/run/kamailio/kamailio_ctl|unix:$work/kamailio_ctl|" \
    -e "s|^children=4|children=2|" \
    deploy/kamailio/kamailio.cfg > "$work/kamailio.cfg"
kamailio -c -f "$work/kamailio.cfg" >"$work/kamailio-check.log" 2>&1 || { cat "$work/kamailio-check.log" >&2; exit 1; }
kamailio -DD -E -f "$work/kamailio.cfg" -Y "$work" -P "$work/kamailio.pid" >"$work/kamailio.log" 2>&1 &
pids+=("$!")

# metric NODE SERIES: one sample from a node's /metrics (0 when absent).
metric() {
  curl -fs "http://127.0.0.1:${http_port[$1]}/metrics" 2>/dev/null | awk -v s="$2" '$1 == s { v = $2 } END { print v + 0 }'
}
# Ready when every node has answered at least one dispatcher probe.
for _ in $(seq 100); do
  probed=0
  for i in $(seq 1 $NODES); do
    [ "$(metric "$i" 'voxgate_sip_requests_total{direction="in",method="OPTIONS"}')" -ge 1 ] && probed=$((probed + 1))
  done
  [ "$probed" -eq $NODES ] && break
  sleep 0.2
done
[ "$probed" -eq $NODES ] || { echo "kamailio does not probe the nodes" >&2; cat "$work/kamailio.log" >&2; exit 1; }

sipp_run() { # NAME: CALLS calls at RATE through Kamailio; SIPp's exit status
  set +e
  sipp "127.0.0.1:$kport" -sf sipp-scenarios/uac_basic.xml -i 127.0.0.1 -mi 127.0.0.1 \
    -p "$(free_port)" -mp "$(free_port)" -t u1 -nostdin -timeout 120s -timeout_error \
    -m "$CALLS" -l "$CALLS" -r "$RATE" -key pcap "$work/audio.pcap" -key hold_ms "$HOLD" \
    -trace_stat -stf "$work/$1.csv" -fd 1 >/dev/null 2>"$work/$1.err"
  echo $?
  set -e
}
# failed NAME: SIPp's cumulative failed-call count from its last statistics line.
failed() { python3 - "$work/$1.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
h = rows[0]; last = rows[-1]
print(int(last[h.index("FailedCall(C)")]), int(last[h.index("SuccessfulCall(C)")]))
PY
}
# per-node counts of "incoming call" log lines, optionally only after an ISO timestamp.
incoming() { python3 - "$work" "$NODES" "${1:-}" <<'PY'
import json, sys
work, nodes, after = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = []
for i in range(1, nodes + 1):
    n = 0
    for line in open(f"{work}/node{i}/voxgate.log"):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if j.get("message") == "incoming call" and j.get("timestamp", "") > after:
            n += 1
    out.append(str(n))
print(" ".join(out))
PY
}

echo "== phase A: $CALLS calls, $RATE/s, ${HOLD} ms each, through kamailio to $NODES nodes ($MODE)"
rc_a=$(sipp_run phaseA)
read -r fail_a ok_a <<<"$(failed phaseA)"
read -r -a per_a <<<"$(incoming)"
echo "sipp exit $rc_a: successful $ok_a, failed $fail_a"
echo "calls per node: node1 ${per_a[0]}  node2 ${per_a[1]}  node3 ${per_a[2]}"

echo "== phase B: $CALLS calls; node 2 gets SIGTERM after $((CALLS / 3)) calls"
rc_b_file="$work/phaseB.rc"
(sipp_run phaseB >"$rc_b_file") &
sipp_b=$!
sleep "$(python3 -c "print($CALLS / 3 / $RATE)")"
kill -TERM "${vg_pid[2]}"
drain_at=""
for _ in $(seq 100); do
  drain_at=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try: j = json.loads(line)
    except ValueError: continue
    if j.get("event") == "drain_start": print(j["timestamp"]); break
' "$work/node2/voxgate.log")
  [ -n "$drain_at" ] && break
  sleep 0.1
done
wait "$sipp_b" || true
rc_b=$(cat "$rc_b_file")
set +e
wait "${vg_pid[2]}"
node2_rc=$?
set -e
read -r fail_b ok_b <<<"$(failed phaseB)"
read -r -a per_all <<<"$(incoming)"
read -r -a per_after <<<"$(incoming "$drain_at")"
refused=$(grep -c 'draining: new call refused' "$work/node2/voxgate.log" || true)
failovers=$(grep -c 'failed over to' "$work/kamailio.log" || true)
echo "sipp exit $rc_b: successful $ok_b, failed $fail_b"
echo "calls per node (phase B): node1 $((per_all[0] - per_a[0]))  node2 $((per_all[1] - per_a[1]))  node3 $((per_all[2] - per_a[2]))"
echo "new calls after node 2 began draining ($drain_at): node1 ${per_after[0]}  node2 ${per_after[1]}  node3 ${per_after[2]}"
echo "node 2: INVITEs refused with 503 while draining $refused, kamailio failovers $failovers, exit status $node2_rc"

# Wait until the remaining nodes have written every call (their writers batch).
total=$((2 * CALLS))
for _ in $(seq 100); do
  [ "$(sql "select count(*) from calls where ended_at is not null")" -ge "$total" ] && break
  sleep 0.2
done
rows=$(sql "select count(*) from calls")
distinct=$(sql "select count(distinct sip_call_id) from calls")
dups=$(sql "select count(*) from (select sip_call_id from calls group by 1 having count(*) > 1) d")
reasons=$(sql "select end_reason || ' ' || count(*) from calls group by end_reason order by count(*) desc" | paste -sd, -)
echo "== postgres: $rows rows, $distinct distinct SIP Call-IDs, $dups duplicated; end reasons: $reasons"

status=0
[ "$rc_a" -eq 0 ] && [ "$fail_a" -eq 0 ] || { echo "FAIL: phase A had failed calls" >&2; status=1; }
[ "$rc_b" -eq 0 ] && [ "$fail_b" -eq 0 ] || { echo "FAIL: phase B had failed calls" >&2; status=1; }
for n in "${per_a[@]}"; do [ "$n" -gt 0 ] || { echo "FAIL: a node took no call in phase A" >&2; status=1; }; done
[ -n "$drain_at" ] || { echo "FAIL: node 2 never started draining" >&2; status=1; }
[ "${per_after[1]}" -eq 0 ] || { echo "FAIL: node 2 took new calls while draining" >&2; status=1; }
[ "$node2_rc" -eq 0 ] || { echo "FAIL: node 2 exited with $node2_rc" >&2; status=1; }
[ "$rows" -eq "$total" ] && [ "$distinct" -eq "$total" ] && [ "$dups" -eq 0 ] \
  || { echo "FAIL: expected $total calls, each logged once" >&2; status=1; }
[ $status -eq 0 ] && echo "OK: no failed call, every call logged once, drain moved new calls to the other nodes"
exit $status
