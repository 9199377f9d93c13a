/* CSV rendering of request-log records (record.h): the export's format=csv
 * (docs/observability.md, "Export and purge").
 *
 * RFC 4180: one header line, then one line per record, CRLF line ends; a
 * field holding a comma, a double quote, CR or LF is enclosed in double
 * quotes, its quotes doubled. A value that is unknown (null in JSON) is an
 * empty field; a known number is always written, 0 included, so an empty
 * field and "0" stay distinct.
 *
 * Formula injection: spreadsheet applications run a cell that starts with
 * '=', '+', '-' or '@' as a formula (and tab or CR before one of them can
 * hide it), and the text columns carry what clients sent (path, model) or
 * what an upstream sent (its request id). A text value starting with one of
 * those six characters is written with a single quote in front ("'=cmd"),
 * which the applications show as text (OWASP's advice). Reading the file
 * back, a field that starts with a single quote followed by one of them had
 * the quote added. Numbers we format never start with one: unknown ones are
 * empty and the others are not negative. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "obs/record.h"

static const char *const columns[] = {
    "id",
    "timestamp",
    "proxy_id",
    "node_id",
    "client_ip",
    "method",
    "path",
    "provider",
    "model",
    "status",
    "upstream_status",
    "latency_ms",
    "upstream_latency_ms",
    "ttfb_ms",
    "request_bytes",
    "response_bytes",
    "cache",
    "failure_type",
    "response_delay_ms",
    "stream",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "prompt_hash",
    "upstream_request_id",
    "trace_id",
};

static bool is_formula_start(char c)
{
    return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

/* One text field, quoted and defused as the header comment says; first
 * says whether a comma goes before it. */
static int text(struct rd_buf *b, const char *v, bool first)
{
    int rc = first ? 0 : rd_buf_append(b, ",", 1);
    size_t n = v ? strlen(v) : 0;
    if (n == 0)
        return rc;
    bool quote = strpbrk(v, ",\"\r\n") != NULL;
    if (quote)
        rc |= rd_buf_append(b, "\"", 1);
    if (is_formula_start(v[0]))
        rc |= rd_buf_append(b, "'", 1);
    for (const char *p = v; *p;) {
        const char *q = strchr(p, '"');
        size_t len = q ? (size_t)(q - p) + 1 : strlen(p);
        rc |= rd_buf_append(b, p, len);
        if (q)
            rc |= rd_buf_append(b, "\"", 1); /* the quote doubled */
        p += len;
    }
    if (quote)
        rc |= rd_buf_append(b, "\"", 1);
    return rc;
}

static int i64_or_empty(struct rd_buf *b, int64_t v)
{
    return rd_buf_append(b, ",", 1) | (v < 0 ? 0 : rd_buf_printf(b, "%" PRId64, v));
}

static int ms_or_empty(struct rd_buf *b, double v)
{
    return rd_buf_append(b, ",", 1) | (v < 0 || !isfinite(v) ? 0 : rd_buf_printf(b, "%.3f", v));
}

int rd_log_csv_header(struct rd_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < sizeof columns / sizeof columns[0]; i++)
        rc |= text(out, columns[i], i == 0);
    rc |= rd_buf_append(out, "\r\n", 2);
    return rc < 0 ? -1 : 0;
}

int rd_log_rec_csv(struct rd_buf *b, const struct rd_log_rec *r)
{
    char ts[32];
    rd_log_iso8601(r->ts_ms, ts, sizeof ts);
    int rc = text(b, r->id, true) | text(b, ts, false) | rd_buf_printf(b, ",%" PRId64, r->proxy_id) |
             text(b, r->node_id, false) | text(b, r->client_ip, false) | text(b, r->method, false) |
             text(b, r->path, false) | text(b, r->provider, false) | text(b, r->model, false) |
             i64_or_empty(b, r->status > 0 ? r->status : -1) |
             i64_or_empty(b, r->upstream_status > 0 ? r->upstream_status : -1) | ms_or_empty(b, r->latency_ms) |
             ms_or_empty(b, r->upstream_latency_ms) | ms_or_empty(b, r->ttfb_ms) | i64_or_empty(b, r->request_bytes) |
             i64_or_empty(b, r->response_bytes) | text(b, rd_log_cache_name(r->cache), false) |
             text(b, r->failure_type, false) | i64_or_empty(b, r->response_delay_ms) |
             text(b, r->stream ? "true" : "false", false) | i64_or_empty(b, r->input_tokens) |
             i64_or_empty(b, r->output_tokens) | i64_or_empty(b, r->cached_tokens) |
             i64_or_empty(b, r->reasoning_tokens) | rd_buf_append(b, ",", 1) |
             (r->has_cost && isfinite(r->cost_usd) ? rd_buf_printf(b, "%.10g", r->cost_usd) : 0) |
             text(b, r->prompt_hash, false) | text(b, r->upstream_request_id, false) | text(b, r->trace_id, false) |
             rd_buf_append(b, "\r\n", 2);
    return rc < 0 ? -1 : 0;
}
