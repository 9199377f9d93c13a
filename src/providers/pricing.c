/* See pricing.h. The table is small (about a hundred rows) and read-only
 * once parsed, so a lookup is a linear scan: it runs once per model a proxy
 * sees (the usage counters keep the row they found), not per request. */
#include "providers/pricing.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#define NFIELDS 8
#define MAX_PRICE 1e6 /* USD per million tokens; anything above is a typo */

/* A decimal number "123", "0.075" (no sign, no exponent) parsed without
 * strtod, whose decimal point follows the locale. */
static int parse_decimal(const char *s, double *out)
{
    uint64_t mant = 0, scale = 1;
    bool dot = false, digit = false;
    for (const char *p = s; *p; p++) {
        if (*p == '.' && !dot && digit) {
            dot = true;
        } else if (*p >= '0' && *p <= '9') {
            if (mant > UINT64_C(100000000000000) || scale > UINT64_C(100000000000000))
                return RD_EPROTO; /* more digits than a price has */
            mant = mant * 10 + (uint64_t)(*p - '0');
            if (dot)
                scale *= 10;
            digit = true;
        } else {
            return RD_EPROTO;
        }
    }
    if (!digit || s[strlen(s) - 1] == '.')
        return RD_EPROTO;
    *out = (double)mant / (double)scale;
    return *out <= MAX_PRICE ? 0 : RD_EPROTO;
}

/* A price field; "-" (allowed when dflt >= 0) stands for dflt. */
static int parse_price(const char *s, double dflt, double *out)
{
    if (strcmp(s, "-") == 0) {
        if (dflt < 0)
            return RD_EPROTO;
        *out = dflt;
        return 0;
    }
    return parse_decimal(s, out);
}

static bool valid_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static bool valid_date(const char *s)
{
    static const char shape[] = "dddd-dd-dd";
    if (strlen(s) != sizeof shape - 1)
        return false;
    for (size_t i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    return true;
}

/* Splits line (NUL-terminated, modified in place) at tabs into f. */
static size_t split(char *line, char **f, size_t max)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        if (n == max)
            return max + 1;
        f[n++] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL)
            return n;
        *tab = '\0';
        p = tab + 1;
    }
}

static int parse_row(char **f, struct rd_price *r, const char **why)
{
    r->provider = f[0];
    r->family = f[1];
    r->checked = f[6];
    r->source = f[7];
    if (!valid_name(f[0]) || !valid_name(f[1])) {
        *why = "provider and family must be names without spaces";
        return RD_EPROTO;
    }
    if (parse_price(f[2], -1, &r->input) < 0 || parse_price(f[5], -1, &r->output) < 0 ||
        parse_price(f[3], r->input, &r->cached_input) < 0 || parse_price(f[4], r->input, &r->cache_write) < 0) {
        *why = "prices must be decimal numbers (\"-\" only for cached_input and cache_write)";
        return RD_EPROTO;
    }
    if (!valid_date(f[6])) {
        *why = "checked must be a YYYY-MM-DD date";
        return RD_EPROTO;
    }
    if (strncmp(f[7], "http://", 7) != 0 && strncmp(f[7], "https://", 8) != 0) {
        *why = "source must start with an http(s) URL";
        return RD_EPROTO;
    }
    return 0;
}

void rd_price_table_free(struct rd_price_table *t)
{
    if (t == NULL)
        return;
    free(t->rows);
    free(t->text);
    memset(t, 0, sizeof *t);
}

int rd_price_table_parse(const char *text, size_t len, struct rd_price_table *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (memchr(text, '\0', len) != NULL) {
        if (err)
            snprintf(err, errlen, "the table contains a NUL byte");
        return RD_EPROTO;
    }
    out->text = rd_strndup(text, len);
    size_t cap = 0, lineno = 0;
    char *line = out->text;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r')
            line[--l] = '\0';
        if (l > 0 && line[0] != '#') {
            char *f[NFIELDS];
            const char *why = NULL;
            size_t nf = split(line, f, NFIELDS);
            struct rd_price r;
            int rc = nf == NFIELDS ? parse_row(f, &r, &why) : RD_EPROTO;
            if (nf != NFIELDS)
                why = "expected 8 tab-separated fields";
            for (size_t i = 0; rc == 0 && i < out->n; i++)
                if (strcmp(out->rows[i].provider, r.provider) == 0 && strcmp(out->rows[i].family, r.family) == 0) {
                    why = "duplicate provider and family";
                    rc = RD_EPROTO;
                }
            if (rc < 0) {
                if (err)
                    snprintf(err, errlen, "line %zu: %s", lineno, why);
                rd_price_table_free(out);
                return RD_EPROTO;
            }
            if (out->n == cap) {
                cap = cap ? 2 * cap : 64;
                out->rows = rd_realloc(out->rows, cap * sizeof *out->rows);
            }
            out->rows[out->n++] = r;
        }
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* What may follow a family in a model name (see pricing.h). */
static bool is_version_suffix(const char *s)
{
    if (*s == '\0')
        return true;
    if (*s != '-' && *s != '@' && *s != ':')
        return false;
    s++;
    size_t digits = strspn(s, "0123456789");
    if (digits >= 3)
        return true;
    if (s[0] == 'v' && s[1] >= '0' && s[1] <= '9')
        return true;
    return strncmp(s, "latest", 6) == 0 || strncmp(s, "preview", 7) == 0 || strncmp(s, "exp", 3) == 0;
}

/* Drops what names a route to a model rather than the model: Gemini's
 * "models/" and Bedrock's geographic inference-profile prefixes (priced as
 * in-region calls; "global." is priced apart and kept). */
static const char *strip_prefix(const char *provider, const char *model)
{
    static const char *const geo[] = {"us.", "eu.", "apac.", "au.", "jp.", "ca.", "us-gov.", NULL};
    if (strncmp(model, "models/", 7) == 0)
        model += 7;
    if (strcmp(provider, "bedrock") == 0)
        for (size_t i = 0; geo[i]; i++)
            if (strncmp(model, geo[i], strlen(geo[i])) == 0)
                return model + strlen(geo[i]);
    return model;
}

/* The row of provider whose family is the longest prefix of model followed
 * by a version suffix (pricing.h). */
static const struct rd_price *longest_family(const struct rd_price_table *t, const char *provider, const char *model)
{
    const struct rd_price *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct rd_price *r = &t->rows[i];
        size_t n = strlen(r->family);
        if (n <= best_len || strcmp(r->provider, provider) != 0 || strncmp(model, r->family, n) != 0)
            continue;
        if (is_version_suffix(model + n)) {
            best = r;
            best_len = n;
        }
    }
    return best;
}

