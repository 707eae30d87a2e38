#!/usr/bin/env bash
# Side-by-side benchmark of credmq and Debian's Mosquitto 2.0 on the loopback interface, with
# bench/loadgen (credmq_loadgen). Writes docs/performance.md (bench/report.py).
#
#   bench/compare.sh [--quick] [--reps N] [--duration S] [--clients N] [--idle N]
#                    [--sessions N] [--storm N] [--profile] [--out FILE] [--build-dir DIR]
#
#   --quick      smoke-sized run (about a minute)
#   --reps N     repetitions per broker, alternating which broker goes first (default 3)
#   --duration S seconds per message scenario (default 4)
#   --clients N  devices of the connect scenario (default 5000)
#   --idle N     idle connections for the RSS measurement (default 10000)
#   --sessions N live sessions of the revoke scenario (default 10000)
#   --storm N    devices of the storm scenario (default 10000)
#   --profile    also perf-record credmq during a pairs QoS 1 run (needs perf)
#   --scenarios "idle connect ..."  run only these (idle connect pairs fanout fanin rate storm
#                revoke; default all), e.g. with --out /tmp/x.md to re-measure a few targets
#   --credmq BINARY  measure this credmq binary instead of building DIR/server/credmq
# Each broker is started fresh per repetition (fresh data dir / password file) and stopped by
# PID. Nothing is pinned: broker and loadgen share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

invocation="bench/compare.sh $*"
reps=3 duration=4 clients=5000 idle=10000 sessions=10000 storm=10000 profile=0
out=docs/performance.md build=build-bench quick=0
scenarios="idle connect pairs fanout fanin rate storm revoke" credmq_bin=
while (($#)); do
  case "$1" in
    --quick) quick=1 reps=1 duration=1 clients=500 idle=500 sessions=1000 storm=300 ;;
    --reps) reps=$2; shift ;;
    --duration) duration=$2; shift ;;
    --clients) clients=$2; shift ;;
    --idle) idle=$2; shift ;;
    --sessions) sessions=$2; shift ;;
    --storm) storm=$2; shift ;;
    --profile) profile=1 ;;
    --out) out=$2; shift ;;
    --build-dir) build=$2; shift ;;
    --scenarios) scenarios=$2; shift ;;
    --credmq) credmq_bin=$(realpath "$2"); shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# Build (Release) if needed. -Wno-error=restrict: GCC 12 -O3 reports a false -Wrestrict in
# std::string operator+ (GCC bug 105329), which -Werror would turn into a failed build.
if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-Wno-error=restrict
fi
if [[ -n "$credmq_bin" ]]; then
  ninja -C "$build" -j2 credmq_loadgen >/dev/null
else
  ninja -C "$build" -j2 credmq credmq_loadgen >/dev/null
  credmq_bin=$root/$build/server/credmq
fi
loadgen=$root/$build/bench/credmq_loadgen

ulimit -n "$(ulimit -Hn)"
# Broker and load generator each hold one descriptor per connection (plus a few).
largest=$((idle > sessions ? idle : sessions))
largest=$((storm > largest ? storm : largest))
if (($(ulimit -n) < largest + 256)); then
  echo "compare.sh: $largest connections need ulimit -n >= $((largest + 256)), but the hard" \
    "limit here is $(ulimit -Hn); raise it (as root: ulimit -Hn, or LimitNOFILE) or pass" \
    "smaller --idle/--sessions/--storm" >&2
  exit 2
fi
if ((idle > sessions + storm)); then
  echo "compare.sh: --idle $idle needs as many credentials; it is at most --sessions + --storm" >&2
  exit 2
