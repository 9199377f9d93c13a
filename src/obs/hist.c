/* See hist.h. */
#include "obs/hist.h"

#include <string.h>

#include "util/err.h"

#define SUB (1u << RD_HIST_SUB_BITS)
#define OVERFLOW_BUCKET (RD_HIST_BUCKETS - 1)
#define BLOB_VERSION 1

void rd_hist_init(struct rd_hist *h)
{
    memset(h, 0, sizeof *h);
}

unsigned rd_hist_bucket_of(uint64_t us)
{
    if (us < ((uint64_t)1 << RD_HIST_MIN_EXP))
        return 0;
    unsigned e = 63u - (unsigned)__builtin_clzll(us);
    if (e >= RD_HIST_MAX_EXP)
        return OVERFLOW_BUCKET;
    /* The bits right below the leading one pick the sub-bucket. */
    unsigned sub = (unsigned)(us >> (e - RD_HIST_SUB_BITS)) & (SUB - 1);
    return 1 + (e - RD_HIST_MIN_EXP) * SUB + sub;
}

uint64_t rd_hist_bucket_floor(unsigned i)
{
    if (i == 0)
        return 0;
    if (i >= OVERFLOW_BUCKET)
        return (uint64_t)1 << RD_HIST_MAX_EXP;
    unsigned e = RD_HIST_MIN_EXP + (i - 1) / SUB, sub = (i - 1) % SUB;
    return (uint64_t)(SUB + sub) << (e - RD_HIST_SUB_BITS);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

void rd_hist_add(struct rd_hist *h, uint64_t us)
{
    if (h->n == 0 || us < h->min_us)
        h->min_us = us;
    if (us > h->max_us)
        h->max_us = us;
    h->n++;
    h->sum_us = sat_add(h->sum_us, us);
    h->c[rd_hist_bucket_of(us)]++;
}

void rd_hist_merge(struct rd_hist *dst, const struct rd_hist *src)
{
    if (src->n == 0)
        return;
    if (dst->n == 0 || src->min_us < dst->min_us)
        dst->min_us = src->min_us;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
    dst->n += src->n;
    dst->sum_us = sat_add(dst->sum_us, src->sum_us);
    for (unsigned i = 0; i < RD_HIST_BUCKETS; i++)
        dst->c[i] += src->c[i];
}

bool rd_hist_quantile(const struct rd_hist *h, double q, double *us)
{
    if (h->n == 0 || !(q >= 0.0 && q <= 1.0))
        return false;
    /* The value at rank pos (1-based, fractional) sits in the bucket where
     * the running count reaches it, a fraction of the way through it. */
    double pos = q * (double)h->n;
    if (pos < 1.0)
        pos = 1.0;
    double cum = 0;
    for (unsigned i = 0; i < RD_HIST_BUCKETS; i++) {
        if (h->c[i] == 0)
            continue;
        double c = (double)h->c[i];
        if (cum + c >= pos || i == OVERFLOW_BUCKET) {
            double lo = (double)rd_hist_bucket_floor(i);
            double hi = i == OVERFLOW_BUCKET ? (double)h->max_us : (double)rd_hist_bucket_floor(i + 1);
            /* Never below the smallest value seen nor above the largest:
             * with few values that is most of the precision there is. */
            if (lo < (double)h->min_us)
                lo = (double)h->min_us;
            if (hi > (double)h->max_us)
                hi = (double)h->max_us;
            if (hi < lo)
                hi = lo;
            double frac = (pos - cum) / c;
            if (frac > 1.0)
                frac = 1.0;
            *us = lo + frac * (hi - lo);
            return true;
        }
        cum += c;
    }
    *us = (double)h->max_us; /* not reached: the counts add up to n */
    return true;
}

/* ---- blob: version, n, min, max, sum, then (gap, count) per non-empty bucket ---- */

static size_t put_varint(uint8_t *out, size_t cap, size_t off, uint64_t v)
{
    do {
        if (off >= cap)
            return 0;
        uint8_t b = (uint8_t)(v & 0x7f);
        v >>= 7;
        out[off++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return off;
}

size_t rd_hist_encode(const struct rd_hist *h, uint8_t *out, size_t cap)
{
    if (cap < 1)
        return 0;
    size_t off = 0;
    out[off++] = BLOB_VERSION;
    const uint64_t head[] = {h->n, h->min_us, h->max_us, h->sum_us};
    for (size_t k = 0; k < 4; k++)
        if ((off = put_varint(out, cap, off, head[k])) == 0)
            return 0;
    unsigned next = 0; /* the first bucket the next gap counts from */
    for (unsigned i = 0; i < RD_HIST_BUCKETS; i++) {
        if (h->c[i] == 0)
            continue;
        if ((off = put_varint(out, cap, off, i - next)) == 0 || (off = put_varint(out, cap, off, h->c[i])) == 0)
            return 0;
        next = i + 1;
    }
    return off;
}

/* Reads one varint of at most 10 bytes; false past the end or on an
 * encoding longer than 64 bits. */
static bool get_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*off >= len)
            return false;
        uint8_t b = p[(*off)++];
        if (shift == 63 && (b & 0x7e))
            return false;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

int rd_hist_decode(struct rd_hist *h, const void *blob, size_t len)
{
    const uint8_t *p = blob;
    rd_hist_init(h);
    size_t off = 0;
    uint64_t head[4];
    if (p == NULL || len < 1 || p[off++] != BLOB_VERSION)
        goto bad;
    for (size_t k = 0; k < 4; k++)
        if (!get_varint(p, len, &off, &head[k]))
            goto bad;
    uint64_t next = 0, total = 0;
    while (off < len) {
        uint64_t gap, c;
        if (!get_varint(p, len, &off, &gap) || !get_varint(p, len, &off, &c) || c == 0 ||
            gap >= RD_HIST_BUCKETS - next || __builtin_add_overflow(total, c, &total))
            goto bad;
        next += gap;
        h->c[next] = c;
        next++;
    }
    if (total != head[0] || (total > 0 && head[1] > head[2]))
        goto bad;
    h->n = head[0];
    h->min_us = head[1];
    h->max_us = head[2];
    h->sum_us = head[3];
    return 0;
bad:
    rd_hist_init(h);
    return RD_EPROTO;
}
