/* A request-log record as the store keeps it (record.h rd_log_rec_pack):
 * one flat JSON object, one short key per column of the request_logs view
 * ("id" for request_id, "ms" for latency_ms: the table below and
 * 006_request_log_short_keys.sql), a key left out when its value is the
 * default (an empty string, a zero count, an unknown measure), so that the
 * writer's work per record is a few short appends and no printf but for a
 * cost. Reading back accepts any flat object with those keys, or the
 * columns' own names (005's blocks), in any order (also what SQLite's
 * json_object() writes for the view's insert trigger) and skips keys it
 * does not know; the blob is input like any other, so a malformed one is
 * an error, never a crash or a read past its end. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/record.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"
#include "util/json_scan.h"

/* ---- the fields ---- */

enum ftype { F_STR, F_I64, F_INT, F_MS, F_CACHE, F_BOOL, F_COST, F_SEQ };
/* When a field is left out of a record: never, at 0, or when unknown (< 0). */
enum omit { O_NEVER, O_ZERO, O_UNKNOWN };

struct field {
    const char *key; /* stored under (short: a record's own fields are mostly keys) */
    size_t key_len;
    const char *col; /* the request_logs view's column, also read as a key */
    size_t col_len;
    enum ftype type;
    enum omit omit;
    size_t off, cap; /* cap: strings only */
};

#define FS(k, c, m)                                                                                                    \
    {                                                                                                                  \
        k, sizeof k - 1, c, sizeof c - 1, F_STR, O_ZERO, offsetof(struct rd_log_rec, m),                               \
            sizeof(((struct rd_log_rec *)0)->m)                                                                        \
    }
#define FI(k, c, m, t, o)                                                                                              \
    {                                                                                                                  \
        k, sizeof k - 1, c, sizeof c - 1, t, o, offsetof(struct rd_log_rec, m), 0                                      \
    }

/* In the view's column order (006_request_log_short_keys.sql maps the
 * same keys). */
static const struct field fields[] = {
    FI("seq", "seq", seq, F_SEQ, O_NEVER),
    FS("id", "request_id", id),
    FI("ts", "timestamp", ts_ms, F_I64, O_NEVER),
    FI("proxy", "proxy_id", proxy_id, F_I64, O_NEVER),
    FS("node", "node_id", node_id),
    FS("ip", "client_ip", client_ip),
    FS("method", "method", method),
    FS("path", "path", path),
    FS("provider", "provider", provider),
    FS("model", "model", model),
    FI("status", "status_code", status, F_INT, O_ZERO),
    FI("ustatus", "upstream_status", upstream_status, F_INT, O_ZERO),
    FI("ms", "latency_ms", latency_ms, F_MS, O_NEVER),
    FI("ums", "upstream_latency_ms", upstream_latency_ms, F_MS, O_UNKNOWN),
    FI("fb", "ttfb_ms", ttfb_ms, F_MS, O_UNKNOWN),
    FI("in", "request_bytes", request_bytes, F_I64, O_ZERO),
    FI("out", "response_bytes", response_bytes, F_I64, O_ZERO),
    FI("cache", "cache", cache, F_CACHE, O_ZERO),
    FS("fail", "failure_type", failure_type),
    FI("delay", "response_delay_ms", response_delay_ms, F_I64, O_ZERO),
    FI("stream", "stream", stream, F_BOOL, O_ZERO),
    FI("ti", "input_tokens", input_tokens, F_I64, O_UNKNOWN),
    FI("to", "output_tokens", output_tokens, F_I64, O_UNKNOWN),
    FI("tc", "cached_tokens", cached_tokens, F_I64, O_UNKNOWN),
    FI("tr", "reasoning_tokens", reasoning_tokens, F_I64, O_UNKNOWN),
    FI("usd", "cost_usd", cost_usd, F_COST, O_UNKNOWN),
    FS("ph", "prompt_hash", prompt_hash),
    FS("urid", "upstream_request_id", upstream_request_id),
    FS("tid", "trace_id", trace_id),
};

#undef FS
#undef FI

/* ---- writing ---- */

