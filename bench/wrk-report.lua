-- wrk script for bench/load.sh.
-- Adds `Authorization: Bearer $WRK_TOKEN` when WRK_TOKEN is set, and prints one machine-readable
-- line at the end (latencies in microseconds):
--   RESULT requests=N duration_us=N rps=N p50_us=N p90_us=N p99_us=N max_us=N
--          non2xx=N connect_err=N read_err=N write_err=N timeouts=N bytes=N
local token = os.getenv("WRK_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.headers["Accept"] = os.getenv("WRK_ACCEPT") or "application/fhir+json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d bytes=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, summary.bytes))
end
