#!/usr/bin/env bash
# A cluster on one host: Redis and N sse-server nodes sharing one address (--reuse-port) and one
# Redis (--redis), measured with the load generator.
#
#   ./scripts/cluster.sh [options]
#
# Builds sse-server and sse-loadgen in release, starts `redis-server` on a free loopback port
# (no persistence), starts N nodes on 127.0.0.1:PORT with --reuse-port --redis (the kernel
# spreads subscribers over the nodes, and over each node's event loops: one listening socket per
# loop; publishes reach whichever node accepts them, and Redis carries every event to every
# node), runs `sse-loadgen fanout` against that address, and writes
# bench-results/<date>-<host>-cluster/ (README.md with the exact commands, the machine, how
# connections spread over the nodes and their loops, Redis CPU and memory; results.jsonl;
# summary.md). Server memory and CPU are summed over every node: the nodes run under one parent
# process whose pid the loadgen is given (it counts children, and keeps a killed node's CPU).
# Everything it starts is stopped at the end.
#
# With --baseline, the same load first runs on one node without --redis and on one node with
# it: like for like, so the backplane's cost is a ratio from one run (give it --connections
# one process holds). With --kill-node-after, one node is killed (kill -9) mid-run and the
# loadgen reconnects its subscribers (--reconnect, with Last-Event-ID, through the same address:
# the kernel hands them to the surviving nodes), counting loss and duplicates across.
#
# Options:
#   --nodes N            sse-server processes (default 3)
#   --threads N          event loops per node (default 1)
#   --connections N      subscribers in all (default 3000)
#   --events N           events published (default 200)
#   --rate R             events per second (default 50)
#   --payload BYTES      event data size (default 64)
#   --connect-rate N     subscribers opened per second (default 5k)
#   --source-ips RANGE   client source addresses (default 127.0.0.1-127.0.0.8; "" for none):
#                        about 28k connections per address to one server address
#   --processes N        loadgen worker processes (default 0: as many as its open-file limit
#                        requires, each under the limit)
#   --kill-node-after S  kill -9 one node S seconds after the cluster run's loadgen starts
#                        (ramp included); the loadgen runs with --reconnect
#   --port N             the nodes' shared port on 127.0.0.1 (default 18390)
#   --timeout S          longest loadgen run, in seconds (default 600)
#   --baseline           first run the same load on 1 node without Redis and 1 node with Redis
#   --out DIR            result folder (default bench-results/<date>-<host>-cluster, -2... if taken)
#   --no-build           use the binaries already built
#   -- ARGS...           passed to `sse-loadgen fanout` as they are
#
# Sizing under an open-file limit L per process (20,000 here): a node holds about L - 192
# streams (its default --max-connections keeps 192 descriptors for short requests, refusals
# and its own files), and the kernel's spread over N nodes is even within a few percent, so N
# nodes hold about N x (L - 192) x 0.95; after --kill-node-after, N - 1 nodes must hold them
# all. The loadgen splits its subscribers over worker processes of at most L - 64 each. 100,000
# subscribers: 6 nodes (about 16,700 each), 6 loadgen workers, 8 source addresses
# (12,500 each). The script warns when the numbers asked for do not fit.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/loadgen.sh"

