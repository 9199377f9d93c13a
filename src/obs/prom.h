/* Writers of the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), for
 * GET /metrics (obs/metrics.c). Pure functions over a buffer: no state, any
 * thread.
 *
 *   # HELP <name> <help, with \ and newline escaped>
 *   # TYPE <name> counter|gauge|histogram
 *   <name>[<suffix>]{<label>="<value, with \ " and newline escaped>",...} <value>
 *
 * Every append returns 0 or RD_ETOOBIG when out's maximum is reached (the
 * buffer then holds a truncated exposition: the caller discards it). */
#ifndef RD_OBS_PROM_H
#define RD_OBS_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define RD_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum rd_prom_type { RD_PROM_COUNTER, RD_PROM_GAUGE, RD_PROM_HISTOGRAM };

struct rd_prom_label {
    const char *name;  /* a valid label name (static, not checked) */
    const char *value; /* any bytes up to the NUL; escaped on output */
};

/* The "# HELP" and "# TYPE" lines of one metric family. name is a valid
 * metric name (not checked); help is escaped. */
int rd_prom_family(struct rd_buf *out, const char *name, enum rd_prom_type type, const char *help);

/* Appends v with backslash, double quote and newline escaped (as \\, \"
 * and \n), the escaping of a label value. */
int rd_prom_escape_label(struct rd_buf *out, const char *v);

/* Writes v into out (at least RD_PROM_NUM_LEN bytes, NUL-terminated) the
 * way Prometheus reads it back exactly: "+Inf", "-Inf", "NaN", integers
 * without a fraction, otherwise the shortest of %.15g..%.17g that parses
 * back to v. Returns the length. */
#define RD_PROM_NUM_LEN 32
size_t rd_prom_format_double(char *out, double v);

/* One sample line: name, suffix (NULL or "" for none: "_bucket", "_sum",
 * ...), the labels in order (nlabels may be 0; a label whose value is NULL
 * is skipped), then the value. */
int rd_prom_sample(struct rd_buf *out, const char *name, const char *suffix, const struct rd_prom_label *labels,
                   size_t nlabels, double v);
/* The same with an integer value (counters are integers; doubles would
 * lose them past 2^53). */
int rd_prom_sample_u64(struct rd_buf *out, const char *name, const char *suffix,
                       const struct rd_prom_label *labels, size_t nlabels, uint64_t v);

/* The bucket a value falls in: the first i with v <= bounds[i] (le is
 * inclusive), nbounds for a value above every bound (the +Inf bucket).
 * bounds ascending. */
size_t rd_prom_bucket(const double *bounds, size_t nbounds, double v);

/* One histogram's samples: a cumulative <name>_bucket{...,le="b"} line per
 * bound plus le="+Inf", then <name>_sum and <name>_count. counts holds
 * nbounds + 1 per-bucket (not cumulative) counts, the last one the +Inf
 * bucket's; labels go before le. nlabels at most 7. */
int rd_prom_histogram(struct rd_buf *out, const char *name, const struct rd_prom_label *labels, size_t nlabels,
                      const double *bounds, const uint64_t *counts, size_t nbounds, double sum);

#endif
