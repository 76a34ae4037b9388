# shellcheck shell=bash
# Shell helpers shared by scripts/bench.sh, scripts/compare.sh and scripts/install-peers.sh.
# Source it; it defines functions and a few variables and runs nothing else.
#
#   ROOT                   the workspace root
#   log / warn / die       one plain line on stderr, prefixed with the script's name
#   raise_nofile           soft open-file limit up to the hard one; prints both
#   ensure_apt PKG...      apt-get install the packages that are missing
#   target_dir             where the workspace's cargo build puts its output
#   build_workspace        cargo build --release of sse-server and sse-loadgen
#   port_is_free PORT      nothing listens on 127.0.0.1:PORT
#   wait_port_free PORT S  wait up to S seconds for that
#   wait_http URL S PID    wait up to S seconds for URL to answer 2xx while PID lives
#   wait_stream URL S PID  wait up to S seconds for a stream at URL to send its first line
#   stop_tree PID          SIGTERM a process and its descendants, SIGKILL after 5 s, reap it
#   result_dir SUFFIX      a fresh bench-results/<date>-<host>[SUFFIX]/ folder (-2, -3 if taken)
#   parse_count 10k        15000-style counts to plain numbers
#   cpu_busy_percent S     share of CPU time (all cores) not idle over the next S seconds
#   record_source          the commit measured, and whether the working tree differed from it
#   write_environment F    the machine, tools and limits, as markdown lines, appended to F
#   summary_markdown D J   a result folder's summary, plots and detail tables (with the steps
#                          a server did not complete), as markdown

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SCRIPT_NAME="$(basename "$0" .sh)"

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}

raise_nofile() {
  local hard
  hard="$(ulimit -Hn)"
  ulimit -n "$hard" 2>/dev/null || warn "could not raise the open-file limit to $hard"
  log "open-file limit: soft $(ulimit -n), hard $hard"
}

ensure_apt() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  if ! command -v apt-get >/dev/null; then
    warn "apt-get is not available; install by hand: ${missing[*]}"
    return 1
  fi
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  log "installing with apt-get: ${missing[*]}"
  if ! "${sudo[@]}" apt-get update -qq >/dev/null ||
    ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null; then
    warn "apt-get could not install: ${missing[*]}"
    return 1
  fi
  # Debian starts the stock nginx and pushpin services on install where an init system runs;
  # the peers start their own, and system ones (nginx on port 80, pushpin on 7999 and
  # 5560-5563) are not wanted on a benchmark machine.
  if [[ " ${missing[*]} " == *" nginx-light "* ]] && pgrep -x nginx >/dev/null; then
    log "stopping the nginx service the package started"
    "${sudo[@]}" service nginx stop >/dev/null 2>&1 || true
  fi
  if [[ " ${missing[*]} " == *" pushpin "* ]] && pgrep -x pushpin >/dev/null; then
    log "stopping the pushpin service the package started"
    "${sudo[@]}" service pushpin stop >/dev/null 2>&1 || true
  fi
}

