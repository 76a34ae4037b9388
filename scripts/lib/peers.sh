# shellcheck shell=bash
# The servers scripts/compare.sh (and scripts/bench.sh, for "ours") start and stop. Source it
# after lib/common.sh. Every server listens on 127.0.0.1:PORT and serves
#   GET /events?topic=T   (SSE)  and  POST /publish?topic=T  (raw body = one event's data)
#
#   ALL_SERVERS            ours go axum node nchan gin echo flask pushpin starlette
#   server_build NAME      builds what NAME needs (ours: the workspace; fails plainly if it can't)
#   server_start NAME PORT THREADS LOG
#                          starts NAME in the background, output to LOG, waits until it answers;
#                          sets SERVER_PID (the pid whose process tree is measured) or fails
#   server_stop            stops the tree of SERVER_PID and waits until PORT is free again
#   measure_server NAME PORT JSON DIR
#                          runs the benchmark steps against NAME (lib/loadgen.sh), a fresh
#                          server process for each step; sets MEASURE_STATUS ("ok, ..." or what
#                          went wrong) and MEASURE_COMMANDS (the loadgen commands); appends the
#                          steps NAME did not complete, and why, to DIR/stopped.jsonl
#   server_version NAME    one line naming the implementation and its versions
#   server_describe NAME   one line: the pattern the server follows and its settings

ALL_SERVERS=(ours go axum node nchan gin echo flask pushpin starlette)
PEERS_DIR="$ROOT/scripts/peers"
SERVER_PID=""
SERVER_PORT=""
SERVER_NAME=""
SERVER_LOG=""
NCHAN_PREFIX_DIR=""
PUSHPIN_DIR=""
export MEASURE_STATUS=""
MEASURE_COMMANDS=()

server_build() {
  case "$1" in
    ours) [[ -x "$(target_dir)/release/sse-server" ]] || build_workspace ;;
    go)
      command -v go >/dev/null || {
        warn "go is missing (scripts/install-peers.sh installs golang-go)"
        return 1
      }
      (cd "$PEERS_DIR/go" && GOPROXY=off go build -o ssepeer .)
      ;;
    axum)
      (CARGO_TARGET_DIR="$PEERS_DIR/axum/target" cargo build --quiet --release \
        --manifest-path "$PEERS_DIR/axum/Cargo.toml")
      ;;
    gin | echo) "$PEERS_DIR/lib/go-gopath-build.sh" "$PEERS_DIR/$1" "ssepeer-$1" ;;
    flask | starlette) "$PEERS_DIR/lib/python-venv.sh" "$PEERS_DIR/$1" ;;
    node)
      command -v node >/dev/null || {
        warn "node is missing (scripts/install-peers.sh installs nodejs)"
        return 1
      }
      ;;
    pushpin)
      if ! command -v pushpin >/dev/null || ! command -v condure >/dev/null || ! command -v zurl >/dev/null; then
        warn "pushpin, condure or zurl is missing (scripts/install-peers.sh installs pushpin)"
        return 1
      fi
      "$PEERS_DIR/lib/go-gopath-build.sh" "$PEERS_DIR/pushpin" pushpin-origin
      ;;
    nchan)
      command -v nginx >/dev/null && [[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]] || {
        warn "nginx or its nchan module is missing (scripts/install-peers.sh installs nginx-light libnginx-mod-nchan)"
        return 1
      }
      ;;
    *)
      warn "unknown server '$1' (known: ${ALL_SERVERS[*]})"
      return 1
      ;;
  esac
}

