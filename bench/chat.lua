-- wrk script for the non-streamed chat completion benchmark (bench/run.sh, scenarios a-c, h, n).
-- Every scenario sends the same request: a small OpenAI-style POST with a JSON body, always the
-- same bytes (so that through a cache every request after the first is a hit). BENCH_WRK_PATH
-- changes only the path: (n) posts the same body to a route no provider marks cacheable.
-- done() prints one machine-readable line that run.sh parses; latencies are in microseconds.

wrk.method = "POST"
wrk.path = os.getenv("BENCH_WRK_PATH") or "/v1/chat/completions"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},'
  .. '{"role":"user","content":"Say hello in five words."}],"max_tokens":16,"temperature":0}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-not-a-real-key"

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
