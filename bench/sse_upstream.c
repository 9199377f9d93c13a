/*
 * bench/sse_upstream.c: a small, fast SSE upstream for scenario (d) of bench/run.sh.
 *
 * It answers every request (any method and path; the body is read and discarded) with an
 * OpenAI-style chat.completion.chunk stream: HTTP/1.1 200, text/event-stream, chunked, then
 * EVENTS "data: {...}\n\n" events INTERVAL_MS apart (the first one INTERVAL_MS after the request
 * completed), then "data: [DONE]\n\n" together with the last event and the terminating chunk.
 * With the defaults (5 events, 200 ms) a stream lasts about 1 s. Keep-alive is honoured.
 *
 * It is written in C on one libuv loop so that the upstream costs next to nothing and does not
 * distort the measurement of the proxy in front of it (a node upstream would need about as much
 * CPU as the proxy under test). It is a benchmark tool, not part of the product.
 *
 * Usage: sse_upstream PORT [EVENTS] [INTERVAL_MS]     (listens on 127.0.0.1:PORT only)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>
#include <uv.h>

#define MAX_CHUNK 1024

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  llhttp_t parser;
  llhttp_settings_t *settings;
  int handles_open;  /* tcp + timer; freed when both close callbacks ran */
  int events_sent;
  uint64_t t0_ms;    /* loop time when the request completed; event k is due at t0 + k*interval */
  int streaming;     /* a response is in progress */
  int keep_alive;    /* the request allowed keep-alive */
  int closing;
};

struct write_req {
  uv_write_t req;
  char data[];
};

static int g_events = 5;
static int g_interval_ms = 200;
static llhttp_settings_t g_settings;
static unsigned long g_streams_done;

static void on_handle_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->handles_open == 0)
    free(c);
}

static void conn_close(struct conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_write_done(uv_write_t *req, int status) {
  struct write_req *w = (struct write_req *)req;
  struct conn *c = req->data;
  free(w);
  if (status < 0)
    conn_close(c);
}

/* Writes all of data: directly when the socket accepts it, else queued on a copy. */
static void conn_write(struct conn *c, const char *data, size_t len) {
  if (c->closing)
    return;
  uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
  if (n == (int)len)
    return;
  if (n < 0 && n != UV_EAGAIN) {
    conn_close(c);
    return;
  }
  size_t off = n > 0 ? (size_t)n : 0;
  struct write_req *w = malloc(sizeof(*w) + len - off);
  if (w == NULL)
    abort();
  memcpy(w->data, data + off, len - off);
  w->req.data = c;
  buf = uv_buf_init(w->data, (unsigned)(len - off));
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write_done) < 0) {
    free(w);
    conn_close(c);
  }
}

/* Appends one chunked-encoding chunk holding payload to out; returns the new length. */
static size_t add_chunk(char *out, size_t cap, size_t len, const char *payload, int plen) {
  int n = snprintf(out + len, cap - len, "%x\r\n%.*s\r\n", (unsigned)plen, plen, payload);
  if (n < 0 || (size_t)n >= cap - len)
    abort();
  return len + (size_t)n;
}

static void on_tick(uv_timer_t *t);

/* Arms the timer for the next event at its absolute due time, so that a busy loop does not make
 * the delays add up over a stream. */
static void arm_next(struct conn *c) {
  uv_loop_t *loop = c->timer.loop;
  uv_update_time(loop);
  uint64_t due = c->t0_ms + (uint64_t)(c->events_sent + 1) * (uint64_t)g_interval_ms;
  uint64_t now = uv_now(loop);
  uv_timer_start(&c->timer, on_tick, due > now ? due - now : 0, 0);
}

static void on_tick(uv_timer_t *t) {
  static const char *words[] = {"Hello", " there,", " how", " are", " you?"};
  struct conn *c = t->data;
  char ev[512], out[MAX_CHUNK];
  size_t len = 0;
  int i = c->events_sent++;
  int last = c->events_sent >= g_events;
  int plen = snprintf(ev, sizeof ev,
                      "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\","
                      "\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,"
                      "\"delta\":{\"content\":\"%s\"},\"logprobs\":null,\"finish_reason\":%s}]}\n\n",
                      words[i % 5], last ? "\"stop\"" : "null");
  len = add_chunk(out, sizeof out, len, ev, plen);
  if (last) {
    len = add_chunk(out, sizeof out, len, "data: [DONE]\n\n", 14);
    len = add_chunk(out, sizeof out, len, "", 0);
    c->streaming = 0;
    g_streams_done++;
  }
  conn_write(c, out, len);
  if (last && !c->keep_alive)
    conn_close(c);
  else if (!last)
    arm_next(c);
}

static int on_message_complete(llhttp_t *p) {
  static const char head[] = "HTTP/1.1 200 OK\r\n"
                             "Content-Type: text/event-stream\r\n"
                             "Cache-Control: no-cache\r\n"
                             "Transfer-Encoding: chunked\r\n"
                             "\r\n";
  struct conn *c = p->data;
  c->keep_alive = llhttp_should_keep_alive(p);
  c->streaming = 1;
  c->events_sent = 0;
  uv_update_time(c->timer.loop);
  c->t0_ms = uv_now(c->timer.loop);
  conn_write(c, head, sizeof head - 1);
  arm_next(c);
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char slab[65536]; /* one loop thread: the data is consumed before the next read */
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(slab, sizeof slab);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0)
    return;
  if (llhttp_execute(&c->parser, buf->base, (size_t)nread) != HPE_OK)
    conn_close(c);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0)
    return;
  struct conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    abort();
  uv_tcp_init(server->loop, &c->tcp);
  uv_timer_init(server->loop, &c->timer);
  c->handles_open = 2;
  c->tcp.data = c;
  c->timer.data = c;
  llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
  c->parser.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  fprintf(stderr, "sse_upstream: %lu streams completed\n", g_streams_done);
  uv_stop(h->loop);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [EVENTS] [INTERVAL_MS]\n", argv[0]);
    return 2;
  }
  long port = strtol(argv[1], NULL, 10);
  if (argc > 2)
    g_events = (int)strtol(argv[2], NULL, 10);
  if (argc > 3)
    g_interval_ms = (int)strtol(argv[3], NULL, 10);
  if (port < 1 || port > 65535 || g_events < 1 || g_events > 1000 || g_interval_ms < 1) {
    fprintf(stderr, "sse_upstream: bad arguments\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  llhttp_settings_init(&g_settings);
  g_settings.on_message_complete = on_message_complete;

  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", (int)port, &addr);
  uv_tcp_init(loop, &server);
  int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&server, 4096, on_connection);
  if (rc < 0) {
    fprintf(stderr, "sse_upstream: listen on 127.0.0.1:%ld: %s\n", port, uv_strerror(rc));
    return 1;
  }
  uv_signal_t sigterm, sigint;
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  fprintf(stderr, "sse_upstream: listening on 127.0.0.1:%ld, %d events %d ms apart\n", port,
          g_events, g_interval_ms);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