server_start() {
  local name="$1" port="$2" threads="$3" log="$4"
  SERVER_PID=""
  SERVER_PORT="$port"
  SERVER_NAME="$name"
  SERVER_LOG="$log"
  if ! port_is_free "$port"; then
    warn "port $port is taken; not starting $name"
    echo "port $port was taken; $name was not started" >>"$log"
    return 1
  fi
  echo "=== $(date -u '+%H:%M:%S') starting $name on 127.0.0.1:$port, $threads threads" >>"$log"
  case "$name" in
    ours)
      # A subshell so the raised limit applies to the server only; exec keeps $! its pid.
      (
        ulimit -n "$(ulimit -Hn)"
        exec "$(target_dir)/release/sse-server" --listen "127.0.0.1:$port" --threads "$threads" \
          --demo-interval 0
      ) >>"$log" 2>&1 &
      ;;
    nchan)
      NCHAN_PREFIX_DIR="$(mktemp -d /tmp/sse-peer-nchan.XXXXXX)"
      NCHAN_PREFIX="$NCHAN_PREFIX_DIR" "$PEERS_DIR/nchan/run.sh" "$port" "$threads" >>"$log" 2>&1 &
      ;;
    pushpin)
      PUSHPIN_DIR="$(mktemp -d /tmp/sse-peer-pushpin.XXXXXX)"
      PUSHPIN_DIR="$PUSHPIN_DIR" "$PEERS_DIR/pushpin/run.sh" "$port" "$threads" >>"$log" 2>&1 &
      ;;
    go | axum | node | gin | echo | flask | starlette) "$PEERS_DIR/$name/run.sh" "$port" "$threads" >>"$log" 2>&1 & ;;
    *)
      warn "unknown server '$name'"
      return 1
      ;;
  esac
  SERVER_PID=$!
  if ! wait_http "http://127.0.0.1:$port/healthz" 60 "$SERVER_PID"; then
    warn "$name did not answer on port $port within 60 s; the end of its output:"
    tail -n 20 "$log" | sed 's/^/    /' >&2
    server_stop
    return 1
  fi
  if [[ "$name" == pushpin ]] && ! wait_stream "http://127.0.0.1:$port/events?topic=ready-probe" 60 "$SERVER_PID"; then
    warn "$name answered /healthz but no stream sent a byte within 60 s; the end of its output:"
    tail -n 20 "$log" | sed 's/^/    /' >&2
    server_stop
    return 1
  fi
}

server_stop() {
  stop_tree "$SERVER_PID"
  SERVER_PID=""
  # nginx logs to its prefix directory: keep its config and error log beside the server log,
  # drop the rest (empty temp dirs).
  if [[ "$SERVER_NAME" == nchan && -d "$NCHAN_PREFIX_DIR" ]]; then
    cp "$NCHAN_PREFIX_DIR/nginx.conf" "${SERVER_LOG%.log}.nginx.conf" 2>/dev/null || true
    if [[ -s "$NCHAN_PREFIX_DIR/error.log" ]]; then
      { echo "--- nginx error.log:"; cat "$NCHAN_PREFIX_DIR/error.log"; } >>"$SERVER_LOG"
    fi
    rm -rf "$NCHAN_PREFIX_DIR"
    NCHAN_PREFIX_DIR=""
  fi
  # Pushpin logs to the server log (--merge-output); keep its generated config beside it.
  if [[ "$SERVER_NAME" == pushpin && -d "$PUSHPIN_DIR" ]]; then
    cp "$PUSHPIN_DIR/pushpin.conf" "${SERVER_LOG%.log}.pushpin.conf" 2>/dev/null || true
    rm -rf "$PUSHPIN_DIR"
    PUSHPIN_DIR=""
  fi
  if [[ -n "$SERVER_PORT" ]] && ! wait_port_free "$SERVER_PORT" 10; then
    warn "port $SERVER_PORT is still in use 10 s after the server stopped"
  fi
}

# The installed version of a Debian package, or "missing".
deb_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo missing; }

# The pinned packages of a Python peer's requirements.txt as installed in its venv.
venv_versions() {
  local pip="$PEERS_DIR/$1/.venv/bin/pip" req name out=""
  [[ -x "$pip" ]] || {
    echo "venv missing"
    return
  }
  for req in $(sed -n 's/^\([A-Za-z0-9_.-]*\).*==.*/\1/p' "$PEERS_DIR/$1/requirements.txt"); do
    name="$(printf '%s' "$req" | tr 'A-Z_' 'a-z-')"
    out+="$name $("$pip" show "$req" 2>/dev/null | sed -n 's/^Version: //p'), "
  done
  echo "${out%, }"
}

server_version() {
  case "$1" in
    ours) echo "sse-server $(cargo metadata --no-deps --format-version 1 --manifest-path "$ROOT/Cargo.toml" 2>/dev/null |
      jq -r '.packages[] | select(.name == "sse-server") | .version' 2>/dev/null), $(rustc --version 2>/dev/null)" ;;
    go) echo "$(go version 2>/dev/null || echo 'go missing'), net/http (standard library)" ;;
    axum)
      local lock="$PEERS_DIR/axum/Cargo.lock" crate out=""
      for crate in axum tokio hyper tokio-stream; do
        out+="$crate $(awk -v n="$crate" '$0 == "name = \"" n "\"" {getline; gsub(/version = |"/, ""); print; exit}' "$lock" 2>/dev/null), "
      done
      echo "${out}$(rustc --version 2>/dev/null)"
      ;;
    node) echo "node $(node --version 2>/dev/null || echo missing), node:http" ;;
    nchan) echo "$(nginx -v 2>&1 | sed 's/^nginx version: //'), nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo missing) (Debian package)" ;;
    gin) echo "gin $(deb_version golang-github-gin-gonic-gin-dev) (Debian package, GOPATH build), $(go version 2>/dev/null || echo 'go missing')" ;;
    echo) echo "echo $(deb_version golang-github-labstack-echo-dev) (Debian package, GOPATH build), $(go version 2>/dev/null || echo 'go missing')" ;;
    pushpin) echo "pushpin $(deb_version pushpin), condure $(deb_version condure), zurl $(deb_version zurl) (Debian packages); origin: $(go version 2>/dev/null || echo 'go missing'), net/http" ;;
    flask | starlette) echo "$(venv_versions "$1"), $("$PEERS_DIR/$1/.venv/bin/python" --version 2>/dev/null || echo 'python missing')" ;;
  esac
}

