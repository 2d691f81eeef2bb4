#!/usr/bin/env bash
# A real FHIR client someone else wrote (PyPI fhirpy, pinned) against the demo: builds `tideway`,
# starts `tideway demo` on a free port, runs tests/python/real_client.py on its ready file, and
# always stops the demo. Exits non-zero on any failure; the last line is
# `real-client: N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tideway/target}

FHIRPY_VERSION=2.3.1
READY_TIMEOUT_SECS=${TIDEWAY_REAL_CLIENT_READY_TIMEOUT:-60}
tools=${TIDEWAY_TOOLS_CACHE:-$HOME/.cache/tideway-tools}
venv=$tools/realclient-venv

summary_failed() {
  echo "real-client: $1" >&2
  echo "real-client: 0 passed, 1 failed"
  exit 1
}

# The client, in its own venv (kept between runs; reinstalled only when the pin changes).
mkdir -p "$tools"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || summary_failed "cannot create a venv at $venv (python3-venv missing?)"
fi
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("fhirpy"))' 2>/dev/null)" \
  != "$FHIRPY_VERSION" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "fhirpy==$FHIRPY_VERSION" \
    || summary_failed "cannot install fhirpy==$FHIRPY_VERSION"
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

status=0
"$venv/bin/python" "$root/tests/python/real_client.py" "$work/ready.json" || status=$?
if [ "$status" -ne 0 ]; then
  show_logs
fi
exit "$status"
