#!/usr/bin/env bash
# What stuck subscribers cost: N subscribers that never read while big events are published,
# beside 1,000 subscribers that read (their latency measured by sse-loadgen fanout), once with
# the kernel's send-buffer autotuning (--send-buffer 0, the old behaviour) and once with the
# default --send-buffer. Reports the server's RSS and the kernel's TCP memory (before, the
# peak while publishing, sampled every 0.2 s, and after), slow-consumer disconnects and the
# readers' p50/p99, in bench-results/<date>-<host>-stuck/ (memory over time in
# memory-<send-buffer>.tsv).
#
#   ./scripts/stuck.sh [--stuck N] [--readers N] [--no-build]
#
# Options:
#   --stuck N        stuck subscribers (default 15000)
#   --readers N      subscribers that read, measured by sse-loadgen (default 1000)
#   --send-buffers L the --send-buffer values to run, in order (default 0,default: autotuning,
#                    then the server's default), e.g. 0,64KiB,16KiB
#   --port N         port on 127.0.0.1 (default 18095)
#   --out DIR        result folder (default bench-results/<date>-<host>-stuck)
#   --no-build       use the binaries already built
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/peers.sh"

command_line="./scripts/stuck.sh $(quote_command "$@")"
stuck=15000
readers=1000
send_buffers="0,default"
port=18095
out=""
build=1
while (($#)); do
  case "$1" in
    --stuck) stuck="$2"; shift 2 ;;
    --readers) readers="$2"; shift 2 ;;
    --send-buffers) send_buffers="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$stuck" =~ ^[0-9]+$ ]] || die "--stuck takes a whole number"
[[ "$readers" =~ ^[0-9]+$ && "$readers" -ge 1 ]] || die "--readers takes a whole number (1 or more)"
record_source
raise_nofile
((build)) && build_workspace
bin="$(target_dir)/release"
# The server's own default, for the table (the runs named "default" pass no --send-buffer).
default_buffer="$("$bin/sse-server" --help | grep -A6 -- '--send-buffer' | grep -o 'default: [^]]*' | head -1 | cut -d' ' -f2)"
out="${out:-$(result_dir -stuck)}"
mkdir -p "$out"
results="$out/results.tsv"
printf 'send_buffer\tstuck\tserver_rss_before\tserver_rss_peak\tserver_rss_after\ttcp_mem_before\ttcp_mem_peak\ttcp_mem_after\tslow_disconnects\treader_p50_ms\treader_p99_ms\treader_lost\n' >"$results"

# Holds STUCK subscribers that never read until killed (python3: one process, no reads).
hold_stuck() {
  python3 - "$port" "$1" <<'PY' &
import socket, sys, time, resource
port, count = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for n in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /events?topic=big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    held.append(s)
print("holding", len(held), flush=True)
time.sleep(3600)
PY
  STUCK_PID=$!
}

