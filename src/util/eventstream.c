#include "util/eventstream.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util/err.h"
#include "util/mem.h"

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t crc(uint32_t c, const uint8_t *p, size_t n)
{
    /* zlib's length is a uInt; frames are capped far below 4 GiB. */
    return (uint32_t)crc32(c, p, (uInt)n);
}

/* Bytes of the value of a header of type t whose value starts at p with
 * avail bytes left, or -1 if it does not fit or the type is unknown. */
static long value_len(uint8_t t, const uint8_t *p, size_t avail)
{
    switch (t) {
    case RD_ES_TRUE:
    case RD_ES_FALSE: return 0;
    case RD_ES_BYTE: return 1;
    case RD_ES_SHORT: return 2;
    case RD_ES_INT: return 4;
    case RD_ES_LONG:
    case RD_ES_TIMESTAMP: return 8;
    case RD_ES_UUID: return 16;
    case RD_ES_BYTES:
    case RD_ES_STRING:
        if (avail < 2)
            return -1;
        return 2 + (long)((unsigned)p[0] << 8 | p[1]);
    default: return -1;
    }
}

static int64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    /* Sign-extend the n-byte two's complement value. */
    if (n < 8 && n > 0 && (p[0] & 0x80))
        v |= ~(uint64_t)0 << (8 * n);
    return (int64_t)v;
}

int rd_es_header_next(const struct rd_es_msg *m, size_t *off, struct rd_es_header *h)
{
    const uint8_t *p = m->headers;
    size_t len = m->headers_len, o = *off;
    if (o >= len)
        return 0;
    size_t name_len = p[o];
    if (name_len == 0 || len - o < 1 + name_len + 1)
        return RD_EPROTO;
    h->name = (const char *)p + o + 1;
    h->name_len = name_len;
    o += 1 + name_len;
    uint8_t t = p[o++];
    long vl = value_len(t, p + o, len - o);
    if (vl < 0 || (size_t)vl > len - o)
        return RD_EPROTO;
    h->type = (enum rd_es_type)t;
    h->i = 0;
    h->p = NULL;
    h->n = 0;
    switch (t) {
    case RD_ES_TRUE: h->i = 1; break;
    case RD_ES_FALSE: h->i = 0; break;
    case RD_ES_BYTE:
    case RD_ES_SHORT:
    case RD_ES_INT:
    case RD_ES_LONG:
    case RD_ES_TIMESTAMP: h->i = get_be(p + o, (size_t)vl); break;
    case RD_ES_UUID:
        h->p = p + o;
        h->n = 16;
        break;
    default: /* BYTES, STRING */
        h->p = p + o + 2;
        h->n = (size_t)vl - 2;
        break;
    }
    *off = o + (size_t)vl;
    return 1;
}

bool rd_es_header_string(const struct rd_es_msg *m, const char *name, const char **v, size_t *n)
{
    size_t want = strlen(name), off = 0;
    struct rd_es_header h;
    while (rd_es_header_next(m, &off, &h) == 1) {
        if (h.name_len == want && memcmp(h.name, name, want) == 0) {
            if (h.type != RD_ES_STRING)
                return false;
            *v = (const char *)h.p;
            *n = h.n;
            return true;
        }
    }
    return false;
}

