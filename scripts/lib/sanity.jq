# The instrument's own floor, from the JSON lines of one bench run (jq -s -r -f sanity.jq):
# the latency floor with one subscriber on loopback, and the load generator's CPU per delivery
# there and at the largest step, in total and on the receive path alone, so a reader knows
# what the instrument itself costs. Prints a markdown table, or nothing without a sanity run.

def fmt(x): if x == null then "n/a"
  elif x >= 100 then (x | round | tostring)
  else ((x * 10 | round) / 10 | tostring) end;

(map(select(.scenario | startswith("sanity"))) | last) as $one
| (map(select(.scenario | startswith("sanity") | not)) | max_by(.connections)) as $top
| if $one == null then empty else
  "The instrument's floor (one subscriber on loopback, \($one.events) events at \(fmt($one.rate))/s, \($one.payload_bytes)-byte data):\n",
  "| figure | value |",
  "| --- | --: |",
  "| latency floor, publish to receipt: p50 / p99 / max | \(fmt($one.latency_p50_us)) / \(fmt($one.latency_p99_us)) / \(fmt($one.latency_max_us)) µs |",
  "| loadgen CPU per delivery at 1 connection: total / receive path | \(fmt($one.loadgen_cpu_us_per_delivery)) / \(fmt($one.loadgen_subscriber_cpu_us_per_delivery)) µs |",
  (if $top == null then empty else
  "| loadgen CPU per delivery at \($top.connections) connections: total / receive path | \(fmt($top.loadgen_cpu_us_per_delivery)) / \(fmt($top.loadgen_subscriber_cpu_us_per_delivery)) µs |" end),
  "",
  "At one connection the total is mostly fixed costs (one HTTP publish per event, timers) spread over few deliveries; at scale the receive path is nearly all of it."
  end
