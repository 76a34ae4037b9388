#!/usr/bin/env bash
# A cluster on one host: Redis and N sse-server nodes sharing one address (--reuse-port) and one
# Redis (--redis), measured with the load generator.
#
#   ./scripts/cluster.sh [options]
#
# Builds sse-server and sse-loadgen in release, starts `redis-server` on a free loopback port
# (no persistence), starts N nodes on 127.0.0.1:PORT with --reuse-port --redis (the kernel
# spreads subscribers over the nodes; publishes reach whichever node accepts them, and Redis
# carries every event to every node), runs `sse-loadgen fanout` against that address, and
# writes bench-results/<date>-<host>-cluster/ (README.md with the exact commands, the machine,
# how connections spread over the nodes, Redis CPU and memory; results.jsonl; summary.md).
# Server memory and CPU are summed over every node: the nodes run under one parent process
# whose pid the loadgen is given (it counts children). Everything it starts is stopped at the end.
#
# With --baseline, the same load first runs against one node without --redis, so the
# backplane's cost is a ratio from one run.
#
# Options:
#   --nodes N            sse-server processes (default 3)
#   --connections N      subscribers in all (default 3000; 100k wants about 6 nodes under a
#                        20k open-file limit per process)
#   --events N           events published (default 200)
#   --rate R             events per second (default 50)
#   --payload BYTES      event data size (default 64)
#   --threads N          event loops per node (default 1)
#   --connect-rate N     subscribers opened per second (default 5k)
#   --source-ips RANGE   client source addresses (default 127.0.0.1-127.0.0.8; "" for none)
#   --port N             the nodes' shared port on 127.0.0.1 (default 18390)
#   --timeout S          longest loadgen run, in seconds (default 600)
#   --baseline           first run the same load against one node without Redis
#   --out DIR            result folder (default bench-results/<date>-<host>-cluster, -2... if taken)
#   --no-build           use the binaries already built
#   -- ARGS...           passed to `sse-loadgen fanout` as they are
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/loadgen.sh"

command_line="./scripts/cluster.sh $(quote_command "$@")"
nodes=3 connections=3000 events=200 rate=50 payload=64 threads=1 connect_rate=5k
source_ips="127.0.0.1-127.0.0.8" port=18390 timeout_s=600 baseline=0 out="" build=1 extra=()
while (($#)); do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --events) events="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --payload) payload="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --connect-rate) connect_rate="$2"; shift 2 ;;
    --source-ips) source_ips="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --timeout) timeout_s="$2"; shift 2 ;;
    --baseline) baseline=1; shift ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

for tool in curl ss jq; do
  command -v "$tool" >/dev/null || ensure_apt "$([[ $tool == ss ]] && echo iproute2 || echo "$tool")" ||
    die "$tool is missing and could not be installed"
done
command -v redis-server >/dev/null || ensure_apt redis-server || die "redis-server is missing"
command -v redis-cli >/dev/null || ensure_apt redis-tools || die "redis-cli is missing"
record_source
raise_nofile
((build)) && build_workspace
server_bin="$(target_dir)/release/sse-server"
[[ -x "$server_bin" && -x "$(loadgen_bin)" ]] || die "release binaries missing (run without --no-build)"
port_is_free "$port" || die "port $port is taken (use --port)"

