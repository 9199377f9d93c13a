/* A latency histogram for the roll-ups (docs/observability.md, "Roll-ups"):
 * log-linear buckets, 8 per power of two, from 0.512 ms to 537 s (one
 * bucket below, one above), so a quantile read from it is within 12.5 % of
 * the true value before interpolation. Histograms merge by adding their
 * counts, which is what makes a p99 of a day computable from the minutes
 * without keeping a single request.
 *
 * Values are microseconds. Pure data: no locks, no allocation; the caller
 * owns the struct. A blob (rd_hist_encode) is what the database keeps. */
#ifndef RD_OBS_HIST_H
#define RD_OBS_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RD_HIST_SUB_BITS 3 /* 8 sub-buckets per power of two */
#define RD_HIST_MIN_EXP 9  /* 2^9 us = 0.512 ms: the first octave */
#define RD_HIST_MAX_EXP 29 /* 2^29 us = 537 s: the overflow bucket's floor */
#define RD_HIST_OCTAVES (RD_HIST_MAX_EXP - RD_HIST_MIN_EXP)
#define RD_HIST_BUCKETS (2 + (RD_HIST_OCTAVES << RD_HIST_SUB_BITS)) /* underflow, octaves, overflow */
/* The largest blob rd_hist_encode writes (header and every bucket). */
#define RD_HIST_BLOB_MAX (1 + 4 * 10 + RD_HIST_BUCKETS * 11)

struct rd_hist {
    uint64_t n;              /* values added */
    uint64_t min_us, max_us; /* of the values added (0 when n is 0) */
    uint64_t sum_us;         /* saturates at UINT64_MAX */
    uint64_t c[RD_HIST_BUCKETS];
};

void rd_hist_init(struct rd_hist *h);
void rd_hist_add(struct rd_hist *h, uint64_t us);
/* Adds src's counts to dst. */
void rd_hist_merge(struct rd_hist *dst, const struct rd_hist *src);
/* The q-quantile (0 <= q <= 1) in microseconds into *us, interpolated
 * linearly inside its bucket and kept within [min_us, max_us]; false when
 * h is empty or q is outside [0, 1]. */
bool rd_hist_quantile(const struct rd_hist *h, double q, double *us);

/* The bucket holding us, and the lowest value of bucket i (i < RD_HIST_BUCKETS). */
unsigned rd_hist_bucket_of(uint64_t us);
uint64_t rd_hist_bucket_floor(unsigned i);

/* Writes h as a compact blob (varints of the non-empty buckets) into
 * out[0..cap); returns its length, or 0 when cap is below what it needs
 * (RD_HIST_BLOB_MAX is always enough). */
size_t rd_hist_encode(const struct rd_hist *h, uint8_t *out, size_t cap);
/* Reads a blob of rd_hist_encode into *h. The bytes may come from a damaged
 * database: anything malformed (an unknown version, a bucket out of range,
 * counts that do not add up, trailing bytes) is RD_EPROTO with *h empty.
 * Returns 0. */
int rd_hist_decode(struct rd_hist *h, const void *blob, size_t len);

#endif