int rd_es_decode(const uint8_t *p, size_t n, size_t max_total, struct rd_es_msg *m)
{
    if (max_total == 0 || max_total > RD_ES_MAX_TOTAL)
        max_total = RD_ES_MAX_TOTAL;
    if (n < RD_ES_PRELUDE_LEN)
        return RD_EAGAIN;
    uint32_t total = get_u32(p), hlen = get_u32(p + 4);
    /* The prelude is checked before its lengths are trusted: a corrupt
     * length must not make the decoder wait for 16 MiB that never come. */
    if (crc(0, p, 8) != get_u32(p + 8))
        return RD_EPROTO;
    if (total < RD_ES_MIN_LEN || hlen > total - RD_ES_MIN_LEN)
        return RD_EPROTO;
    if (total > max_total || hlen > RD_ES_MAX_HEADERS_LEN)
        return RD_ETOOBIG;
    if (n < total)
        return RD_EAGAIN;
    if (crc(0, p, total - 4) != get_u32(p + total - 4))
        return RD_EPROTO;
    m->headers = p + RD_ES_PRELUDE_LEN;
    m->headers_len = hlen;
    m->payload = m->headers + hlen;
    m->payload_len = total - RD_ES_MIN_LEN - hlen;
    size_t off = 0;
    struct rd_es_header h;
    int rc;
    while ((rc = rd_es_header_next(m, &off, &h)) == 1)
        ;
    return rc < 0 ? rc : (int)total;
}

void rd_es_decoder_init(struct rd_es_decoder *d, size_t max_total)
{
    if (max_total == 0 || max_total > RD_ES_MAX_TOTAL)
        max_total = RD_ES_MAX_TOTAL;
    rd_buf_init(&d->buf, max_total);
    d->max_total = max_total;
    d->messages = 0;
    d->err = 0;
}

/* Bytes still missing from the partial message in buf (at least its
 * prelude), so a feed copies only what completes it. */
static size_t wanted(const struct rd_es_decoder *d)
{
    if (d->buf.len < RD_ES_PRELUDE_LEN)
        return RD_ES_PRELUDE_LEN - d->buf.len;
    uint32_t total = get_u32((const uint8_t *)d->buf.data);
    return total > d->buf.len ? total - d->buf.len : 0;
}

int rd_es_decoder_feed(struct rd_es_decoder *d, const void *data, size_t n, rd_es_msg_fn fn, void *ud)
{
    const uint8_t *p = data;
    struct rd_es_msg m;
    if (d->err)
        return d->err;
    /* First complete the message carried over from earlier feeds. */
    while (d->buf.len > 0 && n > 0) {
        size_t take = wanted(d);
        if (take > n)
            take = n;
        if (rd_buf_append(&d->buf, p, take) < 0)
            return d->err = RD_ETOOBIG;
        p += take;
        n -= take;
        int rc = rd_es_decode((const uint8_t *)d->buf.data, d->buf.len, d->max_total, &m);
        if (rc == RD_EAGAIN)
            continue; /* prelude complete now, or still short: take more */
        if (rc < 0)
            return d->err = rc;
        d->messages++;
        d->end = (size_t)(p - (const uint8_t *)data);
        int stop = fn(ud, &m);
        rd_buf_reset(&d->buf);
        if (stop)
            return stop;
    }
    /* Then every message complete in this piece, in place. */
    while (n > 0) {
        int rc = rd_es_decode(p, n, d->max_total, &m);
        if (rc == RD_EAGAIN) {
            if (rd_buf_append(&d->buf, p, n) < 0)
                return d->err = RD_ETOOBIG;
            return 0;
        }
        if (rc < 0)
            return d->err = rc;
        p += rc;
        n -= (size_t)rc;
        d->messages++;
        d->end = (size_t)(p - (const uint8_t *)data);
        int stop = fn(ud, &m);
        if (stop)
            return stop;
    }
    return 0;
}

bool rd_es_decoder_at_boundary(const struct rd_es_decoder *d)
{
    return d->buf.len == 0;
}

void rd_es_decoder_reset(struct rd_es_decoder *d)
{
    rd_buf_reset(&d->buf);
    d->messages = 0;
    d->err = 0;
}

void rd_es_decoder_free(struct rd_es_decoder *d)
{
    if (d)
        rd_buf_free(&d->buf);
}

/* ---- encoding ---- */

