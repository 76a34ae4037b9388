#!/usr/bin/env bash
# Publishing past what the fan-out can deliver, for one or more sse-server builds, so that
# backpressure (--max-backlog) can be compared with a build without it in one run: at 15k
# subscribers, `sse-loadgen fanout --overload` publishes as fast as the server answers for a
# burst (the next publish when the last is answered) and measures that burst's delivery: p99
# from each event's actual send time, deliveries/s, publishes accepted and refused (a 503 from
# backpressure is refused, not lost), lost and duplicated. With --rate-search, the rate search
# runs first too (rates doubling until a phase fails, then bisecting). Results, per build, in
# bench-results/<date>-<host>-overload/.
#
#   ./scripts/overload.sh [--bin LABEL=PATH ...] [--connections N] [--burst DUR] [--rate-search] [--queues]
#
# Options:
#   --bin "LABEL=PATH [ARGS]"
#                      an sse-server binary to measure, with extra server arguments
#                      (repeatable; default: this tree's release build, labelled "ours")
#   --connections N    subscribers (default 15k)
#   --burst DUR        how long to publish back to back (default 5s)
#   --in-flight K      publishes in flight during the burst (default 1)
#   --drain DUR        how long to wait for the burst's deliveries after it (default 60s)
#   --rate-search      also run the rate search before the burst
#   --phase DUR        length of each rate-search phase (default 5s)
#   --queues           sample, every 0.5 s, the bytes waiting in the server's send queues and
#                      in the load generator's receive queues (`ss`; LABEL.queues.tsv), and
#                      report each build's peaks: where an overloaded burst waits (costs some
#                      CPU while it samples)
#   --port N           port on 127.0.0.1 (default 18097)
#   --out DIR          result folder (default bench-results/<date>-<host>-overload)
#   --no-build         use the binaries already built
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/peers.sh"

command_line="./scripts/overload.sh $(quote_command "$@")"
bins=()
connections=15k
burst=5s
in_flight=1
drain=60s
rate_search=0
phase=5s
port=18097
out=""
build=1
queues=0
while (($#)); do
  case "$1" in
    --bin | --connections | --burst | --in-flight | --drain | --phase | --port | --out)
      (($# >= 2)) || die "$1 needs a value" ;;
  esac
  case "$1" in
    --bin) bins+=("$2"); shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --burst) burst="$2"; shift 2 ;;
    --in-flight) in_flight="$2"; shift 2 ;;
    --drain) drain="$2"; shift 2 ;;
    --rate-search) rate_search=1; shift ;;
    --queues) queues=1; shift ;;
    --phase) phase="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
record_source
raise_nofile
((build)) && build_workspace
((queues)) && ! command -v ss >/dev/null && die "--queues needs ss (Debian: apt-get install -y iproute2)"