_Static_assert(sizeof fields / sizeof fields[0] <= 64, "one bit per field");
_Static_assert(sizeof(((struct rd_log_rec *)0)->method) >= 16, "str_same reads 8 bytes, then cap - 8");

static int put_key(struct rd_buf *b, const struct field *f, bool *first)
{
    char tmp[40];
    size_t i = 0;
    if (!*first)
        tmp[i++] = ',';
    *first = false;
    tmp[i++] = '"';
    memcpy(tmp + i, f->key, f->key_len);
    i += f->key_len;
    tmp[i++] = '"';
    tmp[i++] = ':';
    return rd_buf_append(b, tmp, i);
}

static int put_i64(struct rd_buf *b, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    if (v < 0) {
        tmp[n++] = '-';
        n += rd_fmt_u64(tmp + n, (uint64_t)0 - (uint64_t)v);
    } else {
        n = rd_fmt_u64(tmp, (uint64_t)v);
    }
    return rd_buf_append(b, tmp, n);
}

/* Milliseconds with microsecond resolution, "12.345", by hand. */
static int put_ms(struct rd_buf *b, double v)
{
    if (!(v >= 0) || !isfinite(v))
        v = 0;
    if (v > 1e12)
        v = 1e12;
    uint64_t us = (uint64_t)llround(v * 1000.0);
    char tmp[32];
    size_t n = rd_fmt_u64(tmp, us / 1000);
    unsigned frac = (unsigned)(us % 1000);
    tmp[n++] = '.';
    tmp[n++] = (char)('0' + frac / 100);
    tmp[n++] = (char)('0' + frac / 10 % 10);
    tmp[n++] = (char)('0' + frac % 10);
    return rd_buf_append(b, tmp, n);
}

/* The field's value as an integer (for the omit test), or its string. */
static int64_t int_of(const struct rd_log_rec *r, const struct field *f)
{
    const char *src = (const char *)r + f->off;
    int64_t i64;
    double d;
    switch (f->type) {
    case F_SEQ:
        return (int64_t)r->seq;
    case F_I64:
        memcpy(&i64, src, sizeof i64);
        return i64;
    case F_INT: {
        int v;
        memcpy(&v, src, sizeof v);
        return v;
    }
    case F_CACHE:
        return (int64_t)r->cache;
    case F_BOOL:
        return r->stream ? 1 : 0;
    case F_MS:
        memcpy(&d, src, sizeof d);
        return d >= 0 && isfinite(d) ? 0 : -1; /* only its sign is asked */
    case F_COST:
        return r->has_cost && isfinite(r->cost_usd) ? 0 : -1;
    case F_STR:
        break;
    }
    return 0;
}

static bool omitted(const struct rd_log_rec *r, const struct field *f)
{
    if (f->type == F_STR)
        return ((const char *)r + f->off)[0] == '\0';
    switch (f->omit) {
    case O_NEVER:
        return false;
    case O_ZERO:
        return int_of(r, f) == 0;
    case O_UNKNOWN:
        return int_of(r, f) < 0;
    }
    return false;
}

static int put_value(struct rd_buf *b, const struct rd_log_rec *r, const struct field *f)
{
    const char *src = (const char *)r + f->off;
    double d;
    switch (f->type) {
    case F_STR:
        return rd_json_append_str(b, src, strnlen(src, f->cap));
    case F_MS:
        memcpy(&d, src, sizeof d);
        return put_ms(b, d);
    case F_COST: {
        char tmp[40];
        int n = snprintf(tmp, sizeof tmp, "%.17g", r->cost_usd); /* round-trips */
        return rd_buf_append(b, tmp, (size_t)n);
    }
    default:
        return put_i64(b, int_of(r, f));
    }
}

/* The two fields a block can imply (their places in fields[] above). */
enum { FIELD_ID = 1, FIELD_TS = 2 };
#define BIT_ID (UINT64_C(1) << FIELD_ID)
#define BIT_TS (UINT64_C(1) << FIELD_TS)

/* `"key":` after a comma unless it is the first member. */
static int put_raw_key(struct rd_buf *b, const char *key, bool *first)
{
    struct field f = {.key = key, .key_len = strlen(key)};
    return put_key(b, &f, first);
}