tcp_mem() { awk '/^TCP:/ { for (i = 1; i <= NF; i++) if ($i == "mem") print $(i + 1) * 4096 }' /proc/net/sockstat; }
rss() { awk '/VmRSS/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Writes "seconds server_rss tcp_mem" to FILE every 0.2 s until killed (SAMPLER_PID).
sample_memory() {
  local pid="$1" file="$2"
  (
    start="$(date +%s.%N)"
    printf 'seconds\tserver_rss\ttcp_mem\n'
    while :; do
      printf '%s\t%s\t%s\n' "$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')" \
        "$(rss "$pid")" "$(tcp_mem)"
      sleep 0.2
    done
  ) >"$file" &
  SAMPLER_PID=$!
}
# The largest value of column COLUMN (2: RSS, 3: TCP memory) in a sample file.
peak() { awk -F'\t' -v c="$2" 'NR > 1 && $c > max { max = $c } END { printf "%d\n", max + 0 }' "$1"; }

# With autotuning, each stuck socket may take up to tcp_wmem's maximum: say so when that is past
# the host's TCP memory limit (the run then shows what the whole host suffers).
tcp_limit=$(($(awk '{ print $3 }' /proc/sys/net/ipv4/tcp_mem) * 4096))
wmem_max="$(awk '{ print $3 }' /proc/sys/net/ipv4/tcp_wmem)"
if ((stuck * wmem_max > tcp_limit)); then
  warn "with --send-buffer 0, $stuck stuck sockets may take up to $((stuck * wmem_max / 1048576)) MiB of kernel memory, past this host's tcp_mem limit of $((tcp_limit / 1048576)) MiB: every TCP socket on the host will be short of memory during that run"
fi

IFS=, read -ra buffers <<<"$send_buffers"
for send_buffer in "${buffers[@]}"; do
  log "--send-buffer $send_buffer: $stuck stuck subscribers"
  (
    ulimit -n "$(ulimit -Hn)"
    if [[ "$send_buffer" == default ]]; then
      exec "$bin/sse-server" --listen "127.0.0.1:$port" --threads 2 --demo-interval 0
    else
      exec "$bin/sse-server" --listen "127.0.0.1:$port" --threads 2 --demo-interval 0 --send-buffer "$send_buffer"
    fi
  ) >"$out/server-$send_buffer.log" 2>&1 &
  server_pid=$!
  wait_http "http://127.0.0.1:$port/healthz" 30 "$server_pid" || die "sse-server did not start"
  hold_stuck "$stuck"
  for _ in $(seq 1 120); do
    [[ "$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^sse_subscribers / {print $2}')" -ge "$stuck" ]] && break
    sleep 1
  done
  rss_before="$(rss "$server_pid")"
  mem_before="$(tcp_mem)"
  sample_memory "$server_pid" "$out/memory-$send_buffer.tsv"
  # The readers while 60 events of 50 KB are published to the topic the stuck ones hold.
  "$bin/sse-loadgen" fanout --url "http://127.0.0.1:$port/events?topic=big" --connections "$readers" \
    --events 60 --rate 20 --payload 50000 --drain-timeout 20s --server-pid "$server_pid" \
    --json "$out/readers-$send_buffer.jsonl" --quiet >"$out/readers-$send_buffer.txt" 2>&1 || true
  rss_after="$(rss "$server_pid")"
  mem_after="$(tcp_mem)"
  kill "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  rss_peak="$(peak "$out/memory-$send_buffer.tsv" 2)"
  mem_peak="$(peak "$out/memory-$send_buffer.tsv" 3)"
  ((rss_after > rss_peak)) && rss_peak="$rss_after"
  ((mem_after > mem_peak)) && mem_peak="$mem_after"
  slow="$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^sse_slow_consumer_disconnects_total / {print $2}')"
  p50=n/a p99=n/a lost=n/a
  if [[ -s "$out/readers-$send_buffer.jsonl" ]]; then
    read -r p50 p99 lost < <(jq -r '[(.latency_p50_us / 1000 | floor), (.latency_p99_us / 1000 | floor), .lost] | @tsv' \
      "$out/readers-$send_buffer.jsonl" | tail -1) || true
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$send_buffer" "$stuck" "$rss_before" "$rss_peak" \
    "$rss_after" "$mem_before" "$mem_peak" "$mem_after" "$slow" "$p50" "$p99" "$lost" >>"$results"
  kill "$STUCK_PID" 2>/dev/null || true
  wait "$STUCK_PID" 2>/dev/null || true
  stop_tree "$server_pid"
  wait_port_free "$port" 30 || true
done

{
  echo "# Stuck subscribers, $(date -u +%Y-%m-%d)"
  echo
  echo "Written by \`scripts/stuck.sh\`; nothing here is typed by hand."
  echo
  echo '```sh'
  echo "$command_line"
  echo '```'
  echo
  echo "$stuck subscribers that never read hold topic \`big\` while $readers readers (sse-loadgen fanout)"
  echo "receive 60 events of 50 KB at 20/s on it. Memory is read before the publishing, every 0.2 s"
  echo "while it goes on (the peak; memory-<send-buffer>.tsv has every sample), and after it. Kernel"
  echo "TCP memory is the host's (/proc/net/sockstat), both ends of each loopback connection."
  echo
  echo "| --send-buffer | stuck | server RSS before | peak | after | kernel TCP memory before | peak | after | slow-consumer disconnects | readers p50 (ms) | p99 (ms) | readers lost |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  tail -n +2 "$results" | awk -F'\t' -v default_buffer="$default_buffer" '{ printf "| %s | %s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %s | %s | %s | %s |\n", ($1 == "0" ? "0 (autotuning)" : ($1 == "default" ? "default (" default_buffer ")" : $1)), $2, $3/1048576, $4/1048576, $5/1048576, $6/1048576, $7/1048576, $8/1048576, $9, $10, $11, $12 }'
  echo
  echo "## Machine"
  echo
} >"$out/README.md"
write_environment "$out/README.md"
log "results: ${out#"$ROOT"/}"
