# shellcheck shell=bash
# bench/report.sh: sourced by bench/run.sh; renders the results (array RES) as markdown.
# Missing values (a scenario that was skipped or failed to run) show as "not run".

# val KEY: RES[KEY] or "not run".
val() { echo "${RES[$1]:-not run}"; }

# judge OK_EXPR A B: PASS when awk evaluates the comparison of A and B as true, "n/a" without data.
judge() {
  local a=$2 b=$3
  [[ $a =~ ^[0-9.]+$ && $b =~ ^[0-9.]+$ ]] || { echo "n/a"; return; }
  awk -v a="$a" -v b="$b" "BEGIN { print (($1) ? \"PASS\" : \"MISS\") }"
}

secs() { [[ ${1:-} =~ ^[0-9.]+$ ]] && awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }' || echo "not run"; }

machine_line() {
  local cpu kernel
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  kernel=$(uname -r)
  echo "${cpu:-unknown CPU}, $(nproc) cores, $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $kernel"
}

versions_line() {
  local rd="not available" commit
  [ -x "$RD_BIN" ] && rd=$("$RD_BIN" version 2>/dev/null | head -1) || true
  if commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || commit+=" + uncommitted changes"
  else
    commit="none yet (working tree)"
  fi
  echo "${rd:-unknown}, $(nginx -v 2>&1 | sed 's/^nginx version: //'), wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo '?'), h2load $(dpkg-query -W -f='${Version}' nghttp2-client 2>/dev/null || echo '?'), commit $commit"
}

# added KEY: p50 of KEY minus the direct p50, in ms.
added() {
  [[ ${RES[$1.p50]:-} =~ ^[0-9.]+$ && ${RES[e-a.p50]:-} =~ ^[0-9.]+$ ]] || { echo "n/a"; return; }
  awk -v x="${RES[$1.p50]}" -v d="${RES[e-a.p50]}" 'BEGIN { printf "%.3f", x - d }'
}

