# The steps a server did not complete and what stopped it, from a result folder's stopped.jsonl
# (written by measure_server in lib/peers.sh; jq -s -r -f stopped.jq stopped.jsonl): one row per
# server and step that produced no result, or a result with fewer connections open than asked,
# with the loadgen's failures by kind and the lines of both logs that say why. Prints nothing
# when every server completed every step.

def cell: tostring | gsub("\\|"; "\\|") | gsub("\n"; " ") | if . == "" then "–" else . end;

def kinds: (. // {}) | to_entries | map("\(.key): \(.value)") | join(", ");

if length == 0 then empty else
  "Steps a server did not complete, and what stopped it (from the load generator's failures by kind and both logs):\n",
  "| server | connections | what happened | loadgen failures by kind | loadgen log | server log |",
  "| --- | --: | --- | --- | --- | --- |",
  (sort_by(.label, .connections)[]
   | "| \(.label) | \(.connections) | \(.stopped | cell) | \(.errors | kinds | cell) | \(.loadgen_log | cell) | \(.server_log | cell) |")
end
