#!/usr/bin/env bash
# Rubberduck benchmark (make bench). Measures, in one run on this machine:
#   (a) wrk straight to a fast upstream (nginx `return 200` with a ~330-byte chat completion),
#   (b) wrk through nginx proxy_pass with upstream keepalive (the reference reverse proxy),
#   (c) wrk through a Rubberduck proxy (POST /v1/chat/completions, same request and upstream),
#       the request log on (the default); (cl) the same proxy configuration with
#       "logging": {"enabled": false}, in the same interleaved rounds: c/cl is the log's cost,
#       and the rows (c) left in its database are counted against the requests it answered,
#   (m) a /metrics scrape during load: the load and proxy configuration of (c) against a separate
#       server (rd-m), while a sidecar (curl --rate 10/s, on the client CPU) scrapes its admin
#       port's GET /metrics every 100 ms for the whole measured run; in the rounds of (c) and
#       (cl), so m/c (requests/s and p99) is what scraping costs the proxy; every scrape's
#       status, time and size go to build/bench/logs/m-rN-sidecar.log,
#   (d) 2,000 concurrent ~1 s SSE streams through Rubberduck (C libuv upstream and client),
#       with the same streams direct (the floor) and through nginx (the reference) for context,
#   (h2) h2load over cleartext HTTP/2 (prior knowledge) through nginx `listen ... http2`
#       proxy_pass (the reference) and through Rubberduck, same request and upstream as (a-c).
#   (h) cache hits: the request of (c) through a Rubberduck proxy with its default configuration
#       (the response cache on) and through nginx proxy_cache caching POST by body (hn), in front
#       of the same upstream: every request after the first is a hit, which both are checked for.
#   (n) a request no route marks cacheable (the body of (c) posted to /v1/moderations) through a
#       cache-on Rubberduck, the cache-off proxy of (c) (nc) and nginx proxy_pass (nb).
# Every other Rubberduck scenario runs with "cache": {"enabled": false}, so that (c), (p), (q),
# (e), (h2), (d) and (hang) keep measuring pass-through.
# Servers (upstreams and proxies) run on CPU $BENCH_SERVER_CPU, load generators on CPU
# $BENCH_CLIENT_CPU (taskset). Everything listens on 127.0.0.1 on ports picked at run time.
# The table is printed and written to build/bench/results.md; logs go to build/bench/logs/.
# Exit status: 0 when every scenario ran (targets met or not; they are informational),
# 1 when a scenario could not run, 2 on a usage or environment error.
#
# Knobs (environment):
#   BENCH_DURATION=10      seconds per measured wrk run (a-c)
#   BENCH_WARMUP=2         seconds of warm-up wrk run before the first round of each target
#   BENCH_ROUNDS=5         interleaved rounds of (a), (b), (c); the table gives medians
#   BENCH_CONNECTIONS=64   wrk connections (a-c)
#   BENCH_STREAMS=2000     concurrent SSE streams (d)
#   BENCH_SSE_EVENTS=5     events per stream, BENCH_SSE_INTERVAL_MS=200 apart
#   BENCH_SERVER_CPU=0     CPU of the proxies under test, BENCH_CLIENT_CPU=1 for wrk and the
#                          SSE client, BENCH_UPSTREAM_CPU=$BENCH_SERVER_CPU for both upstreams
#   BENCH_H2_CLIENTS=4 BENCH_H2_STREAMS=16   h2load -c and -m (h2): 64 concurrent streams
#   BENCH_SCENARIOS="a b c cl m p q h n e h2 hang d d-direct d-nginx"   subset to run
#                          (e = added latency with one connection: a, b and c again at -c1;
#                          p = (c) with every pipeline stage configured, none triggering;
#                          q = (c) with a 10,000-entry IP allowlist; hang = BENCH_HANGS=5000
#                          concurrent requests held by the timeout stage: RSS and CPU;
#                          h and n also start what they are compared with: hn, nc and nb)
#   BENCH_RD_LOG_LEVEL=warn   Rubberduck's --log-level during the runs
#   RUBBERDUCK_BIN=build/rubberduck
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNECTIONS:-64}
ROUNDS=${BENCH_ROUNDS:-5}
STREAMS=${BENCH_STREAMS:-2000}
SSE_EVENTS=${BENCH_SSE_EVENTS:-5}
SSE_INTERVAL=${BENCH_SSE_INTERVAL_MS:-200}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
UCPU=${BENCH_UPSTREAM_CPU:-$SCPU}
H2_CLIENTS=${BENCH_H2_CLIENTS:-4}
H2_STREAMS=${BENCH_H2_STREAMS:-16}
SCENARIOS=" ${BENCH_SCENARIOS:-a b c cl m p q h n e h2 hang d d-direct d-nginx} "
RD_LOG_LEVEL=${BENCH_RD_LOG_LEVEL:-warn}
RD_BIN=${RUBBERDUCK_BIN:-$ROOT/build/rubberduck}
OUT=$ROOT/build/bench
LOGS=$OUT/logs
TOKEN=bench-admin-token-$$

die() { echo "bench: $*" >&2; exit 2; }
note() { echo "bench: $*" >&2; }

for v in DURATION WARMUP CONNS STREAMS SSE_EVENTS SSE_INTERVAL SCPU CCPU UCPU H2_CLIENTS H2_STREAMS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
[ "$DURATION" -ge 1 ] && [ "$DURATION" -le 600 ] || die "BENCH_DURATION must be 1..600"
[ "$STREAMS" -ge 1 ] && [ "$STREAMS" -le 8000 ] || die "BENCH_STREAMS must be 1..8000 (ulimit -n)"
for tool in wrk h2load nginx taskset curl stdbuf python3 gcc; do
  command -v "$tool" >/dev/null || die "'$tool' not found; run scripts/install-deps.sh bench"
done
[ -f /usr/include/uv.h ] && [ -f /usr/share/llhttp/llhttp.c ] ||
  die "libuv1-dev and node-llhttp are needed to build the SSE tools (scripts/install-deps.sh)"
ncpu=$(nproc)
[ "$SCPU" -lt "$ncpu" ] && [ "$CCPU" -lt "$ncpu" ] && [ "$UCPU" -lt "$ncpu" ] ||
  die "CPUs $SCPU/$UCPU/$CCPU do not exist here (nproc=$ncpu)"
[ "$SCPU" -ne "$CCPU" ] || note "warning: servers and clients share CPU $SCPU"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l > 0.5) }'; then
  note "warning: load average is $LOAD_START; other work on this machine will skew the numbers"