out="${out:-$(result_dir -cluster)}"
mkdir -p "$out"
json="$out/results.jsonl"
redis_pid="" group_pid="" sampler_pid=""
cleanup() {
  [[ -z "$sampler_pid" ]] || { kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; }
  stop_tree "$group_pid"
  stop_tree "$redis_pid"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Redis on a free loopback port (it cannot be asked for port 0).
redis_port=$((port + 1000))
while ! port_is_free "$redis_port"; do redis_port=$((redis_port + 1)); done
redis_url="redis://127.0.0.1:$redis_port/0"

start_redis() {
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$out" \
    >"$out/redis.log" 2>&1 &
  redis_pid=$!
  local deadline=$((SECONDS + 10))
  until redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; do
    ((SECONDS < deadline)) || die "redis-server did not answer on port $redis_port"
    sleep 0.1
  done
}

# N nodes under one parent, so one pid (children included) sums their memory and CPU.
start_nodes() {
  local count="$1" label="$2" backplane=("${@:3}")
  local node_args=(--listen "127.0.0.1:$port" --reuse-port --threads "$threads" --demo-interval 0
    "${backplane[@]}")
  NODE_COMMAND="sse-server $(quote_command "${node_args[@]}")"
  log "$label: $count x $NODE_COMMAND"
  bash -c 'n=$1; shift; log=$1; shift
    for i in $(seq 1 "$n"); do "$@" 2>"$log.node$i.log" & done
    wait' cluster-nodes "$count" "$out/$label" "$server_bin" "${node_args[@]}" &
  group_pid=$!
  wait_http "http://127.0.0.1:$port/healthz" 20 "$group_pid" || die "$label: the nodes did not come up"
  # Every node must have started (each prints its start-up line).
  local deadline=$((SECONDS + 20))
  until (($(cat "$out/$label".node*.log 2>/dev/null | grep -c 'listening on') == count)); do
    ((SECONDS < deadline)) || die "$label: not every node started (see $out/$label.node*.log)"
    sleep 0.2
  done
}

# Sockets each node holds, sampled every 2 s (the largest sample per node is kept): how evenly
# the kernel spread subscribers. A node's sockets are its connections plus its listener and its
# two Redis connections. (Read from /proc/PID/fd: `ss -p` takes too long with many sockets.)
sample_spread() {
  local file="$1" pid
  while sleep 2; do
    for pid in $(pgrep -P "$group_pid"); do
      echo "$pid $(find "/proc/$pid/fd" -lname 'socket:*' 2>/dev/null | wc -l)"
    done >>"$file"
  done
}

run_load() {
  local label="$1" pid="$2"
  local args=(fanout --url "http://127.0.0.1:$port/events?topic=bench"
    --publish-url "http://127.0.0.1:$port/publish?topic=bench"
    --connections "$connections" --events "$events" --rate "$rate" --payload "$payload"
    --connect-rate "$connect_rate" --label "$label" --json "$(basename "$json")"
    --server-pid "$pid" --fail-on-loss)
  [[ -z "$source_ips" ]] || args+=(--source-ips "$source_ips")
  args+=("${extra[@]}")
  LOAD_COMMANDS+=("sse-loadgen $(quote_command "${args[@]}" | sed "s/--server-pid $pid/--server-pid PID/")")
  log "$label: sse-loadgen $(quote_command "${args[@]}")"
  local status=0
  (cd "$out" && timeout --signal=INT --kill-after=15 "$timeout_s" "$(loadgen_bin)" "${args[@]}") 2>&1 |
    tee -a "$out/$label.loadgen.log" || status=$?
  return "$status"
}

LOAD_COMMANDS=()
status=0
if ((baseline)); then
  start_nodes 1 single
  single_command="$NODE_COMMAND"
  run_load single "$group_pid" || { warn "single: the loadgen reported a failure"; status=1; }
  stop_tree "$group_pid"
  group_pid=""
  wait_port_free "$port" 10 || die "port $port still taken after the single node stopped"
fi

start_redis
start_nodes "$nodes" "cluster-$nodes" --redis "$redis_url"
cluster_command="$NODE_COMMAND"
redis_cpu_before="$(awk '{print $14 + $15}' "/proc/$redis_pid/stat")"
sample_spread "$out/spread.samples" &
sampler_pid=$!
run_load "cluster-$nodes" "$group_pid" || { warn "cluster: the loadgen reported a failure"; status=1; }
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""
redis_cpu_s="$(awk -v before="$redis_cpu_before" -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15 - before) / hz}' "/proc/$redis_pid/stat")"
redis_memory="$(redis-cli -p "$redis_port" info memory | tr -d '\r' | sed -n 's/^used_memory_human://p')"
redis_rss="$(redis-cli -p "$redis_port" info memory | tr -d '\r' | sed -n 's/^used_memory_rss_human://p')"
feed_length="$(redis-cli -p "$redis_port" xlen '{sse}:feed')"
health="$(curl -s "http://127.0.0.1:$port/metrics" | grep '^sse_backplane_up' || true)"

if [[ -s "$json" ]]; then
  loadgen_report "$json" "$out" || warn "sse-loadgen report failed"
else
  warn "the loadgen wrote no results"
  status=1
fi

{
  echo "# sse-server cluster run, $(date -u +%Y-%m-%d)"
  echo
  echo "Written by \`scripts/cluster.sh\`; nothing here is typed by hand."
  echo
  echo "## Command"
  echo
  echo '```sh'
  echo "$command_line"
  echo "# which ran:"
  echo "redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no"
  ((baseline)) && echo "$single_command    # 1 node, no Redis (baseline)"
  echo "$cluster_command    # x $nodes nodes"
  printf '%s\n' "${LOAD_COMMANDS[@]}"
  echo '```'
  echo
  echo "Result: $( ((status == 0)) && echo "every run completed, no loss (--fail-on-loss)" || echo "a run failed or lost events (see the *.loadgen.log files)")."
  echo
  echo "## The cluster"
  echo
  echo "- nodes: $nodes sse-server processes, $threads event loop(s) each, --reuse-port on 127.0.0.1:$port"
  echo "- subscribers: $connections, opened at $connect_rate/s from ${source_ips:-the default address}; $events events at $rate/s, $payload-byte data"
  echo "- server memory and CPU in the summary: summed over every node (one parent pid, children included)"
  echo "- Redis during the cluster run: CPU ${redis_cpu_s} s, used_memory $redis_memory (RSS $redis_rss), feed length $feed_length"
  echo "- after the run: \`$health\`"
  echo
  echo "Sockets per node (largest of the 2-second samples; connections plus the listener and two Redis connections):"
  echo
  echo "| node pid | sockets |"
  echo "| --- | --- |"
  if [[ -s "$out/spread.samples" ]]; then
    awk '{if ($2 > max[$1]) max[$1] = $2} END {for (p in max) print "| " p " | " max[p] " |"}' "$out/spread.samples" | sort
  else
    echo "| (no sample) | |"
  fi
  echo
  echo "## Machine"
  echo
} >"$out/README.md"
write_environment "$out/README.md"
{
  echo "| sse-server | $("$server_bin" --version 2>/dev/null || echo unknown) |"
  echo "| redis-server | $(redis-server --version | sed 's/ sha=.*//') |"
  echo
  echo "The load generator, Redis and every node share this machine's cores."
  echo
  summary_markdown "$out" "$json" "No summary: the run did not complete (see the *.loadgen.log files)."
  echo "Raw data: [results.jsonl](results.jsonl); logs: *.loadgen.log, *.node*.log, redis.log."
} >>"$out/README.md"
log "results: ${out#"$ROOT"/}"
exit "$status"
