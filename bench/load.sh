#!/usr/bin/env bash
# Reproducible load run for `GET /Patient/{id}/$everything` over 25 simulated borough exchanges
# with injected latency, plus nginx serving the same Bundle from a file as the yardstick.
#
#   bash bench/load.sh            # everything, ~3.5 minutes with the defaults
#
# Knobs (environment): DURATION (wrk -d, default 20s; keep <= 30s), THREADS (wrk -t, 2),
# CONNECTIONS (wrk -c, 16), LATENCY_MS (20), BOROUGHS (25), PATIENTS (200), SEED (42),
# PATIENT_INDEX (population index of the measured patient, default 0: held by boroughs 0, 1, 2),
# UNLOADED_DURATION (the -t1 -c1 runs, default 10s), STORE_DIR (where the gateway's SQLite file
# goes; default a fresh directory under $TMPDIR or /tmp), KINDS (`fhir-r4`, the default: every
# borough a FHIR R4 exchange; or `regional`: the demo's mix of SystmOne, GP Connect, FHIR R4 ...
# by borough index, as `tideway simulate --kind regional` gives it), SKIP_DEMO=1 (leave out the
# `tideway demo` cross-check), NO_INSTALL=1 (never apt-get).
#
# Topology (all on 127.0.0.1): 25 `tideway simulate` processes (one per borough, the same
# population `tideway demo` builds) and one `tideway serve` whose generated config registers
# them. The gateway is started twice: `[cache] enabled = true` (warm: the record is fetched
# once, then served from the per-source cache) and `[cache] enabled = false` (cold: every
# request goes to every source holding the patient). The same simulators are then measured
# directly (the "slowest source"), and nginx serves a saved warm response body.
#
# Output: a Markdown report on stdout and in bench/results/latest.md; raw wrk output and logs
# in bench/results/raw-latest/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/tideway/target}

DURATION=${DURATION:-20s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-16}
LATENCY_MS=${LATENCY_MS:-20}
BOROUGHS=${BOROUGHS:-25}
PATIENTS=${PATIENTS:-200}
SEED=${SEED:-42}
PATIENT_INDEX=${PATIENT_INDEX:-0}
KINDS=${KINDS:-fhir-r4}
UNLOADED_DURATION=${UNLOADED_DURATION:-10s}
STORE_DIR=${STORE_DIR:-}
WRK_LOADED=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$root/bench/wrk-report.lua")
# One connection, one request at a time: latency without queueing (the "unloaded" rows).
WRK_UNLOADED=(-t1 -c1 -d"$UNLOADED_DURATION" --latency -s "$root/bench/wrk-report.lua")
WRK_ARGS=("${WRK_LOADED[@]}")

