# Where ours stands against the best of its peers, from one compare run:
#   jq -s -r -f targets.jq results.jsonl [stopped.jsonl]
# At the largest step of the run (the largest connection count of any result or stopped step),
# each figure of ours against the best peer's figure at that step, as one kind of ratio
# ("ours 150 B vs best 10,250 B (nchan): 68x less, better"). A peer without a full result at that
# step (it stopped earlier, opened fewer connections than asked, failed to build) is listed with
# what stopped it, never dropped. Then the issue's targets, met or missed, and what ended each
# server's rate search there. When ours itself has no full result at that step, the figures are
# taken at the largest step ours completed, and the table says so.
#
# Figures: server_rss_per_conn_bytes (unreliable ones left out); latency_p99_us;
# last_subscriber_max_ms; max_sustained_deliveries_per_sec;
# rate_search_server_cpu_s_per_million_deliveries (falling back to the main phase's
# server_cpu_s_per_million_deliveries); overload.latency_p99_us (the --overload burst).

def fmt(x): if x == null then "n/a"
  elif (x | type) == "number" then (if x >= 100 then (x | round | tostring)
    else ((x * 100 | round) / 100 | tostring) end)
  else (x | tostring) end;

# 10250 -> "10,250".
def commas: round | tostring | gsub("(?<d>[0-9])(?=([0-9]{3})+$)"; "\(.d),");

# About three significant digits: 128, 27.5, 1.05, 0.25.
def short: if . >= 100 then commas elif . >= 10 then ((. * 10 | round) / 10 | tostring)
  else ((. * 100 | round) / 100 | tostring) end;

# 4500000 -> "4.5M", 525000 -> "525k".
def count: if . >= 1e6 then "\(. / 1e6 | short)M" elif . >= 1e4 then "\(. / 1e3 | short)k"
  else commas end;

# A duration in ms: "950 µs", "128 ms", "2.01 s".
def ms: if . < 1 then "\(. * 1000 | short) µs" elif . < 1000 then "\(short) ms"
  else "\(. / 1000 | short) s" end;

def cpu: .rate_search_server_cpu_s_per_million_deliveries // .server_cpu_s_per_million_deliveries;

# A burst that lost events (or delivered none) gives no latency to compare: its p99 is over
# what happened to arrive.
def overload_counts: .overload != null and .overload.lost == 0 and .overload.deliveries > 0;

# The figures compared: name, the value of a result (null when it has none), how it reads, and
# whether lower is better.
def figures: [
  {name: "memory per connection", low: true,
   value: (if .server_rss_unreliable then null else .server_rss_per_conn_bytes end),
   show: "bytes"},
  {name: "latency p99 at the steady rate", low: true,
   value: (if .latency_p99_us == null then null else .latency_p99_us / 1000 end), show: "ms"},
  {name: "time until the last subscriber had an event (max)", low: true,
   value: .last_subscriber_max_ms, show: "ms"},
  {name: "max sustained deliveries/s (no loss)", low: false,
   value: .max_sustained_deliveries_per_sec, show: "count"},
  {name: "server CPU s per million deliveries", low: true, value: cpu, show: "cpu"},
  {name: "overload p99 (publishing back to back, from actual send time)", low: true,
   value: (if overload_counts then .overload.latency_p99_us / 1000 else null end), show: "ms"},
  {name: "overload deliveries/s (the same burst)", low: false,
   value: (if overload_counts then .overload.deliveries_per_sec else null end), show: "count"}
];

def show($how): if . == null then "n/a"
  elif $how == "bytes" then "\(commas) B"
  elif $how == "ms" then ms
  elif $how == "count" then "\(count)/s"
  else "\(short) s" end;

# "68x less", "1.3x more", "the same": the larger over the smaller, one kind of ratio for all.
def ratio($ours; $best):
  if $ours == null or $best == null then "n/a"
  elif $ours == $best then "the same"
  elif ([$ours, $best] | min) <= 0 then "n/a"
  else (([$ours, $best] | max) / ([$ours, $best] | min)) as $r
    | (if $r >= 10 then ($r | round | tostring) elif $r >= 2 then (($r * 10 | round) / 10 | tostring)
       else (($r * 100 | round) / 100 | tostring) end)
      + "x " + (if $ours < $best then "less" else "more" end)
  end;

