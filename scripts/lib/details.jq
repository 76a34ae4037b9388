# Figures of the issue's scenarios that the loadgen's summary table leaves out, one row per
# server and step (jq -s -r -f details.jq results.jsonl [stopped.jsonl]): the connection ramp,
# the latency percentiles in full with the time until the last subscriber, and failures by kind.
# A step a server did not reach (an object of stopped.jsonl without a result) keeps its row in
# every table, saying what stopped it; lib/stopped.jq has the details.

def fmt(x): if x == null then "n/a"
  elif (x | type) == "number" then (if x >= 100 then (x | round | tostring)
    else ((x * 100 | round) / 100 | tostring) end)
  else (x | tostring) end;

# A row for a step without a result: the server, the step, what stopped it, dashes.
def gap(columns): "| \(.label) | \(.connections) | **not reached**: \(.stopped | gsub("\\|"; "\\|")) |"
  + ([range(columns - 3)] | map(" – |") | join(""));

(map(select(.stopped == null))) as $results
| ($results | first | .scenario // "") as $scenario
| $results + (map(select(.stopped != null and (.result | not)) | .scenario = $scenario))
| sort_by(.scenario, .label, .connections)
| "Connection ramp (subscribers opened as fast as `--connect-rate` allows):\n",
  "| server | connections | asked /s | achieved /s | ramp s | open | failed |",
  "| --- | --: | --: | --: | --: | --: | --: |",
  (.[] | if .stopped then gap(7) else "| \(.label) | \(.connections) | \(fmt(.connect_rate)) | \(fmt(.connect_rate_achieved)) | \(fmt(.ramp_s)) | \(.connections_open) | \(.connections_failed) |" end),
  "",
  "Fan-out latency at the steady low rate, from each event's scheduled send time (ms):\n",
  "| server | connections | p50 | p90 | p99 | p99.9 | max | last subscriber p50 | last subscriber p99 | last subscriber max |",
  "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
  (.[] | if .stopped then gap(10) else "| \(.label) | \(.connections) | \(fmt(.latency_p50_us / 1000)) | \(fmt(.latency_p90_us / 1000)) | \(fmt(.latency_p99_us / 1000)) | \(fmt(.latency_p999_us / 1000)) | \(fmt(.latency_max_us / 1000)) | \(fmt(.last_subscriber_p50_ms)) | \(fmt(.last_subscriber_p99_ms)) | \(fmt(.last_subscriber_max_ms)) |" end),
  "",
  "Delivery problems (main phase) and failures by kind (whole run):\n",
  "| server | connections | lost | duplicated | out of order | dropped connections | errors |",
  "| --- | --: | --: | --: | --: | --: | --- |",
  (.[] | if .stopped then gap(7) else "| \(.label) | \(.connections) | \(.lost) | \(.duplicated) | \(.out_of_order) | \(.dropped_connections) | \(.errors | to_entries | map("\(.key): \(.value)") | join(", ") | if . == "" then "none" else . end) |" end)