/* Encoded size of header h, or 0 if it cannot be encoded. */
static size_t header_size(const struct rd_es_header_in *h)
{
    size_t nl = h->name ? strlen(h->name) : 0;
    if (nl == 0 || nl > 255)
        return 0;
    size_t base = 1 + nl + 1;
    switch (h->type) {
    case RD_ES_TRUE:
    case RD_ES_FALSE: return base;
    case RD_ES_BYTE: return base + 1;
    case RD_ES_SHORT: return base + 2;
    case RD_ES_INT: return base + 4;
    case RD_ES_LONG:
    case RD_ES_TIMESTAMP: return base + 8;
    case RD_ES_UUID: return h->n == 16 ? base + 16 : 0;
    case RD_ES_BYTES:
    case RD_ES_STRING: return h->n <= 0xffff ? base + 2 + h->n : 0;
    default: return 0;
    }
}

static uint8_t *put_header(uint8_t *w, const struct rd_es_header_in *h)
{
    size_t nl = strlen(h->name);
    *w++ = (uint8_t)nl;
    memcpy(w, h->name, nl);
    w += nl;
    *w++ = (uint8_t)h->type;
    size_t ilen = 0;
    switch (h->type) {
    case RD_ES_BYTE: ilen = 1; break;
    case RD_ES_SHORT: ilen = 2; break;
    case RD_ES_INT: ilen = 4; break;
    case RD_ES_LONG:
    case RD_ES_TIMESTAMP: ilen = 8; break;
    case RD_ES_UUID: memcpy(w, h->p, 16); return w + 16;
    case RD_ES_BYTES:
    case RD_ES_STRING:
        *w++ = (uint8_t)(h->n >> 8);
        *w++ = (uint8_t)h->n;
        if (h->n)
            memcpy(w, h->p, h->n);
        return w + h->n;
    default: return w; /* TRUE, FALSE */
    }
    uint64_t v = (uint64_t)h->i;
    for (size_t i = 0; i < ilen; i++)
        w[i] = (uint8_t)(v >> (8 * (ilen - 1 - i)));
    return w + ilen;
}

int rd_es_encode(struct rd_buf *out, const struct rd_es_header_in *h, size_t nh, const void *payload,
                 size_t payload_len)
{
    size_t hlen = 0;
    for (size_t i = 0; i < nh; i++) {
        size_t s = header_size(&h[i]);
        if (s == 0)
            return RD_EINVAL;
        hlen += s;
        if (hlen > RD_ES_MAX_HEADERS_LEN)
            return RD_ETOOBIG;
    }
    if (payload_len > RD_ES_MAX_TOTAL - RD_ES_MIN_LEN - hlen)
        return RD_ETOOBIG;
    size_t total = RD_ES_MIN_LEN + hlen + payload_len;
    if (total > out->max - out->len)
        return RD_ETOOBIG;
    uint8_t *msg = rd_malloc(total), *w = msg;
    put_u32(w, (uint32_t)total);
    put_u32(w + 4, (uint32_t)hlen);
    put_u32(w + 8, crc(0, w, 8));
    w += RD_ES_PRELUDE_LEN;
    for (size_t i = 0; i < nh; i++)
        w = put_header(w, &h[i]);
    if (payload_len)
        memcpy(w, payload, payload_len);
    w += payload_len;
    put_u32(w, crc(0, msg, total - 4));
    int rc = rd_buf_append(out, msg, total);
    free(msg);
    return rc;
}

int rd_es_encode_event(struct rd_buf *out, bool exception, const char *type, const char *content_type,
                       const void *payload, size_t payload_len)
{
    struct rd_es_header_in h[3];
    size_t nh = 0;
    h[nh++] = (struct rd_es_header_in){
        .name = exception ? ":exception-type" : ":event-type", .type = RD_ES_STRING, .p = type, .n = strlen(type)};
    if (content_type)
        h[nh++] = (struct rd_es_header_in){
            .name = ":content-type", .type = RD_ES_STRING, .p = content_type, .n = strlen(content_type)};
    const char *mt = exception ? "exception" : "event";
    h[nh++] = (struct rd_es_header_in){.name = ":message-type", .type = RD_ES_STRING, .p = mt, .n = strlen(mt)};
    return rd_es_encode(out, h, nh, payload, payload_len);
}