log() { echo "load.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# --- tools -------------------------------------------------------------------------------------
need_pkgs=()
command -v wrk >/dev/null || need_pkgs+=(wrk)
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  if apt-cache policy nginx-light 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    need_pkgs+=(nginx-light)
  else
    need_pkgs+=(nginx)
  fi
fi
for t in curl jq openssl xxd basenc python3; do command -v "$t" >/dev/null || die "needs $t"; done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  [ -n "${NO_INSTALL:-}" ] && die "missing: ${need_pkgs[*]} (NO_INSTALL set)"
  log "installing ${need_pkgs[*]}"
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

log "building: cargo build --release --bin tideway"
cargo build --release --bin tideway >&2
BIN=$CARGO_TARGET_DIR/release/tideway

# --- scratch space and cleanup -----------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/tideway-bench.XXXXXX")
chmod 755 "$work"
raw=$root/bench/results/raw-latest
rm -rf "$raw"; mkdir -p "$raw"
pids=()
extra_dirs=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work" "${extra_dirs[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # stop one process we started and forget it
  local p=$1 keep=() q
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for q in "${pids[@]}"; do [ "$q" != "$p" ] && keep+=("$q"); done
  pids=("${keep[@]}")
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url, timeout seconds
  local deadline=$((SECONDS + $2))
  until curl -fs -o /dev/null "$1"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

# --- the measured patient ------------------------------------------------------------------------
# Same derivation as tideway_adapters::population: patient p gets stem 999000000 + 2p (or +1 when
# that stem has no Mod 11 check digit); boroughs: home = p / PATIENTS, plus the next one if p is a
# multiple of 5, plus the one after if p is a multiple of 10.
mod11() { # stem -> full number, or nothing
  local s=$1 sum=0 i d c
  for i in 0 1 2 3 4 5 6 7 8; do d=${s:$i:1}; sum=$((sum + d * (10 - i))); done
  c=$((11 - sum % 11)); [ "$c" -eq 11 ] && c=0
  [ "$c" -eq 10 ] || echo "$s$c"
}
stem=$((999000000 + 2 * PATIENT_INDEX))
NHS=$(mod11 "$stem"); [ -n "$NHS" ] || NHS=$(mod11 $((stem + 1)))
home=$((PATIENT_INDEX / PATIENTS))
holding=("$home")
if [ $((PATIENT_INDEX % 5)) -eq 0 ]; then holding+=($(((home + 1) % BOROUGHS))); fi
if [ $((PATIENT_INDEX % 10)) -eq 0 ]; then holding+=($(((home + 2) % BOROUGHS))); fi
log "patient index $PATIENT_INDEX (NHS number $NHS) is held by boroughs ${holding[*]}"

# --- simulators --------------------------------------------------------------------------------
log "starting $BOROUGHS simulators (--latency-ms $LATENCY_MS)"
sim_pids=()
for i in $(seq 0 $((BOROUGHS - 1))); do
  "$BIN" simulate --port 0 --seed "$SEED" --borough-index "$i" --boroughs "$BOROUGHS" \
    --patients "$PATIENTS" --latency-ms "$LATENCY_MS" --kind "$KINDS" >"$work/sim-$i.out" 2>"$work/sim-$i.err" &
  pids+=($!); sim_pids+=($!)
done
sim_url=()
sim_kind=()
for i in $(seq 0 $((BOROUGHS - 1))); do
  deadline=$((SECONDS + 30))
  until grep -q 'simulated borough exchange at' "$work/sim-$i.out" 2>/dev/null; do
    [ "$SECONDS" -ge "$deadline" ] && die "simulator $i did not start: $(cat "$work/sim-$i.err")"
    sleep 0.1
  done
  sim_url[i]=$(grep -o 'http://[^ ]*' "$work/sim-$i.out" | head -1)
  until grep -q '^kind ' "$work/sim-$i.out" 2>/dev/null; do sleep 0.1; done
  sim_kind[i]=$(sed -n 's/^kind //p' "$work/sim-$i.out" | head -1)
done

# --- client key and gateway config -------------------------------------------------------------
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/client.pem" 2>/dev/null
b64url() { basenc --base64url -w0 | tr -d '='; }
modulus=$(openssl rsa -in "$work/client.pem" -noout -modulus | cut -d= -f2 | xxd -r -p | b64url)
jq -n --arg n "$modulus" \
  '{keys: [{kty: "RSA", kid: "bench-1", alg: "RS384", use: "sig", n: $n, e: "AQAB"}]}' >"$work/client.jwks.json"
hex32() { openssl rand -hex 32; }
pseudonym_key=$(hex32)
signing_secret=$(hex32)

write_config() { # port, cache enabled (true/false), db file -> config path on stdout
  local port=$1 cache=$2 db=$3 cfg=$work/gateway-$2.toml i
  {
    echo "[server]"
    echo "bind = \"127.0.0.1:$port\""
    echo "workers = 2"
    echo "[store]"
    echo "url = \"sqlite://$db\""
    echo "[identity]"
    echo "pseudonym_key = \"$pseudonym_key\""
    echo "[auth]"
    echo "token_signing_secret = \"$signing_secret\""
    echo "[[auth.clients]]"
    echo "client_id = \"bench-client\""
    echo "name = \"Load benchmark\""
    echo "jwks_file = \"$work/client.jwks.json\""
    echo "allowed_scopes = [\"system/*.read\", \"system/*.rs\"]"
    echo "token_lifetime_secs = 3600"
    echo "[cache]"
    echo "enabled = $cache"
    echo "[telemetry]"
    echo "log_filter = \"info\""
    echo "log_format = \"json\""
    for i in $(seq 0 $((BOROUGHS - 1))); do
      echo "[[sources]]"
      printf 'id = "borough-%02d"\n' "$i"
      echo "name = \"Simulated borough $i\""
      echo "kind = \"${sim_kind[i]}\""
      printf 'ods_code = "LBX%02d"\n' $((i + 1))
      echo "base_url = \"${sim_url[i]}\""
      echo "timeout_ms = 5000"
      echo "max_body_bytes = 33554432"
    done
  } >"$cfg"
  echo "$cfg"
}

get_token() { # base url, [ODS code, default RJ122] -> access token
  local base=$1 org=${2:-RJ122} now header claims input sig
  now=$(date +%s)
  header=$(printf '{"alg":"RS384","typ":"JWT","kid":"bench-1"}' | b64url)
  claims=$(jq -cn --arg aud "$base/token" --arg org "$org" --argjson now "$now" --arg jti "$(openssl rand -hex 16)" '{
    iss: "bench-client", sub: "bench-client", aud: $aud, iat: $now, exp: ($now + 120), jti: $jti,
    extensions: {ihe_iua: {
      subject_id: "bench-clinician", subject_organization_id: $org, subject_name: "Dr Bench",
      subject_role: {system: "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode", code: "R8000"},
      purpose_of_use: {system: "http://terminology.hl7.org/CodeSystem/v3-ActReason", code: "TREAT"}}}}' | b64url)
  input="$header.$claims"
  sig=$(printf '%s' "$input" | openssl dgst -sha384 -sign "$work/client.pem" -binary | b64url)
  curl -fsS "$base/token" \
    --data-urlencode grant_type=client_credentials \
    --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
    --data-urlencode "client_assertion=$input.$sig" \
    --data-urlencode "scope=system/*.read" | jq -er .access_token
}

resolve_patient() { # base, token -> gateway patient id
  curl -fsS -G -H "Authorization: Bearer $2" "$1/Patient" \
    --data-urlencode "identifier=https://fhir.nhs.uk/Id/nhs-number|$NHS" | jq -er '.entry[0].resource.id'
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
vm_hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
vm_rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)

# results: name -> "RESULT ..." line, plus extras
declare -A R EXTRA
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" ${R[$1]}"; }

run_wrk() { # name, url, token, [pid to account CPU to]
  local name=$1 url=$2 token=$3 pid=${4:-} t0 t1
  log "wrk ${WRK_ARGS[*]} $url   [$name]"
  [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
  WRK_TOKEN=$token wrk "${WRK_ARGS[@]}" "$url" >"$raw/wrk-$name.txt" 2>&1 \
    || die "wrk failed for $name: $(tail -5 "$raw/wrk-$name.txt")"
  R[$name]=$(grep '^RESULT ' "$raw/wrk-$name.txt" | tail -1)
  [ -n "${R[$name]}" ] || die "no RESULT line for $name"
  if [ -n "$pid" ]; then
    t1=$(cpu_ticks "$pid")
    EXTRA[$name-cpu_ms_per_req]=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v n="$(field "$name" requests)" \
      'BEGIN { printf "%.2f", (b - a) * 1000 / hz / (n > 0 ? n : 1) }')
  fi
  local bad; bad=$(( $(field "$name" non2xx) + $(field "$name" connect_err) + $(field "$name" read_err) + $(field "$name" timeouts) ))
  [ "$bad" -eq 0 ] || log "WARNING: $name had $bad failed requests (see $raw/wrk-$name.txt)"
}

start_gateway() { # cache enabled -> sets GW_PID GW_BASE
  local port cfg
  port=$(free_port)
  local dbdir=$work
  if [ -n "$STORE_DIR" ]; then dbdir=$(mktemp -d "$STORE_DIR/tideway-bench-db.XXXXXX"); extra_dirs+=("$dbdir"); fi
  cfg=$(write_config "$port" "$1" "$dbdir/tideway-$1.db")
  "$BIN" serve --config "$cfg" >"$raw/gateway-cache-$1.log" 2>&1 &
  GW_PID=$!; pids+=("$GW_PID")
  GW_BASE="http://127.0.0.1:$port"
  wait_http "$GW_BASE/metadata" 30 || die "gateway did not start: $(tail -20 "$raw/gateway-cache-$1.log")"
}

# --- 1. warm cache ------------------------------------------------------------------------------
start_gateway true
TOKEN=$(get_token "$GW_BASE")
PID_GW=$(resolve_patient "$GW_BASE" "$TOKEN")
EVERYTHING="$GW_BASE/Patient/$PID_GW/\$everything"
curl -fsS -H "Authorization: Bearer $TOKEN" "$EVERYTHING" -o "$work/everything.json"
total=$(jq -r .total "$work/everything.json")
sources=$(jq -r '[.entry[].resource.meta.source] | unique | join(", ")' "$work/everything.json")
body_bytes=$(stat -c %s "$work/everything.json")
log "\$everything: total=$total, $body_bytes bytes, sources: $sources"
EXTRA[rss_before_warm]=$(vm_rss_kib "$GW_PID")
run_wrk warm "$EVERYTHING" "$TOKEN" "$GW_PID"
WRK_ARGS=("${WRK_UNLOADED[@]}"); run_wrk warm-c1 "$EVERYTHING" "$TOKEN" "$GW_PID"; WRK_ARGS=("${WRK_LOADED[@]}")
EXTRA[warm-hwm]=$(vm_hwm_kib "$GW_PID")
EXTRA[warm-rss_after]=$(vm_rss_kib "$GW_PID")
# --- 1b. the same, consent-filtered: the registered practice records a directive (a deny to
# another organisation, so the same entries are released and only the filtering differs) that
# every resource is then decided against.
practice=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$GW_BASE/Patient/$PID_GW" \
  | jq -er '.generalPractitioner[0].reference | split(".")[1]')
PRACTICE_TOKEN=$(get_token "$GW_BASE" "$practice")
jq -n --arg p "Patient/$PID_GW" '{resourceType: "Consent", status: "active",
  scope: {coding: [{system: "http://terminology.hl7.org/CodeSystem/consentscope", code: "patient-privacy"}]},
  category: [{coding: [{system: "http://loinc.org", code: "59284-0"}]}], patient: {reference: $p},
  provision: {type: "deny", actor: [{role: {coding: [{system: "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", code: "IRCP"}]},
    reference: {identifier: {system: "https://fhir.nhs.uk/Id/ods-organization-code", value: "YNONE"}}}]}}' >"$work/consent.json"
consent_id=$(curl -fsS -H "Authorization: Bearer $PRACTICE_TOKEN" -H "content-type: application/fhir+json" \
  --data-binary @"$work/consent.json" "$GW_BASE/Consent" | jq -er .id) || die "the consent could not be recorded"
total_c=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$EVERYTHING" | jq -r .total)
[ "$total_c" = "$total" ] || die "the consent changed what is released ($total_c vs $total entries)"
run_wrk warm-consent "$EVERYTHING" "$TOKEN" "$GW_PID"
WRK_ARGS=("${WRK_UNLOADED[@]}"); run_wrk warm-consent-c1 "$EVERYTHING" "$TOKEN" "$GW_PID"; WRK_ARGS=("${WRK_LOADED[@]}")
# ... and unfiltered again once the consent is withdrawn (a new version, inactive), so the
# comparison is not only with a run on a younger audit file.
jq '.status = "inactive"' "$work/consent.json" >"$work/withdrawn.json"
curl -fsS -X PUT -H "Authorization: Bearer $PRACTICE_TOKEN" -H "content-type: application/fhir+json" \
  --data-binary @"$work/withdrawn.json" "$GW_BASE/Consent/$consent_id" >/dev/null || die "the consent could not be withdrawn"
run_wrk warm-withdrawn "$EVERYTHING" "$TOKEN" "$GW_PID"
stop_pid "$GW_PID"

# --- 2. cold cache ------------------------------------------------------------------------------
start_gateway false
TOKEN=$(get_token "$GW_BASE")
PID_GW2=$(resolve_patient "$GW_BASE" "$TOKEN")
[ "$PID_GW2" = "$PID_GW" ] || die "patient id differs between runs ($PID_GW vs $PID_GW2)"
EVERYTHING="$GW_BASE/Patient/$PID_GW/\$everything"
total2=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$EVERYTHING" | jq -r .total)
[ "$total2" = "$total" ] || die "cold answer has $total2 entries, warm had $total"
run_wrk cold "$EVERYTHING" "$TOKEN" "$GW_PID"
WRK_ARGS=("${WRK_UNLOADED[@]}"); run_wrk cold-c1 "$EVERYTHING" "$TOKEN" "$GW_PID"; WRK_ARGS=("${WRK_LOADED[@]}")
EXTRA[cold-hwm]=$(vm_hwm_kib "$GW_PID")
# Extra: the NHS-number search, which asks all sources (cache off: every request fans out to 25).
SEARCH="$GW_BASE/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C$NHS"
run_wrk search-cold "$SEARCH" "$TOKEN" "$GW_PID"
EXTRA[search-hwm]=$(vm_hwm_kib "$GW_PID")
stop_pid "$GW_PID"

# --- 3. the sources on their own -----------------------------------------------------------------
# The record read each kind serves with a GET; GP Connect's is a POST with Spine headers and a
# JWT, which wrk's plain GET cannot send, so a GP Connect borough is not measured on its own.
source_url() { # borough -> URL of the patient's record on that simulator, or nothing
  local b=$1 local_id
  local_id=$(printf 'b%02d-p%06d' "$b" "$PATIENT_INDEX")
  case "${sim_kind[b]}" in
    fhir-r4) echo "${sim_url[b]}Patient/$local_id/\$everything" ;;
    systmone) echo "${sim_url[b]}patients/$local_id/extract" ;;
    emis) echo "${sim_url[b]}patients/$local_id/record" ;;
    vision) echo "${sim_url[b]}patients/$local_id/journal" ;;
    *) ;;
  esac
}
measured=()
for b in "${holding[@]}"; do [ -n "$(source_url "$b")" ] && measured+=("$b"); done
slowest=""; slowest_p50=0
for b in "${measured[@]}"; do
  run_wrk "source-$b" "$(source_url "$b")" ""
  WRK_ARGS=("${WRK_UNLOADED[@]}"); run_wrk "source-$b-c1" "$(source_url "$b")" ""
  WRK_ARGS=("${WRK_LOADED[@]}")
  p=$(field "source-$b" p50_us)
  if [ "$p" -gt "$slowest_p50" ]; then slowest_p50=$p; slowest="source-$b"; fi