# Absolute, since the scripts run the binaries from other directories; cargo reads a relative
# CARGO_TARGET_DIR against the directory it runs in, which is ROOT here.
target_dir() {
  local dir="${CARGO_TARGET_DIR:-$ROOT/target}"
  [[ "$dir" == /* ]] || dir="$ROOT/$dir"
  printf '%s\n' "$dir"
}

build_workspace() {
  command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs) first"
  log "building sse-server and sse-loadgen (release)"
  (cd "$ROOT" && cargo build --release --quiet -p sse-server -p sse-loadgen) ||
    die "cargo build --release failed"
}

port_is_free() {
  ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

wait_port_free() {
  local port="$1" deadline=$((SECONDS + $2))
  while ! port_is_free "$port"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

wait_http() {
  local url="$1" deadline=$((SECONDS + $2)) pid="${3:-}"
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    [[ -z "$pid" ]] || kill -0 "$pid" 2>/dev/null || return 1
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# A held stream can lag its server's plain answers: Pushpin answers /healthz through its
# proxy before its handler's link to the HTTP front is up, and a stream opened in that window
# gets its headers and never a byte (or, earlier still, a 500 from a handler not yet up). Each
# try opens the stream for 2 s and looks for the first byte of an SSE line (a comment or field).
wait_stream() {
  local url="$1" deadline=$((SECONDS + $2)) pid="${3:-}"
  local first
  while :; do
    first="$(curl -sN --max-time 2 -H 'Accept: text/event-stream' "$url" 2>/dev/null | head -c 1)" || true
    [[ "$first" != ":" && "$first" != [a-z] ]] || break
    [[ -z "$pid" ]] || kill -0 "$pid" 2>/dev/null || return 1
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# The pid and every descendant's, parents first.
descendants() {
  local pid="$1" child
  printf '%s\n' "$pid"
  for child in $(pgrep -P "$pid" 2>/dev/null); do descendants "$child"; done
}

stop_tree() {
  local pid="$1" pids deadline
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || {
    wait "$pid" 2>/dev/null || true
    return 0
  }
  mapfile -t pids < <(descendants "$pid")
  kill -TERM "${pids[@]}" 2>/dev/null || true
  deadline=$((SECONDS + 5))
  while kill -0 "${pids[@]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  local p
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      warn "pid $p ignored SIGTERM for 5 s; sending SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  wait "$pid" 2>/dev/null || true
}

result_dir() {
  local suffix="${1:-}" base dir n=2
  base="$ROOT/bench-results/$(date -u +%Y-%m-%d)-$(hostname -s)$suffix"
  dir="$base"
  while [[ -e "$dir" ]]; do
    dir="$base-$n"
    n=$((n + 1))
  done
  mkdir -p "$dir"
  printf '%s\n' "$dir"
}

parse_count() {
  local v="${1,,}"
  case "$v" in
    *k) echo $((${v%k} * 1000)) ;;
    *m) echo $((${v%m} * 1000000)) ;;
    *) echo $((v)) ;;
  esac
}

# Shell-quoted form of a command line, for the README's "exact command".
quote_command() {
  local out="" arg
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:,=@%+-]+$ ]]; then
      out+="$arg "
    else
      out+="'${arg//\'/\'\\\'\'}' "
    fi
  done
  printf '%s\n' "${out% }"
}

cpu_busy_percent() {
  local seconds="$1" before after
  before="$(sed -n 's/^cpu  //p' /proc/stat)"
  sleep "$seconds"
  after="$(sed -n 's/^cpu  //p' /proc/stat)"
  # Fields: user nice system idle iowait irq softirq steal (guest time is inside user).
  awk -v a="$before" -v b="$after" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= 8 && i <= n; i++) { d = y[i] - x[i]; total += d; if (i == 4 || i == 5) idle += d }
    printf "%.0f\n", (total > 0 ? 100 * (total - idle) / total : 0)
  }'
}

# Records, before a run writes anything, which commit is measured and whether the working tree
# differs from it. What the scripts themselves write (bench-results/, README.md's result
# sections) is left out, so a run never reports its own output as a change.
record_source() {
  SOURCE_COMMIT="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  SOURCE_DIRTY=""
  [[ -z "$(git -C "$ROOT" status --porcelain -- . ':(exclude)bench-results' ':(exclude)README.md' 2>/dev/null)" ]] ||
    SOURCE_DIRTY=" (working tree had uncommitted changes)"
}

write_environment() {
  local f="$1"
  [[ -n "${SOURCE_COMMIT:-}" ]] || record_source
  {
    echo "| what | value |"
    echo "| --- | --- |"
    echo "| date (UTC) | $(date -u '+%Y-%m-%d %H:%M:%S') |"
    echo "| host | $(hostname -s) |"
    echo "| commit | \`$SOURCE_COMMIT\`$SOURCE_DIRTY |"
    echo "| CPU | $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores online |"
    echo "| memory | $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) |"
    echo "| kernel | $(uname -sr) |"
    echo "| OS | $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") |"
    echo "| open-file limit | soft $(ulimit -n), hard $(ulimit -Hn) |"
    echo "| sysctl | $(for k in net.core.somaxconn net.ipv4.ip_local_port_range net.ipv4.tcp_tw_reuse net.ipv4.tcp_mem; do printf '%s = %s; ' "$k" "$(sysctl -n "$k" 2>/dev/null | tr '\t' ' ')"; done) |"
    echo "| rustc | $(rustc --version 2>/dev/null || echo missing) |"
  } >>"$f"
}

# The script's opening comment block, without the '#', as its --help.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

# Replaces what README.md holds between `<!-- MARKER:begin -->` and `<!-- MARKER:end -->` with
# the file CONTENT, so the README shows the latest results without a number typed by hand.
# Does nothing when the README has no such markers, or when DIR (the result folder) is not
# under bench-results/ (a trial run with --out elsewhere).
update_readme_section() {
  local marker="$1" content="$2" dir="$3" readme="$ROOT/README.md" tmp
  [[ "$(cd "$dir" && pwd)" == "$ROOT/bench-results/"* ]] || return 0
  grep -q "<!-- $marker:begin -->" "$readme" 2>/dev/null && grep -q "<!-- $marker:end -->" "$readme" || return 0
  tmp="$(mktemp)"
  awk -v begin="<!-- $marker:begin -->" -v end="<!-- $marker:end -->" -v file="$content" '
    $0 == begin { print; while ((getline line < file) > 0) print line; skip = 1; next }
    $0 == end { skip = 0 }
    !skip { print }
  ' "$readme" >"$tmp" && cat "$tmp" >"$readme"
  rm -f "$tmp"
  log "README.md: updated the $marker section from ${dir#"$ROOT"/}"
}

# The README section for a result folder: a link, the given markdown files (targets, sanity
# figures), the summary tables with their headings pushed down two levels, and the plots.
readme_section_content() {
  local dir="$1" rel extra
  shift
  rel="${dir#"$ROOT"/}"
  echo
  echo "Latest run: [$rel]($rel/) ($(sed -n 's/^| commit | \(.*\) |$/commit \1/p' "$dir/README.md" | head -1)); written by the script, not by hand."
  echo
  for extra in "$@"; do
    [[ -s "$extra" ]] || continue
    cat "$extra"
    echo
  done
  # The summary's own title is dropped: the README section already has one.
  [[ -f "$dir/summary.md" ]] && sed -e '1{/^# /d;}' -e 's/^#/###/' "$dir/summary.md" | sed '1{/^$/d;}'
  echo
  for svg in "$dir"/*.svg; do
    [[ -e "$svg" ]] && echo "![$(basename "$svg" .svg)]($rel/$(basename "$svg"))"
  done
  echo
}

# A result folder's "Summary" and "Details" sections for its README.md: the loadgen report's
# tables and plots (with the table of the steps a server did not complete, DIR/stopped.jsonl),
# then the detail tables of details.jq, with a row for every such step too. MISSING is said
# when there is no summary.
summary_markdown() {
  local dir="$1" json="$2" missing="$3" svg
  echo "## Summary"
  echo
  if [[ -f "$dir/summary.md" ]]; then
    sed "s/^#/##/" "$dir/summary.md"
    echo
    for svg in "$dir"/*.svg; do
      [[ -e "$svg" ]] && echo "![$(basename "$svg" .svg)]($(basename "$svg"))"
    done
  else
    echo "$missing"
  fi
  echo
  local stopped=() inputs=()
  [[ -s "$json" ]] && inputs+=("$json")
  [[ -s "$dir/stopped.jsonl" ]] && stopped=("$dir/stopped.jsonl") && inputs+=("$dir/stopped.jsonl")
  if ((${#inputs[@]})); then
    echo "## Details"
    echo
    jq -s -r -f "$ROOT/scripts/lib/details.jq" "${inputs[@]}" || echo "(the detail tables failed)"
    echo
  fi
  # Without a summary (no server produced a result) the table of unfinished steps, which
  # loadgen_report appends to summary.md, is printed here.
  if ((${#stopped[@]})) && [[ ! -f "$dir/summary.md" ]]; then
    jq -s -r -f "$ROOT/scripts/lib/stopped.jq" "${stopped[@]}" || echo "(the table of unfinished steps failed)"
    echo
  fi
}
