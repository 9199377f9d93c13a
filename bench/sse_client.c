/*
 * bench/sse_client.c: the load client of scenario (d) of bench/run.sh.
 *
 * Opens STREAMS connections to 127.0.0.1:PORT as fast as it can (BATCH connect() calls per loop
 * turn, so that the requests of the first connections go out while later ones are still being
 * opened), sends on each a streamed chat completion request (POST PATH, "stream":true) and reads
 * the response with llhttp. A stream counts as completed when the status is 200, the response
 * ended cleanly (chunked terminator, Content-Length or EOF as the framing says) and it carried at
 * least EXPECT SSE events (blank-line separated). A stream still open after TIMEOUT_S counts as
 * timed out.
 *
 * Each stream's duration runs from its connect() call to the end of its response: what a client
 * application sees, including a slow accept() or a full listen backlog in the server (which also
 * shows separately as connect_p99_ms, the time to the completed TCP handshake). ttfb is the time
 * from connect() to the first body byte (the first event). The same client run straight against
 * the upstream gives the floor of these numbers on the machine.
 *
 * Output: one line on stdout,
 *   SSE streams=N completed=N failed=N connect_err=N status_err=N short=N io_err=N timeout=N
 *       p50_ms=X p99_ms=X max_ms=X ttfb_p50_ms=X ttfb_p99_ms=X connect_p99_ms=X wall_ms=X
 * (durations over the completed streams). It is a benchmark tool, not part of the product.
 *
 * Usage: sse_client PORT STREAMS EXPECT [TIMEOUT_S] [PATH]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>
#include <uv.h>

enum outcome { PENDING = 0, DONE_OK, ERR_CONNECT, ERR_STATUS, ERR_SHORT, ERR_IO, ERR_TIMEOUT };

struct stream {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  llhttp_t parser;
  uint64_t t_start, t_conn, t_first, t_end; /* uv_hrtime() nanoseconds */
  int events;
  char prev; /* last body byte seen, to find "\n\n" across reads */
  enum outcome outcome;
  int closed;
};

static struct stream *g_streams;
#define BATCH 50

static int g_n, g_expect, g_open, g_next;
static struct sockaddr_in g_addr;
static llhttp_settings_t g_settings;
static char g_request[1024];
static size_t g_request_len;
static uv_timer_t g_deadline;

static void on_closed(uv_handle_t *h) {
  (void)h;
  if (--g_open == 0 && g_next == g_n && !uv_is_closing((uv_handle_t *)&g_deadline))
    uv_close((uv_handle_t *)&g_deadline, NULL);
}

static void finish(struct stream *s, enum outcome o) {
  if (s->closed)
    return;
  if (s->outcome == PENDING)
    s->outcome = o;
  s->t_end = uv_hrtime();
  s->closed = 1;
  uv_close((uv_handle_t *)&s->tcp, on_closed);
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  struct stream *s = p->data;
  if (s->t_first == 0)
    s->t_first = uv_hrtime();
  for (size_t i = 0; i < len; i++) {
    if (at[i] == '\n' && s->prev == '\n')
      s->events++;
    s->prev = at[i];
  }
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  struct stream *s = p->data;
  if (p->status_code != 200)
    finish(s, ERR_STATUS);
  else if (s->events < g_expect)
    finish(s, ERR_SHORT);
  else
    finish(s, DONE_OK);
  return HPE_PAUSED;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char slab[65536]; /* one loop thread: the data is consumed before the next read */
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(slab, sizeof slab);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  struct stream *s = st->data;
  if (nread == UV_EOF) {
    /* EOF ends a close-delimited body; anything else cut short is an error. */
    if (llhttp_finish(&s->parser) != HPE_OK || !s->closed)
      finish(s, ERR_IO);
    return;
  }
  if (nread < 0) {
    finish(s, ERR_IO);
    return;
  }
  if (nread == 0)
    return;
  llhttp_errno_t e = llhttp_execute(&s->parser, buf->base, (size_t)nread);
  if (e != HPE_OK && e != HPE_PAUSED)
    finish(s, s->parser.status_code && s->parser.status_code != 200 ? ERR_STATUS : ERR_IO);
}

static void on_written(uv_write_t *w, int status) {
  if (status < 0)
    finish(w->data, ERR_IO);
}

static void on_connect(uv_connect_t *req, int status) {
  struct stream *s = req->data;
  if (status < 0) {
    finish(s, ERR_CONNECT);
    return;
  }
  s->t_conn = uv_hrtime();
  uv_buf_t buf = uv_buf_init(g_request, (unsigned)g_request_len);
  s->write.data = s;
  if (uv_write(&s->write, (uv_stream_t *)&s->tcp, &buf, 1, on_written) < 0 ||
      uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) < 0)
    finish(s, ERR_IO);
}