fi
work=$(mktemp -d /tmp/credmq-compare.XXXXXX)
results=$work/results.jsonl
commands=$work/commands.txt
: >"$results"
: >"$commands"
broker_pid=
cleanup() {
  if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$broker_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
echo "work dir: $work (ulimit -n $(ulimit -n))"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

total=$((sessions + storm))
# Mosquitto's devices: the same client ids, a password file hashed by mosquitto_passwd -U.
awk -v n="$total" 'BEGIN{srand(); for(i=0;i<n;i++) printf "GID_bench@@@dev-%d dev-%d pw-%d-%06d\n", i, i, i, int(rand()*1e6)}' \
  >"$work/mosquitto-creds"
awk '{print $2 ":" $3}' "$work/mosquitto-creds" >"$work/passwd.plain"
cp "$work/passwd.plain" "$work/passwd.hashed"
mosquitto_passwd -U "$work/passwd.hashed"

# Runs one loadgen scenario, appends its JSON line (tagged with rep and label) to results.
run() {
  local broker=$1 rep=$2 label=$3
  shift 3
  local cmd=("$loadgen" --broker "$broker" --timeout 60 "$@")
  echo "[$broker rep $rep] $label" >&2
  echo "$label ($broker): credmq_loadgen ${cmd[*]:1}" >>"$commands"
  local line
  if ! line=$(timeout 180 "${cmd[@]}" 2>>"$work/loadgen.err" | tail -1) || [[ -z "$line" ]]; then
    echo "  failed (see $work/loadgen.err)" >&2
    line=${line:-"{\"ok\":false}"}
  fi
  echo "  $line" >&2
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(label=sys.argv[2], rep=int(sys.argv[3]), broker=sys.argv[4]); print(json.dumps(d))' \
    "$line" "$label" "$rep" "$broker" >>"$results"
}

start_credmq() {
  local dir=$work/credmq-data
  rm -rf "$dir"
  rm -f "$work/credmq.out"  # a stale "credmq ready" from the previous start must not count
  "$credmq_bin" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$dir" \
    --log-level warn --allow-anonymous --admin-rate 100000 >"$work/credmq.out" 2>"$work/credmq.err" &
  broker_pid=$!
  for _ in $(seq 200); do
    grep -q "credmq ready" "$work/credmq.out" 2>/dev/null && break
    sleep 0.1
  done
  grep -q "credmq ready" "$work/credmq.out" || { echo "credmq not ready" >&2; cat "$work/credmq.err"; exit 1; }
  port=$(sed -n 's/^MQTT listening on .*:\([0-9]*\)$/\1/p' "$work/credmq.out" | head -1)
  admin=$(sed -n 's|^Admin API listening on http://\(.*\)/$|\1|p' "$work/credmq.out" | head -1)
  admin_args=(--admin "$admin" --admin-creds "$dir/admin-credentials.json")
  if ! "$loadgen" --scenario register "${admin_args[@]}" --count "$total" \
    --out "$work/credmq-creds" >>"$work/register.log"; then
    echo "registering the bench devices failed (port $port, admin $admin)" >&2
    exit 1
  fi
  creds=$work/credmq-creds
}

start_mosquitto() {
  port=$(free_port)
  cp "$work/passwd.hashed" "$work/passwd"
  cat >"$work/mosquitto.conf" <<EOF
# written by bench/compare.sh
listener $port 127.0.0.1
user $(id -un)
password_file $work/passwd
allow_anonymous true
max_queued_messages 0
log_type error
log_dest stderr
EOF
  mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.out" 2>>"$work/mosquitto.err" &
  broker_pid=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
  done
  (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null || { cat "$work/mosquitto.err"; exit 1; }
  creds=$work/mosquitto-creds
}

stop_broker() {
  cleanup
  wait "$broker_pid" 2>/dev/null || true
  broker_pid=
}

selected() { [[ " $scenarios " == *" $1 "* ]]; }

run_all() {
  local broker=$1 rep=$2
  # Mosquitto has no revocation API: nothing to run against it for `revoke` alone.
  [[ $broker == mosquitto && $scenarios == revoke ]] && return
  "start_$broker"
  local p=(--port "$port")
  # Idle first, on the fresh broker: RSS growth per authenticated connection.
  selected idle && run "$broker" "$rep" "idle" --scenario idle "${p[@]}" --creds "$creds" \
    --clients "$idle" --concurrency 100 --broker-pid "$broker_pid" --hold 2
  selected connect && run "$broker" "$rep" "connect" --scenario connect "${p[@]}" \
    --creds "$creds" --clients "$clients" --concurrency 100
  for qos in 0 1 2; do
    selected pairs && run "$broker" "$rep" "pairs qos$qos" --scenario pairs "${p[@]}" \
      --pairs 8 --qos "$qos" --duration "$duration"
    selected fanout && run "$broker" "$rep" "fanout qos$qos" --scenario fanout "${p[@]}" \
      --subscribers 8 --qos "$qos" --duration "$duration" --mqtt 5
    selected fanin && run "$broker" "$rep" "fanin qos$qos" --scenario fanin "${p[@]}" \
      --publishers 8 --qos "$qos" --duration "$duration"
  done
  selected rate && run "$broker" "$rep" "pairs qos1 @10k/s" --scenario pairs "${p[@]}" \
    --pairs 8 --qos 1 --duration "$duration" --rate 10000
  if [[ $broker == credmq ]]; then
    selected storm && run "$broker" "$rep" "storm" --scenario storm "${p[@]}" --creds "$creds" \
      --cred-offset "$sessions" --clients "$storm" --concurrency 100 "${admin_args[@]}"
    selected revoke && run "$broker" "$rep" "revoke" --scenario revoke "${p[@]}" \
      --creds "$creds" --clients "$sessions" --revoke 200 --concurrency 200 --mqtt 5 \
      "${admin_args[@]}"
  else
    selected storm && run "$broker" "$rep" "storm" --scenario storm "${p[@]}" --creds "$creds" \
      --cred-offset "$sessions" --clients "$storm" --concurrency 100 --revoke-via passwd \
      --passwd-file "$work/passwd" --broker-pid "$broker_pid"
  fi
  stop_broker
}

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for rep in $(seq "$reps"); do
  if ((rep % 2)); then order=(credmq mosquitto); else order=(mosquitto credmq); fi
  for broker in "${order[@]}"; do run_all "$broker" "$rep"; done
done

profile_file=
if ((profile)) && command -v perf >/dev/null; then
  start_credmq
  perf record -F 999 -g -p "$broker_pid" -o "$work/perf.data" -- sleep "$((duration + 1))" \
    >/dev/null 2>&1 &
  perf_pid=$!
  "$loadgen" --scenario pairs --port "$port" --pairs 8 --qos 1 --duration "$duration" \
    --broker credmq >"$work/profile-run.json" 2>/dev/null || true
  wait "$perf_pid" || true
  perf report -i "$work/perf.data" --no-children --stdio --percent-limit 1.5 \
    --sort dso,symbol -g none 2>/dev/null | grep -v '^$' | head -60 >"$work/perf-flat.txt" || true
  perf report -i "$work/perf.data" --no-children --stdio --sort dso -g none 2>/dev/null |
    grep -v '^$' | head -30 >"$work/perf-dso.txt" || true
  profile_file=$work/perf-flat.txt
  stop_broker
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

args=(--results "$results" --commands "$commands" --out "$out" --started "$started"
  --load-before "$load_before" --load-after "$load_after" --credmq "$credmq_bin"
  --invocation "$invocation" --reps "$reps" --duration "$duration" --clients "$clients"
  --idle "$idle" --sessions "$sessions" --storm "$storm")
[[ -n "$profile_file" ]] && args+=(--profile "$profile_file" --profile-run "$work/profile-run.json"
  --profile-dso "$work/perf-dso.txt")
python3 bench/report.py "${args[@]}"
echo "wrote $out (raw results: $results)"