static int pack_fields(struct rd_buf *b, const struct rd_log_rec *r, uint64_t which, bool *first)
{
    int rc = 0;
    for (uint64_t m = which & ((UINT64_C(1) << (sizeof fields / sizeof fields[0])) - 1); m; m &= m - 1) {
        const struct field *f = &fields[__builtin_ctzll(m)];
        if (!omitted(r, f))
            rc |= put_key(b, f, first) | put_value(b, r, f);
    }
    return rc;
}

int rd_log_rec_pack(struct rd_buf *b, const struct rd_log_rec *r, uint64_t which)
{
    bool first = true;
    int rc = rd_buf_append(b, "{", 1);
    rc |= pack_fields(b, r, which, &first);
    rc |= rd_buf_append(b, "}", 1);
    return rc < 0 ? -1 : 0;
}

/* ---- a block's short forms ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The 8 hex digits of p as a count, NUL after them; false otherwise. */
static bool count_of(const char *p, uint32_t *count)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return false;
        v = v << 4 | (uint32_t)h;
    }
    if (p[8] != '\0')
        return false;
    *count = v;
    return true;
}

/* "req_" and 8 hex digits: a worker's prefix (p may be shorter: the scan
 * stops at its NUL). */
static bool prefix_ok(const char *p)
{
    if (strncmp(p, "req_", 4) != 0)
        return false;
    for (int i = 4; i < 12; i++)
        if (hexval(p[i]) < 0)
            return false;
    return true;
}

bool rd_log_id_split(const char *id, uint32_t *count)
{
    return prefix_ok(id) && count_of(id + 12, count);
}

void rd_log_block_ctx_of(struct rd_log_block_ctx *c, struct rd_log_rec *const *recs, size_t n, uint64_t shared)
{
    memset(c, 0, sizeof *c);
    c->ts_min = INT64_MAX;
    c->ts_max = INT64_MIN;
    c->common_ts = (shared & BIT_TS) != 0;
    uint32_t k = 0;
    c->has_prefix = n > 0 && rd_log_id_split(recs[0]->id, &k);
    if (c->has_prefix) {
        memcpy(c->prefix, recs[0]->id, 12);
        c->id0 = c->idmin = c->idmax = k;
    }
    for (size_t i = 0; i < n; i++) {
        const struct rd_log_rec *r = recs[i];
        if (r->ts_ms < c->ts_min)
            c->ts_min = r->ts_ms;
        if (r->ts_ms > c->ts_max)
            c->ts_max = r->ts_ms;
        if (!c->has_prefix)
            continue;
        if (memcmp(r->id, c->prefix, 12) != 0 || !count_of(r->id + 12, &k)) {
            c->has_prefix = false;
            continue;
        }
        c->idmin = k < c->idmin ? k : c->idmin;
        c->idmax = k > c->idmax ? k : c->idmax;
    }
}

int rd_log_block_pack(struct rd_buf *b, const struct rd_log_rec *r0, uint64_t which, const struct rd_log_block_ctx *c)
{
    bool first = true;
    int rc = rd_buf_append(b, "{", 1);
    if (r0)
        rc |= pack_fields(b, r0, which & ~(BIT_ID | RD_LOG_PACK_SEQ), &first);
    if (c->has_prefix) {
        rc |= put_raw_key(b, "idp", &first) | rd_buf_append(b, "\"", 1) | rd_buf_append(b, c->prefix, 12) |
              rd_buf_append(b, "\"", 1);
        rc |= put_raw_key(b, "id0", &first) | put_i64(b, c->id0);
        rc |= put_raw_key(b, "idmin", &first) | put_i64(b, c->idmin);
        rc |= put_raw_key(b, "idmax", &first) | put_i64(b, c->idmax);
    }
    rc |= rd_buf_append(b, "}", 1);
    return rc < 0 ? -1 : 0;
}