done
slowest_c1=""; slowest_c1_p50=0
for b in "${measured[@]}"; do
  p=$(field "source-$b-c1" p50_us)
  if [ "$p" -gt "$slowest_c1_p50" ]; then slowest_c1_p50=$p; slowest_c1="source-$b-c1"; fi
done

# --- 4. yardstick: nginx serving the saved warm body --------------------------------------------
mkdir -p "$work/www" "$work/nginx-tmp"
cp "$work/everything.json" "$work/www/everything.json"
cp "$work/everything.json" "$raw/everything.json"
chmod -R a+rX "$work/www"
nport=$(free_port)
cat >"$work/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx-tmp/body;
  proxy_temp_path $work/nginx-tmp/proxy;
  fastcgi_temp_path $work/nginx-tmp/fastcgi;
  uwsgi_temp_path $work/nginx-tmp/uwsgi;
  scgi_temp_path $work/nginx-tmp/scgi;
  server {
    listen 127.0.0.1:$nport;
    root $work/www;
    location / { default_type application/fhir+json; }
  }
}
EOF
"$NGINX" -p "$work" -c "$work/nginx.conf" 2>"$work/nginx-start.err" &
NGINX_PID=$!; pids+=("$NGINX_PID")
wait_http "http://127.0.0.1:$nport/everything.json" 10 || die "nginx did not start: $(cat "$work/nginx-start.err" "$work/nginx-error.log" 2>/dev/null)"
run_wrk nginx "http://127.0.0.1:$nport/everything.json" ""
WRK_ARGS=("${WRK_UNLOADED[@]}"); run_wrk nginx-c1 "http://127.0.0.1:$nport/everything.json" ""; WRK_ARGS=("${WRK_LOADED[@]}")
stop_pid "$NGINX_PID"

