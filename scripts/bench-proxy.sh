#!/usr/bin/env bash
# What nginx in front costs: the same fan-out run straight to sse-server and through nginx
# configured by server/deploy/nginx/sse-locations.conf, at a few thousand connections.
#
#   ./scripts/bench-proxy.sh [--steps 1k,3k,5k] [--events 50] [--rate 5] [--no-build] [--out DIR]
#
# For each step, a fresh sse-server (and, for the proxied run, a fresh nginx with worker_processes
# auto on a plain HTTP/1.1 listener: sse-loadgen speaks no TLS, so this measures the proxy hop,
# not TLS or HTTP/2) is started, `sse-loadgen fanout` subscribes N connections and publishes
# straight to the server (the publisher is never proxied, so the latency difference is the
# delivery path through nginx), and both are stopped. Memory per connection is measured on the
# process tree given as --server-pid: sse-server for the direct run, nginx (master and workers)
# for the proxied one, whose sse-server costs what it costs in the direct run. Kernel socket
# memory is system-wide, so the proxied figure includes nginx's two sockets per stream.
# Writes bench-results/<date>-<host>-proxy/ (README.md with the commands and the machine,
# results.jsonl, summary.md, SVG plots, logs).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/loadgen.sh"

command_line="./scripts/bench-proxy.sh $(quote_command "$@")"
steps="1k,3k,5k"
events=50
rate=5
build=1
out=""
server_port=18090
proxy_port=18091
while (($#)); do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --events) events="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
nginx_bin="${SSE_BENCH_NGINX:-/usr/sbin/nginx}"
[[ -x "$nginx_bin" ]] || ensure_apt nginx || die "nginx is missing and could not be installed"
for tool in curl ss jq; do
  command -v "$tool" >/dev/null || ensure_apt "$([[ $tool == ss ]] && echo iproute2 || echo "$tool")" ||
    die "$tool is missing and could not be installed"
done
record_source
raise_nofile
((build)) && build_workspace
loadgen="$(loadgen_bin)"
server_bin="$(target_dir)/release/sse-server"
[[ -x "$loadgen" && -x "$server_bin" ]] || die "release binaries missing (run without --no-build)"

out="${out:-$(result_dir -proxy)}"
mkdir -p "$out"
json="$out/results.jsonl"
nginx_dir=""
server_pid=""
nginx_pid=""
stop_all() {
  stop_tree "$nginx_pid"
  nginx_pid=""
  stop_tree "$server_pid"
  server_pid=""
  [[ -z "$nginx_dir" ]] || rm -rf "$nginx_dir"
  nginx_dir=""
}
trap stop_all EXIT
trap 'exit 130' INT TERM

start_server() {
  (
    ulimit -n "$(ulimit -Hn)"
    exec "$server_bin" --listen "127.0.0.1:$server_port" --demo-interval 0
  ) >>"$out/server.log" 2>&1 &
  server_pid=$!
  wait_http "http://127.0.0.1:$server_port/healthz" 30 "$server_pid" || die "sse-server did not start (server.log)"
}

start_nginx() {
  nginx_dir="$(mktemp -d /tmp/sse-bench-nginx.XXXXXX)"
  mkdir -p "$nginx_dir/tmp"
  cat >"$nginx_dir/nginx.conf" <<CONF
daemon off;
worker_processes auto;
worker_rlimit_nofile $(ulimit -Hn);
pid $nginx_dir/nginx.pid;
error_log $nginx_dir/error.log warn;
events { worker_connections $(($(ulimit -Hn) / 2)); }
http {
  access_log off;
  client_body_temp_path $nginx_dir/tmp/body;
  proxy_temp_path $nginx_dir/tmp/proxy;
  fastcgi_temp_path $nginx_dir/tmp/fastcgi;
  uwsgi_temp_path $nginx_dir/tmp/uwsgi;
  scgi_temp_path $nginx_dir/tmp/scgi;
  upstream sse_upstream { server 127.0.0.1:$server_port; keepalive 64; }
  server {
    listen 127.0.0.1:$proxy_port backlog=65535;
    include $ROOT/server/deploy/nginx/sse-locations.conf;
  }
}
CONF
  cp "$nginx_dir/nginx.conf" "$out/nginx.conf"
  "$nginx_bin" -p "$nginx_dir" -e "$nginx_dir/error.log" -c "$nginx_dir/nginx.conf" >>"$out/nginx.log" 2>&1 &
  nginx_pid=$!
  wait_http "http://127.0.0.1:$proxy_port/healthz" 30 "$nginx_pid" || die "nginx did not start (nginx.log)"
}

commands=()
run_step() {
  local label="$1" n="$2" port="$3" pid="$4"
  local args=(fanout --url "http://127.0.0.1:$port/events?topic=bench"
    --publish-url "http://127.0.0.1:$server_port/publish?topic=bench"
    -c "$n" --events "$events" --rate "$rate" --payload 64 --connect-rate 5k
    --source-ips 127.0.0.1-127.0.0.4 --label "$label" --scenario "64B@${rate}/s"
    --json "$(basename "$json")" --quiet)
  commands+=("sse-loadgen $(quote_command "${args[@]}") --server-pid PID")
  log "$label, $n connections"
  (cd "$out" && timeout --signal=INT --kill-after=15 600 "$loadgen" "${args[@]}" --server-pid "$pid") >>"$out/loadgen.log" 2>&1 ||
    warn "$label at $n connections failed (loadgen.log)"
}

# The machine may be shared: say how loaded it was, since latency depends on it.
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
IFS=, read -ra step_list <<<"$steps"
for step in "${step_list[@]}"; do
  n="$(parse_count "$step")"
  start_server
  run_step direct "$n" "$server_port" "$server_pid"
  stop_all
  start_server
  start_nginx
  run_step nginx "$n" "$proxy_port" "$nginx_pid"
  if [[ -s "$nginx_dir/error.log" ]]; then
    { echo "--- nginx error.log, $n connections:"; cat "$nginx_dir/error.log"; } >>"$out/nginx.log"
  fi
  stop_all
done

[[ -s "$json" ]] || die "the loadgen wrote no results (see $out/loadgen.log)"
"$loadgen" report --input "$json" --out-dir "$out" >/dev/null || warn "sse-loadgen report failed"
jq -s -r '
  "| run | connections | open | memory B/conn (measured tree) | kernel B/conn (system) | p50 µs | p99 µs | max µs | lost | dup |",
  "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
  (sort_by(.connections, .label)[] |
    "| \(.label) | \(.connections) | \(.connections_open) | \(.server_rss_per_conn_bytes // null | if . == null then "n/a" else round end) | \(.kernel_sock_mem_per_conn_bytes // null | if . == null then "n/a" else round end) | \(.latency_p50_us) | \(.latency_p99_us) | \(.latency_max_us) | \(.lost) | \(.duplicated) |")
' "$json" >"$out/proxy.md"
{
  echo "# Proxy cost: sse-server direct and through nginx, $(date -u +%Y-%m-%d)"
  echo
  echo "Written by \`scripts/bench-proxy.sh\`; nothing here is typed by hand."
  echo
  echo "## Command"
  echo
  echo '```sh'
  echo "$command_line"
  echo "# which ran, per step (PID: sse-server for direct, the nginx master for nginx):"
  printf '%s\n' "${commands[@]}" | sort -u
  echo '```'
  echo
  echo "The nginx configuration is [nginx.conf](nginx.conf) (including server/deploy/nginx/sse-locations.conf)."
  echo "\"memory B/conn\" is the RSS growth of the measured process tree per open connection:"
  echo "sse-server's in the direct run, nginx's (master and workers) in the proxied run, whose"
  echo "sse-server costs the same as in the direct run. Kernel socket memory is system-wide and counts"
  echo "every socket (loadgen, nginx and server ends). Latency runs from each event's scheduled send"
  echo "time to its receipt by the subscriber; the publisher posts straight to sse-server."
  echo
  cat "$out/proxy.md"
  echo
  echo "## Machine"
  echo
} >"$out/README.md"
write_environment "$out/README.md"
{
  echo "| nginx | $("$nginx_bin" -v 2>&1) |"
  echo
  echo "The load generator, nginx and the server share the machine's cores. Load average (1, 5, 15 min)"
  echo "before the first step: $load_before; after the last: $(cut -d' ' -f1-3 /proc/loadavg). Other jobs on"
  echo "the machine add to the latency figures; the memory figures do not depend on them."
  echo
  echo "Raw data: [results.jsonl](results.jsonl); logs: loadgen.log, server.log, nginx.log; the loadgen's report: [summary.md](summary.md)."
} >>"$out/README.md"
log "results: ${out#"$ROOT"/}"
cat "$out/proxy.md"
