/* The scenario stage: the configuration's "scenario" list and, with
 * failure.request_overrides, the X-Rubberduck-Fault request header decide
 * an outcome for the request (req->plan); this stage carries out what it
 * can itself (an error status, a delay, a hang) and leaves stream faults to
 * the stream_faults stage. See scenario.h for the matching rules and
 * docs/failure-simulation.md, "Scenarios and per-request triggers". */
#include "proxy/stages/scenario.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/failure.h"
#include "proxy/pipeline.h"
#include "proxy/stages/stages.h"
#include "util/err.h"
#include "util/json.h"
#include "util/log.h"
#include "util/mem.h"

#define DEFAULT_AFTER_EVENTS 1u
#define DEFAULT_STALL_MS 5000u
#define DEFAULT_RETRY_AFTER_S 1
#define FAULT_VALUE_MAX 1024 /* one X-Rubberduck-Fault line */

/* ---- globs ------------------------------------------------------------ */

/* A '*'-glob split at compile time into its literal segments: matching is
 * then a prefix test, a suffix test and a left-to-right search for the
 * middle segments (the leftmost occurrence of each is always the best
 * choice with '*' as the only wildcard), so hostile paths cost linear time
 * whatever the pattern. */
struct glob {
    char *pat; /* owned copy; segments point into it */
    struct seg {
        const char *s;
        size_t len;
    } *seg;
    size_t nseg;
    size_t pat_len;
    bool star_first, star_last;
};

static void glob_compile(const char *pattern, struct glob *g)
{
    size_t len = strlen(pattern), stars = 0;
    for (size_t i = 0; i < len; i++)
        stars += pattern[i] == '*';
    g->pat = rd_strdup(pattern);
    g->pat_len = len;
    g->seg = rd_calloc(stars + 1, sizeof g->seg[0]);
    g->nseg = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && pattern[i] != '*')
            continue;
        if (i > start)
            g->seg[g->nseg++] = (struct seg){g->pat + start, i - start};
        start = i + 1;
    }
    g->star_first = len > 0 && pattern[0] == '*';
    g->star_last = len > 0 && pattern[len - 1] == '*';
}

static void glob_free(struct glob *g)
{
    free(g->pat);
    free(g->seg);
    g->pat = NULL;
    g->seg = NULL;
}

static bool glob_match(const struct glob *g, const char *t, size_t tlen)
{
    if (g->nseg == 0) /* "" matches only ""; "*", "**" anything */
        return g->pat_len > 0 || tlen == 0;
    size_t pos = 0, first = 0, last = g->nseg, limit = tlen;
    if (!g->star_first) {
        const struct seg *s = &g->seg[0];
        if (tlen < s->len || memcmp(t, s->s, s->len) != 0)
            return false;
        pos = s->len;
        first = 1;
    }
    if (!g->star_last) {
        if (first == g->nseg) /* no '*' at all: the prefix was the whole pattern */
            return pos == tlen;
        const struct seg *s = &g->seg[g->nseg - 1];
        if (tlen - pos < s->len || memcmp(t + tlen - s->len, s->s, s->len) != 0)
            return false;
        limit = tlen - s->len;
        last = g->nseg - 1;
    }
    for (size_t k = first; k < last; k++) {
        const struct seg *s = &g->seg[k];
        const char *hit = limit - pos >= s->len ? memmem(t + pos, limit - pos, s->s, s->len) : NULL;
        if (hit == NULL)
            return false;
        pos = (size_t)(hit - t) + s->len;
    }
    return true;
}

bool rd_scenario_glob_match(const char *pattern, const char *text, size_t len)
{
    struct glob g;
    glob_compile(pattern, &g);
    bool ok = glob_match(&g, text, len);
    glob_free(&g);
    return ok;
}

/* ---- the compiled list ------------------------------------------------ */

struct hmatch {
    char *name; /* owned */
    size_t name_len;
    struct glob value;
};

struct entry {
    uint64_t *nth; /* owned, ascending; nnth 0: every request meeting the other conditions */
    size_t nnth;
    bool has_model, has_path;
    struct glob model, path;
    char method[17]; /* "" any */
    struct hmatch *hdr;
    size_t nhdr;
    struct rd_fault_plan plan; /* what a match answers */
    char *message;             /* owned; plan.message points here */
    /* Requests that met the other conditions so far. Written through the
     * const set of the snapshot: the only mutable part of compiled state. */
    _Atomic uint64_t count;
};

