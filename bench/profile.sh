#!/usr/bin/env bash
# Profile the warm `$everything` path: `tideway demo` (25 in-process boroughs, 20 ms latency),
# one request to fill the cache, then wrk (2 threads, 16 connections, 15 s) with `perf record`
# attached to the demo process for 12 s. Prints wrk's summary and the demo process's CPU per
# request (utime+stime over the run / requests; it includes the idle in-process simulators).
#
#   bash bench/profile.sh                 # wrk only (CPU per request, no profiler overhead)
#   PERF=1 bash bench/profile.sh          # plus perf.data with DWARF call graphs in $OUT
#   perf report -i $OUT/perf.data --no-children --sort comm          # time by thread
#   perf report -i $OUT/perf.data --children --sort symbol -g none   # inclusive, by function
#
# Needs wrk, perf, curl, jq and a release build (cargo build --release --bin tideway).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/tideway/target}
B=${B:-$CARGO_TARGET_DIR/release/tideway}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"; rm -f "$OUT/ready.json"
RUST_LOG=warn "$B" demo --port 0 --latency-ms 20 --ready-file "$OUT/ready.json" > "$OUT/demo.log" 2>&1 &
DPID=$!
trap 'kill $DPID 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do [ -s "$OUT/ready.json" ] && break; sleep 0.2; done
BASE=$(jq -r .base_url "$OUT/ready.json"); TOKEN=$(jq -r .token "$OUT/ready.json"); NHS=$(jq -r '.nhs_numbers[0]' "$OUT/ready.json")
ID=$(curl -s -H "Authorization: Bearer $TOKEN" "$BASE/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C$NHS" | jq -r '.entry[0].resource.id')
curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/Patient/$ID/\$everything"
printf 'wrk.headers["Authorization"] = "Bearer %s"\nwrk.headers["Accept"] = "application/fhir+json"\n' "$TOKEN" > "$OUT/auth.lua"
read -r u0 s0 < <(awk '{print $14, $15}' /proc/$DPID/stat)
if [ -n "${PERF:-}" ]; then
  perf record -F 499 --call-graph dwarf,16384 -p $DPID -o "$OUT/perf.data" -- sleep 12 > /dev/null 2>&1 &
  PP=$!
fi
wrk -t2 -c16 -d15s -s "$OUT/auth.lua" "$BASE/Patient/$ID/\$everything" | tee "$OUT/wrk.txt"
read -r u1 s1 < <(awk '{print $14, $15}' /proc/$DPID/stat)
if [ -n "${PERF:-}" ]; then wait $PP || true; fi
reqs=$(awk '/requests in/ {print $1}' "$OUT/wrk.txt")
ticks=$(getconf CLK_TCK)
python3 -c "print('demo CPU ms/request:', round((($u1-$u0)+($s1-$s0))*1000.0/$ticks/$reqs, 3))"
echo "output in $OUT"