/* Idle callback: opens the next BATCH streams; stops itself when all are open. */
static void open_batch(uv_idle_t *idle) {
  for (int k = 0; k < BATCH && g_next < g_n; k++) {
    struct stream *s = &g_streams[g_next++];
    llhttp_init(&s->parser, HTTP_RESPONSE, &g_settings);
    s->parser.data = s;
    s->tcp.data = s;
    s->connect.data = s;
    uv_tcp_init(idle->loop, &s->tcp);
    g_open++;
    s->t_start = uv_hrtime();
    if (uv_tcp_connect(&s->connect, &s->tcp, (const struct sockaddr *)&g_addr, on_connect) < 0)
      finish(s, ERR_CONNECT);
  }
  if (g_next == g_n) {
    uv_idle_stop(idle);
    uv_close((uv_handle_t *)idle, NULL);
  }
}

static void on_deadline(uv_timer_t *t) {
  (void)t;
  for (int i = 0; i < g_next; i++)
    finish(&g_streams[i], ERR_TIMEOUT);
  for (int i = g_next; i < g_n; i++)
    g_streams[i].outcome = ERR_TIMEOUT; /* never opened */
  g_next = g_n;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted values, in milliseconds. */
static double pct_ms(const uint64_t *v, int n, double pct) {
  if (n == 0)
    return 0.0;
  int rank = (int)((pct / 100.0) * n + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > n)
    rank = n;
  return (double)v[rank - 1] / 1e6;
}

static void report(uint64_t t0) {
  int count[ERR_TIMEOUT + 1] = {0};
  uint64_t *dur = calloc((size_t)g_n + 1, sizeof(*dur));
  uint64_t *ttfb = calloc((size_t)g_n + 1, sizeof(*ttfb));
  uint64_t *conn = calloc((size_t)g_n + 1, sizeof(*conn));
  if (dur == NULL || ttfb == NULL || conn == NULL)
    abort();
  int ok = 0;
  for (int i = 0; i < g_n; i++) {
    struct stream *s = &g_streams[i];
    count[s->outcome]++;
    if (s->outcome == DONE_OK) {
      dur[ok] = s->t_end - s->t_start;
      ttfb[ok] = s->t_first - s->t_start;
      conn[ok] = s->t_conn - s->t_start;
      ok++;
    }
  }
  qsort(dur, (size_t)ok, sizeof(*dur), cmp_u64);
  qsort(ttfb, (size_t)ok, sizeof(*ttfb), cmp_u64);
  qsort(conn, (size_t)ok, sizeof(*conn), cmp_u64);
  printf("SSE streams=%d completed=%d failed=%d connect_err=%d status_err=%d short=%d io_err=%d "
         "timeout=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f ttfb_p50_ms=%.1f ttfb_p99_ms=%.1f "
         "connect_p99_ms=%.1f wall_ms=%.0f\n",
         g_n, ok, g_n - ok, count[ERR_CONNECT], count[ERR_STATUS], count[ERR_SHORT],
         count[ERR_IO], count[ERR_TIMEOUT], pct_ms(dur, ok, 50), pct_ms(dur, ok, 99),
         ok ? (double)dur[ok - 1] / 1e6 : 0.0, pct_ms(ttfb, ok, 50), pct_ms(ttfb, ok, 99),
         pct_ms(conn, ok, 99), (double)(uv_hrtime() - t0) / 1e6);
  free(dur);
  free(ttfb);
  free(conn);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PORT STREAMS EXPECT [TIMEOUT_S] [PATH]\n", argv[0]);
    return 2;
  }
  long port = strtol(argv[1], NULL, 10);
  g_n = (int)strtol(argv[2], NULL, 10);
  g_expect = (int)strtol(argv[3], NULL, 10);
  long timeout_s = argc > 4 ? strtol(argv[4], NULL, 10) : 30;
  const char *path = argc > 5 ? argv[5] : "/v1/chat/completions";
  if (port < 1 || port > 65535 || g_n < 1 || g_n > 100000 || timeout_s < 1 ||
      strlen(path) > 200) {
    fprintf(stderr, "sse_client: bad arguments\n");
    return 2;
  }
  static const char body[] = "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":"
                             "[{\"role\":\"user\",\"content\":\"Say hello in five words.\"}]}";
  int n = snprintf(g_request, sizeof g_request,
                   "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%ld\r\nContent-Type: application/json\r\n"
                   "Accept: text/event-stream\r\nAuthorization: Bearer sk-bench-not-a-real-key\r\n"
                   "Content-Length: %zu\r\n\r\n%s",
                   path, port, sizeof body - 1, body);
  if (n < 0 || (size_t)n >= sizeof g_request)
    return 2;
  g_request_len = (size_t)n;
  signal(SIGPIPE, SIG_IGN);
  llhttp_settings_init(&g_settings);
  g_settings.on_body = on_body;
  g_settings.on_message_complete = on_message_complete;

  g_streams = calloc((size_t)g_n, sizeof(*g_streams));
  if (g_streams == NULL)
    return 1;
  uv_loop_t *loop = uv_default_loop();
  uv_ip4_addr("127.0.0.1", (int)port, &g_addr);
  uv_timer_init(loop, &g_deadline);
  uv_timer_start(&g_deadline, on_deadline, (uint64_t)timeout_s * 1000, 0);
  uint64_t t0 = uv_hrtime();
  uv_idle_t opener;
  uv_idle_init(loop, &opener);
  uv_idle_start(&opener, open_batch);
  uv_run(loop, UV_RUN_DEFAULT);
  report(t0);
  free(g_streams);
  return 0;
}