int rd_log_rec_pack_in(struct rd_buf *b, const struct rd_log_rec *r, uint64_t which, const struct rd_log_block_ctx *c,
                       size_t index)
{
    bool first = true;
    int rc = rd_buf_append(b, "{", 1);
    uint64_t rest = which;
    uint32_t k = 0;
    /* c's prefix is canonical: the same 12 bytes and a count make the id so */
    if ((which & BIT_ID) && c->has_prefix && memcmp(r->id, c->prefix, 12) == 0 && count_of(r->id + 12, &k)) {
        rest &= ~BIT_ID;
        if (k != (uint32_t)(c->id0 + (uint32_t)index))
            rc |= put_raw_key(b, "idl", &first) | put_i64(b, k);
    }
    /* A timestamp the block's ts_min does not reach (not the writer's
     * case) stays as it is. */
    if ((which & BIT_TS) && r->ts_ms >= c->ts_min && (c->ts_min >= 0 || r->ts_ms <= INT64_MAX + c->ts_min)) {
        rest &= ~BIT_TS;
        if (r->ts_ms != c->ts_min)
            rc |= put_raw_key(b, "dt", &first) | put_i64(b, r->ts_ms - c->ts_min);
    }
    rc |= pack_fields(b, r, rest, &first);
    rc |= rd_buf_append(b, "}", 1);
    return rc < 0 ? -1 : 0;
}

/* strncmp(x, y, cap) == 0 for a record's strings (arrays of at least 16
 * bytes; the bytes past a NUL are unspecified): the first 8 bytes as one
 * word, most strings end or differ there; glibc's strncmp for the rest. */
static bool str_same(const char *x, const char *y, size_t cap)
{
    uint64_t u, v;
    memcpy(&u, x, 8);
    memcpy(&v, y, 8);
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    uint64_t nul = (u - ones) & ~u & highs; /* the lowest set bit marks u's first NUL exactly */
    uint64_t diff = u ^ v;
    if (diff == 0)
        return nul != 0 || strncmp(x + 8, y + 8, cap - 8) == 0;
    /* little-endian: the lowest bits are the first bytes */
    return nul != 0 && __builtin_ctzll(nul) < __builtin_ctzll(diff);
}

static bool same(const struct rd_log_rec *a, const struct rd_log_rec *b, const struct field *f)
{
    const char *x = (const char *)a + f->off, *y = (const char *)b + f->off;
    switch (f->type) {
    case F_STR: return str_same(x, y, f->cap);
    case F_INT:
    case F_CACHE:
        return memcmp(x, y, sizeof(int)) == 0;
    case F_BOOL:
        return a->stream == b->stream;
    case F_COST:
        return a->has_cost == b->has_cost && (!a->has_cost || memcmp(x, y, sizeof(double)) == 0);
    default:
        return memcmp(x, y, sizeof(int64_t)) == 0;
    }
}

uint64_t rd_log_rec_shared(struct rd_log_rec *const *recs, size_t n)
{
    uint64_t mask = 0;
    if (n < 2)
        return 0;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].type != F_SEQ && fields[i].off != offsetof(struct rd_log_rec, id))
            mask |= UINT64_C(1) << i;
    /* Record by record (each is read once, wherever it lies), the fields
     * still alike only. */
    for (size_t j = 1; j < n && mask; j++)
        for (uint64_t m = mask; m; m &= m - 1) {
            unsigned i = (unsigned)__builtin_ctzll(m);
            if (!same(recs[0], recs[j], &fields[i]))
                mask &= ~(UINT64_C(1) << i);
        }
    return mask;
}

const char *rd_log_rec_key(const char *column)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strcmp(fields[i].col, column) == 0)
            return fields[i].key;
    return NULL;
}

/* ---- reading ---- */

static bool is_null(struct rd_json_span v)
{
    return v.n == 4 && memcmp(v.p, "null", 4) == 0;
}

/* A JSON number (integer or not) as a double; -1 if it is none. */
static int span_double(struct rd_json_span v, double *out)
{
    char tmp[40];
    if (v.n == 0 || v.n >= sizeof tmp)
        return -1;
    memcpy(tmp, v.p, v.n);
    tmp[v.n] = '\0';
    char *end;
    double d = strtod(tmp, &end);
    if (end != tmp + v.n || !isfinite(d) || !(tmp[0] == '-' || (tmp[0] >= '0' && tmp[0] <= '9')))
        return -1;
    *out = d;
    return 0;
}