fi
mkdir -p "$OUT" "$LOGS"
rm -f "$LOGS"/*.log "$LOGS"/*.json # only this run's output
TMP=$(mktemp -d /tmp/rubberduck-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers may run as another user and need to reach their temp dirs
PIDS=()

# Stops one process we started: SIGTERM, then SIGKILL after 5 s. Never anything else.
stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    note "pid $pid did not stop on SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$pid"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port VAR: sets VAR to a port free on 127.0.0.1 now and not handed out earlier in this run.
USED_PORTS=" "
free_port() {
  local p
  for _ in 1 2 3 4 5 6 7 8; do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    case "$USED_PORTS" in *" $p "*) continue ;; esac
    USED_PORTS+="$p "
    printf -v "$1" '%s' "$p"
    return 0
  done
  die "could not find a free port"
}

# start_bg NAME CPU CMD...: runs CMD pinned to CPU, logs to $LOGS/NAME.log, sets $LAST_PID.
start_bg() {
  local name=$1 cpu=$2
  shift 2
  taskset -c "$cpu" "$@" >"$LOGS/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# wait_tcp PORT PID NAME: waits up to 10 s until 127.0.0.1:PORT accepts while PID lives.
wait_tcp() {
  local port=$1 pid=$2 name=$3
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { note "$name exited early; see $LOGS/$name.log"; return 1; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  note "$name not listening on 127.0.0.1:$port after 10 s"
  return 1
}

# Peak resident set (VmHWM) of PID in MB, or "?".
peak_rss_mb() {
  awk '/^VmHWM:/ { printf "%.1f", $2 / 1024; found = 1 } END { if (!found) print "?" }' \
    "/proc/$1/status" 2>/dev/null || echo "?"
}

# ---------------------------------------------------------------- servers

CHAT_JSON='{"id":"chatcmpl-bench0001","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how are you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":8,"total_tokens":32},"system_fingerprint":"fp_bench"}'

# nginx_conf NAME PORT SERVER_BODY [HTTP_EXTRA [LISTEN_EXTRA]]: writes $TMP/NAME/nginx.conf.
nginx_conf() {
  local name=$1 port=$2 body=$3 extra=${4:-} listen_extra=${5:-}
  local d=$TMP/$name
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 16384;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 10000; multi_accept on; }
http {
  access_log off;
  server_tokens off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  $extra
  server {
    listen 127.0.0.1:$port backlog=4096 $listen_extra;
    $body
  }
}
EOF
}

# start_nginx NAME CPU: starts nginx on $TMP/NAME/nginx.conf pinned to CPU.
start_nginx() {
  local name=$1 cpu=$2
  nginx -t -q -p "$TMP/$name" -c "$TMP/$name/nginx.conf" -e "$TMP/$name/error.log" \
    >"$LOGS/$name-test.log" 2>&1 || { cat "$LOGS/$name-test.log" >&2; return 1; }
  start_bg "$name" "$cpu" nginx -p "$TMP/$name" -c "$TMP/$name/nginx.conf" \
    -e "$TMP/$name/error.log" -g 'daemon off;'
}

# The worker of an nginx master (for its RSS); the master itself if none.
nginx_worker() {
  local w
  w=$(awk '{print $1}' "/proc/$1/task/$1/children" 2>/dev/null)
  echo "${w:-$1}"
}

build_tools() {
  local cflags=(-std=c17 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -Wformat=2
                -Wstrict-prototypes -Wmissing-prototypes -Wconversion -Werror -I/usr/share/include/llhttp)
  local f t
  mkdir -p "$OUT/obj"
  for f in llhttp api http; do # Debian ships llhttp as sources only; its warnings are not ours
    gcc -O2 -w -I/usr/share/include/llhttp -c "/usr/share/llhttp/$f.c" -o "$OUT/obj/llhttp_$f.o"
  done
  for t in sse_upstream sse_client; do
    gcc "${cflags[@]}" "bench/$t.c" "$OUT"/obj/llhttp_*.o -luv -o "$OUT/$t"
  done
}

# The configuration a proxy is created with unless a scenario says otherwise: the response
# cache off, so that the scenarios that measure pass-through keep measuring it now that the
# cache is on for a new proxy ((h) and (n) pass "{}", the defaults).
PASS_THROUGH_CONFIG='{"cache":{"enabled":false}}'

# start_rubberduck NAME UPSTREAM_URL [CONFIG_JSON]: starts a fresh server with one proxy in
# front of UPSTREAM_URL, created with CONFIG_JSON (default $PASS_THROUGH_CONFIG); sets RD_PID,
# RD_PORT (the proxy port), RD_ADMIN (the admin port) and RD_PROXY_ID.
start_rubberduck() {
  local name=$1 upstream=$2 config=${3:-$PASS_THROUGH_CONFIG} admin body resp status
  [ -x "$RD_BIN" ] || { note "Rubberduck binary not found at $RD_BIN (run make)"; return 1; }
  free_port admin
  free_port RD_PORT
  mkdir -p "$TMP/$name-data"
  start_bg "$name" "$SCPU" env RUBBERDUCK_ADMIN_TOKEN="$TOKEN" "$RD_BIN" serve \
    --listen "127.0.0.1:$admin" --data-dir "$TMP/$name-data" --workers 1 --log-level "$RD_LOG_LEVEL"
  RD_PID=$LAST_PID
  for _ in $(seq 100); do
    kill -0 "$RD_PID" 2>/dev/null || { note "$name exited early; see $LOGS/$name.log"; return 1; }
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/healthz" || true)
    [ "$status" = 200 ] && break
    sleep 0.1
  done
  [ "$status" = 200 ] || { note "$name: /healthz did not answer 200 within 10 s"; return 1; }
  body=$(printf '{"name":"bench","provider":"openai","port":%s,"upstream_url":"%s","config":%s}' \
    "$RD_PORT" "$upstream" "$config")
  resp=$(curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$admin/api/v1/proxies")
  echo "$resp" >"$LOGS/$name-create-proxy.json"
  if [ "${resp##*$'\n'}" != 201 ] || ! grep -q '"status":"running"' <<<"$resp"; then
    note "$name: creating the proxy failed: $resp"
    return 1
  fi
  RD_ADMIN=$admin
  RD_PROXY_ID=$(grep -o '"id":[0-9]*' <<<"$resp" | head -1 | cut -d: -f2)
  wait_tcp "$RD_PORT" "$RD_PID" "$name"
}

# configure_rubberduck NAME FILE: PATCHes FILE's blocks into the configuration of the proxy
# start_rubberduck made (the blocks it does not name, such as "cache", are kept).
configure_rubberduck() {
  local name=$1 file=$2 resp
  resp=$(curl -s -w '\n%{http_code}' -X PATCH -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' --data-binary "@$file" \
    "http://127.0.0.1:$RD_ADMIN/api/v1/proxies/$RD_PROXY_ID/config")
  echo "$resp" >"$LOGS/$name-config.json"
  [ "${resp##*$'\n'}" = 200 ] || { note "$name: PATCH config failed: $(head -c 300 <<<"$resp")"; return 1; }
}

# The configurations of (p) and (q): every stage of the pipeline configured so that none
# triggers (rates of 1e-9, a limit far above the load, a scenario on a header nobody sends),
# and a 10,000-entry IP allowlist that admits 127.0.0.1 (its last entry).
write_stage_configs() {
  cat >"$TMP/pipeline.json" <<'JSON'
{"seed": 7,
 "failure": {"request_overrides": true},
 "ip_filtering": {"enabled": true, "mode": "allowlist", "allowed_ips": ["10.0.0.0/8", "192.168.*.*", "2001:db8::/32", "127.0.0.0/8"]},
 "rate_limiting": {"enabled": true, "requests_per_minute": 1000000, "burst_allowance": 1000000, "algorithm": "token_bucket", "key": "ip"},
 "scenario": [{"match": {"header": {"x-bench-never": "1"}}, "respond": {"status": 500}}],
 "timeout_config": {"enabled": true, "delay_ms": 1000, "timeout_rate": 1e-9, "hang_rate": 1e-9},
 "error_injection": {"500_rate": 1e-9, "429_rate": 1e-9},
 "stream_faults": {"cut_rate": 1e-9, "cut_after_events": 3},
 "response_delay": {"enabled": true, "min_ms": 0, "max_ms": 0}}
JSON
  python3 - "$TMP/iplist.json" <<'PY'
import json, sys
ips = []
for i in range(9999):
    k = i % 3
    if k == 0:
        ips.append(f"11.{i // 256 % 256}.{i % 256}.1")
    elif k == 1:
        ips.append(f"172.{16 + i % 16}.{i // 16 % 256}.0/24")
    else:
        ips.append(f"2001:db8:{i:x}::/48")
ips.append("127.0.0.1")
json.dump({"ip_filtering": {"enabled": True, "mode": "allowlist", "allowed_ips": ips}}, open(sys.argv[1], "w"))
PY
}

# ---------------------------------------------------------------- measurements

# WRK_SIDECAR: a command (an array, empty for none) that run_wrk starts in the background, on
# its own, when the measured run starts (not the warm-up), with its stdout and stderr in
# $LOGS/NAME-sidecar.log. When wrk has ended it gets 1 s to finish by itself, then it is stopped
# by its PID. (m) sets it to its /metrics scraper.
WRK_SIDECAR=()

# run_wrk NAME PORT [PATH]: warm-up then measured wrk run of bench/chat.lua's request (posted to
# PATH, default /v1/chat/completions); sets R_RPS R_P50 R_P99 R_ERR R_REQS (ms for latency) and
# R_WREQS (requests of the warm-up run, 0 without one).
run_wrk() {
  local name=$1 port=$2 path=${3:-/v1/chat/completions} url line side_pid='' rc=0
  url="http://127.0.0.1:$port$path"
  R_WREQS=0
  if [ "$WARMUP" -gt 0 ]; then
    BENCH_WRK_PATH=$path taskset -c "$CCPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" --timeout 5s \
      -s bench/chat.lua "$url" >"$LOGS/$name-warmup.log" 2>&1 || { note "$name: wrk warm-up failed"; return 1; }
    line=$(grep '^BENCH ' "$LOGS/$name-warmup.log") && R_WREQS=$(kv "$line" requests)
  fi
  if [ ${#WRK_SIDECAR[@]} -gt 0 ]; then
    "${WRK_SIDECAR[@]}" >"$LOGS/$name-sidecar.log" 2>&1 &
    side_pid=$!
    PIDS+=("$side_pid")
  fi
  BENCH_WRK_PATH=$path taskset -c "$CCPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency \
    -s bench/chat.lua "$url" >"$LOGS/$name-wrk.log" 2>&1 || rc=$?
  if [ -n "$side_pid" ]; then
    for _ in $(seq 10); do
      kill -0 "$side_pid" 2>/dev/null || break
      sleep 0.1
    done
    stop_pid "$side_pid"; forget_pid "$side_pid"
  fi
  [ "$rc" -eq 0 ] || { note "$name: wrk failed"; return 1; }
  line=$(grep '^BENCH ' "$LOGS/$name-wrk.log") || { note "$name: no result line from wrk"; return 1; }
  R_RPS=$(kv "$line" rps)
  R_P50=$(awk -v u="$(kv "$line" p50_us)" 'BEGIN { printf "%.3f", u / 1000 }')
  R_P99=$(awk -v u="$(kv "$line" p99_us)" 'BEGIN { printf "%.3f", u / 1000 }')
  R_ERR=$(($(kv "$line" err_connect) + $(kv "$line" err_read) + $(kv "$line" err_write) +
           $(kv "$line" err_status) + $(kv "$line" err_timeout)))
  R_REQS=$(kv "$line" requests)
}

# run_h2load NAME PORT: warm-up then measured h2load run (H2_CLIENTS connections x H2_STREAMS
# streams, cleartext HTTP/2 with prior knowledge); sets R_RPS R_P50 R_P99 R_ERR R_REQS. h2load
# prints no percentiles: they come from its per-request log (microseconds to the end of response).
run_h2load() {
  local name=$1 port=$2 url log line
  url="http://127.0.0.1:$port/v1/chat/completions"
  log=$LOGS/$name-h2load-requests.tsv
  local args=(-c"$H2_CLIENTS" -m"$H2_STREAMS" -t1 -d "$TMP/chat-body.json"
              -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-bench-not-a-real-key')
  taskset -c "$CCPU" h2load "${args[@]}" -D"$DURATION" --warm-up-time="$WARMUP" --log-file="$log" "$url" \
    >"$LOGS/$name-h2load.log" 2>&1 || { note "$name: h2load failed"; return 1; }
  line=$(grep '^requests:' "$LOGS/$name-h2load.log") || { note "$name: no result from h2load"; return 1; }
  R_REQS=$(awk '{ print $8 }' <<<"$line")               # succeeded
  R_ERR=$(awk '{ print $2 - $8 }' <<<"$line")           # total - succeeded
  R_RPS=$(grep -o 'finished in [^,]*, [0-9.]* req/s' "$LOGS/$name-h2load.log" | awk '{ print $4 }')
  read -r R_P50 R_P99 < <(awk -F'\t' '$2 == 200 { print $3 }' "$log" | sort -n |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "? ?"; exit }
           i50 = int(NR * 0.50); i99 = int(NR * 0.99); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1
           printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000 }')
  [ -n "$R_RPS" ] || { note "$name: no requests/s from h2load"; return 1; }
}

# kv LINE KEY: the value of KEY=value in LINE.
kv() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }

# run_sse NAME PORT: runs the SSE client; sets S_* from its result line.
run_sse() {
  local name=$1 port=$2 line
  taskset -c "$CCPU" "$OUT/sse_client" "$port" "$STREAMS" "$((SSE_EVENTS + 1))" 60 \
    >"$LOGS/$name-client.log" 2>&1 || { note "$name: SSE client failed"; return 1; }
  line=$(grep '^SSE ' "$LOGS/$name-client.log") || { note "$name: no result line"; return 1; }
  S_DONE=$(kv "$line" completed)
  S_P50=$(kv "$line" p50_ms)
  S_P99=$(kv "$line" p99_ms)
  S_TTFB99=$(kv "$line" ttfb_p99_ms)
  S_CONN99=$(kv "$line" connect_p99_ms)
  S_FAILS="connect $(kv "$line" connect_err), status $(kv "$line" status_err), short $(kv "$line" short), io $(kv "$line" io_err), timeout $(kv "$line" timeout)"
}

declare -A RES # RES[scenario.field]
FAILED=()

wrk_scenario() { # wrk_scenario KEY PORT
  if run_wrk "$1" "$2"; then
    RES[$1.rps]=$R_RPS RES[$1.p50]=$R_P50 RES[$1.p99]=$R_P99 RES[$1.err]=$R_ERR RES[$1.n]=$R_REQS
  else
    FAILED+=("$1")
  fi
}

sse_scenario() { # sse_scenario KEY PORT RSS_PID
  if run_sse "$1" "$2"; then
    RES[$1.done]=$S_DONE RES[$1.p50]=$S_P50 RES[$1.p99]=$S_P99 RES[$1.ttfb99]=$S_TTFB99
    RES[$1.conn99]=$S_CONN99 RES[$1.fails]=$S_FAILS
    RES[$1.rss]=$( [ -n "${3:-}" ] && peak_rss_mb "$3" || echo "-")
  else
    FAILED+=("$1")
  fi
}

want() { [[ $SCENARIOS == *" $1 "* ]]; }

# median NUM...: the middle value (the lower middle for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# nginx_proxy_conf NAME PORT [LISTEN_EXTRA]: the reference reverse proxy in front of the
# upstream on $UP_PORT (LISTEN_EXTRA "http2": clients speak cleartext HTTP/2).
nginx_proxy_conf() {
  nginx_conf "$1" "$2" "location / {
      proxy_pass http://u;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }" "upstream u { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 1000000; }" "${3:-}"
}

# nginx_cache_conf NAME PORT [SERVER_EXTRA]: (b) with proxy_cache, POST cached by body: the key
# is the URI and the body ($request_body is set only when the whole body is in memory, hence a
# body buffer as large as the largest body accepted), 200s kept 10 minutes, the cache under the
# run's temp dir. X-Cache-Status shows whether nginx served a HIT. nginx opens, reads and closes
# the entry's file for every hit unless SERVER_EXTRA sets an open_file_cache, which proxy_cache
# files go through too: (ho) is (hn) with one.
nginx_cache_conf() {
  local d=$TMP/$1
  nginx_conf "$1" "$2" "client_body_buffer_size 64k;
    client_max_body_size 64k;
    ${3:-}
    location / {
      proxy_pass http://u;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_cache chat;
      proxy_cache_methods POST;
      proxy_cache_key \"\$request_uri|\$request_body\";
      proxy_cache_valid 200 10m;
      proxy_cache_lock on;
      add_header X-Cache-Status \$upstream_cache_status always;
    }" "upstream u { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 1000000; }
  proxy_cache_path $d/cache levels=1:2 keys_zone=chat:16m max_size=512m inactive=60m use_temp_path=off;"
}

# cpu_ticks PID: clock ticks of user and system time PID (all its threads) has used.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# upstream_requests: the requests the upstream nginx has received (stub_status), this one included.
upstream_requests() {
  curl -s "http://127.0.0.1:$UP_PORT/bench-upstream-status" | awk 'NR == 3 { print $3 }'
}

# probe NAME PORT PATH: sends the request of bench/chat.lua once with curl; sets P_STATUS and
# leaves the response in $LOGS/NAME.headers and $LOGS/NAME.body.
probe() {
  P_STATUS=$(curl -s -o "$LOGS/$1.body" -D "$LOGS/$1.headers" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-bench-not-a-real-key' \
    --data-binary "@$TMP/chat-body.json" "http://127.0.0.1:$2$3") || P_STATUS=000
}

# header_value FILE NAME: the value of response header NAME (any case) in a curl -D dump, or "".
header_value() {
  awk -v n="${2,,}" '{ sub(/\r$/, ""); i = index($0, ":")
    if (i > 1 && tolower(substr($0, 1, i - 1)) == n) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v; exit } }' "$1"
}

# expect_hit KEY PORT HEADER: sends the request twice; the second answer must be a 200 whose
# HEADER says HIT and whose body is the upstream's. Sets RES[KEY.cache] to HEADER's value.
expect_hit() {
  local key=$1 port=$2 hdr=$3 v
  probe "$key-probe1" "$port" /v1/chat/completions
  probe "$key-probe2" "$port" /v1/chat/completions
  v=$(header_value "$LOGS/$key-probe2.headers" "$hdr")
  RES[$key.cache]="$hdr: ${v:-none}"
  if [ "$P_STATUS" != 200 ] || [ "$v" != HIT ]; then
    note "($key) the second identical request got status $P_STATUS and $hdr '${v:-none}', not a HIT"
    return 1
  fi
  [ "$(cat "$LOGS/$key-probe2.body")" = "$CHAT_JSON" ] || { note "($key) the hit's body is not the upstream's"; return 1; }
}

# expect_no_hit KEY PORT PATH: the request posted twice to PATH; the second must be a 200 that
# no cache served. Sets RES[KEY.cache] to Rubberduck's X-Cache value.
expect_no_hit() {
  local key=$1 port=$2 path=$3 v
  probe "$key-probe1" "$port" "$path"
  probe "$key-probe2" "$port" "$path"
  v=$(header_value "$LOGS/$key-probe2.headers" X-Cache)
  RES[$key.cache]="X-Cache: ${v:-none}"
  if [ "$P_STATUS" != 200 ] || [ "$v" = HIT ]; then
    note "($key) the second request to $path got status $P_STATUS and X-Cache '${v:-none}'"
    return 1
  fi
}

note "building the SSE tools"
build_tools

# (a), (b), (c): one upstream nginx for all three, on the upstream CPU.
free_port UP_PORT
nginx_conf upstream "$UP_PORT" "default_type application/json;
    location / { return 200 '$CHAT_JSON'; }
    location = /bench-upstream-status { stub_status; }"
start_nginx upstream "$UCPU" || die "could not start the upstream nginx"
UP_PID=$LAST_PID
wait_tcp "$UP_PORT" "$UP_PID" upstream || die "upstream nginx did not come up"

# (a), (b), (c) run in ROUNDS interleaved rounds (a, b, c, a, b, c, ...) against
# proxies that stay up, and each figure is the median of its rounds: on a shared
# machine a single run moves by tens of percent, rounds that alternate expose
# every target to the same noise.
RD_PID= NX_PID=
# The request of bench/chat.lua as a file, for curl's probes and h2load.
printf '%s' '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello in five words."}],"max_tokens":16,"temperature":0}' \
  >"$TMP/chat-body.json"
# (n) posts it to a path that no provider route lists: forwarded, never looked up in a cache.
UNCACHED_PATH=/v1/moderations
if want b || want n; then
  free_port NX_PORT
  nginx_proxy_conf nginx-proxy "$NX_PORT"
  if start_nginx nginx-proxy "$SCPU" && wait_tcp "$NX_PORT" "$LAST_PID" nginx-proxy; then
    NX_PID=$LAST_PID
  else
    FAILED+=(b)
  fi
fi
if want c || want n; then
  if start_rubberduck rd-c "http://127.0.0.1:$UP_PORT"; then
    C_PID=$RD_PID C_PORT=$RD_PORT
  else
    FAILED+=(c)
    [ -n "${RD_PID:-}" ] && { stop_pid "$RD_PID"; forget_pid "$RD_PID"; }
  fi
fi
# (cl) (c) with the request log off.
if want cl; then
  RD_PID=
  if start_rubberduck rd-cl "http://127.0.0.1:$UP_PORT" '{"cache":{"enabled":false},"logging":{"enabled":false}}'; then
    CL_PID=$RD_PID CL_PORT=$RD_PORT
  else
    FAILED+=(cl)
    [ -n "${RD_PID:-}" ] && { stop_pid "$RD_PID"; forget_pid "$RD_PID"; }
  fi
fi
# (m) the configuration of (c) on a server of its own, whose /metrics a sidecar scrapes every
# 100 ms during each measured run (see WRK_SIDECAR): curl --rate 10/s through a list of
# DURATION * 10 scrapes on one keep-alive connection, pinned to the client CPU, one line per
# scrape (status, seconds, body bytes); stdbuf -oL so that a scraper stopped early loses no line.
# A curl older than 7.84 has no --rate: a shell loop then runs one curl per scrape, 100 ms apart.
# /metrics is open unless RUBBERDUCK_METRICS_TOKEN is set; then the admin token is accepted.
M_PID=
if want m; then
  RD_PID=
  if start_rubberduck rd-m "http://127.0.0.1:$UP_PORT"; then
    M_PID=$RD_PID M_PORT=$RD_PORT M_ADMIN=$RD_ADMIN
    m_auth=(); [ -n "${RUBBERDUCK_METRICS_TOKEN:-}" ] && m_auth=(-H "Authorization: Bearer $TOKEN")
    if curl --help all 2>/dev/null | grep -q -- '--rate'; then
      for _ in $(seq $((DURATION * 10))); do
        printf 'url = "http://127.0.0.1:%s/metrics"\noutput = "/dev/null"\n' "$M_ADMIN"
      done >"$TMP/m-scrape.curlrc"
      M_SIDECAR=(taskset -c "$CCPU" stdbuf -oL curl -sS --rate 10/s -K "$TMP/m-scrape.curlrc"
                 -w '%{http_code} %{time_total} %{size_download}\n' "${m_auth[@]+"${m_auth[@]}"}")
    else
      note "(m) curl $(curl --version | awk 'NR == 1 { print $2 }') has no --rate: one curl per scrape"
      # shellcheck disable=SC2016 # expanded by the inner bash
      M_SIDECAR=(taskset -c "$CCPU" bash -c 'n=$1; shift; for _ in $(seq "$n"); do
                   curl -sS -m 2 -o /dev/null "$@"; sleep 0.1; done' m-scrape "$((DURATION * 10))"
                 -w '%{http_code} %{time_total} %{size_download}\n' "${m_auth[@]+"${m_auth[@]}"}"
                 "http://127.0.0.1:$M_ADMIN/metrics")
    fi
  else
    FAILED+=(m)
    [ -n "${RD_PID:-}" ] && { stop_pid "$RD_PID"; forget_pid "$RD_PID"; }
  fi
fi
# (p) every pipeline stage configured, none triggering; (q) a 10,000-entry IP allowlist.
write_stage_configs
for key in p q; do
  want "$key" || continue
  RD_PID=
  cfg=$TMP/pipeline.json; [ "$key" = q ] && cfg=$TMP/iplist.json
  if start_rubberduck "rd-$key" "http://127.0.0.1:$UP_PORT" && configure_rubberduck "rd-$key" "$cfg"; then
    printf -v "${key^^}_PID" '%s' "$RD_PID"; printf -v "${key^^}_PORT" '%s' "$RD_PORT"
  else
    FAILED+=("$key")
    [ -n "${RD_PID:-}" ] && { stop_pid "$RD_PID"; forget_pid "$RD_PID"; }
  fi
done
# (h) Rubberduck with the default configuration (the cache on) and (hn) nginx proxy_cache, both
# checked to serve the second identical request as a HIT; (n) Rubberduck, the cache on, for the
# request that no route caches. The upstream counts what reaches it during each of their runs.
H_PID= HN_PID= HO_PID= N_PID=
if want h; then
  RD_PID=
  if start_rubberduck rd-h "http://127.0.0.1:$UP_PORT" '{}' && expect_hit h "$RD_PORT" X-Cache; then
    H_PID=$RD_PID H_PORT=$RD_PORT H_ADMIN=$RD_ADMIN H_PROXY_ID=$RD_PROXY_ID
  else
    FAILED+=(h)
    [ -n "${RD_PID:-}" ] && { stop_pid "$RD_PID"; forget_pid "$RD_PID"; }
  fi
  for key in hn ho; do
    free_port port
    extra=; [ "$key" = ho ] && extra="open_file_cache max=1000 inactive=60s;"
    nginx_cache_conf "nginx-cache-$key" "$port" "$extra"
    if start_nginx "nginx-cache-$key" "$SCPU" && wait_tcp "$port" "$LAST_PID" "nginx-cache-$key"; then
      pid=$LAST_PID
      if expect_hit "$key" "$port" X-Cache-Status; then
        printf -v "${key^^}_PID" '%s' "$pid"; printf -v "${key^^}_PORT" '%s' "$port"
      else
        FAILED+=("$key"); stop_pid "$pid"; forget_pid "$pid"
      fi
    else
      FAILED+=("$key")
    fi
  done
fi
if want n; then
  RD_PID=
  if start_rubberduck rd-n "http://127.0.0.1:$UP_PORT" '{}' && expect_no_hit n "$RD_PORT" "$UNCACHED_PATH"; then
    N_PID=$RD_PID N_PORT=$RD_PORT
  else
    FAILED+=(n)
    [ -n "${RD_PID:-}" ] && { stop_pid "$RD_PID"; forget_pid "$RD_PID"; }
  fi
  [ -n "${C_PID:-}" ] && { expect_no_hit nc "$C_PORT" "$UNCACHED_PATH" || FAILED+=(nc); }
fi
ROUND_KEYS="a b c cl m p q h hn ho n nc nb"
C_SENT=0 C_SECS=0
# want_round KEY: hn and ho come with h, nc and nb with n.
want_round() {
  case $1 in
    hn | ho) want h ;;
    nc | nb) want n ;;
    *) want "$1" ;;
  esac
}
CLK_TCK=$(getconf CLK_TCK)
declare -A ROUND_RPS ROUND_P50 ROUND_P99 ROUND_ERR ROUND_CPU ROUND_UP ROUND_SENT
for round in $(seq 1 "$ROUNDS"); do
  for key in $ROUND_KEYS; do
    want_round "$key" || continue
    path=/v1/chat/completions cpu_pid=
    case $key in
      a) port=$UP_PORT ;;
      b) [ -n "$NX_PID" ] || continue; port=$NX_PORT ;;
      c) [ -n "${C_PID:-}" ] || continue; port=$C_PORT cpu_pid=$C_PID ;;
      cl) [ -n "${CL_PID:-}" ] || continue; port=$CL_PORT cpu_pid=$CL_PID ;;
      m) [ -n "$M_PID" ] || continue; port=$M_PORT cpu_pid=$M_PID ;;
      p) [ -n "${P_PID:-}" ] || continue; port=$P_PORT ;;
      q) [ -n "${Q_PID:-}" ] || continue; port=$Q_PORT ;;
      h) [ -n "$H_PID" ] || continue; port=$H_PORT cpu_pid=$H_PID ;;
      hn) [ -n "$HN_PID" ] || continue; port=$HN_PORT cpu_pid=$(nginx_worker "$HN_PID") ;;
      ho) [ -n "$HO_PID" ] || continue; port=$HO_PORT cpu_pid=$(nginx_worker "$HO_PID") ;;
      n) [ -n "$N_PID" ] || continue; port=$N_PORT path=$UNCACHED_PATH cpu_pid=$N_PID ;;
      nc) [ -n "${C_PID:-}" ] || continue; port=$C_PORT path=$UNCACHED_PATH cpu_pid=$C_PID ;;
      nb) [ -n "$NX_PID" ] || continue; port=$NX_PORT path=$UNCACHED_PATH cpu_pid=$(nginx_worker "$NX_PID") ;;
    esac
    note "($key) round $round/$ROUNDS (127.0.0.1:$port$path)"
    # Only the first round of each target gets a warm-up run.
    saved_warmup=$WARMUP; [ "$round" -gt 1 ] && WARMUP=0
    if [ -n "$cpu_pid" ]; then t0=$(cpu_ticks "$cpu_pid"); u0=$(upstream_requests); fi
    WRK_SIDECAR=(); [ "$key" = m ] && WRK_SIDECAR=("${M_SIDECAR[@]}")
    if run_wrk "$key-r$round" "$port" "$path"; then
      ROUND_RPS[$key]+=" $R_RPS" ROUND_P50[$key]+=" $R_P50" ROUND_P99[$key]+=" $R_P99"
      ROUND_ERR[$key]=$(( ${ROUND_ERR[$key]:-0} + R_ERR ))
      if [ "$key" = c ] || [ "$key" = nc ]; then
        C_SENT=$((C_SENT + R_REQS + R_WREQS)) C_SECS=$((C_SECS + DURATION + WARMUP))
      fi
      if [ -n "$cpu_pid" ]; then
        # Server CPU per request (warm-up included on both sides), and how many of the requests
        # reached the upstream (less the status request that ends the count).
        t1=$(cpu_ticks "$cpu_pid"); u1=$(upstream_requests); sent=$((R_REQS + R_WREQS))
        ROUND_CPU[$key]+=" $(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$sent" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')"
        ROUND_UP[$key]=$(( ${ROUND_UP[$key]:-0} + u1 - u0 - 1 ))
        ROUND_SENT[$key]=$(( ${ROUND_SENT[$key]:-0} + sent ))
      fi
    else
      FAILED+=("$key-r$round")
    fi
    WRK_SIDECAR=() WARMUP=$saved_warmup
  done
done
for key in $ROUND_KEYS; do
  [ -n "${ROUND_RPS[$key]:-}" ] || continue
  # shellcheck disable=SC2086
  RES[$key.rps]=$(median ${ROUND_RPS[$key]}) RES[$key.p50]=$(median ${ROUND_P50[$key]})
  # shellcheck disable=SC2086
  RES[$key.p99]=$(median ${ROUND_P99[$key]}) RES[$key.err]=${ROUND_ERR[$key]}
  RES[$key.rounds]=$(echo ${ROUND_RPS[$key]} | tr ' ' '/')
  if [ -n "${ROUND_CPU[$key]:-}" ]; then
    # shellcheck disable=SC2086
    RES[$key.cpu]=$(median ${ROUND_CPU[$key]})
    RES[$key.upstream]="${ROUND_UP[$key]} of ${ROUND_SENT[$key]}"
  fi
done
# The ratio that matters, c/b, round by round: both ran back to back under
# the same conditions, so the median of the per-round ratios resists drift.
if [ -n "${ROUND_RPS[b]:-}" ] && [ -n "${ROUND_RPS[c]:-}" ]; then
  read -r -a rb <<<"${ROUND_RPS[b]}"
  read -r -a rc <<<"${ROUND_RPS[c]}"
  ratios=()
  for i in "${!rb[@]}"; do
    [ -n "${rc[$i]:-}" ] && ratios+=("$(awk -v c="${rc[$i]}" -v b="${rb[$i]}" 'BEGIN { printf "%.2f", c / b }')")
  done
  RES[cb.ratio]=$(median "${ratios[@]}")
  RES[cb.rounds]=$(IFS=/; echo "${ratios[*]}")
fi
# ratio_rounds KEY_NUM KEY_DEN OUT [FIGURES PREFIX]: per-round ratios of two targets and their
# median, in RES[OUT.PREFIXratio] and RES[OUT.PREFIXrounds]; of requests/s unless FIGURES names
# another of the ROUND_* arrays (ROUND_P99 p99: RES[OUT.p99ratio] and RES[OUT.p99rounds]).
ratio_rounds() {
  local -n fig=${4:-ROUND_RPS}
  local pre=${5:-}
  [ -n "${fig[$1]:-}" ] && [ -n "${fig[$2]:-}" ] || return 0
  local -a rn rd rs=()
  read -r -a rn <<<"${fig[$1]}"
  read -r -a rd <<<"${fig[$2]}"
  for i in "${!rd[@]}"; do
    [ -n "${rn[$i]:-}" ] && rs+=("$(awk -v n="${rn[$i]}" -v d="${rd[$i]}" 'BEGIN { printf "%.2f", n / d }')")
  done
  RES[$3.${pre}ratio]=$(median "${rs[@]}")
  RES[$3.${pre}rounds]=$(IFS=/; echo "${rs[*]}")
}
ratio_rounds p c pc
ratio_rounds c cl ccl
ratio_rounds m c mc
ratio_rounds m c mc ROUND_P99 p99
ratio_rounds q c qc
ratio_rounds h hn hhn
ratio_rounds h ho hho
ratio_rounds n nc nnc
ratio_rounds n nb nnb
ratio_rounds nc nb ncnb
# What Rubberduck's cache counted for (h): every request a hit but the first.
if [ -n "$H_PID" ]; then
  curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$H_ADMIN/api/v1/proxies/$H_PROXY_ID/cache" \
    >"$LOGS/h-cache-stats.json" || true
  RES[h.stats]=$(python3 -c 'import json, sys
try:
    s = json.load(open(sys.argv[1]))
    print("hits %s, misses %s" % (s.get("hits", "?"), s.get("misses", "?")))
except Exception:
    print("not available")' "$LOGS/h-cache-stats.json")
  RES[h.rss]=$(peak_rss_mb "$H_PID")
fi
for pid in "$H_PID" "$HN_PID" "$HO_PID" "$N_PID"; do
  [ -n "$pid" ] && { stop_pid "$pid"; forget_pid "$pid"; }
done
for key in p q; do
  pid_var=${key^^}_PID
  [ -n "${!pid_var:-}" ] && { stop_pid "${!pid_var}"; forget_pid "${!pid_var}"; }
done
[ -n "${CL_PID:-}" ] && { stop_pid "$CL_PID"; forget_pid "$CL_PID"; }
# (m): what the scrapes of every round got: how many, how many 200s, their times and sizes.
if [ -n "$M_PID" ]; then
  RES[m.rss]=$(peak_rss_mb "$M_PID")
  stop_pid "$M_PID"; forget_pid "$M_PID"
  RES[m.scrapes]=$(python3 - "$((ROUNDS * DURATION * 10))" "$LOGS"/m-r*-sidecar.log <<'PY'
import re, statistics, sys
planned, done, times, sizes, other = int(sys.argv[1]), 0, [], [], 0
for path in sys.argv[2:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.fullmatch(r"(\d{3}) ([0-9.]+) (\d+)", line)
        if not m:
            other += bool(line.strip())
            continue
        done += 1
        if m[1] == "200":
            times.append(float(m[2]) * 1000)
            sizes.append(int(m[3]))
out = "%d scrapes done of %d planned, %d with status 200" % (done, planned, len(times))
if times:
    out += "; scrape time median %.2f ms, slowest %.2f ms; body median %d bytes, largest %d bytes" % (
        statistics.median_low(times), max(times), statistics.median_low(sizes), max(sizes))
if other:
    out += "; %d other lines from curl (errors)" % other
print(out)
PY
)
fi
if [ -n "${C_PID:-}" ]; then
  RES[c.rss]=$(peak_rss_mb "$C_PID")
  stop_pid "$C_PID"; forget_pid "$C_PID"
  # The request log of (c), once its server has stopped (what was queued is written by then):
  # rows against the requests answered (the probes of (n) included), the rate it wrote at, and
  # the drops and store failures the writer warned about.
  if command -v sqlite3 >/dev/null && [ -f "$TMP/rd-c-data/rubberduck.db" ]; then
    want n && C_SENT=$((C_SENT + 2)) # the probes of (nc)
    rows=$(sqlite3 "$TMP/rd-c-data/rubberduck.db" 'SELECT count(*) FROM request_logs' 2>/dev/null || echo "?")
    lost=$(grep -o '([0-9]* and [0-9]* in all)' "$LOGS/rd-c.log" | tail -1 | tr -d '()' || true)
    RES[c.log]="$rows rows for $C_SENT requests answered in ${C_SECS} s of load ($(awk -v r="$rows" -v s="$C_SECS" 'BEGIN { if (s > 0 && r ~ /^[0-9]+$/) printf "%.0f", r / s; else print "?" }') rows/s written); dropped and failed: ${lost:-0 and 0 (no warning)}"
  else
    RES[c.log]="not counted (no sqlite3 CLI)"
  fi
fi
# (hang): HANGS concurrent requests that the timeout stage holds (hang_rate 1): the server's
# resident memory in all while they hang, and the CPU time it uses during a 5 s hold.
HANGS=${BENCH_HANGS:-5000}
if want hang; then
  RD_PID=
  printf '%s' '{"timeout_config": {"enabled": true, "hang_rate": 1}}' >"$TMP/hang.json"
  if start_rubberduck rd-hang "http://127.0.0.1:$UP_PORT" && configure_rubberduck rd-hang "$TMP/hang.json"; then
    RES[hang.rss0]=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$RD_PID/status")
    note "(hang) $HANGS concurrent hanging requests"
    taskset -c "$CCPU" python3 bench/hang.py "$RD_PORT" "$HANGS" 8 >"$LOGS/hang-client.log" 2>&1 &
    HC_PID=$!
    for _ in $(seq 300); do grep -q '^SENT' "$LOGS/hang-client.log" && break; sleep 0.1; done
    sleep 1 # the last requests parsed and held
    t0=$(awk '{ print $14 + $15 }' "/proc/$RD_PID/stat")
    sleep 5
    t1=$(awk '{ print $14 + $15 }' "/proc/$RD_PID/stat")
    RES[hang.rss]=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$RD_PID/status")
    RES[hang.cpu_ms]=$(( (t1 - t0) * 1000 / $(getconf CLK_TCK) ))
    wait "$HC_PID" || true
    RES[hang.client]=$(grep '^HANG' "$LOGS/hang-client.log" | cut -d' ' -f2- || echo "no result")
    RES[hang.n]=$HANGS
    stop_pid "$RD_PID"; forget_pid "$RD_PID"
  else
    FAILED+=(hang)
    [ -n "${RD_PID:-}" ] && { stop_pid "$RD_PID"; forget_pid "$RD_PID"; }
  fi
  RD_PID=
fi
[ -n "$NX_PID" ] && { stop_pid "$NX_PID"; forget_pid "$NX_PID"; }
RD_PID=
# (e): one connection, one request at a time: the latency each proxy adds, without queueing.
if want e; then
  saved_conns=$CONNS; CONNS=1
  note "(e) one connection: direct, nginx, Rubberduck"
  wrk_scenario e-a "$UP_PORT"
  free_port NX_PORT
  nginx_proxy_conf nginx-proxy-e "$NX_PORT"
  if start_nginx nginx-proxy-e "$SCPU" && wait_tcp "$NX_PORT" "$LAST_PID" nginx-proxy-e; then
    NX_PID=$LAST_PID
    wrk_scenario e-b "$NX_PORT"
    stop_pid "$NX_PID"; forget_pid "$NX_PID"
  else
    FAILED+=(e-b)
  fi
  if start_rubberduck rd-e "http://127.0.0.1:$UP_PORT"; then
    wrk_scenario e-c "$RD_PORT"
    stop_pid "$RD_PID"; forget_pid "$RD_PID"
  else
    FAILED+=(e-c)
  fi
  CONNS=$saved_conns
fi
# (h2): nginx http2 proxy_pass and Rubberduck, interleaved rounds as for (a)-(c).
if want h2; then
  H2NX_PID= H2RD_PID=
  free_port H2NX_PORT
  nginx_proxy_conf nginx-h2 "$H2NX_PORT" http2
  if start_nginx nginx-h2 "$SCPU" && wait_tcp "$H2NX_PORT" "$LAST_PID" nginx-h2; then
    H2NX_PID=$LAST_PID
  else
    FAILED+=(h2-b)
  fi
  RD_PID=
  if start_rubberduck rd-h2 "http://127.0.0.1:$UP_PORT"; then
    H2RD_PID=$RD_PID H2RD_PORT=$RD_PORT
  else
    FAILED+=(h2-c)
    [ -n "${RD_PID:-}" ] && { stop_pid "$RD_PID"; forget_pid "$RD_PID"; }
  fi
  declare -A H2_RPS H2_P50 H2_P99 H2_ERR
  for round in $(seq 1 "$ROUNDS"); do
    for key in h2-b h2-c; do
      case $key in
        h2-b) [ -n "$H2NX_PID" ] || continue; port=$H2NX_PORT ;;
        h2-c) [ -n "$H2RD_PID" ] || continue; port=$H2RD_PORT ;;
      esac
      note "($key) round $round/$ROUNDS (127.0.0.1:$port)"
      saved_warmup=$WARMUP; [ "$round" -gt 1 ] && WARMUP=0
      if run_h2load "$key-r$round" "$port"; then
        H2_RPS[$key]+=" $R_RPS" H2_P50[$key]+=" $R_P50" H2_P99[$key]+=" $R_P99"
        H2_ERR[$key]=$(( ${H2_ERR[$key]:-0} + R_ERR ))
      else
        FAILED+=("$key-r$round")
      fi
      WARMUP=$saved_warmup
    done
  done
  for key in h2-b h2-c; do
    [ -n "${H2_RPS[$key]:-}" ] || continue
    # shellcheck disable=SC2086
    RES[$key.rps]=$(median ${H2_RPS[$key]}) RES[$key.p50]=$(median ${H2_P50[$key]})
    # shellcheck disable=SC2086
    RES[$key.p99]=$(median ${H2_P99[$key]}) RES[$key.err]=${H2_ERR[$key]}
    RES[$key.rounds]=$(echo ${H2_RPS[$key]} | tr ' ' '/')
  done
  if [ -n "${H2_RPS[h2-b]:-}" ] && [ -n "${H2_RPS[h2-c]:-}" ]; then
    read -r -a rb <<<"${H2_RPS[h2-b]}"
    read -r -a rc <<<"${H2_RPS[h2-c]}"
    ratios=()
    for i in "${!rb[@]}"; do
      [ -n "${rc[$i]:-}" ] && ratios+=("$(awk -v c="${rc[$i]}" -v b="${rb[$i]}" 'BEGIN { printf "%.2f", c / b }')")
    done
    RES[h2cb.ratio]=$(median "${ratios[@]}")
    RES[h2cb.rounds]=$(IFS=/; echo "${ratios[*]}")
  fi
  [ -n "$H2RD_PID" ] && { RES[h2-c.rss]=$(peak_rss_mb "$H2RD_PID"); stop_pid "$H2RD_PID"; forget_pid "$H2RD_PID"; }
  [ -n "$H2NX_PID" ] && { stop_pid "$H2NX_PID"; forget_pid "$H2NX_PID"; }
  RD_PID=
fi
stop_pid "$UP_PID"; forget_pid "$UP_PID"

# (d): SSE upstream on the upstream CPU; each proxy in a fresh process so its peak RSS is its own.
if want d || want d-direct || want d-nginx; then
  free_port SSE_PORT
  start_bg sse-upstream "$UCPU" "$OUT/sse_upstream" "$SSE_PORT" "$SSE_EVENTS" "$SSE_INTERVAL"
  SSE_PID=$LAST_PID
  wait_tcp "$SSE_PORT" "$SSE_PID" sse-upstream || die "SSE upstream did not come up"

  if want d-direct; then
    note "(d) $STREAMS SSE streams direct to the SSE upstream"
    sse_scenario d-direct "$SSE_PORT" ""
  fi
  if want d-nginx; then
    free_port NS_PORT
    nginx_conf nginx-sse "$NS_PORT" "location / {
      proxy_pass http://s;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_buffering off;
      proxy_read_timeout 60s;
    }" "upstream s { server 127.0.0.1:$SSE_PORT; keepalive 64; }"
    if start_nginx nginx-sse "$SCPU" && wait_tcp "$NS_PORT" "$LAST_PID" nginx-sse; then
      NS_PID=$LAST_PID
      note "(d) $STREAMS SSE streams through nginx"
      sse_scenario d-nginx "$NS_PORT" "$(nginx_worker "$NS_PID")"
      stop_pid "$NS_PID"; forget_pid "$NS_PID"
    else
      FAILED+=(d-nginx)
    fi
  fi
  if want d; then
    RD_PID=
    if start_rubberduck rd-d "http://127.0.0.1:$SSE_PORT"; then
      RES[d.rss0]=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$RD_PID/status")
      note "(d) $STREAMS SSE streams through Rubberduck"
      sse_scenario d "$RD_PORT" "$RD_PID"
      # The same burst again in the same process: pooled upstream connections and a warm heap.
      note "(d) the same burst again, same Rubberduck process"
      sse_scenario d-again "$RD_PORT" "$RD_PID"
      stop_pid "$RD_PID"; forget_pid "$RD_PID"
    else
      FAILED+=(d)
      [ -n "${RD_PID:-}" ] && { stop_pid "$RD_PID"; forget_pid "$RD_PID"; }
    fi
  fi
  stop_pid "$SSE_PID"; forget_pid "$SSE_PID"
fi

# ---------------------------------------------------------------- report

. bench/report.sh
write_report >"$OUT/results.md"
echo
cat "$OUT/results.md"
echo
echo "bench: table written to build/bench/results.md; logs in build/bench/logs/"
if [ ${#FAILED[@]} -gt 0 ]; then
  note "scenarios that could not run: ${FAILED[*]} (see the logs)"
  exit 1
fi
exit 0
