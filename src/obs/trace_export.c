/* The tracer's configuration from the OTEL_* environment and its exporter
 * thread: batches of spans POSTed as OTLP/HTTP JSON with libcurl's easy
 * API. A failed batch is dropped (counted and warned about), not retried:
 * the queue stays bounded and the proxy never waits for a collector. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/headers.h"
#include "obs/otlp.h"
#include "obs/trace_int.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#define STOP_BUDGET_MS 5000 /* rd_tracer_stop exports for at most this long */
#define BODY_MAX (64u << 20)

/* ---- configuration ---- */

static int fail(char *errbuf, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
    return RD_EINVAL;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

/* The signal-specific variable (OTEL_EXPORTER_OTLP_TRACES_X) before the
 * general one (OTEL_EXPORTER_OTLP_X). */
static const char *otlp_env(const char *suffix, const char **which)
{
    static _Thread_local char name[64];
    snprintf(name, sizeof name, "OTEL_EXPORTER_OTLP_TRACES_%s", suffix);
    const char *v = env(name);
    if (v == NULL) {
        snprintf(name, sizeof name, "OTEL_EXPORTER_OTLP_%s", suffix);
        v = env(name);
    }
    *which = name;
    return v;
}

static int env_ms(const char *name, const char *v, uint64_t dflt, uint64_t max, uint64_t *out, char *errbuf,
                  size_t errlen)
{
    *out = dflt;
    if (v == NULL)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || v[0] == '-' || n == 0 || n > max)
        return fail(errbuf, errlen, "%s: expected a whole number from 1 to %" PRIu64 ", not '%s'", name, max, v);
    *out = n;
    return 0;
}

static int endpoint_of(struct rd_tracer *t, char *errbuf, size_t errlen, bool *configured)
{
    const char *traces = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), *base = env("OTEL_EXPORTER_OTLP_ENDPOINT");
    const char *name = traces ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT";
    const char *v = traces ? traces : base;
    *configured = v != NULL;
    if (v == NULL)
        return 0;
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
        return fail(errbuf, errlen, "%s: only http:// and https:// endpoints are supported", name);
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return fail(errbuf, errlen, "%s: the URL has a space or a control character", name);
    size_t n = strlen(v);
    /* The general endpoint is a base: the traces path goes after it. */
    if (!traces)
        while (n > 0 && v[n - 1] == '/')
            n--;
    /* Log lines show the URL without its user information (a password). */
    const char *at = memchr(v, '@', n), *auth = strstr(v, "://") + 3, *slash = strchr(auth, '/');
    if (at && (slash == NULL || at < slash))
        snprintf(t->shown, sizeof t->shown, "%.*s***%.*s", (int)(auth - v), v, (int)(n - (size_t)(at - v)), at);
    else
        snprintf(t->shown, sizeof t->shown, "%.*s", (int)n, v);
    int w = snprintf(t->endpoint, sizeof t->endpoint, "%.*s%s", (int)n, v, traces ? "" : "/v1/traces");
    if (w < 0 || (size_t)w >= sizeof t->endpoint)
        return fail(errbuf, errlen, "%s: longer than %d bytes", name, RD_TRACE_MAX_ENDPOINT - 1);
    return 0;
}

struct hdr_ctx {
    struct rd_tracer *t;
    const char *bad;
};

static bool add_header(const char *k, const char *v, void *ud)
{
    struct hdr_ctx *c = ud;
    if (!rd_http_is_token(k, strlen(k))) {
        c->bad = "a header name is not a token";
        return false;
    }
    for (const char *p = v; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
            c->bad = "a header value has a control character";
            return false;
        }
    char line[RD_TRACE_PAIR_MAX + 4];
    snprintf(line, sizeof line, "%s: %s", k, v);
    struct curl_slist *l = curl_slist_append(c->t->headers, line);
    if (l == NULL)
        abort(); /* out of memory, as rd_malloc does */
    c->t->headers = l;
    return true;
}

static bool add_resource(const char *k, const char *v, void *ud)
{
    struct rd_tracer *t = ud;
    for (size_t i = 0; i < t->nres; i++) /* a later value replaces an earlier one */
        if (strcmp(t->res_keys[i], k) == 0) {
            free(t->res_values[i]);
            t->res_values[i] = rd_strdup(v);
            return true;
        }
    if (t->nres == RD_TRACE_MAX_PAIRS)
        return false;
    t->res_keys[t->nres] = rd_strdup(k);
    t->res_values[t->nres++] = rd_strdup(v);
    return true;
}

