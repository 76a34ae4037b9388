# The issue's targets, checked from the JSON lines of one compare run (jq -s -r -f targets.jq).
# At the largest connection count every server reached, "ours" against the best peer of the
# run; prints a markdown table, one row per target, with how far ours is from it.
#
# Figures: server_rss_per_conn_bytes; latency_p99_us; last_subscriber_max_ms;
# max_sustained_deliveries_per_sec; rate_search_server_cpu_s_per_million_deliveries (falling
# back to the main phase's server_cpu_s_per_million_deliveries).

def fmt(x): if x == null then "n/a"
  elif (x | type) == "number" then (if x >= 100 then (x | round | tostring)
    else ((x * 100 | round) / 100 | tostring) end)
  else (x | tostring) end;

def cpu: .rate_search_server_cpu_s_per_million_deliveries // .server_cpu_s_per_million_deliveries;

# A target row: name, ours, the best peer's value and name, whether met, and how far off.
def row(name; ours; best; best_label; met; gap):
  "| \(name) | \(fmt(ours)) | \(fmt(best)) (\(best_label // "none")) | "
  + (if ours == null or best == null then "not measured"
     elif met then "met (\(gap))" else "**missed** (\(gap))" end) + " |";

def pct(a; b): if b == 0 then "n/a"
  else ((a / b - 1) * 100 | round) as $p | "\(if $p > 0 then "+" else "" end)\($p)%" end;

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

. as $rows
| ($rows | map(select(.connections_open > 0)) | group_by(.label)
   | map({label: .[0].label, max: (map(.connections) | max)})) as $reach
| (if ($reach | length) == 0 then null else ($reach | map(.max) | min) end) as $n
| if $n == null then "No server reported a step, so no target can be checked."
  else
    ($rows | map(select(.connections == $n)) | group_by(.label) | map(.[-1])) as $at
    | ($at | map(select(.label == "ours")) | .[0]) as $ours
    | ($at | map(select(.label != "ours"))) as $peers
    | def best(f; better):
        ($peers | map(select(f != null)) | sort_by(f)
         | if length == 0 then null elif better == "low" then .[0] else .[-1] end);
      if $ours == null then "No result for ours at \($n) connections, so no target can be checked."
      elif ($peers | length) == 0 then "No peer result at \($n) connections, so no target can be checked."
      else
        best(.server_rss_per_conn_bytes; "low") as $mem
        | best(.latency_p99_us; "low") as $p99
        | best(.last_subscriber_max_ms; "low") as $last
        | best(.max_sustained_deliveries_per_sec; "high") as $rate
        | best(cpu; "low") as $cpu
        | ($ours.server_rss_per_conn_bytes) as $om
        | "Targets at \($n) connections (the largest step every server reached), ours against the best peer of this run:\n",
          "| target | ours | best peer | result |",
          "| --- | --- | --- | --- |",
          row("memory per idle connection, bytes: at most 1/10 of the best peer"; $om;
              $mem.server_rss_per_conn_bytes; $mem.label;
              ($om != null and $mem != null and $om * 10 <= $mem.server_rss_per_conn_bytes);
              if $om == null or $mem == null or $om == 0 then "n/a"
              else "ours is 1/\(fmt($mem.server_rss_per_conn_bytes / $om)) of the best peer" end),
          row("memory per idle connection, bytes: under 1 KiB"; $om; 1024; "target";
              ($om != null and $om < 1024); if $om == null then "n/a" else pct($om; 1024) + " against 1 KiB" end),
          row("latency p99, µs: better than every peer"; $ours.latency_p99_us; $p99.latency_p99_us; $p99.label;
              ($p99 != null and $ours.latency_p99_us < $p99.latency_p99_us);
              if $p99 == null then "n/a" else pct($ours.latency_p99_us; $p99.latency_p99_us) + " against the best peer" end),
          row("time until the last subscriber (max), ms: better than every peer"; $ours.last_subscriber_max_ms;
              $last.last_subscriber_max_ms; $last.label;
              ($last != null and $ours.last_subscriber_max_ms < $last.last_subscriber_max_ms);
              if $last == null then "n/a" else pct($ours.last_subscriber_max_ms; $last.last_subscriber_max_ms) + " against the best peer" end),
          row("max sustained deliveries/s with zero loss: ahead of every peer"; $ours.max_sustained_deliveries_per_sec;
              $rate.max_sustained_deliveries_per_sec; $rate.label;
              ($rate != null and $ours.max_sustained_deliveries_per_sec != null
               and $ours.max_sustained_deliveries_per_sec > $rate.max_sustained_deliveries_per_sec);
              if $rate == null or $ours.max_sustained_deliveries_per_sec == null then "n/a"
              else pct($ours.max_sustained_deliveries_per_sec; $rate.max_sustained_deliveries_per_sec) + " against the best peer" end),
          row("server CPU s per million deliveries: at most half the best peer's"; ($ours | cpu); ($cpu | cpu); $cpu.label;
              ($cpu != null and ($ours | cpu) != null and ($ours | cpu) * 2 <= ($cpu | cpu));
              if $cpu == null or ($ours | cpu) == null then "n/a"
              else "ours is \(fmt(($ours | cpu) / ($cpu | cpu) * 100))% of the best peer's" end),
          "",
          "What ended each server's rate search at \($n) connections, and what the load generator spent (it shares the cores with the server, so a server that needs less CPU leaves more to the client):\n",
          "| server | highest loss-free rate, events/s | first failing phase | why it failed | loadgen CPU µs per delivery | server CPU s per million deliveries |",
          "| --- | --- | --- | --- | --- | --- |",
          ($at | sort_by(.label)[] | search_row)
      end
  end