# Simulators are no longer needed; free the cores for the demo cross-check.
for p in "${sim_pids[@]}"; do stop_pid "$p"; done

# --- 5. cross-check: `tideway demo` (gateway and simulators in one process), warm ------------------
if [ -z "${SKIP_DEMO:-}" ]; then
  "$BIN" demo --port 0 --boroughs "$BOROUGHS" --patients "$PATIENTS" --seed "$SEED" --latency-ms "$LATENCY_MS" \
    --data-dir "$work/demo-data" --ready-file "$work/demo.json" >"$raw/demo.out" 2>"$raw/demo.err" &
  DEMO_PID=$!; pids+=("$DEMO_PID")
  deadline=$((SECONDS + 60))
  until [ -s "$work/demo.json" ]; do
    kill -0 "$DEMO_PID" 2>/dev/null || die "demo exited: $(tail -20 "$raw/demo.err")"
    [ "$SECONDS" -ge "$deadline" ] && die "demo not ready in 60 s"
    sleep 0.2
  done
  DBASE=$(jq -r .base_url "$work/demo.json"); DTOKEN=$(jq -r .token "$work/demo.json")
  DNHS=$(jq -r '.nhs_numbers[0]' "$work/demo.json")
  [ "$DNHS" = "$NHS" ] || log "note: demo's first NHS number is $DNHS, measured patient is $NHS"
  DID=$(resolve_patient "$DBASE" "$DTOKEN")
  curl -fsS -H "Authorization: Bearer $DTOKEN" "$DBASE/Patient/$DID/\$everything" >/dev/null
  run_wrk demo-warm "$DBASE/Patient/$DID/\$everything" "$DTOKEN" "$DEMO_PID"
  EXTRA[demo-hwm]=$(vm_hwm_kib "$DEMO_PID")
  stop_pid "$DEMO_PID"
