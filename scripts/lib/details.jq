# Figures of the issue's scenarios that the loadgen's summary table leaves out, one row per
# server and step (jq -s -r -f details.jq results.jsonl): the connection ramp, the latency
# percentiles in full with the time until the last subscriber, and failures by kind.

def fmt(x): if x == null then "n/a"
  elif (x | type) == "number" then (if x >= 100 then (x | round | tostring)
    else ((x * 100 | round) / 100 | tostring) end)
  else (x | tostring) end;

sort_by(.scenario, .label, .connections)
| "Connection ramp (subscribers opened as fast as `--connect-rate` allows):\n",
  "| server | connections | asked /s | achieved /s | ramp s | open | failed |",
  "| --- | --: | --: | --: | --: | --: | --: |",
  (.[] | "| \(.label) | \(.connections) | \(fmt(.connect_rate)) | \(fmt(.connect_rate_achieved)) | \(fmt(.ramp_s)) | \(.connections_open) | \(.connections_failed) |"),
  "",
  "Fan-out latency at the steady low rate, from each event's scheduled send time (ms):\n",
  "| server | connections | p50 | p90 | p99 | p99.9 | max | last subscriber p50 | last subscriber p99 | last subscriber max |",
  "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
  (.[] | "| \(.label) | \(.connections) | \(fmt(.latency_p50_us / 1000)) | \(fmt(.latency_p90_us / 1000)) | \(fmt(.latency_p99_us / 1000)) | \(fmt(.latency_p999_us / 1000)) | \(fmt(.latency_max_us / 1000)) | \(fmt(.last_subscriber_p50_ms)) | \(fmt(.last_subscriber_p99_ms)) | \(fmt(.last_subscriber_max_ms)) |"),
  "",
  "Delivery problems (main phase) and failures by kind (whole run):\n",
  "| server | connections | lost | duplicated | out of order | dropped connections | errors |",
  "| --- | --: | --: | --: | --: | --: | --- |",
  (.[] | "| \(.label) | \(.connections) | \(.lost) | \(.duplicated) | \(.out_of_order) | \(.dropped_connections) | \(.errors | to_entries | map("\(.key): \(.value)") | join(", ") | if . == "" then "none" else . end) |")