static int read_config(struct rd_tracer *t, char *errbuf, size_t errlen)
{
    const char *which, *v = otlp_env("PROTOCOL", &which);
    if (v && strcmp(v, "http/json") != 0)
        return fail(errbuf, errlen,
                    "%s=%s: rubberduck exports traces as OTLP/HTTP JSON only; set it to http/json (or unset it)",
                    which, v);
    struct hdr_ctx hc = {.t = t};
    t->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (t->headers == NULL)
        abort(); /* out of memory, as rd_malloc does */
    v = otlp_env("HEADERS", &which);
    if (v && rd_otel_parse_pairs(v, add_header, &hc) != 0)
        return fail(errbuf, errlen, "%s: expected key=value pairs separated by commas (%s)", which,
                    hc.bad ? hc.bad : "percent-encoded values");
    v = otlp_env("TIMEOUT", &which);
    int rc = env_ms(which, v, 10000, 600000, &t->timeout_ms, errbuf, errlen);
    if (rc == 0)
        rc = env_ms("OTEL_BSP_SCHEDULE_DELAY", env("OTEL_BSP_SCHEDULE_DELAY"), 5000, 600000, &t->delay_ms, errbuf,
                    errlen);
    uint64_t q = 0, b = 0;
    if (rc == 0)
        rc = env_ms("OTEL_BSP_MAX_QUEUE_SIZE", env("OTEL_BSP_MAX_QUEUE_SIZE"), 2048, 1u << 20, &q, errbuf, errlen);
    if (rc == 0)
        rc = env_ms("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), 512, 1u << 20, &b,
                    errbuf, errlen);
    if (rc != 0)
        return rc;
    t->max_queue = (size_t)q;
    t->max_batch = (size_t)(b < 3 ? 3 : b > q ? q : b); /* a request's three spans always fit a batch */
    if (t->max_queue < 3)
        t->max_queue = 3;
    if (rd_sampler_parse(env("OTEL_TRACES_SAMPLER"), env("OTEL_TRACES_SAMPLER_ARG"), &t->sampler) != 0)
        return fail(errbuf, errlen,
                    "OTEL_TRACES_SAMPLER / _ARG: expected always_on, always_off, traceidratio or parentbased_* "
                    "(with a ratio from 0 to 1)");
    (void)add_resource("service.name", "rubberduck", t);
    v = env("OTEL_RESOURCE_ATTRIBUTES");
    if (v && rd_otel_parse_pairs(v, add_resource, t) != 0)
        return fail(errbuf, errlen, "OTEL_RESOURCE_ATTRIBUTES: expected at most %d key=value pairs "
                    "separated by commas, percent-encoded", RD_TRACE_MAX_PAIRS);
    if ((v = env("OTEL_SERVICE_NAME")))
        (void)add_resource("service.name", v, t);
#ifdef RD_VERSION
    (void)add_resource("service.version", RD_VERSION, t);
#endif
    return 0;
}

/* ---- the exporter ---- */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* POSTs one batch; false when the collector did not take it. */
static bool post(struct rd_tracer *t, CURL *h, const struct rd_buf *body, uint64_t timeout_ms, char *why,
                 size_t whylen)
{
    curl_easy_setopt(h, CURLOPT_URL, t->endpoint);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    (void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK)
        snprintf(why, whylen, "%s", curl_easy_strerror(cc));
    else if (status < 200 || status > 299)
        snprintf(why, whylen, "HTTP %ld", status);
    return cc == CURLE_OK && status >= 200 && status <= 299;
}

/* Takes up to max_batch spans' records off the queue (under mu). */
static size_t take(struct rd_tracer *t, struct rd_trace_rec *batch, size_t *nspans)
{
    size_t n = 0, spans = 0;
    while (t->count) {
        const struct rd_trace_rec *r = &t->ring[t->head];
        size_t k = rd_otlp_rec_spans(r);
        if (spans + k > t->max_batch)
            break;
        batch[n++] = *r;
        spans += k;
        t->head = (t->head + 1) % t->cap;
        t->count--;
    }
    t->spans -= spans;
    *nspans = spans;
    return n;
}

