#!/usr/bin/env bash
# Three real FHIR clients someone else wrote, each pinned, against one demo: PyPI fhirpy
# (tests/python/real_client.py), PyPI fhirclient (tests/python/real_client_fhirclient.py) and npm
# fhir-kit-client (tests/js/real_client_fhir_kit.mjs). Builds `tideway`, starts `tideway demo` on
# a free port, runs each script on its ready file, and always stops the demo. Each script prints
# its own `ok`/`FAIL` lines and a `CLIENT: N passed, M failed` line; the last line here is their
# sum, `real-client: N passed, M failed`, and the exit status is non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tideway/target}

FHIRPY_VERSION=2.3.1
FHIRCLIENT_VERSION=4.4.0
# fhir-kit-client's pin (and its dependencies') is tests/js/package.json and package-lock.json.
READY_TIMEOUT_SECS=${TIDEWAY_REAL_CLIENT_READY_TIMEOUT:-60}
tools=${TIDEWAY_TOOLS_CACHE:-$HOME/.cache/tideway-tools}
venv=$tools/realclient-venv
js_modules=$tools/fhir-kit-client
SCRIPT_TIMEOUT_SECS=${TIDEWAY_REAL_CLIENT_SCRIPT_TIMEOUT:-300}

summary_failed() {
  echo "real-client: $1" >&2
  echo "real-client: 0 passed, 1 failed"
  exit 1
}

# The Python clients, in one venv (kept between runs; each reinstalled only when its pin changes).
mkdir -p "$tools"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || summary_failed "cannot create a venv at $venv (python3-venv missing?)"
fi
py_pin() {
  local name=$1 version=$2
  if [ "$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null)" \
    != "$version" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$name==$version" \
      || summary_failed "cannot install $name==$version"
  fi
}
py_pin fhirpy "$FHIRPY_VERSION"
py_pin fhirclient "$FHIRCLIENT_VERSION"

# The npm client, outside the tree (kept between runs; `npm ci` again only when the committed
# lock file changes). fhir-kit-client 2 needs Node.js 20 or later.
command -v node >/dev/null && command -v npm >/dev/null || summary_failed "node and npm are needed (Node.js 20+)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || summary_failed "fhir-kit-client needs Node.js 20 or later, found $(node --version)"
if ! cmp -s "$root/tests/js/package-lock.json" "$js_modules/package-lock.json" \
  || [ ! -f "$js_modules/node_modules/fhir-kit-client/package.json" ]; then
  rm -rf "$js_modules" && mkdir -p "$js_modules"
  cp "$root/tests/js/package.json" "$root/tests/js/package-lock.json" "$js_modules/"
  npm ci --prefix "$js_modules" --no-audit --no-fund --loglevel=error >&2 \
    || { rm -rf "$js_modules"; summary_failed "cannot install fhir-kit-client (npm ci)"; }
fi

cargo build --locked --bin tideway || summary_failed "cargo build failed"
bin=$CARGO_TARGET_DIR/debug/tideway

work=$(mktemp -d "${TMPDIR:-/tmp}/tideway-real-client.XXXXXX")
demo_pid=
stop_demo() {
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM "$demo_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$demo_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$demo_pid" 2>/dev/null; then
      echo "real-client: the demo did not stop within 15 s of SIGTERM; killing it" >&2
      kill -KILL "$demo_pid" 2>/dev/null || true
    fi
    wait "$demo_pid" 2>/dev/null || true
  fi
  demo_pid=
}
cleanup() {
  stop_demo
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_logs() {
  echo "--- demo stdout (tail) ---" >&2
  tail -n 20 "$work/demo.stdout" >&2 || true
  echo "--- demo stderr (tail) ---" >&2
  tail -n 40 "$work/demo.stderr" >&2 || true
}

"$bin" demo --port 0 --boroughs 3 --patients 30 --data-dir "$work/data" \
  --ready-file "$work/ready.json" >"$work/demo.stdout" 2>"$work/demo.stderr" &
demo_pid=$!

deadline=$((SECONDS + READY_TIMEOUT_SECS))
until [ -s "$work/ready.json" ]; do
  if ! kill -0 "$demo_pid" 2>/dev/null; then
    show_logs
    summary_failed "the demo exited before it was ready"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    show_logs
    summary_failed "the demo was not ready within ${READY_TIMEOUT_SECS}s"
  fi
  sleep 0.2
done

# Runs one client's script, shows what it printed, and adds its summary line
# (`LABEL: N passed, M failed`) to the totals. A script that exits non-zero, is stopped by the
# time limit, or prints no summary counts as (at least) one failure.
total_passed=0
total_failed=0
status=0
run_client() {
  local label=$1 out=$work/$1.out rc=0 line p f
  shift
  echo "--- $label ---"
  # Both streams into one file, unbuffered, so each traceback sits under its FAIL line; no
  # bytecode caches left in the tree.
  PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 timeout --kill-after=10 "$SCRIPT_TIMEOUT_SECS" "$@" >"$out" 2>&1 || rc=$?
  cat "$out"
  line=$(grep -E "^$label: [0-9]+ passed, [0-9]+ failed$" "$out" | tail -n 1 || true)
  if [ -n "$line" ]; then
    p=$(sed -E 's/^.*: ([0-9]+) passed, ([0-9]+) failed$/\1/' <<<"$line")
    f=$(sed -E 's/^.*: ([0-9]+) passed, ([0-9]+) failed$/\2/' <<<"$line")
  else
    echo "real-client: $label printed no summary (exit $rc)" >&2
    p=0 f=1
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "real-client: $label exited $rc" >&2
    f=1
  fi
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
  if [ "$f" -ne 0 ]; then status=1; fi
}

run_client fhirpy "$venv/bin/python" "$root/tests/python/real_client.py" "$work/ready.json"
run_client fhirclient "$venv/bin/python" "$root/tests/python/real_client_fhirclient.py" "$work/ready.json"
run_client fhir-kit-client node "$root/tests/js/real_client_fhir_kit.mjs" "$work/ready.json" "$js_modules"

if [ "$status" -ne 0 ]; then
  show_logs
fi
echo "real-client: $total_passed passed, $total_failed failed"
exit "$status"
