#!/usr/bin/env bash
# Bulk export throughput and memory, for the demo's 25 simulated boroughs at two population
# sizes (10,000 and 100,000 patients by default).
#
#   bash bench/export.sh              # both sizes; ~10 minutes on the 2-core bench machine
#   SIZES="400" bash bench/export.sh  # patients per borough, space-separated
#   FIGURES=0 SIZES=4000 bash bench/export.sh  # the export alone (no population-figures walk)
#   GROUP=cohort.diabetes FIGURES=0 bash bench/export.sh  # a Group export instead of system-level
#
# For each size: `tideway demo --patients N` (release build, the regional mix of SystmOne,
# EMIS, Vision, GP Connect, FHIR R4 and social care simulators, its SQLite store, export pacing
# lifted with --export-patients-per-sec), then
#   1. the population-figures walk the gateway runs at start (every registered patient read
#      through the record service and counted): time until GET /MeasureReport answers;
#   2. `tideway export --ready-file` (system-level $export of every type, downloaded): wall
#      time, patients exported, bytes written;
#   3. the demo process's peak resident memory (VmHWM: gateway and simulators together, one
#      process) after start, after the walk and after the export.
# Output: a Markdown table on stdout and in bench/results/export-latest.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/tideway/target}
SIZES=${SIZES:-"400 4000"}
BOROUGHS=${BOROUGHS:-25}
RATE=${RATE:-100000}
FIGURES=${FIGURES:-1}
GROUP=${GROUP:-}
out=bench/results/export-latest.md
cargo build --release --locked --bin tideway >&2
bin=$CARGO_TARGET_DIR/release/tideway
hwm() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
rows=()
for n in $SIZES; do
  dir=$(mktemp -d)
  "$bin" demo --boroughs "$BOROUGHS" --patients "$n" --data-dir "$dir/data" --ready-file "$dir/ready.json" \
    --export-patients-per-sec "$RATE" --figures-interval-secs "$([ "$FIGURES" = 1 ] && echo 86400 || echo 0)" >"$dir/demo.log" 2>&1 &
  pid=$!
  start=$(date +%s.%N)
  for _ in $(seq 1 600); do [ -s "$dir/ready.json" ] && break; sleep 0.5; done
  [ -s "$dir/ready.json" ] || { echo "export.sh: the demo did not start" >&2; cat "$dir/demo.log" >&2; exit 1; }
  ready=$(date +%s.%N)
  base=$(jq -r .base_url "$dir/ready.json"); token=$(jq -r .analyst.token "$dir/ready.json")
  mem_ready=$(hwm $pid)
  # The walk the gateway starts with: done when the figures are stored.
  for _ in $(seq 1 "$([ "$FIGURES" = 1 ] && echo 7200 || echo 0)"); do
    total=$(curl -s -H "Authorization: Bearer $token" "$base/MeasureReport?measure=diabetes" | jq -r '.total // 0')
    [ "$total" -gt 0 ] && break
    sleep 0.5
  done
  figured=$(date +%s.%N)
  mem_walk=$(hwm $pid)
  t0=$(date +%s.%N)
  "$bin" export --ready-file "$dir/ready.json" --out "$dir/out" --timeout-secs 3600 ${GROUP:+--group "$GROUP"} >"$dir/export.log" 2>&1
  t1=$(date +%s.%N)
  mem_export=$(hwm $pid)
  patients=$(wc -l <"$dir/out/Patient.ndjson")
  resources=$(cat "$dir/out"/*.ndjson | wc -l)
  bytes=$(cat "$dir/out"/*.ndjson | wc -c)
  kill -TERM $pid; wait $pid || true
  secs=$(echo "$t1 - $t0" | bc -l); walk=$(echo "$figured - $ready" | bc -l); boot=$(echo "$ready - $start" | bc -l)
  registered=$((BOROUGHS * n))
  rows+=("| $registered | $(printf %.1f "$boot") | $(printf %.1f "$walk") | $(printf %.0f "$(echo "$registered / $walk" | bc -l)") | $(printf %.1f "$secs") | $patients | $resources | $(printf %.1f "$(echo "$bytes / 1048576" | bc -l)") | $(printf %.0f "$(echo "$patients / $secs" | bc -l)") | $(printf %.2f "$(echo "$bytes / 1048576 / $secs" | bc -l)") | $mem_ready | $mem_walk | $mem_export |")
  rm -rf "$dir"
done
{
  echo "# Bulk export benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, commit $(git rev-parse --short HEAD))"
  echo
  echo "Command: \`bash bench/export.sh\` (SIZES=\"$SIZES\" patients per borough, $BOROUGHS boroughs, pace $RATE patients/s${GROUP:+, Group $GROUP})."
  echo
  echo "| registered patients | demo start s | figures walk s | walk patients/s | export s | patients exported | resources | output MB | export patients/s | export MB/s | peak RSS after start MB | after walk MB | after export MB |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out"
