/* See inject.h. */
#include "proxy/inject.h"

#include <stdio.h>

#include "util/json.h"

#define UNIT (UINT64_C(1) << 53) /* a probability of 1 in 53-bit fixed point */

void rd_draw_table_init(struct rd_draw_table *t)
{
    t->n = 0;
}

void rd_draw_table_add(struct rd_draw_table *t, int value, double rate)
{
    if (!(rate > 0.0) || t->n >= RD_DRAW_MAX)
        return;
    uint64_t fixed = rate >= 1.0 ? UNIT : (uint64_t)(rate * 0x1p53);
    uint64_t prev = t->n ? t->cum[t->n - 1] : 0;
    /* The validator allows a sum of 1 + 1e-9 (floating-point rounding of
     * rates that add up to 1): the excess is cut, never wrapped. */
    uint64_t cum = prev + fixed > UNIT ? UNIT : prev + fixed;
    t->cum[t->n] = cum;
    t->value[t->n] = value;
    t->n++;
}

int rd_draw_table_pick(const struct rd_draw_table *t, struct rd_rng *r)
{
    uint64_t u = rd_rng_next(r) >> 11;
    /* First entry whose cumulative bound is above u (binary search: up to
     * 200 statuses). */
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (u < t->cum[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo < t->n ? t->value[lo] : -1;
}

/* ---- timeout_config ---- */

bool rd_timeout_compile(struct json_object *doc, struct rd_timeout_cfg *out)
{
    struct json_object *b = rd_json_get(doc, "timeout_config");
    if (b == NULL || !rd_json_get_bool(b, "enabled", true))
        return false;
    rd_draw_table_init(&out->draws);
    struct json_object *hang = rd_json_get(b, "hang_rate");
    struct json_object *timeout = rd_json_get(b, "timeout_rate");
    /* Hang first, then timeout: u < hang_rate hangs, u < hang_rate +
     * timeout_rate times out (docs/failure-simulation.md). */
    rd_draw_table_add(&out->draws, RD_TIMEOUT_HANG, hang ? json_object_get_double(hang) : 0.0);
    rd_draw_table_add(&out->draws, RD_TIMEOUT_FAIL, timeout ? json_object_get_double(timeout) : 0.0);
    int64_t delay = rd_json_get_int(b, "delay_ms", 0);
    out->delay_ms = delay > 0 ? (uint64_t)delay : 0;
    out->label = rd_rng_label("timeout");
    return out->draws.n > 0 || out->delay_ms > 0;
}

enum rd_timeout_outcome rd_timeout_decide(const struct rd_timeout_cfg *c, struct rd_rng *r)
{
    /* A block with no rates is a plain delay: nothing to draw. */
    if (c->draws.n == 0)
        return c->delay_ms > 0 ? RD_TIMEOUT_DELAY : RD_TIMEOUT_PASS;
    int v = rd_draw_table_pick(&c->draws, r);
    return v < 0 ? RD_TIMEOUT_PASS : (enum rd_timeout_outcome)v;
}

/* ---- error_injection ---- */

bool rd_inject_compile(struct json_object *doc, struct rd_inject_cfg *out)
{
    struct json_object *b = rd_json_get(doc, "error_injection");
    if (b == NULL || !rd_json_get_bool(b, "enabled", true))
        return false;
    rd_draw_table_init(&out->draws);
    for (int s = RD_INJECT_STATUS_MIN; s <= RD_INJECT_STATUS_MAX; s++) {
        char key[24];
        snprintf(key, sizeof key, "%d_rate", s);
        struct json_object *v = rd_json_get(b, key);
        if (v)
            rd_draw_table_add(&out->draws, s, json_object_get_double(v));
    }
    out->retry_after_s = (int)rd_json_get_int(b, "retry_after_s", RD_INJECT_RETRY_AFTER_DEFAULT);
    /* An injected 429 states the proxy's own limit when it has one. */
    struct json_object *rl = rd_json_get(doc, "rate_limiting");
    int64_t rpm = rd_json_get_int(rl, "requests_per_minute", 0);
    if (rl != NULL && rd_json_get_bool(rl, "enabled", true) && rpm > 0)
        out->limit = (uint64_t)rpm + (uint64_t)rd_json_get_int(rl, "burst_allowance", 0);
    else
        out->limit = RD_INJECT_LIMIT_DEFAULT;
    out->label = rd_rng_label("error_injection");
    return out->draws.n > 0;
}

int rd_inject_decide(const struct rd_inject_cfg *c, struct rd_rng *r)
{
    int v = rd_draw_table_pick(&c->draws, r);
    return v < 0 ? 0 : v;
}