static int read_field(struct rd_log_rec *r, const struct field *f, struct rd_json_span v)
{
    char *dst = (char *)r + f->off;
    if (is_null(v))
        return 0; /* the default the record was reset to */
    int64_t i;
    double d;
    switch (f->type) {
    case F_STR: {
        static const char *const here[] = {NULL};
        return rd_json_scan_string(v.p, v.n, here, dst, f->cap) < 0 ? -1 : 0;
    }
    case F_SEQ:
        if (rd_json_span_int64(v, &i) < 0 || i < 0)
            return -1;
        r->seq = (uint64_t)i;
        return 0;
    case F_I64:
        if (rd_json_span_int64(v, &i) < 0)
            return -1;
        if (f->omit == O_UNKNOWN && i < 0)
            i = -1; /* any negative count is "unknown", as it is packed */
        memcpy(dst, &i, sizeof i);
        return 0;
    case F_INT:
        if (rd_json_span_int64(v, &i) < 0 || i < INT32_MIN || i > INT32_MAX)
            return -1;
        *(int *)(void *)dst = (int)i;
        return 0;
    case F_MS:
        if (span_double(v, &d) < 0)
            return -1;
        memcpy(dst, &d, sizeof d);
        return 0;
    case F_CACHE:
        if (rd_json_span_int64(v, &i) < 0)
            return -1;
        r->cache = i >= RD_LOG_CACHE_NONE && i <= RD_LOG_CACHE_HIT ? (enum rd_log_cache)i : RD_LOG_CACHE_NONE;
        return 0;
    case F_BOOL:
        if (v.n == 4 && memcmp(v.p, "true", 4) == 0) {
            r->stream = true;
            return 0;
        }
        if (v.n == 5 && memcmp(v.p, "false", 5) == 0)
            return 0;
        if (rd_json_span_int64(v, &i) < 0)
            return -1;
        r->stream = i != 0;
        return 0;
    case F_COST:
        if (span_double(v, &d) < 0)
            return -1;
        r->cost_usd = d;
        r->has_cost = true;
        return 0;
    }
    return -1;
}

/* fields[i]'s short key or its column's name. */
static bool is_field(const char *key, size_t key_len, size_t i)
{
    const struct field *f = &fields[i];
    return (f->key_len == key_len && memcmp(f->key, key, key_len) == 0) ||
           (f->col_len == key_len && memcmp(f->col, key, key_len) == 0);
}

static int member(void *ud, const char *key, size_t key_len, bool escaped, struct rd_json_span v)
{
    if (escaped)
        return 0; /* none of ours is */
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (is_field(key, key_len, i))
            return read_field(ud, &fields[i], v) < 0 ? RD_EPROTO : 0;
    return 0; /* a key of a later version: skipped */
}

void rd_log_rec_reset(struct rd_log_rec *r)
{
    memset(r, 0, sizeof *r);
    r->upstream_latency_ms = -1;
    r->ttfb_ms = -1;
    r->input_tokens = r->output_tokens = r->cached_tokens = r->reasoning_tokens = -1;
}

int rd_log_rec_apply(const char *p, size_t n, struct rd_log_rec *r)
{
    if (n == 0 || p[0] != '{')
        return RD_EPROTO;
    int rc = rd_json_scan_members(p, n, member, r);
    return rc == 0 ? 0 : RD_EPROTO;
}

/* ---- reading a block's short forms ---- */

static bool key_is(const char *key, size_t key_len, const char *want)
{
    return strlen(want) == key_len && memcmp(key, want, key_len) == 0;
}

static int span_u32(struct rd_json_span v, uint32_t *out)
{
    int64_t i;
    if (rd_json_span_int64(v, &i) < 0 || i < 0 || i > (int64_t)UINT32_MAX)
        return -1;
    *out = (uint32_t)i;
    return 0;
}

struct ctx_read {
    struct rd_log_block_ctx *c;
    struct rd_log_rec *base; /* NULL: the context only */
};