write_report() {
  local ratio=${RES[cb.ratio]:-n/a}
  local p99s
  p99s=$(secs "${RES[d.p99]:-}")
  cat <<EOF
# Rubberduck benchmark (make bench)

Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(machine_line).
Versions: $(versions_line).
Load average (1/5/15 min) when the run started: $LOAD_START$(awk -v l="${LOAD_START%% *}" 'BEGIN { if (l > 0.5) print " (other work was running: the numbers are skewed)" }').
Pinning (taskset): the proxy under test on CPU $SCPU, the upstreams on CPU $UCPU, the load generators
(wrk, SSE client) on CPU $CCPU.$( [ "$UCPU" = "$SCPU" ] && echo " The upstream shares its CPU with the proxy under test, for nginx and Rubberduck alike.")

## Non-streamed chat completion: wrk -t1 -c$CONNS, median of $ROUNDS interleaved rounds of ${DURATION} s (after a ${WARMUP} s warm-up)

| scenario | requests/s | p50 ms | p99 ms | errors | requests/s of each round |
|---|---:|---:|---:|---:|---|
| (a) direct to the upstream (nginx \`return 200\`, ${#CHAT_JSON}-byte JSON) | $(val a.rps) | $(val a.p50) | $(val a.p99) | $(val a.err) | $(val a.rounds) |
| (b) nginx 1 worker, proxy_pass, upstream keepalive 64 | $(val b.rps) | $(val b.p50) | $(val b.p99) | $(val b.err) | $(val b.rounds) |
| (c) Rubberduck --workers 1 | $(val c.rps) | $(val c.p50) | $(val c.p99) | $(val c.err) | $(val c.rounds) |
| (cl) Rubberduck --workers 1, \`"logging": {"enabled": false}\` | $(val cl.rps) | $(val cl.p50) | $(val cl.p99) | $(val cl.err) | $(val cl.rounds) |
| (m) Rubberduck --workers 1 as (c), \`GET /metrics\` on its admin port every 100 ms during the run | $(val m.rps) | $(val m.p50) | $(val m.p99) | $(val m.err) | $(val m.rounds) |
| (p) Rubberduck, every pipeline stage configured, none triggering | $(val p.rps) | $(val p.p50) | $(val p.p99) | $(val p.err) | $(val p.rounds) |
| (q) Rubberduck, 10,000-entry IP allowlist | $(val q.rps) | $(val q.p50) | $(val q.p99) | $(val q.err) | $(val q.rounds) |

Request log cost, round by round: c/cl $(val ccl.ratio) ($(val ccl.rounds); target >= 0.95: $(judge 'a >= b' "${RES[ccl.ratio]:-}" 0.95)). Server CPU per request (all of the process's threads, the log writer included; warm-up included): (c) $(val c.cpu) µs, (cl) $(val cl.cpu) µs, (m) $(val m.cpu) µs. The log of (c): $(val c.log).

Scraping cost, round by round against (c) in the same round: m/c $(val mc.ratio) requests/s ($(val mc.rounds)), p99 m/c $(val mc.p99ratio) ($(val mc.p99rounds)). The scrapes of (m) (curl --rate 10/s on CPU $CCPU, during the measured runs only): $(val m.scrapes). Peak RSS of (m): $(val m.rss) MB.

Pipeline cost, round by round against (c) in the same round: p/c $(val pc.ratio) ($(val pc.rounds); target >= 0.95: $(judge 'a >= b' "${RES[pc.ratio]:-}" 0.95)), q/c $(val qc.ratio) ($(val qc.rounds)).

$HANGS concurrent hanging requests (timeout_config.hang_rate 1), held 5 s: resident memory $(val hang.rss0) MB idle, $(val hang.rss) MB while they hang (target < 64 MB: $(judge 'a < b' "${RES[hang.rss]:-}" 64)); CPU used while they hang: $(val hang.cpu_ms) ms in 5 s; client: $(val hang.client).

## Cache hits, and a request no route caches: wrk -t1 -c$CONNS, same rounds as above

| scenario | requests/s | p50 ms | p99 ms | errors | server CPU µs/req | reached the upstream | cache header | requests/s of each round |
|---|---:|---:|---:|---:|---:|---|---|---|
| (h) Rubberduck, default configuration (cache on), the request of (c) | $(val h.rps) | $(val h.p50) | $(val h.p99) | $(val h.err) | $(val h.cpu) | $(val h.upstream) | $(val h.cache) | $(val h.rounds) |
| (hn) nginx 1 worker, proxy_cache, POST cached by URI and body | $(val hn.rps) | $(val hn.p50) | $(val hn.p99) | $(val hn.err) | $(val hn.cpu) | $(val hn.upstream) | $(val hn.cache) | $(val hn.rounds) |
| (ho) the same nginx with \`open_file_cache max=1000 inactive=60s\` | $(val ho.rps) | $(val ho.p50) | $(val ho.p99) | $(val ho.err) | $(val ho.cpu) | $(val ho.upstream) | $(val ho.cache) | $(val ho.rounds) |
| (n) Rubberduck, cache on, the same body to $UNCACHED_PATH (no cacheable route) | $(val n.rps) | $(val n.p50) | $(val n.p99) | $(val n.err) | $(val n.cpu) | $(val n.upstream) | $(val n.cache) | $(val n.rounds) |
| (nc) the cache-off proxy of (c), same request as (n) | $(val nc.rps) | $(val nc.p50) | $(val nc.p99) | $(val nc.err) | $(val nc.cpu) | $(val nc.upstream) | $(val nc.cache) | $(val nc.rounds) |
| (nb) nginx proxy_pass of (b), same request as (n) | $(val nb.rps) | $(val nb.p50) | $(val nb.p99) | $(val nb.err) | $(val nb.cpu) | $(val nb.upstream) | - | $(val nb.rounds) |

Round by round: h/hn $(val hhn.ratio) ($(val hhn.rounds)); h/ho $(val hho.ratio) ($(val hho.rounds)); n/nc $(val nnc.ratio) ($(val nnc.rounds)); n/nb $(val nnb.ratio) ($(val nnb.rounds)); nc/nb $(val ncnb.ratio) ($(val ncnb.rounds)).
Rubberduck's cache statistics after (h): $(val h.stats); its peak RSS: $(val h.rss) MB.

## Added latency: one connection, one request at a time (wrk -t1 -c1)

| scenario | requests/s | p50 ms | p99 ms | added p50 ms vs direct |
|---|---:|---:|---:|---:|
| direct to the upstream | $(val e-a.rps) | $(val e-a.p50) | $(val e-a.p99) | - |
| nginx proxy_pass | $(val e-b.rps) | $(val e-b.p50) | $(val e-b.p99) | $(added e-b) |
| Rubberduck | $(val e-c.rps) | $(val e-c.p50) | $(val e-c.p99) | $(added e-c) |

## Cleartext HTTP/2 (prior knowledge): h2load -c$H2_CLIENTS -m$H2_STREAMS ($((H2_CLIENTS * H2_STREAMS)) concurrent streams), median of $ROUNDS interleaved rounds of ${DURATION} s

| scenario | requests/s | p50 ms | p99 ms | errors | requests/s of each round |
|---|---:|---:|---:|---:|---|
| (h2-b) nginx 1 worker, \`listen ... http2\`, proxy_pass, upstream keepalive 64 | $(val h2-b.rps) | $(val h2-b.p50) | $(val h2-b.p99) | $(val h2-b.err) | $(val h2-b.rounds) |
| (h2-c) Rubberduck --workers 1 | $(val h2-c.rps) | $(val h2-c.p50) | $(val h2-c.p99) | $(val h2-c.err) | $(val h2-c.rounds) |

## $STREAMS concurrent SSE streams ($SSE_EVENTS events ${SSE_INTERVAL} ms apart, about $(secs $((SSE_EVENTS * SSE_INTERVAL))) s each)

| scenario | completed | p50 s | p99 s | first event p99 ms | connect p99 ms | peak RSS MB |
|---|---:|---:|---:|---:|---:|---:|
| direct to the SSE upstream (floor) | $(val d-direct.done)/$STREAMS | $(secs "${RES[d-direct.p50]:-}") | $(secs "${RES[d-direct.p99]:-}") | $(val d-direct.ttfb99) | $(val d-direct.conn99) | - |
| nginx 1 worker, proxy_buffering off | $(val d-nginx.done)/$STREAMS | $(secs "${RES[d-nginx.p50]:-}") | $(secs "${RES[d-nginx.p99]:-}") | $(val d-nginx.ttfb99) | $(val d-nginx.conn99) | $(val d-nginx.rss) |
| (d) Rubberduck --workers 1 | $(val d.done)/$STREAMS | $(secs "${RES[d.p50]:-}") | $p99s | $(val d.ttfb99) | $(val d.conn99) | $(val d.rss) |
| the same burst again in the same Rubberduck process | $(val d-again.done)/$STREAMS | $(secs "${RES[d-again.p50]:-}") | $(secs "${RES[d-again.p99]:-}") | $(val d-again.ttfb99) | $(val d-again.conn99) | $(val d-again.rss) |

## Targets (informational)

| target | measured | result |
|---|---|---|
| (c) requests/s ≥ 0.8 × (b) | c/b = $ratio (median of the per-round ratios $(val cb.rounds)) | $(judge 'a >= 0.8 * b' "$ratio" 1) |
| (c) p99 ≤ 2 ms | $(val c.p99) ms | $(judge 'a <= b' "${RES[c.p99]:-}" 2) |
| (m) p99 ≤ 1.1 × (c) while /metrics is scraped every 100 ms | p99 m/c = $(val mc.p99ratio) (median of the per-round ratios $(val mc.p99rounds)) | $(judge 'a <= b' "${RES[mc.p99ratio]:-}" 1.1) |
| (m) requests/s ≥ 0.95 × (c) while /metrics is scraped every 100 ms | m/c = $(val mc.ratio) (median of the per-round ratios $(val mc.rounds)) | $(judge 'a >= b' "${RES[mc.ratio]:-}" 0.95) |
| (h2-c) requests/s ≥ 0.8 × (h2-b) | h2-c/h2-b = ${RES[h2cb.ratio]:-n/a} (median of the per-round ratios $(val h2cb.rounds)) | $(judge 'a >= 0.8 * b' "${RES[h2cb.ratio]:-}" 1) |
| (h) requests/s ≥ 1.5 × (hn) on hits | h/hn = $(val hhn.ratio) (median of the per-round ratios $(val hhn.rounds)) | $(judge 'a >= 1.5 * b' "${RES[hhn.ratio]:-}" 1) |
| (h) requests/s ≥ 1.5 × (ho) on hits | h/ho = $(val hho.ratio) (median of the per-round ratios $(val hho.rounds)) | $(judge 'a >= 1.5 * b' "${RES[hho.ratio]:-}" 1) |
| (h) p99 ≤ 2 ms on hits | $(val h.p99) ms | $(judge 'a <= b' "${RES[h.p99]:-}" 2) |
| (n) no loss with the cache on: requests/s ≥ 0.95 × (nc) | n/nc = $(val nnc.ratio) (median of the per-round ratios $(val nnc.rounds)) | $(judge 'a >= 0.95 * b' "${RES[nnc.ratio]:-}" 1) |
| (d) all $STREAMS streams complete | $(val d.done)/$STREAMS | $(judge 'a == b' "${RES[d.done]:-}" "$STREAMS") |
| (d) p99 stream duration ≤ 1.1 s | $p99s s | $(judge 'a <= b' "$p99s" 1.1) |
| (d) peak RSS ≤ 64 MB | $(val d.rss) MB | $(judge 'a <= b' "${RES[d.rss]:-}" 64) |

Notes:
- Latencies of (a)-(c) come from wrk's latency histogram (bench/chat.lua prints them in done()).
  Every request is the same POST /v1/chat/completions with a ${#CHAT_JSON}-byte JSON response.
- The SSE client (bench/sse_client.c) opens the streams as fast as it can, 50 connect() calls per loop turn;
  a stream's duration runs from its connect() to the end of its response, so a slow accept() or a full
  listen backlog in the proxy counts. "completed" means status 200, a cleanly terminated body and
  all $((SSE_EVENTS + 1)) events (the last is [DONE]). The direct row is the floor set by the client and upstream.
  Failures in (d): $(val d.fails). Rubberduck's RSS before the streams: $(val d.rss0) MB.
- Peak RSS is VmHWM from /proc/PID/status of the proxy process (the nginx worker for nginx), each
  scenario in a freshly started process. Rubberduck's peak RSS after (c): $(val c.rss) MB.
- (h2) sends the same request as (a)-(c) with h2load (nghttp2-client) over cleartext HTTP/2 with prior
  knowledge; both proxies reach the upstream over HTTP/1.1. h2load prints no percentiles: p50/p99 come
  from its per-request log (--log-file, time to the end of each response). Rubberduck's peak RSS after
  (h2-c): $(val h2-c.rss) MB.
- (h), (hn), (ho), (n), (nc), (nb): "server CPU" is the user and system time of the proxy process (the nginx
  worker for nginx) over its runs, warm-ups included, divided by the requests wrk completed; "reached
  the upstream" counts what the upstream nginx received during those runs (stub_status) against the
  requests sent. Before the rounds each proxy gets the request twice with curl: the second answer of
  (h), (hn) and (ho) must be a HIT with the upstream's body (the cache header column), that of (n) must not.
  Every other Rubberduck scenario runs with \`"cache": {"enabled": false}\`.
- Raw output of every tool: build/bench/logs/.
EOF
}