command_line="./scripts/cluster.sh $(quote_command "$@")"
nodes=3 connections=3000 events=200 rate=50 payload=64 threads=1 connect_rate=5k processes=0
source_ips="127.0.0.1-127.0.0.8" port=18390 timeout_s=600 baseline=0 out="" build=1 extra=()
kill_after=""
while (($#)); do
  case "$1" in
    --nodes | --connections | --events | --rate | --payload | --threads | --connect-rate | \
      --source-ips | --processes | --kill-node-after | --port | --timeout | --out)
      (($# >= 2)) || die "$1 needs a value" ;;
  esac
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --events) events="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --payload) payload="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --connect-rate) connect_rate="$2"; shift 2 ;;
    --source-ips) source_ips="$2"; shift 2 ;;
    --processes) processes="$2"; shift 2 ;;
    --kill-node-after) kill_after="$2"; shift 2 ;;
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
[[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a positive number"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive number"
[[ "$processes" =~ ^[0-9]+$ ]] || die "--processes must be a number (0: automatic)"
if [[ -n "$kill_after" ]]; then
  [[ "$kill_after" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--kill-node-after takes seconds, e.g. 20"
  ((nodes >= 2)) || die "--kill-node-after needs --nodes 2 or more (someone must survive)"
fi
connections_n="$(parse_count "$connections")"

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

# The descriptor math (see the header): warn before a run that cannot fit.
fd_limit="$(ulimit -n)"
per_node=$((fd_limit - 192))    # sse-server's default --max-connections
per_process=$((fd_limit - 64))  # the loadgen's subscribers per worker
survivors="$nodes"
[[ -z "$kill_after" ]] || survivors=$((nodes - 1))
worst_per_node=$(((connections_n * 105 / 100 + survivors - 1) / survivors))
((worst_per_node <= per_node)) ||
  warn "$connections_n subscribers on $survivors node(s) is about $worst_per_node per node (with 5% spread), more than the $per_node the open-file limit $fd_limit lets one node hold: use more --nodes"
if ((baseline)) && ((connections_n > per_node)); then
  warn "--baseline runs $connections_n subscribers on one node, more than the $per_node it can hold: use --connections ${per_node} or fewer for the baseline"
fi
if ((processes > 0)) && (((connections_n + processes - 1) / processes > per_process)); then
  warn "--processes $processes puts $(((connections_n + processes - 1) / processes)) subscribers in each loadgen process, more than its $per_process descriptors"
fi

out="${out:-$(result_dir -cluster)}"
mkdir -p "$out"
json="$out/results.jsonl"
redis_pid="" group_pid="" sampler_pid="" killer_pid=""
cleanup() {
  local pid
  for pid in "$sampler_pid" "$killer_pid"; do
    [[ -z "$pid" ]] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  done
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
  [[ -z "$redis_pid" ]] || return 0
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$out" \
    >"$out/redis.log" 2>&1 &
  redis_pid=$!
  local deadline=$((SECONDS + 10))
  until redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; do
    ((SECONDS < deadline)) || die "redis-server did not answer on port $redis_port"
    sleep 0.1
  done
}

# Empties Redis between runs, so each run's figures (memory, feed length) are its own.
flush_redis() { redis-cli -p "$redis_port" flushall >/dev/null; }

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

stop_nodes() {
  stop_tree "$group_pid"
  group_pid=""
  wait_port_free "$port" 10 || die "port $port still taken after the nodes stopped"
}

# Every 2 s: the sockets each node holds (from /proc/PID/fd: `ss -p` takes too long with many
# sockets), and each node's connections per event loop (sse_loop_connections from /metrics).
# The nodes share one address, so /metrics is read several times per node count: each request
# lands on a node the kernel picks, and a node is told apart by its process_start_time_seconds.
sample_spread() {
  local label="$1" count="$2" pid i
  while sleep 2; do
    for pid in $(pgrep -P "$group_pid"); do
      echo "$label $pid $(find "/proc/$pid/fd" -lname 'socket:*' 2>/dev/null | wc -l)"
    done >>"$out/sockets.samples"
    for ((i = 0; i < 4 * count; i++)); do
      curl -s --max-time 2 "http://127.0.0.1:$port/metrics" | awk -v label="$label" '
        /^process_start_time_seconds / { start = $2 }
        /^sse_loop_connections\{/ {
          match($0, /loop="[0-9]+"/); loop = substr($0, RSTART + 6, RLENGTH - 7)
          held[loop] = $2; if (loop + 1 > loops) loops = loop + 1
        }
        END {
          if (start == "" || loops == 0) exit
          printf "%s %s", label, start
          for (l = 0; l < loops; l++) printf " %d", held[l]
          print ""
        }'
    done >>"$out/loops.samples"
  done
}

# Kills (kill -9) one node of the running group after $1 seconds; records its pid and when.
kill_one_node_after() {
  sleep "$1"
  local victim
  victim="$(pgrep -P "$group_pid" | head -n 1)"
  [[ -n "$victim" ]] || return 0
  kill -9 "$victim"
  echo "$victim $1" >"$out/killed"
  log "killed node $victim (kill -9) $1 s into the load"
}

run_load() {
  local label="$1" pid="$2" reconnect="$3"
  local args=(fanout --url "http://127.0.0.1:$port/events?topic=bench"
    --publish-url "http://127.0.0.1:$port/publish?topic=bench"
    --connections "$connections" --events "$events" --rate "$rate" --payload "$payload"
    --connect-rate "$connect_rate" --processes "$processes" --label "$label"
    --json "$(basename "$json")" --server-pid "$pid" --fail-on-loss)
  [[ -z "$source_ips" ]] || args+=(--source-ips "$source_ips")
  ((reconnect)) && args+=(--reconnect)
  args+=("${extra[@]}")
  LOAD_COMMANDS+=("sse-loadgen $(quote_command "${args[@]}" | sed "s/--server-pid $pid/--server-pid PID/")")
  log "$label: sse-loadgen $(quote_command "${args[@]}")"
  local status=0
  (cd "$out" && timeout --signal=INT --kill-after=15 "$timeout_s" "$(loadgen_bin)" "${args[@]}") 2>&1 |
    tee -a "$out/$label.loadgen.log" || status=$?
  return "$status"
}

# One measured run: nodes up, samplers on, the load, samplers off, nodes down.
measured_run() {
  local label="$1" count="$2" kill_secs="$3"
  shift 3
  start_nodes "$count" "$label" "$@"
  RUN_COMMANDS+=("$NODE_COMMAND    # x $count node(s): $label")
  sample_spread "$label" "$count" &
  sampler_pid=$!
  if [[ -n "$kill_secs" ]]; then
    kill_one_node_after "$kill_secs" &
    killer_pid=$!
  fi
  run_load "$label" "$group_pid" "$([[ -n "$kill_secs" ]] && echo 1 || echo 0)" ||
    { warn "$label: the loadgen reported a failure"; status=1; }
  local pid
  for pid in "$sampler_pid" "$killer_pid"; do
    [[ -z "$pid" ]] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  done
  sampler_pid="" killer_pid=""
}

LOAD_COMMANDS=() RUN_COMMANDS=()
status=0
if ((baseline)); then
  measured_run 1-node 1 ""
  stop_nodes
  start_redis
  measured_run 1-node-redis 1 "" --redis "$redis_url"
  stop_nodes
  flush_redis
fi

cluster_label="cluster-$nodes"
start_redis
if ((baseline)) && ((nodes == 1)) && [[ -z "$kill_after" ]]; then
  # The cluster run would repeat 1-node-redis.
  cluster_label="1-node-redis"
else
  redis_cpu_before="$(awk '{print $14 + $15}' "/proc/$redis_pid/stat")"
  measured_run "$cluster_label" "$nodes" "$kill_after" --redis "$redis_url"
  redis_cpu_s="$(awk -v before="$redis_cpu_before" -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15 - before) / hz}' "/proc/$redis_pid/stat")"
  redis_memory="$(redis-cli -p "$redis_port" info memory | tr -d '\r' | sed -n 's/^used_memory_human://p')"
  redis_rss="$(redis-cli -p "$redis_port" info memory | tr -d '\r' | sed -n 's/^used_memory_rss_human://p')"
  feed_length="$(redis-cli -p "$redis_port" xlen '{sse}:feed')"
  health="$(curl -s "http://127.0.0.1:$port/metrics" | grep '^sse_backplane_up' || true)"
  stop_nodes
fi

if [[ -s "$json" ]]; then
  loadgen_report "$json" "$out" || warn "sse-loadgen report failed"
else
  warn "the loadgen wrote no results"
  status=1
fi

# A JSON field of one run (label), or n/a.
field() { jq -r --arg run "$1" "select(.label == \$run) | .$2 // \"n/a\"" "$json" 2>/dev/null | tail -n 1 || true; }

# A field in ms, whole (n/a stays n/a).
ms_field() {
  local v
  v="$(field "$1" "$2")"
  if [[ "$v" =~ ^[0-9.]+$ ]]; then printf '%.0f' "$v"; else printf '%s' "$v"; fi
}

# A figure to about three significant digits, whole numbers from 100 up: 1.31, 178, 733930.
three_digits() { awk -v x="$1" 'BEGIN { if (x >= 100) printf "%.0f", x; else if (x >= 10) printf "%.1f", x; else printf "%.3g", x }'; }

# The backplane's cost, 1 node vs 1 node: each figure and its ratio.
cost_table() {
  local key name a b
  echo "| figure | 1 node | 1 node + Redis | ratio |"
  echo "| --- | --- | --- | --- |"
  for key in server_cpu_s_per_million_deliveries server_rss_per_conn_bytes latency_p50_us \
    latency_p99_us last_subscriber_p99_ms deliveries_per_sec lost duplicated; do
    a="$(field 1-node "$key")" b="$(field 1-node-redis "$key")"
    name="${key//_/ }"
    if [[ "$a" =~ ^[0-9.]+$ && "$b" =~ ^[0-9.]+$ ]] && awk -v a="$a" 'BEGIN { exit !(a > 0) }'; then
      echo "| $name | $(three_digits "$a") | $(three_digits "$b") | $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }') |"
    else
      echo "| $name | $a | $b | |"
    fi
  done
}

# Per run and node: the largest socket count of the samples (by pid), and the loop spread of
# the sample where the node held most (by start time, numbered in start order).
spread_tables() {
  echo "Sockets per node (largest of the 2-second samples; connections plus one listener per"
  echo "loop and three Redis connections):"
  echo
  echo "| run | node pid | sockets |"
  echo "| --- | --- | --- |"
  if [[ -s "$out/sockets.samples" ]]; then
    awk '{ key = $1 " " $2; if ($3 > max[key]) max[key] = $3 }
      END { for (k in max) { split(k, p, " "); print "| " p[1] " | " p[2] " | " max[k] " |" } }' \
      "$out/sockets.samples" | sort
  else
    echo "| (no sample) | | |"
  fi
  echo
  echo "Connections per node and per event loop (\`sse_loop_connections\` from each node's"
  echo "/metrics; the sample where the node held most; nodes numbered in start order):"
  echo
  echo "| run | node | connections | per loop |"
  echo "| --- | --- | --- | --- |"
  if [[ -s "$out/loops.samples" ]]; then
    awk '{ key = $1 " " $2; total = 0; for (i = 3; i <= NF; i++) total += $i
        if (!(key in best) || total > best[key]) { best[key] = total; line[key] = $0 } }
      END { for (k in line) print line[k] }' "$out/loops.samples" |
      sort -k1,1 -k2,2n | awk '{
        if ($1 != run) { run = $1; n = 0 } n++
        total = 0; loops = ""
        for (i = 3; i <= NF; i++) { total += $i; loops = loops (i > 3 ? " / " : "") $i }
        print "| " $1 " | " n " | " total " | " loops " |" }'
  else
    echo "| (no sample) | | | |"
  fi
}

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
  printf '%s\n' "${RUN_COMMANDS[@]}"
  printf '%s\n' "${LOAD_COMMANDS[@]}"
  echo '```'
  echo
  echo "Result: $( ((status == 0)) && echo "every run completed, no loss and no duplicate (--fail-on-loss)" || echo "a run failed or lost events (see the *.loadgen.log files)")."
  echo
  echo "## The cluster"
  echo
  echo "- nodes: $nodes sse-server processes, $threads event loop(s) each (one listening socket per loop), --reuse-port on 127.0.0.1:$port"
  echo "- subscribers: $connections, opened at $connect_rate/s from ${source_ips:-the default address}, loadgen processes: $(field "$cluster_label" processes); $events events at $rate/s, $payload-byte data"
  echo "- open-file limit per process: $fd_limit (a node holds about $per_node streams, a loadgen worker $per_process subscribers)"
  echo "- server memory and CPU in the summary: summed over every node (one parent pid, children included)"
  if [[ -n "${redis_cpu_s:-}" ]]; then
    echo "- Redis during the cluster run: CPU ${redis_cpu_s} s, used_memory $redis_memory (RSS $redis_rss), feed length $feed_length"
    echo "- after the run: \`$health\`"
  fi
  echo
  if [[ -n "$kill_after" ]]; then
    echo "## Failover"
    echo
    if [[ -s "$out/killed" ]]; then
      read -r victim secs <"$out/killed"
      echo "Node $victim was killed (kill -9) $secs s after the loadgen started; its subscribers"
      echo "reconnected (--reconnect: after the server's retry with jitter, with Last-Event-ID) through"
      echo "the shared address to the surviving nodes."
    else
      echo "No node was killed: the run ended before --kill-node-after $kill_after s."
    fi
    echo
    echo "| lost | duplicated | reconnects | reconnect p50 ms | reconnect max ms | all back after ms | still reconnecting |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    echo "| $(field "$cluster_label" lost) | $(field "$cluster_label" duplicated) | $(field "$cluster_label" reconnects) | $(ms_field "$cluster_label" reconnect_p50_ms) | $(ms_field "$cluster_label" reconnect_max_ms) | $(ms_field "$cluster_label" all_back_ms) | $(field "$cluster_label" still_reconnecting) |"
    echo
  fi
  if ((baseline)); then
    echo "## The backplane's cost, 1 node vs 1 node"
    echo
    echo "The same load on one node without \`--redis\` and on one node with it (ratio: with / without)."
    echo
    cost_table
    echo
  fi
  echo "## Spread"
  echo
  spread_tables
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
  echo "Raw data: [results.jsonl](results.jsonl); logs: *.loadgen.log, *.node*.log, redis.log; samples: sockets.samples, loops.samples."
} >>"$out/README.md"
log "results: ${out#"$ROOT"/}"
exit "$status"