static int ctx_member(void *ud, const char *key, size_t key_len, bool escaped, struct rd_json_span v)
{
    struct ctx_read *cr = ud;
    struct rd_log_block_ctx *c = cr->c;
    if (escaped)
        return 0;
    if (key_is(key, key_len, "idp")) {
        static const char *const here[] = {NULL};
        char p[16];
        if (rd_json_scan_string(v.p, v.n, here, p, sizeof p) != 12 || !prefix_ok(p))
            return RD_EPROTO;
        memcpy(c->prefix, p, 13);
        c->has_prefix = true;
        return 0;
    }
    if (key_is(key, key_len, "id0"))
        return span_u32(v, &c->id0) < 0 ? RD_EPROTO : 0;
    if (key_is(key, key_len, "idmin"))
        return span_u32(v, &c->idmin) < 0 ? RD_EPROTO : 0;
    if (key_is(key, key_len, "idmax"))
        return span_u32(v, &c->idmax) < 0 ? RD_EPROTO : 0;
    if (is_field(key, key_len, FIELD_TS))
        c->common_ts = !is_null(v);
    return cr->base ? member(cr->base, key, key_len, escaped, v) : 0;
}

int rd_log_block_common_read(const char *common, size_t n, int64_t ts_min, struct rd_log_block_ctx *c,
                             struct rd_log_rec *base)
{
    memset(c, 0, sizeof *c);
    c->ts_min = ts_min;
    if (common == NULL || n == 0)
        return 0;
    struct ctx_read cr = {c, base};
    if (common[0] != '{' || rd_json_scan_members(common, n, ctx_member, &cr) != 0) {
        memset(c, 0, sizeof *c);
        c->ts_min = ts_min;
        return RD_EPROTO;
    }
    return 0;
}

int rd_log_block_ctx_read(const char *common, size_t n, int64_t ts_min, struct rd_log_block_ctx *c)
{
    return rd_log_block_common_read(common, n, ts_min, c, NULL);
}

struct apply_in {
    struct rd_log_rec *r;
    bool saw_id, saw_ts, has_idl;
    int64_t dt;
    uint32_t idl;
};

static int member_in(void *ud, const char *key, size_t key_len, bool escaped, struct rd_json_span v)
{
    struct apply_in *a = ud;
    if (!escaped) {
        if (key_is(key, key_len, "dt"))
            return rd_json_span_int64(v, &a->dt) < 0 || a->dt < 0 ? RD_EPROTO : 0;
        if (key_is(key, key_len, "idl")) {
            a->has_idl = true;
            return span_u32(v, &a->idl) < 0 ? RD_EPROTO : 0;
        }
        if (is_field(key, key_len, FIELD_ID))
            a->saw_id = true;
        else if (is_field(key, key_len, FIELD_TS))
            a->saw_ts = true;
    }
    return member(a->r, key, key_len, escaped, v);
}

int rd_log_rec_apply_in(const char *p, size_t n, struct rd_log_rec *r, const struct rd_log_block_ctx *c, size_t index)
{
    if (n == 0 || p[0] != '{')
        return RD_EPROTO;
    struct apply_in a = {.r = r};
    if (rd_json_scan_members(p, n, member_in, &a) != 0)
        return RD_EPROTO;
    if (!a.saw_ts && !c->common_ts) {
        if (a.dt > INT64_MAX - (c->ts_min > 0 ? c->ts_min : 0))
            return RD_EPROTO;
        r->ts_ms = c->ts_min + a.dt;
    }
    if (!a.saw_id && c->has_prefix) {
        static const char hex[] = "0123456789abcdef"; /* by hand: every record of an export passes here */
        uint32_t k = a.has_idl ? a.idl : (uint32_t)(c->id0 + (uint32_t)index);
        memcpy(r->id, c->prefix, 12);
        for (int i = 0; i < 8; i++)
            r->id[12 + i] = hex[(k >> (28 - 4 * i)) & 15];
        r->id[20] = '\0';
    }
    return 0;
}

bool rd_log_block_may_hold(const struct rd_log_block_ctx *c, const char *id)
{
    uint32_t k;
    if (!c->has_prefix || !rd_log_id_split(id, &k))
        return true;
    return memcmp(id, c->prefix, 12) == 0 && k >= c->idmin && k <= c->idmax;
}

int rd_log_rec_unpack(const char *p, size_t n, struct rd_log_rec *r)
{
    rd_log_rec_reset(r);
    return rd_log_rec_apply(p, n, r);
}
