/* See prom.h. */
#include "obs/prom.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

#define MAX_HIST_LABELS 7

static const char *type_name(enum rd_prom_type t)
{
    switch (t) {
    case RD_PROM_COUNTER: return "counter";
    case RD_PROM_GAUGE: return "gauge";
    case RD_PROM_HISTOGRAM: return "histogram";
    }
    return "untyped";
}

/* HELP text escapes backslash and newline only (a quote stays as is). */
static int escape(struct rd_buf *out, const char *v, int quote)
{
    const char *run = v;
    int rc = 0;
    for (const char *p = v; *p && rc == 0; p++) {
        const char *rep = NULL;
        if (*p == '\\')
            rep = "\\\\";
        else if (*p == '\n')
            rep = "\\n";
        else if (*p == '"' && quote)
            rep = "\\\"";
        if (rep == NULL)
            continue;
        rc = rd_buf_append(out, run, (size_t)(p - run));
        if (rc == 0)
            rc = rd_buf_append(out, rep, 2);
        run = p + 1;
    }
    return rc ? rc : rd_buf_appends(out, run);
}

int rd_prom_escape_label(struct rd_buf *out, const char *v)
{
    return escape(out, v, 1);
}

int rd_prom_family(struct rd_buf *out, const char *name, enum rd_prom_type type, const char *help)
{
    int rc = rd_buf_printf(out, "# HELP %s ", name);
    if (rc == 0)
        rc = escape(out, help, 0);
    if (rc == 0)
        rc = rd_buf_printf(out, "\n# TYPE %s %s\n", name, type_name(type));
    return rc;
}

size_t rd_prom_format_double(char *out, double v)
{
    const char *word = NULL;
    if (isnan(v))
        word = "NaN";
    else if (isinf(v))
        word = v > 0 ? "+Inf" : "-Inf";
    if (word) {
        size_t n = strlen(word);
        memcpy(out, word, n + 1);
        return n;
    }
    /* Integers up to 2^53 exactly, without an exponent or a fraction. */
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        int n = snprintf(out, RD_PROM_NUM_LEN, "%.0f", v);
        return n > 0 ? (size_t)n : 0;
    }
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, RD_PROM_NUM_LEN, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return n > 0 ? (size_t)n : 0;
}

static int labels_out(struct rd_buf *out, const struct rd_prom_label *labels, size_t nlabels)
{
    int rc = 0;
    bool first = true;
    for (size_t i = 0; i < nlabels && rc == 0; i++) {
        if (labels[i].value == NULL)
            continue;
        rc = rd_buf_appends(out, first ? "{" : ",");
        first = false;
        if (rc == 0)
            rc = rd_buf_appends(out, labels[i].name);
        if (rc == 0)
            rc = rd_buf_append(out, "=\"", 2);
        if (rc == 0)
            rc = rd_prom_escape_label(out, labels[i].value);
        if (rc == 0)
            rc = rd_buf_append(out, "\"", 1);
    }
    if (rc == 0 && !first)
        rc = rd_buf_append(out, "}", 1);
    return rc;
}

static int sample_head(struct rd_buf *out, const char *name, const char *suffix,
                       const struct rd_prom_label *labels, size_t nlabels)
{
    int rc = rd_buf_appends(out, name);
    if (rc == 0 && suffix)
        rc = rd_buf_appends(out, suffix);
    if (rc == 0)
        rc = labels_out(out, labels, nlabels);
    if (rc == 0)
        rc = rd_buf_append(out, " ", 1);
    return rc;
}

int rd_prom_sample(struct rd_buf *out, const char *name, const char *suffix, const struct rd_prom_label *labels,
                   size_t nlabels, double v)
{
    char num[RD_PROM_NUM_LEN];
    size_t n = rd_prom_format_double(num, v);
    int rc = sample_head(out, name, suffix, labels, nlabels);
    if (rc == 0)
        rc = rd_buf_append(out, num, n);
    if (rc == 0)
        rc = rd_buf_append(out, "\n", 1);
    return rc;
}

int rd_prom_sample_u64(struct rd_buf *out, const char *name, const char *suffix,
                       const struct rd_prom_label *labels, size_t nlabels, uint64_t v)
{
    int rc = sample_head(out, name, suffix, labels, nlabels);
    if (rc == 0)
        rc = rd_buf_append_u64(out, v);
    if (rc == 0)
        rc = rd_buf_append(out, "\n", 1);
    return rc;
}

size_t rd_prom_bucket(const double *bounds, size_t nbounds, double v)
{
    size_t i = 0;
    while (i < nbounds && !(v <= bounds[i]))
        i++;
    return i;
}

int rd_prom_histogram(struct rd_buf *out, const char *name, const struct rd_prom_label *labels, size_t nlabels,
                      const double *bounds, const uint64_t *counts, size_t nbounds, double sum)
{
    if (nlabels > MAX_HIST_LABELS)
        return RD_EINVAL;
    struct rd_prom_label l[MAX_HIST_LABELS + 1];
    memcpy(l, labels, nlabels * sizeof *l);
    char le[RD_PROM_NUM_LEN];
    l[nlabels] = (struct rd_prom_label){"le", le};
    uint64_t cum = 0;
    int rc = 0;
    for (size_t i = 0; i <= nbounds && rc == 0; i++) {
        cum += counts[i];
        rd_prom_format_double(le, i < nbounds ? bounds[i] : INFINITY);
        rc = rd_prom_sample_u64(out, name, "_bucket", l, nlabels + 1, cum);
    }
    if (rc == 0)
        rc = rd_prom_sample(out, name, "_sum", labels, nlabels, sum);
    if (rc == 0)
        rc = rd_prom_sample_u64(out, name, "_count", labels, nlabels, cum);
    return rc;
}
