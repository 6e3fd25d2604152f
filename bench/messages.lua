-- wrk script for bench/run.sh: POST /v1/messages with a ~1 KB Anthropic-style body, as an agent sends it.
-- The x-api-key value comes from BENCH_API_KEY (a client token for the proxies, the key itself when going direct).
-- done() prints one machine-readable line, so run.sh never has to parse wrk's human summary.

local api_key = os.getenv("BENCH_API_KEY") or "missing-BENCH_API_KEY"
local path = os.getenv("BENCH_PATH") or "/v1/messages"

local filler = string.rep("The quick brown fox jumps over the lazy dog. ", 18)
local body = '{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"'
  .. filler .. '"}],"metadata":{"user_id":"bench"}}'

wrk.method = "POST"
wrk.path = path
wrk.body = body
wrk.headers["x-api-key"] = api_key
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["content-type"] = "application/json"
-- BENCH_BETA: an anthropic-beta value to send (the bad-request scenario sends one the upstream refuses and echoes).
if os.getenv("BENCH_BETA") then
  wrk.headers["anthropic-beta"] = os.getenv("BENCH_BETA")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d body_bytes=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, #body))
end