server_describe() {
  local threads="$2"
  case "$1" in
    ours) echo "sse-server: mio event loops, shared encoded events; --threads $threads --demo-interval 0" ;;
    go) echo "goroutine per connection, buffered chan []byte (64) per client, hub goroutine; GOMAXPROCS=$threads" ;;
    axum) echo "tokio multi-thread runtime (worker_threads=$threads), axum Sse + tokio::sync::broadcast (capacity 1024), KeepAlive 15 s" ;;
    node) echo "node:http, a Set of open responses, res.write per event; one event loop (no broker to fan out across cluster workers)" ;;
    nchan) echo "nginx + nchan, eventsource subscriber, memory store; worker_processes $threads" ;;
    gin) echo "Gin's server-sent-event example: broker goroutine, unbuffered chan string per client, c.Stream + c.SSEvent; GOMAXPROCS=$threads" ;;
    echo) echo "echo's SSE cookbook handler, writes and flushes per event; chan (64) per client, full ones skipped; GOMAXPROCS=$threads" ;;
    flask) echo "Flask streaming generator per client over queue.Queue(maxsize=5), full ones dropped; gunicorn -k gevent, 1 worker" ;;
    pushpin) echo "Pushpin as shipped (condure, zurl, pushpin-proxy, pushpin-handler) but message_rate ${PUSHPIN_MESSAGE_RATE:-1000000} (shipped 2500), + a Go origin answering with Grip-Hold: stream; publish via the HTTP publish API; all processes measured" ;;
    starlette) echo "sse-starlette EventSourceResponse over an unbounded asyncio.Queue per client; uvicorn (uvloop, httptools), 1 process" ;;
  esac
}

# The lines of FILE from line FROM on that look like a reason for failing (errors, warnings,
# tracebacks, limits, 5xx answers), the three most frequent, each with its count, joined with
# " / ": what a reader of the tables needs from a server's or the loadgen's own log without
# opening it. The loadgen's progress lines (`sse-loadgen: STEP: ..., 2.0 s`) are not reasons. Dates, times, hex ids and UUIDs are blanked first, so that repeats count as one.
log_reasons() {
  local file="$1" from="$2"
  [[ -f "$file" ]] || return 0
  tail -n +"$from" "$file" |
    grep -aiE 'error|exception|traceback|fatal|panic|warn|too many|refused|killed|exceeded|limit|\bfull\b|timed? ?out|taken|missing|cannot|can.t|not found|no such|denied|code=5[0-9]{2}' |
    grep -avE '^=== ' |
    grep -avE '^sse-loadgen: [^:]+: .*, [0-9.]+ s$' |
    grep -avE '^connections +open ' |
    sed -E 's/[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}[ T]?[0-9:.,]*( \+[0-9]{4})?//g;
      s/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/…/g; s/0x[0-9a-f]+/…/g;
      s/^[[:space:]]+//' |
    cut -c1-200 | sort | uniq -c | sort -rn | head -n 3 |
    awk '{ n = $1; sub(/^[[:space:]]*[0-9]+ /, ""); printf "%s%s%s", (NR > 1 ? " / " : ""), $0, (n > 1 ? " (" n "×)" : "") }' ||
    true # no line of the log looks like a reason (grep found none): say nothing, fail nothing
}