static void *exporter(void *arg)
{
    struct rd_tracer *t = arg;
    CURL *h = curl_easy_init();
    struct rd_trace_rec *batch = rd_calloc(t->max_batch, sizeof *batch);
    struct rd_buf body;
    rd_buf_init(&body, BODY_MAX);
    struct rd_otlp_resource res = {(const char *const *)t->res_keys, (const char *const *)t->res_values, t->nres};
    uint64_t stop_by = 0, dropped_seen = 0;
    bool failing = false;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(t->delay_ms / 1000);
        until.tv_nsec += (long)(t->delay_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!t->stop && t->spans < t->max_batch)
            if (pthread_cond_timedwait(&t->cv, &t->mu, &until) == ETIMEDOUT)
                break;
        if (t->stop && stop_by == 0)
            stop_by = mono_ms() + STOP_BUDGET_MS;
        size_t nspans, n = take(t, batch, &nspans);
        uint64_t dropped = t->stats.dropped;
        pthread_mutex_unlock(&t->mu);
        if (dropped != dropped_seen) {
            rd_warn("traces: %" PRIu64 " spans dropped so far: the export queue (%zu spans) was full", dropped,
                    t->max_queue);
            dropped_seen = dropped;
        }
        bool ok = true;
        if (n) {
            uint64_t timeout = t->timeout_ms;
            if (stop_by) {
                uint64_t now = mono_ms();
                timeout = now >= stop_by ? 1 : stop_by - now < timeout ? stop_by - now : timeout;
            }
            char why[CURL_ERROR_SIZE] = "";
            rd_buf_reset(&body);
            ok = h && rd_otlp_encode(&res, batch, n, &body) == 0 && post(t, h, &body, timeout, why, sizeof why);
            if (!ok && !failing)
                rd_warn("traces: export to %s failed (%s): %zu spans dropped", t->shown,
                        why[0] ? why : "cannot encode", nspans);
            else if (ok && failing)
                rd_info("traces: export to %s works again", t->shown);
            failing = !ok;
        }
        pthread_mutex_lock(&t->mu);
        t->stats.batches += n != 0;
        if (ok)
            t->stats.exported += nspans;
        else
            t->stats.failed += nspans;
        if (t->stop && (t->count == 0 || mono_ms() >= stop_by))
            break;
    }
    if (t->spans)
        rd_warn("traces: %zu spans not exported at stop", t->spans);
    pthread_mutex_unlock(&t->mu);
    rd_buf_free(&body);
    free(batch);
    if (h)
        curl_easy_cleanup(h);
    return NULL;
}

static void tracer_free(struct rd_tracer *t)
{
    curl_slist_free_all(t->headers);
    for (size_t i = 0; i < t->nres; i++) {
        free(t->res_keys[i]);
        free(t->res_values[i]);
    }
    free(t->ring);
    free(t);
}

static bool env_true(const char *name)
{
    const char *v = env(name);
    return v && strcasecmp(v, "true") == 0;
}

int rd_tracer_start(struct rd_tracer **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    if (env_true("OTEL_SDK_DISABLED"))
        return 0;
    const char *exp = env("OTEL_TRACES_EXPORTER");
    if (exp && strcmp(exp, "none") == 0)
        return 0;
    if (exp && strcmp(exp, "otlp") != 0)
        return fail(errbuf, errlen, "OTEL_TRACES_EXPORTER=%s: only otlp and none are supported", exp);
    struct rd_tracer *t = rd_calloc(1, sizeof *t);
    bool configured;
    int rc = endpoint_of(t, errbuf, errlen, &configured);
    if (rc == 0 && configured)
        rc = read_config(t, errbuf, errlen);
    if (rc != 0 || !configured) {
        tracer_free(t);
        return rc;
    }
    t->cap = t->max_queue;
    t->ring = rd_calloc(t->cap, sizeof *t->ring);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->mu, NULL);
    if ((rc = pthread_create(&t->thread, NULL, exporter, t)) != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        tracer_free(t);
        return fail(errbuf, errlen, "traces: cannot start the exporter thread: %s", strerror(rc));
    }
    (void)pthread_setname_np(t->thread, "rd-otlp");
    rd_info("traces: exporting OTLP/HTTP JSON to %s every %" PRIu64 " ms (batches of %zu spans, queue %zu)",
            t->shown, t->delay_ms, t->max_batch, t->max_queue);
    *out = t;
    return 0;
}

void rd_tracer_stop(struct rd_tracer *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    tracer_free(t);
}