# Until killed: every 0.5 s, one line of FILE: seconds since start, the bytes in the send
# queues of the server's established sockets on PORT, and in the receive queues of their
# clients (both ends are on this host).
sample_queues() {
  local port="$1" file="$2" start
  start="$(date +%s.%N)"
  printf 'time_s\tserver_send_queue_bytes\tclient_receive_queue_bytes\n' >"$file"
  while :; do
    ss -tnH state established "( sport = :$port or dport = :$port )" 2>/dev/null |
      awk -v local_end=":$port" -v now="$(date +%s.%N)" -v start="$start" '
        # Columns without a State column: Recv-Q Send-Q Local Peer.
        $3 ~ local_end "$" { server_send += $2; next }
        { client_receive += $1 }
        END { printf "%.1f\t%d\t%d\n", now - start, server_send, client_receive }' >>"$file"
    sleep 0.5
  done
}
((${#bins[@]})) || bins=("ours=$(target_dir)/release/sse-server")
out="${out:-$(result_dir -overload)}"
mkdir -p "$out"
json="$out/results.jsonl"
for entry in "${bins[@]}"; do
  label="${entry%%=*}"
  read -r -a words <<<"${entry#*=}"
  bin="${words[0]}"
  server_extra=("${words[@]:1}")
  [[ -x "$bin" ]] || die "$bin is not an executable"
  log "$label: $bin"
  server_args=(--listen "127.0.0.1:$port" --threads 2 --demo-interval 0 "${server_extra[@]}")
  (
    ulimit -n "$(ulimit -Hn)"
    exec "$bin" "${server_args[@]}"
  ) >"$out/$label.server.log" 2>&1 &
  server_pid=$!
  wait_http "http://127.0.0.1:$port/healthz" 30 "$server_pid" || die "$label did not start"
  args=(fanout --url "http://127.0.0.1:$port/events?topic=bench" --connections "$connections"
    --events 50 --rate 5 --payload 64 --overload "$burst" --overload-in-flight "$in_flight"
    --overload-drain "$drain" --connect-rate 20k --source-ips 127.0.0.1-127.0.0.4 --label "$label"
    --server-pid "$server_pid" --json "$json" --quiet)
  ((rate_search)) && args+=(--rate-search --search-phase "$phase")
  echo "$label: $bin $(quote_command "${server_args[@]}"); sse-loadgen $(quote_command "${args[@]}")" >>"$out/commands.txt"
  sampler_pid=""
  if ((queues)); then
    sample_queues "$port" "$out/$label.queues.tsv" &
    sampler_pid=$!
  fi
  "$(target_dir)/release/sse-loadgen" "${args[@]}" >"$out/$label.loadgen.log" 2>&1 || warn "$label: the loadgen failed (see $label.loadgen.log)"
  [[ -z "$sampler_pid" ]] || { kill "$sampler_pid" 2>/dev/null; wait "$sampler_pid" 2>/dev/null || true; }
  stop_tree "$server_pid"
  wait_port_free "$port" 30 || true
done

{
  echo "# Publishing past capacity, $(date -u +%Y-%m-%d)"
  echo
  echo "Written by \`scripts/overload.sh\`; nothing here is typed by hand."
  echo
  echo '```sh'
  echo "$command_line"
  cat "$out/commands.txt"
  echo '```'
  echo
  echo "## The burst"
  echo
  echo "Each build's subscribers first get a steady 50 events at 5/s; then the load generator"
  echo "publishes back to back for $burst ($in_flight in flight: the next publish as soon as the"
  echo "last is answered) and waits up to $drain for the deliveries owed. Latency is measured from"
  echo "each event's actual send time (there is no schedule), so a server that makes its"
  echo "publishers wait shows it as fewer publishes accepted, not as delivery latency. A refused"
  echo "publish (a 503 from backpressure) is not owed, so it is never counted lost."
  echo
  echo "| build | connections | published s | accepted | accepted/s | refused | unanswered | deliveries/s | p50 | p99 | max | drained after | lost | dup |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  jq -r 'select(.overload != null) | .overload as $o
    | [.label, $o.connections, ($o.publishing_s * 10 | round / 10), $o.accepted, ($o.accepted_per_sec | round),
       $o.refused, $o.no_answer, ($o.deliveries_per_sec | round),
       "\($o.latency_p50_us / 1000 | floor) ms", "\($o.latency_p99_us / 1000 | floor) ms",
       "\($o.latency_max_us / 1000 | floor) ms", "\($o.drain_s * 100 | round / 100) s", $o.lost, $o.duplicated]
    | "| " + (map(tostring) | join(" | ")) + " |"' "$json" 2>/dev/null || echo "| (no results) |"
  if ((queues)); then
    echo
    echo "## Where the burst waited"
    echo
    echo "Sampled every 0.5 s with \`ss\` over the established sockets of the server's port"
    echo "(LABEL.queues.tsv): bytes written by the server and not yet taken by the client's kernel"
    echo "(the server's send queues), and bytes the client's kernel holds that the load generator"
    echo "has not read yet (its receive queues). Peaks over the whole run, per connection too."
    echo
    echo "| build | peak in the server's send queues | per connection | peak in the load generator's receive queues | per connection |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for entry in "${bins[@]}"; do
      label="${entry%%=*}"
      [[ -f "$out/$label.queues.tsv" ]] || continue
      open="$(jq -r --arg l "$label" 'select(.label == $l) | .connections_open' "$json" 2>/dev/null | head -1)"
      awk -F'\t' -v label="$label" -v open="${open:-0}" '
        NR > 1 { if ($2 > s) s = $2; if ($3 > c) c = $3 }
        function mb(b) { return sprintf("%.1f MB", b / 1e6) }
        function each(b) { return open > 0 ? sprintf("%.0f B", b / open) : "n/a" }
        END { printf "| %s | %s | %s | %s | %s |\n", label, mb(s), each(s), mb(c), each(c) }' "$out/$label.queues.tsv"
    done
  fi
  if ((rate_search)); then
    echo
    echo "## The rate search"
    echo
    echo "Latency here is measured from each event's scheduled send time (coordinated-omission"
    echo "safe), so a publish the server makes wait counts as latency too."
    echo
    echo "| build | connections | max loss-free deliveries/s | phases | rate of the last phase | its p99 | its deliveries | lost |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    jq -r '[.label, .connections_open, (.max_sustained_deliveries_per_sec // "n/a"), (.rate_search_phases | length),
        (.rate_search_phases[-1].rate // "n/a"), ((.rate_search_phases[-1].p99_us // 0) / 1000 | tostring + " ms"),
        (.rate_search_phases[-1].deliveries // "n/a"), (.rate_search_phases[-1].lost // "n/a")]
      | "| " + (map(tostring) | join(" | ")) + " |"' "$json" 2>/dev/null || echo "| (no results) |"
    echo
    echo "Every phase, per build (rate events/s, p99, passed):"
    echo
    jq -r '.label + ": " + ([.rate_search_phases[] | "\(.rate)/s \((.p99_us / 1000) | floor) ms \(if .passed then "ok" else "fail" end)"] | join(", "))' "$json" 2>/dev/null || true
  fi
  echo
  echo "## Machine"
  echo
} >"$out/README.md"
write_environment "$out/README.md"
log "results: ${out#"$ROOT"/}"