/* Providers that sell another maker's models at the maker's list prices:
 * a model of theirs that has no row of its own finds the maker's row.
 * Claude on Vertex AI is priced as on Anthropic's API (global endpoint;
 * Vertex names the snapshot "@20250514" where Anthropic says "-20250514",
 * which the version-suffix rule reads alike). Bedrock is not here: its
 * model ids ("anthropic.claude-...") and its regional premium have rows of
 * their own. */
static const struct {
    const char *provider, *model_prefix, *priced_as;
} RESOLD[] = {
    {"vertex_ai", "claude-", "anthropic"},
};

const struct rd_price *rd_price_table_lookup(const struct rd_price_table *t, const char *provider,
                                             const char *model)
{
    if (t == NULL || provider == NULL || model == NULL || model[0] == '\0')
        return NULL;
    model = strip_prefix(provider, model);
    const struct rd_price *own = longest_family(t, provider, model);
    if (own)
        return own;
    for (size_t i = 0; i < sizeof RESOLD / sizeof RESOLD[0]; i++)
        if (strcmp(provider, RESOLD[i].provider) == 0 &&
            strncmp(model, RESOLD[i].model_prefix, strlen(RESOLD[i].model_prefix)) == 0)
            return longest_family(t, RESOLD[i].priced_as, model);
    return NULL;
}

static struct rd_price_table builtin;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void load_builtin(void)
{
    char err[160];
    if (rd_price_table_parse(rd_prices_tsv, rd_prices_tsv_len, &builtin, err, sizeof err) < 0)
        rd_error("price table (src/providers/prices.tsv): %s; costs are unknown", err);
}

const struct rd_price_table *rd_pricing_table(void)
{
    pthread_once(&builtin_once, load_builtin);
    return &builtin;
}

/* A per-thread memo of the last lookups, by provider and model: the table
 * is built once and never changes, so an answer stays right for the life
 * of the process, and a worker asks for the same few models over and over
 * (a lookup scans the table's families: about half a microsecond, a
 * memo hit a hash and two compares). Names too long for a slot are looked
 * up every time. */
#define MEMO_SLOTS 16
struct price_memo {
    char provider[24];
    char model[96];
    const struct rd_price *price; /* NULL: no price (remembered too) */
    bool set;
};
static _Thread_local struct price_memo memo[MEMO_SLOTS];

static bool copy_name(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

const struct rd_price *rd_pricing_lookup(const char *provider, const char *model)
{
    if (provider == NULL || model == NULL)
        return NULL;
    uint32_t h = 2166136261u; /* FNV-1a over the model: the slot */
    size_t n = 0;
    for (; model[n]; n++)
        h = (h ^ (uint8_t)model[n]) * 16777619u;
    struct price_memo *m = &memo[h % MEMO_SLOTS];
    if (m->set && strcmp(m->model, model) == 0 && strcmp(m->provider, provider) == 0)
        return m->price;
    const struct rd_price *p = rd_price_table_lookup(rd_pricing_table(), provider, model);
    m->set = copy_name(m->provider, sizeof m->provider, provider, strlen(provider)) &&
             copy_name(m->model, sizeof m->model, model, n);
    m->price = p;
    return p;
}

static double count(int64_t v)
{
    return v > 0 ? (double)v : 0.0;
}

bool rd_pricing_cost(const struct rd_price *p, const struct rd_usage *u, double *usd)
{
    if (p == NULL || (u->input < 0 && u->output < 0 && u->cached < 0 && u->cache_write < 0))
        return false;
    double input = count(u->input), cached = count(u->cached), cache_write = count(u->cache_write);
    /* cached and cache_write are parts of input; a response claiming more
     * than its input is taken at its word for the cheaper parts first. */
    if (cached > input)
        cached = input;
    if (cache_write > input - cached)
        cache_write = input - cached;
    double plain = input - cached - cache_write;
    *usd = (plain * p->input + cached * p->cached_input + cache_write * p->cache_write + count(u->output) * p->output) /
           1e6;
    return true;
}