# Appends to DIR/stopped.jsonl one JSON object for every step of GROUP (a comma list) that the
# server did not complete, so that the tables (lib/details.jq, lib/stopped.jq) keep a row for
# it with what stopped it. A step is short when the loadgen wrote no result for it (its object
# then has "result": false and REASON as "stopped"), or a result with fewer connections open
# than asked ("result": true, the loadgen's failures by kind as "errors"). LOADGEN_FROM and
# SERVER_FROM are the first lines of this group's part of the two logs.
#   {"label", "connections", "stopped", "result", "errors", "loadgen_log", "server_log"}
record_shortfalls() {
  local name="$1" group="$2" json="$3" dir="$4" reason="$5" loadgen_from="$6" server_from="$7"
  local lines_before="$8" steps=() step n i=0 row rows=() loadgen_log server_log
  IFS=, read -ra steps <<<"$group"
  mapfile -t rows < <(tail -n +"$((lines_before + 1))" "$json" 2>/dev/null)
  loadgen_log="$(log_reasons "$dir/$name.loadgen.log" "$loadgen_from")"
  server_log="$(log_reasons "$dir/$name.server.log" "$server_from")"
  for step in "${steps[@]}"; do
    n="$(parse_count "$step")"
    row="${rows[$i]:-}"
    i=$((i + 1))
    if [[ -n "$row" ]]; then
      jq -c --arg loadgen "$loadgen_log" --arg server "$server_log" '
        select(.connections_open < .connections)
        | {"label": .label, connections: .connections, result: true, errors: .errors,
           stopped: "opened \(.connections_open) of \(.connections) connections",
           loadgen_log: $loadgen, server_log: $server}' <<<"$row"
    else
      jq -nc --arg name "$name" --argjson n "$n" --arg why "$reason" \
        --arg loadgen "$loadgen_log" --arg server "$server_log" \
        '{"label": $name, connections: $n, result: false, errors: {}, stopped: $why,
          loadgen_log: $loadgen, server_log: $server}'
    fi
  done >>"$dir/stopped.jsonl"
}

measure_server() {
  local name="$1" port="$2" json="$3" dir="$4" group rc lines_before lines=0 groups=() g
  local loadgen_from server_from why
  MEASURE_COMMANDS=()
  MEASURE_STATUS=""
  # A fresh process for each step: RSS growth in a process that already held and freed the
  # connections of a smaller step would hide part of the cost, more for some allocators than
  # for others. BENCH_REUSE_SERVER=1 runs every step in one process instead (faster).
  if ((BENCH_REUSE_SERVER)); then groups=("$BENCH_STEPS"); else IFS=, read -ra groups <<<"$BENCH_STEPS"; fi
  for g in "${!groups[@]}"; do
    group="${groups[$g]}"
    loadgen_from=$(($(wc -l 2>/dev/null <"$dir/$name.loadgen.log" || echo 0) + 1))
    server_from=$(($(wc -l 2>/dev/null <"$dir/$name.server.log" || echo 0) + 1))
    lines_before=$(wc -l 2>/dev/null <"$json" || echo 0)
    why=""
    if ! server_start "$name" "$port" "$BENCH_THREADS" "$dir/$name.server.log"; then
      MEASURE_STATUS="failed to start for step $group after $lines step(s) (see $name.server.log)"
      why="the server did not start"
      record_shortfalls "$name" "$group" "$json" "$dir" "$why" "$loadgen_from" "$server_from" "$lines_before"
    else
      rc=0
      loadgen_scale "$name" "$port" "$SERVER_PID" "$json" "$dir/$name.loadgen.log" "$group" || rc=$?
      MEASURE_COMMANDS+=("$LOADGEN_COMMAND")
      lines=$((lines + $(wc -l 2>/dev/null <"$json" || echo 0) - lines_before))
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        MEASURE_STATUS="crashed during step $group, after $lines step(s) (see $name.server.log)"
        why="the server exited during the step"
      elif ((rc == 124)); then
        MEASURE_STATUS="stopped by --timeout $BENCH_TIMEOUT s during step $group, after $lines step(s)"
        why="the loadgen ran past --timeout $BENCH_TIMEOUT s"
      elif ((rc != 0)); then
        MEASURE_STATUS="loadgen exit status $rc in step $group (see $name.loadgen.log); "
        why="the loadgen failed (exit status $rc)"
      fi
      # Before stopping, so the server log holds what the server said while it was short,
      # not what it says on the way out.
      record_shortfalls "$name" "$group" "$json" "$dir" "$why" "$loadgen_from" "$server_from" "$lines_before"
      server_stop
    fi
    if [[ "$MEASURE_STATUS" != "" && "$MEASURE_STATUS" != *"; " ]]; then
      # The steps after this one are not run; they keep a row too.
      for group in "${groups[@]:g+1}"; do
        record_shortfalls "$name" "$group" "$json" "$dir" "not run: $why at step ${groups[$g]}" \
          999999999 999999999 "$(wc -l 2>/dev/null <"$json" || echo 0)"
      done
      return 1
    fi
  done
  MEASURE_STATUS="${MEASURE_STATUS}ok, $lines step(s)"
  local short
  short=$(jq -s --arg name "$name" 'map(select(.label == $name and .result)) | length' \
    "$dir/stopped.jsonl" 2>/dev/null || echo 0)
  ((short == 0)) || MEASURE_STATUS+=", $short with fewer connections open than asked (see the steps not completed)"
  [[ "$MEASURE_STATUS" == ok* ]]
}