struct rd_scenario_set {
    size_t n;
    size_t count_until; /* entries from here on have no nth: matching can stop at a winner */
    struct entry v[];
};

void rd_scenario_free(struct rd_scenario_set *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++) {
        struct entry *e = &set->v[i];
        free(e->nth);
        if (e->has_model)
            glob_free(&e->model);
        if (e->has_path)
            glob_free(&e->path);
        for (size_t k = 0; k < e->nhdr; k++) {
            free(e->hdr[k].name);
            glob_free(&e->hdr[k].value);
        }
        free(e->hdr);
        free(e->message);
    }
    free(set);
}

size_t rd_scenario_count(const struct rd_scenario_set *set)
{
    return set ? set->n : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static enum rd_stream_fault stream_fault_of(const char *s)
{
    static const struct {
        const char *name;
        enum rd_stream_fault f;
    } map[] = {{"cut", RD_SFAULT_CUT},
               {"stall", RD_SFAULT_STALL},
               {"error", RD_SFAULT_ERROR},
               {"malformed", RD_SFAULT_MALFORMED},
               {"duplicate", RD_SFAULT_DUPLICATE}};
    for (size_t i = 0; s && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(s, map[i].name) == 0)
            return map[i].f;
    return RD_SFAULT_NONE;
}

/* Defaults that depend on the whole plan (scenario entries and overrides
 * alike). */
static void plan_defaults(struct rd_fault_plan *p, bool after_given, bool stall_given)
{
    p->set = true;
    if (p->status > 0 && p->retry_after_s < 0 && (p->status == 429 || p->status == 503))
        p->retry_after_s = DEFAULT_RETRY_AFTER_S;
    if (p->stream_fault != RD_SFAULT_NONE && !after_given)
        p->after_events = DEFAULT_AFTER_EVENTS;
    if (p->stream_fault == RD_SFAULT_STALL && !stall_given)
        p->stall_ms = DEFAULT_STALL_MS;
}

static void compile_match(struct entry *e, struct json_object *m)
{
    struct json_object *nth = rd_json_get(m, "nth");
    if (nth) {
        bool list = json_object_is_type(nth, json_type_array);
        e->nnth = list ? json_object_array_length(nth) : 1;
        e->nth = rd_calloc(e->nnth, sizeof e->nth[0]);
        for (size_t k = 0; k < e->nnth; k++)
            e->nth[k] = (uint64_t)json_object_get_int64(list ? json_object_array_get_idx(nth, k) : nth);
        qsort(e->nth, e->nnth, sizeof e->nth[0], cmp_u64);
    }
    const char *s;
    if ((s = rd_json_get_str(m, "model")) != NULL) {
        glob_compile(s, &e->model);
        e->has_model = true;
    }
    if ((s = rd_json_get_str(m, "path")) != NULL) {
        glob_compile(s, &e->path);
        e->has_path = true;
    }
    if ((s = rd_json_get_str(m, "method")) != NULL)
        snprintf(e->method, sizeof e->method, "%s", s);
    struct json_object *h = rd_json_get(m, "header");
    if (h && json_object_is_type(h, json_type_object) && json_object_object_length(h) > 0) {
        e->hdr = rd_calloc((size_t)json_object_object_length(h), sizeof e->hdr[0]);
        json_object_object_foreach(h, name, value)
        {
            struct hmatch *hm = &e->hdr[e->nhdr++];
            hm->name = rd_strdup(name);
            hm->name_len = strlen(name);
            glob_compile(json_object_get_string(value), &hm->value);
        }
    }
}

static void compile_respond(struct entry *e, struct json_object *r)
{
    struct rd_fault_plan *p = &e->plan;
    p->status = (int)rd_json_get_int(r, "status", 0);
    p->retry_after_s = (int32_t)rd_json_get_int(r, "retry_after_s", -1);
    p->delay_ms = (uint64_t)rd_json_get_int(r, "delay_ms", 0);
    p->hang = rd_json_get_bool(r, "hang", false);
    p->stream_fault = stream_fault_of(rd_json_get_str(r, "stream_fault"));
    p->after_events = (uint32_t)rd_json_get_int(r, "after_events", 0);
    p->stall_ms = (uint64_t)rd_json_get_int(r, "stall_ms", 0);
    const char *msg = rd_json_get_str(r, "message");
    if (msg)
        p->message = e->message = rd_strdup(msg);
    plan_defaults(p, rd_json_get(r, "after_events") != NULL, rd_json_get(r, "stall_ms") != NULL);
}

int rd_scenario_compile(struct json_object *list, struct rd_scenario_set **out, struct rd_config_err *err)
{
    *out = NULL;
    if (list == NULL || !json_object_is_type(list, json_type_array) || json_object_array_length(list) == 0)
        return 0;
    size_t n = json_object_array_length(list);
    if (n > RD_SCENARIO_MAX) { /* the schema's cap; checked again since compile trusts nothing else */
        snprintf(err->field, sizeof err->field, "scenario");
        snprintf(err->message, sizeof err->message, "scenario must have at most %d entries", RD_SCENARIO_MAX);
        return RD_EINVAL;
    }
    struct rd_scenario_set *set = rd_calloc(1, sizeof *set + n * sizeof set->v[0]);
    set->n = n;
    for (size_t i = 0; i < n; i++) {
        struct json_object *it = json_object_array_get_idx(list, i);
        struct entry *e = &set->v[i];
        atomic_init(&e->count, 0);
        compile_match(e, rd_json_get(it, "match"));
        compile_respond(e, rd_json_get(it, "respond"));
        if (e->nnth)
            set->count_until = i + 1;
    }
    *out = set;
    return 0;
}

static bool header_matches(const struct hmatch *hm, const struct rd_hdrs *hdrs)
{
    for (size_t i = 0; hdrs && i < hdrs->n; i++) {
        const struct rd_hdr *h = &hdrs->v[i];
        if (h->name_len == hm->name_len && strncasecmp(h->name, hm->name, h->name_len) == 0 &&
            glob_match(&hm->value, h->value, h->value_len))
            return true;
    }
    return false;
}

/* Every condition but nth. */
static bool conditions_hold(const struct entry *e, const struct rd_scenario_input *in)
{
    if (e->method[0] && (in->method == NULL || strcasecmp(e->method, in->method) != 0))
        return false;
    if (e->has_path && (in->path == NULL || !glob_match(&e->path, in->path, strlen(in->path))))
        return false;
    if (e->has_model) {
        const char *m = in->model ? in->model : "";
        if (!glob_match(&e->model, m, strlen(m)))
            return false;
    }
    for (size_t k = 0; k < e->nhdr; k++)
        if (!header_matches(&e->hdr[k], in->headers))
            return false;
    return true;
}

static bool nth_has(const struct entry *e, uint64_t k)
{
    const uint64_t *v = bsearch(&k, e->nth, e->nnth, sizeof e->nth[0], cmp_u64);
    return v != NULL;
}

int rd_scenario_match(const struct rd_scenario_set *set, const struct rd_scenario_input *in,
                      struct rd_fault_plan *plan)
{
    if (set == NULL)
        return -1;
    struct rd_scenario_set *mut = (struct rd_scenario_set *)set; /* the counters only */
    int win = -1;
    for (size_t i = 0; i < set->n; i++) {
        if (win >= 0 && i >= set->count_until)
            break; /* nothing left to count */
        struct entry *e = &mut->v[i];
        if (!conditions_hold(e, in))
            continue;
        if (e->nnth == 0) {
            if (win < 0)
                win = (int)i;
            continue;
        }
        /* Past its last number an entry can never match again: it stops
         * counting, so a long run does not keep touching a shared line. */
        if (atomic_load_explicit(&e->count, memory_order_relaxed) >= e->nth[e->nnth - 1])
            continue;
        uint64_t k = atomic_fetch_add_explicit(&e->count, 1, memory_order_relaxed) + 1;
        if (win < 0 && nth_has(e, k))
            win = (int)i;
    }
    if (win >= 0)
        *plan = set->v[win].plan;
    return win;
}

/* ---- X-Rubberduck-Fault ------------------------------------------------ */

enum slot { S_STATUS, S_RETRY, S_HANG, S_DELAY, S_CUT, S_STALL, S_STALL_MS, S_ERROR, S_MALFORMED, S_DUPLICATE };

static const struct item {
    const char *name;
    enum slot slot;
    int value; /* 0: none allowed, 1: required, 2: optional (malformed, malformed=N) */
    uint64_t min, max;
    const char *expect; /* for messages */
} items[] = {
    {"status", S_STATUS, 1, 400, 599, "an HTTP status from 400 to 599"},
    {"retry_after_s", S_RETRY, 1, 0, 86400, "a number of seconds from 0 to 86400"},
    {"hang", S_HANG, 0, 0, 0, NULL},
    {"delay_ms", S_DELAY, 1, 0, 3600000, "milliseconds from 0 to 3600000"},
    {"cut_after", S_CUT, 1, 0, 1000000, "an event count from 0 to 1000000"},
    {"stall_after", S_STALL, 1, 0, 1000000, "an event count from 0 to 1000000"},
    {"stall_ms", S_STALL_MS, 1, 0, 3600000, "milliseconds from 0 to 3600000"},
    {"error_after", S_ERROR, 1, 0, 1000000, "an event count from 0 to 1000000"},
    {"malformed", S_MALFORMED, 2, 0, 1000000, "an event count from 0 to 1000000"},
    {"malformed_after", S_MALFORMED, 1, 0, 1000000, "an event count from 0 to 1000000"},
    {"duplicate", S_DUPLICATE, 2, 0, 1000000, "an event count from 0 to 1000000"},
    {"duplicate_after", S_DUPLICATE, 1, 0, 1000000, "an event count from 0 to 1000000"},
};

static const char expected_items[] = "status=<400-599>, retry_after_s=<s>, hang, delay_ms=<ms>, cut_after=<n>, "
                                     "stall_after=<n>, stall_ms=<ms>, error_after=<n>, malformed, duplicate";

struct fault_parse {
    struct rd_fault_plan *plan;
    unsigned seen; /* bits of enum slot */
    bool after_given;
    char *msg;
    size_t cap;
    size_t field; /* 1-based index of the header line, for messages when there are several */
    size_t nfields;
};

__attribute__((format(printf, 3, 4))) static int perr(struct fault_parse *fp, size_t pos, const char *fmt, ...)
{
    char where[48] = "";
    if (pos > 0 && fp->nfields > 1)
        snprintf(where, sizeof where, " (line %zu, position %zu)", fp->field, pos);
    else if (pos > 0)
        snprintf(where, sizeof where, " (position %zu)", pos);
    char what[224];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(fp->msg, fp->cap, "Invalid " RD_FAULT_HEADER " header%s: %s.", where, what);
    return RD_EINVAL;
}

/* The item's name as the client wrote it, made safe to quote in a message. */
static void quote_name(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0, i = 0;
    for (; i < n && k + 4 < cap; i++)
        out[k++] = (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    if (i < n) /* cut short: say so */
        for (int d = 0; d < 3; d++)
            out[k++] = '.';
    out[k] = '\0';
}

static void apply(struct fault_parse *fp, enum slot slot, uint64_t v, bool has_value)
{
    struct rd_fault_plan *p = fp->plan;
    switch (slot) {
    case S_STATUS: p->status = (int)v; break;
    case S_RETRY: p->retry_after_s = (int32_t)v; break;
    case S_HANG: p->hang = true; break;
    case S_DELAY: p->delay_ms = v; break;
    case S_STALL_MS: p->stall_ms = v; break;
    case S_CUT:
    case S_STALL:
    case S_ERROR:
    case S_MALFORMED:
    case S_DUPLICATE: {
        static const enum rd_stream_fault f[] = {[S_CUT] = RD_SFAULT_CUT, [S_STALL] = RD_SFAULT_STALL,
                                                 [S_ERROR] = RD_SFAULT_ERROR, [S_MALFORMED] = RD_SFAULT_MALFORMED,
                                                 [S_DUPLICATE] = RD_SFAULT_DUPLICATE};
        p->stream_fault = f[slot];
        if (has_value) {
            p->after_events = (uint32_t)v;
            fp->after_given = true;
        }
        break;
    }
    }
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* One item s[0..n) at 1-based position pos of its line. */
static int parse_item(struct fault_parse *fp, const char *s, size_t n, size_t pos)
{
    size_t klen = 0;
    while (klen < n && s[klen] != '=')
        klen++;
    size_t kend = klen;
    while (kend > 0 && is_ows(s[kend - 1]))
        kend--;
    const struct item *it = NULL;
    for (size_t i = 0; i < sizeof items / sizeof items[0] && it == NULL; i++)
        if (strlen(items[i].name) == kend && strncasecmp(items[i].name, s, kend) == 0)
            it = &items[i];
    char name[40];
    quote_name(s, kend, name, sizeof name);
    if (it == NULL)
        return perr(fp, pos, "unknown item \"%s\": expected %s", name, expected_items);
    bool has_value = klen < n;
    if (has_value && it->value == 0)
        return perr(fp, pos, "%s takes no value", it->name);
    if (!has_value && it->value == 1)
        return perr(fp, pos, "%s needs a value: %s=<%s>", it->name, it->name, it->expect);
    uint64_t v = 0;
    if (has_value) {
        size_t i = klen + 1;
        while (i < n && is_ows(s[i]))
            i++;
        size_t digits = 0;
        bool overflow = false;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
            overflow |= __builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v);
        if (digits == 0 || i != n || overflow || v < it->min || v > it->max)
            return perr(fp, pos, "%s must be %s", it->name, it->expect);
    }
    if (fp->seen & (1u << it->slot))
        return perr(fp, pos, "%s is given twice", it->name);
    fp->seen |= 1u << it->slot;
    apply(fp, it->slot, v, has_value);
    return 0;
}

static int parse_line(struct fault_parse *fp, const char *s, size_t len)
{
    if (len > FAULT_VALUE_MAX)
        return perr(fp, 0, "a value is longer than %d bytes", FAULT_VALUE_MAX);
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_ows(s[i]) || s[i] == ','))
            i++; /* empty list elements are allowed (RFC 9110 5.6.1) */
        if (i == len)
            break;
        size_t start = i;
        while (i < len && s[i] != ',')
            i++;
        size_t end = i;
        while (end > start && is_ows(s[end - 1]))
            end--;
        int rc = parse_item(fp, s + start, end - start, start + 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static bool has(const struct fault_parse *fp, enum slot s)
{
    return (fp->seen & (1u << s)) != 0;
}

static int finish(struct fault_parse *fp)
{
    struct rd_fault_plan *p = fp->plan;
    const unsigned stream_bits =
        1u << S_CUT | 1u << S_STALL | 1u << S_ERROR | 1u << S_MALFORMED | 1u << S_DUPLICATE;
    unsigned streams = fp->seen & stream_bits;
    if (fp->seen == 0)
        return perr(fp, 0, "it names no fault: expected %s", expected_items);
    if (has(fp, S_HANG) && fp->seen != 1u << S_HANG)
        return perr(fp, 0, "hang cannot be combined with other items: a hanging request never answers");
    if (streams & (streams - 1))
        return perr(fp, 0, "at most one stream fault (cut_after, stall_after, error_after, malformed, duplicate) "
                           "per request");
    if (streams && has(fp, S_STATUS))
        return perr(fp, 0, "status cannot be combined with a stream fault: an error response has no stream");
    if (has(fp, S_RETRY) && !has(fp, S_STATUS))
        return perr(fp, 0, "retry_after_s requires status");
    if (has(fp, S_STALL_MS) && !has(fp, S_STALL))
        return perr(fp, 0, "stall_ms requires stall_after");
    plan_defaults(p, fp->after_given, has(fp, S_STALL_MS));
    return 0;
}

int rd_scenario_parse_faults(const struct rd_hdrs *headers, struct rd_fault_plan *plan, char *msg, size_t cap)
{
    struct rd_fault_plan p = {.retry_after_s = -1};
    struct fault_parse fp = {.plan = &p, .msg = msg, .cap = cap};
    for (size_t i = 0; headers && i < headers->n; i++)
        fp.nfields += rd_hdr_name_eq(headers->v[i].name, headers->v[i].name_len, RD_FAULT_HEADER);
    if (fp.nfields == 0)
        return 0;
    for (size_t i = 0; i < headers->n; i++) {
        const struct rd_hdr *h = &headers->v[i];
        if (!rd_hdr_name_eq(h->name, h->name_len, RD_FAULT_HEADER))
            continue;
        fp.field++;
        int rc = parse_line(&fp, h->value, h->value_len);
        if (rc != 0)
            return rc;
    }
    int rc = finish(&fp);
    if (rc != 0)
        return rc;
    *plan = p;
    return 1;
}

/* ---- the stage ---------------------------------------------------------- */

struct state {
    struct rd_scenario_set *set; /* NULL: no list */
    bool overrides;              /* failure.request_overrides */
};

static int compile(const struct rd_stage_env *env, void **out, struct rd_config_err *err)
{
    *out = NULL;
    bool overrides = rd_json_get_bool(rd_json_get(env->doc, "failure"), "request_overrides", false);
    struct rd_scenario_set *set = NULL;
    int rc = rd_scenario_compile(rd_json_get(env->doc, "scenario"), &set, err);
    if (rc != 0)
        return rc;
    if (set == NULL && !overrides)
        return 0;
    struct state *st = rd_calloc(1, sizeof *st);
    st->set = set;
    st->overrides = overrides;
    *out = st;
    return 0;
}

static void release(void *state)
{
    struct state *st = state;
    rd_scenario_free(st->set);
    free(st);
}

static void fail_as_planned(struct rd_req *req)
{
    const struct rd_fault_plan *p = &req->plan;
    struct rd_error_spec e = {
        .status = p->status,
        .message = p->message ? p->message : rd_failure_message(p->status),
        .retry_after_s = p->retry_after_s,
    };
    rd_req_fail_spec(req, &e);
}

/* The planned delay is over: the error it preceded, or the next stage. */
static void after_delay(struct rd_req *req)
{
    if (req->plan.status > 0)
        fail_as_planned(req);
    else
        rd_pipeline_resume(req);
}

static enum rd_stage_rc run(struct rd_req *req, const void *state)
{
    const struct state *st = state;
    const struct rd_hdrs *hdrs = &req->x->req->headers;
    struct rd_fault_plan override = {0};
    int have_override = 0;
    if (st->overrides) {
        /* Read first: a request refused for its header is no request a
         * scenario counts. */
        char msg[320];
        have_override = rd_scenario_parse_faults(hdrs, &override, msg, sizeof msg);
        if (have_override < 0) {
            rd_req_fail(req, 400, msg);
            return RD_STAGE_DONE;
        }
    }
    struct rd_fault_plan plan = {0};
    const struct rd_scenario_input in = {.method = req->method, .path = req->path, .model = req->model,
                                         .headers = hdrs};
    int entry = rd_scenario_match(st->set, &in, &plan);
    if (have_override) /* the request's own ask wins over the script */
        plan = override;
    else if (entry < 0)
        return RD_STAGE_NEXT;
    if (rd_log_enabled(RD_LOG_DEBUG)) {
        char from[48];
        if (have_override)
            snprintf(from, sizeof from, RD_FAULT_HEADER);
        else
            snprintf(from, sizeof from, "scenario[%d]", entry);
        rd_req_debug(req, "%s: status %d, delay %llu ms%s, stream fault %d after %u events", from, plan.status,
                     (unsigned long long)plan.delay_ms, plan.hang ? ", hang" : "", (int)plan.stream_fault,
                     plan.after_events);
    }
    req->plan = plan;
    if (plan.hang) {
        rd_req_hang(req);
        return RD_STAGE_SUSPEND;
    }
    /* A stream fault alone is the stream_faults stage's to carry out and
     * to report; it answers nothing here. */
    if (plan.status > 0 || plan.delay_ms > 0)
        rd_req_simulated(req, RD_FAIL_SCENARIO);
    if (plan.delay_ms > 0) {
        rd_req_wait(req, plan.delay_ms, after_delay);
        return RD_STAGE_SUSPEND;
    }
    if (plan.status > 0) {
        fail_as_planned(req);
        return RD_STAGE_DONE;
    }
    return RD_STAGE_NEXT;
}

const struct rd_stage rd_stage_scenario = {
    .name = "scenario",
    .compile = compile,
    .release = release,
    .run = run,
};