fi

# --- report -------------------------------------------------------------------------------------
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
row() { # name, label, rss-kib-or-empty
  local n=$1
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$(field "$n" rps)" \
    "$(ms "$(field "$n" p50_us)")" "$(ms "$(field "$n" p90_us)")" "$(ms "$(field "$n" p99_us)")" \
    "$(ms "$(field "$n" max_us)")" \
    "$(( $(field "$n" non2xx) + $(field "$n" connect_err) + $(field "$n" read_err) + $(field "$n" timeouts) ))" \
    "${EXTRA[$n-cpu_ms_per_req]:--}" "${3:+$(mib "$3")}"
}
delta() { awk -v a="$(field "$1" "$3")" -v b="$(field "$2" "$3")" 'BEGIN { printf "%+.2f", (a - b) / 1000 }'; }

report=$work/report.md
{
  echo "## Load run $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "- commit: \`$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)\`$(git -C "$root" diff --quiet HEAD -- gateway/src adapters/src simulators/src profiles/src auth/src 2>/dev/null || echo ' (with uncommitted changes in the crates)')"
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); wrk, gateway, simulators and nginx share these cores"
  echo "- wrk, loaded: \`wrk ${WRK_LOADED[*]/$root\//} URL\`; unloaded: \`wrk ${WRK_UNLOADED[*]/$root\//} URL\`"
  echo "- gateway store: SQLite (WAL, synchronous=FULL) in $(df -T "${STORE_DIR:-$work}" | awk 'NR==2 {print $2}') (${STORE_DIR:-${TMPDIR:-/tmp}})"
  echo "- population: seed $SEED, $BOROUGHS boroughs x $PATIENTS patients, ${LATENCY_MS} ms injected latency per simulator answer"
  echo "- kinds: $KINDS (the measured patient's boroughs: $(for b in "${holding[@]}"; do printf '%s ' "$b=${sim_kind[b]}"; done))"
  echo "- patient: population index $PATIENT_INDEX, held by boroughs ${holding[*]}; \`\$everything\` = $total entries, $body_bytes bytes (sources: $sources)"
  echo "- gateway: \`tideway serve\`, 2 workers, SQLite store, info-level JSON access log to a file"
  echo
  echo "Loaded (\`-t$THREADS -c$CONNECTIONS -d$DURATION\`):"
  echo
  echo "| target | req/s | p50 ms | p90 ms | p99 ms | max ms | failed | gateway CPU ms/req | peak RSS MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  row warm "gateway \`\$everything\`, warm cache" "${EXTRA[warm-hwm]}"
  row warm-consent "gateway \`\$everything\`, warm cache, consent-filtered" ""
  row warm-withdrawn "gateway \`\$everything\`, warm cache, after the consent is withdrawn" ""
  row cold "gateway \`\$everything\`, cold (cache disabled)" "${EXTRA[cold-hwm]}"
  for b in "${measured[@]}"; do
    row "source-$b" "borough-$(printf %02d "$b") ${sim_kind[b]} simulator record read directly$([ "source-$b" = "$slowest" ] && echo ' (slowest p50)')" ""
  done
  row nginx "nginx, same warm body from a file" ""
  row search-cold "gateway NHS-number search, cache disabled (asks all $BOROUGHS)" "${EXTRA[search-hwm]}"
  [ -z "${SKIP_DEMO:-}" ] && row demo-warm "\`tideway demo\` \`\$everything\`, warm (RSS includes the $BOROUGHS in-process simulators)" "${EXTRA[demo-hwm]}"
  echo
  echo "Unloaded (\`-t1 -c1 -d$UNLOADED_DURATION\`, one request at a time):"
  echo
  echo "| target | req/s | p50 ms | p90 ms | p99 ms | max ms | failed | gateway CPU ms/req | peak RSS MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  row warm-c1 "gateway \`\$everything\`, warm cache" ""
  row warm-consent-c1 "gateway \`\$everything\`, warm cache, consent-filtered" ""
  row cold-c1 "gateway \`\$everything\`, cold (cache disabled)" ""
  for b in "${measured[@]}"; do
    row "source-$b-c1" "borough-$(printf %02d "$b") ${sim_kind[b]} simulator directly$([ "source-$b-c1" = "$slowest_c1" ] && echo ' (slowest p50)')" ""
  done
  row nginx-c1 "nginx, same body from a file" ""
  echo
  echo "Overhead over the slowest single source (each measured alone with the same wrk settings):"
  echo
  echo "| | p50 ms | p90 ms | p99 ms |"
  echo "|---|---:|---:|---:|"
  echo "| loaded: cold gateway - slowest source ($slowest) | $(delta cold "$slowest" p50_us) | $(delta cold "$slowest" p90_us) | $(delta cold "$slowest" p99_us) |"
  echo "| loaded: warm gateway - slowest source ($slowest) | $(delta warm "$slowest" p50_us) | $(delta warm "$slowest" p90_us) | $(delta warm "$slowest" p99_us) |"
  echo "| loaded: warm gateway - nginx | $(delta warm nginx p50_us) | $(delta warm nginx p90_us) | $(delta warm nginx p99_us) |"
  echo "| unloaded: cold gateway - slowest source ($slowest_c1) | $(delta cold-c1 "$slowest_c1" p50_us) | $(delta cold-c1 "$slowest_c1" p90_us) | $(delta cold-c1 "$slowest_c1" p99_us) |"
  echo "| unloaded: warm gateway - nginx | $(delta warm-c1 nginx-c1 p50_us) | $(delta warm-c1 nginx-c1 p90_us) | $(delta warm-c1 nginx-c1 p99_us) |"
  echo
  echo "Peak RSS is VmHWM of the gateway process at the end of its runs (warm: after the warm run;"
  echo "cold: after the cold run; search: the same process after the search run too). Gateway idle RSS"
  echo "before the warm run: $(mib "${EXTRA[rss_before_warm]}") MiB. Failed = non-2xx + socket errors + timeouts."
} >"$report"
cat "$report"
cp "$report" "$root/bench/results/latest.md"
