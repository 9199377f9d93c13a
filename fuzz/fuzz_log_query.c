/* libFuzzer target for src/obs/filter.c's rd_log_query_parse: the query
 * string of GET /api/v1/logs, /logs/export and /logs/stream, straight from
 * the client.
 *
 * The input is the query string (a NUL ends it, as in a request's query),
 * handed over in an exact-size block so AddressSanitizer flags a read past
 * its end. The target traps when:
 *  - the parser returns anything but 0 or -1, or fails without naming a
 *    field and giving a message;
 *  - a parsed query breaks its contract: limit 1..1000, status 0 or
 *    100..599, status_class 0..5, cache -1..3, since before until, the
 *    strings NUL-terminated in their arrays and the filter's pointers NULL
 *    or into them, a cursor's seq >= 1;
 *  - a parsed query, written back as a query string (every value
 *    percent-encoded), parses to another filter;
 *  - parsing with an allowed extra parameter refuses what parsing without
 *    it accepted. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "obs/filter.h"

static void check_str(const char *p, const char *arr, size_t len)
{
    CHECK(memchr(arr, '\0', len) != NULL);
    CHECK(p == NULL || p == arr);
}

static void check_query(const struct rd_log_query *q)
{
    const struct rd_log_filter *f = &q->f;
    CHECK(q->limit >= 1 && q->limit <= 1000);
    CHECK(f->status == 0 || (f->status >= 100 && f->status <= 599));
    CHECK(f->status_class >= 0 && f->status_class <= 5);
    CHECK(f->cache >= -1 && f->cache <= 3);
    CHECK(f->proxy_id >= 0);
    CHECK(!(f->since_ms && f->until_ms) || f->since_ms < f->until_ms);
    CHECK(f->before_seq == 0 || f->before_ts >= 0);
    check_str(f->model, q->model, sizeof q->model);
    check_str(f->failure_type, q->failure_type, sizeof q->failure_type);
    check_str(f->q, q->q, sizeof q->q);
    CHECK(f->q == NULL || f->q[0] != '\0');
}

static void put_encoded(char *out, size_t *o, size_t cap, const char *name, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    int n = snprintf(out + *o, cap - *o, "%s%s=", *o ? "&" : "", name);
    CHECK(n > 0 && (size_t)n < cap - *o);
    *o += (size_t)n;
    for (; *v; v++) {
        CHECK(*o + 4 < cap);
        unsigned char c = (unsigned char)*v;
        out[(*o)++] = '%';
        out[(*o)++] = hex[c >> 4];
        out[(*o)++] = hex[c & 15];
    }
    out[*o] = '\0';
}

static void put_num(char *out, size_t *o, size_t cap, const char *name, int64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    put_encoded(out, o, cap, name, b);
}

/* q written back as a query string, parsed again: the same filter. */
static void check_round_trip(const struct rd_log_query *q)
{
    static char s[4096];
    size_t o = 0;
    s[0] = '\0';
    const struct rd_log_filter *f = &q->f;
    static const char *const caches[] = {"", "bypass", "miss", "hit"};
    if (f->proxy_id)
        put_num(s, &o, sizeof s, "proxy_id", f->proxy_id);
    if (f->status)
        put_num(s, &o, sizeof s, "status", f->status);
    if (f->status_class) {
        char c[4] = {(char)('0' + f->status_class), 'x', 'x', '\0'};
        put_encoded(s, &o, sizeof s, "status_class", c);
    }
    if (f->cache > 0)
        put_encoded(s, &o, sizeof s, "cache", caches[f->cache]);
    if (f->failure_type)
        put_encoded(s, &o, sizeof s, "failure_type", f->failure_type);
    if (f->model)
        put_encoded(s, &o, sizeof s, "model", f->model);
    if (f->since_ms)
        put_num(s, &o, sizeof s, "since", f->since_ms);
    if (f->until_ms)
        put_num(s, &o, sizeof s, "until", f->until_ms);
    if (f->q)
        put_encoded(s, &o, sizeof s, "q", f->q);
    put_num(s, &o, sizeof s, "limit", (int64_t)q->limit);
    if (f->before_seq) {
        char c[48];
        snprintf(c, sizeof c, "%" PRId64 ".%" PRIu64, f->before_ts, f->before_seq);
        put_encoded(s, &o, sizeof s, "cursor", c);
    }
    put_encoded(s, &o, sizeof s, "count", q->count ? "true" : "false");
    struct rd_log_query b;
    const char *bad = NULL;
    char err[256];
    int rc = rd_log_query_parse(s, NULL, &b, &bad, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "round trip <%s> refused: %s\n", s, err);
    CHECK(rc == 0);
    const struct rd_log_filter *g = &b.f;
    CHECK(g->proxy_id == f->proxy_id && g->status == f->status && g->status_class == f->status_class);
    CHECK(g->cache == f->cache && g->since_ms == f->since_ms && g->until_ms == f->until_ms);
    CHECK(g->before_ts == f->before_ts && g->before_seq == f->before_seq);
    CHECK(b.limit == q->limit && b.count == q->count);
    CHECK((g->model == NULL) == (f->model == NULL) && (!f->model || strcmp(g->model, f->model) == 0));
    CHECK((g->failure_type == NULL) == (f->failure_type == NULL) &&
          (!f->failure_type || strcmp(g->failure_type, f->failure_type) == 0));
    CHECK((g->q == NULL) == (f->q == NULL) && (!f->q || strcmp(g->q, f->q) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1u << 14)
        return 0;
    size_t n = strnlen((const char *)data, size);
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    memcpy(s, data, n);
    s[n] = '\0';
    static struct rd_log_query q;
    const char *bad = NULL;
    char err[256];
    memset(err, '#', sizeof err);
    int rc = rd_log_query_parse(s, NULL, &q, &bad, err, sizeof err);
    CHECK(rc == 0 || rc == -1);
    if (rc < 0) {
        CHECK(bad != NULL && bad[0] != '\0');
        CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
    } else {
        check_query(&q);
        check_round_trip(&q);
        static const char *const extra[] = {"format", NULL};
        static struct rd_log_query q2;
        CHECK(rd_log_query_parse(s, extra, &q2, &bad, err, sizeof err) == 0);
    }
    free(s);
    return 0;
}