def verdict($ours; $best; $low):
  if $ours == null then "not measured for ours"
  elif $best == null then "no peer to compare"
  elif $ours == $best then "level"
  elif ($ours < $best) == $low then "better" else "**worse**" end;

# Why a rate-search phase failed, from its own figures.
def why($max_p99_ms):
  [ (if .lost > 0 then "\(.lost) deliveries lost" else empty end),
    (if .duplicated > 0 then "\(.duplicated) duplicated" else empty end),
    (if .publish_errors > 0 then "\(.publish_errors) publish errors" else empty end),
    (if .kept_schedule | not then "publisher fell behind its schedule" else empty end),
    (if .p99_us / 1000 > $max_p99_ms then "p99 \(fmt(.p99_us / 1000)) ms over \(fmt($max_p99_ms)) ms" else empty end)
  ] | if length == 0 then "no connection left" else join("; ") end;

def search_row:
  . as $r
  | ($r.rate_search_phases // []) as $phases
  | ($phases | map(select(.passed | not)) | .[0]) as $fail
  | "| \($r.label) | \(fmt($r.max_sustained_rate)) | "
    + (if ($r.rate_search | not) then "search not run | | "
       elif $fail == null then "none: every phase up to \(fmt($phases | last | .rate // null))/s passed | a lower bound (phase limit reached) | "
       else "\(fmt($fail.rate))/s | \($fail | why($r.max_p99_ms)) | " end)
    + "\(fmt($r.loadgen_cpu_us_per_delivery)) | \(fmt($r | cpu)) |";

def cell: tostring | gsub("\\|"; "\\|") | gsub("\n"; " ");

# What stopped `label` short of `n` connections, from its stopped rows (and its results).
def stopped_text($who; $n; $stopped; $results):
  ($stopped | map(select(.label == $who and .connections == $n)) | .[0]) as $s
  | ($results | map(select(.label == $who and .connections == $n)) | .[0]) as $r
  | ($results | map(select(.label == $who and .connections_open == .connections))
     | map(.connections) | max) as $reached
  | (if $s != null then $s.stopped
     elif $r != null then "opened \($r.connections_open) of \($r.connections) connections"
     else "no result at \($n) connections, and no record of why" end)
    + (if $s != null and (($s.errors // {}) | length) > 0
       then " (\($s.errors | to_entries | map("\(.key): \(.value)") | join(", ")))" else "" end)
    + (if $s != null and ($s.loadgen_log // "") != "" then "; loadgen log: \($s.loadgen_log)" else "" end)
    + (if $s != null and ($s.server_log // "") != "" then "; server log: \($s.server_log)" else "" end)
    + (if $reached != null then "; largest step completed: \($reached)" else "" end);

(map(select(.stopped == null))) as $results
| (map(select(.stopped != null))) as $stopped
| ([$results[], $stopped[]] | map(.connections) | max) as $top
| ($results | map(select(.label == "ours" and .connections_open == .connections))) as $ours_rows
| ($ours_rows | map(.connections) | max) as $n
| if $top == null then "No server reported a step, so there is nothing to compare."
  elif $n == null then "Ours completed no step (\(stopped_text("ours"; $top; $stopped; $results) | cell)), so there is nothing to compare."
  else
    ($ours_rows | map(select(.connections == $n)) | .[-1]) as $ours
    | ([$results[], $stopped[]] | map(.label) | unique | map(select(. != "ours"))) as $names
    | ($names | map(. as $l
        | ($results | map(select(.label == $l and .connections == $n
                                 and .connections_open == .connections and .scenario == $ours.scenario))
           | .[-1]) as $r
        | {label: $l, result: $r})) as $peers
    | ($peers | map(select(.result != null) | .result)) as $at
    | ($peers | map(select(.result == null))) as $short
    | (if $n < $top then "Ours completed no more than \($n) connections (at \($top): \(stopped_text("ours"; $top; $stopped; $results) | cell)), so every figure below is at \($n) connections.\n" else empty end),
      "Ours against the best of the \($names | length) peer\(if ($names | length) == 1 then "" else "s" end) at \($n) connections (the largest step\(if $n < $top then " ours completed" else " of this run" end)), each figure as the larger over the smaller value; \($at | length) of the peers completed that step:\n",
      "| figure | ours vs the best peer at \($n) connections | ours is |",
      "| --- | --- | --- |",
      (range(0; $ours | figures | length) as $i
        | ($ours | figures)[$i] as $f
        | ($at | map({label: .label, v: (figures[$i].value)}) | map(select(.v != null))
           | sort_by(.v) | if $f.low then .[0] else .[-1] end) as $best
        | "| \($f.name) | "
          + (if $best == null then "ours \($f.value | show($f.show)); no peer has this figure"
             else "ours \($f.value | show($f.show)) vs best \($best.v | show($f.show)) (\($best.label)): \(ratio($f.value; $best.v))" end)
          + " | \(verdict($f.value; $best.v // null; $f.low)) |"),
      "",
      ($at | map(select(.overload != null and (overload_counts | not)))) as $lossy
      | (if ($lossy | length) == 0 then empty
         else "Left out of the overload rows, because their burst lost events: "
           + ($lossy | map("\(.label) (\(.overload.lost | commas) of \(.overload.expected_deliveries | commas) deliveries lost)") | join(", "))
           + ".\n" end),
      (if $ours.overload != null then
         "Overload p99 depends on how much each server takes: in the same \($ours.overload.duration_s | short) s burst (\($ours.overload.in_flight) publish\(if $ours.overload.in_flight == 1 then "" else "es" end) in flight, the next when one is answered) ours accepted \($ours.overload.accepted_per_sec | short) publishes/s; see the overload table below for every server's.\n"
       else empty end),
      (if ($short | length) == 0 then "Every peer completed \($n) connections."
       else "Peers without a full result at \($n) connections, left out of the comparison above, and what stopped each:\n",
         "| peer | what stopped it |",
         "| --- | --- |",
         ($short[] | "| \(.label) | \(stopped_text(.label; $n; $stopped; $results) | cell) |")
       end),
      "",
      ($at | map({label: .label, mem: (figures[0].value), p99: .latency_p99_us, last: .last_subscriber_max_ms,
                  rate: .max_sustained_deliveries_per_sec, cpu: cpu})) as $p
      | def best(f; low): ($p | map(select(f != null)) | sort_by(f) | if length == 0 then null elif low then .[0] else .[-1] end);
        best(.mem; true) as $mem | best(.p99; true) as $p99 | best(.last; true) as $last
        | best(.rate; false) as $rate | best(.cpu; true) as $cpu
        | ($ours | figures[0].value) as $om
        | def target(name; met):
            "| \(name) | " + (if met == null then "not measured" elif met then "met" else "**missed**" end) + " |";
          "The issue's targets at \($n) connections, against those peers:\n",
          "| target | result |",
          "| --- | --- |",
          target("memory per idle connection at most 1/10 of the best peer's";
                 if $om == null or $mem == null then null else $om * 10 <= $mem.mem end),
          target("memory per idle connection under 1 KiB"; if $om == null then null else $om < 1024 end),
          target("latency p99 better than every peer";
                 if $p99 == null then null else $ours.latency_p99_us < $p99.p99 end),
          target("time until the last subscriber (max) better than every peer";
                 if $last == null then null else $ours.last_subscriber_max_ms < $last.last end),
          target("max sustained deliveries/s with zero loss ahead of every peer";
                 if $rate == null or $ours.max_sustained_deliveries_per_sec == null then null
                 else $ours.max_sustained_deliveries_per_sec > $rate.rate end),
          target("server CPU per million deliveries at most half the best peer's";
                 if $cpu == null or ($ours | cpu) == null then null else ($ours | cpu) * 2 <= $cpu.cpu end),
          "",
          "What ended each server's rate search at \($n) connections, and what the load generator spent (it shares the cores with the server, so a server that needs less CPU leaves more to the client):\n",
          "| server | highest loss-free rate, events/s | first failing phase | why it failed | loadgen CPU µs per delivery | server CPU s per million deliveries |",
          "| --- | --- | --- | --- | --- | --- |",
          ([$ours] + $at | sort_by(.label)[] | search_row)
  end
