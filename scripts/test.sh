#!/usr/bin/env bash
# The test command: every crate's tests (unit, adapter, end-to-end over HTTP against simulated
# boroughs, PostgreSQL-backed store), then every FHIR body the end-to-end tests received is
# checked by ../shared/tools/fhir-check, an independent validator.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tideway/target}
collect=${TIDEWAY_COLLECT_DIR:-$CARGO_TARGET_DIR/fhir-bodies}
rm -rf "$collect" && mkdir -p "$collect"
export TIDEWAY_COLLECT_DIR=$collect
# PostgreSQL is part of the tested surface: these tests fail (never skip) when it is absent.
export TIDEWAY_TEST_POSTGRES_URL=${TIDEWAY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
# Redis too (shared page snapshots across replicas).
export TIDEWAY_TEST_REDIS_URL=${TIDEWAY_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
cargo_passed=$(grep -E '^test result: ok\.' "$log" | sed -E 's/^test result: ok\. ([0-9]+) passed.*/\1/' | awk '{s+=$1} END {print s+0}')
count=$(find "$collect" -name '*.json' | wc -l)
echo "fhir-check: validating $count collected response bodies"
if [ "$count" -lt 20 ]; then
  echo "fhir-check: expected the end-to-end tests to collect at least 20 bodies" >&2
  exit 1
fi
../shared/tools/fhir-check --quiet "$collect"
echo "fhir-check: all $count bodies valid"
# FHIR clients someone else wrote (PyPI fhirpy and fhirclient, npm fhir-kit-client; pinned)
# against the running demo; its last line sums their checks.
bash scripts/real-client.sh | tee "$log"
client_passed=$(sed -nE 's/^real-client: ([0-9]+) passed, 0 failed$/\1/p' "$log" | tail -1)
echo "tests: $((cargo_passed + client_passed)) passed, 0 failed"
