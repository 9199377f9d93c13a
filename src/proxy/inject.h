/* The pure cores of the timeout and error_injection stages
 * (stages/timeout.c, stages/error_injection.c): their configuration blocks
 * compiled into draw tables, and what one seeded draw decides. Nothing here
 * touches a request or a clock, so unit tests drive it with a seeded
 * struct rd_rng (tests/unit/test_inject.c). docs/failure-simulation.md
 * ("Timeouts and hangs", "Error injection") is the user's description.
 * Compile on any thread; the compiled tables are immutable and read by
 * every worker. */
#ifndef RD_PROXY_INJECT_H
#define RD_PROXY_INJECT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/rng.h"

/* Statuses error_injection may name: 400 .. 599. */
#define RD_INJECT_STATUS_MIN 400
#define RD_INJECT_STATUS_MAX 599
#define RD_DRAW_MAX (RD_INJECT_STATUS_MAX - RD_INJECT_STATUS_MIN + 1)

/* Outcomes with probabilities as a cumulative table. A draw u is the top 53
 * bits of one rd_rng_next (uniform in [0, 2^53), i.e. u / 2^53 in [0, 1));
 * it picks the first outcome i with u < cum[i], and none when u >= cum[n-1].
 * Outcome i therefore has probability rate[i] exactly (rates in 53-bit fixed
 * point, truncated, as rd_rng_pick: a rate of 0 never fires, 1 always does). */
struct rd_draw_table {
    size_t n;
    uint64_t cum[RD_DRAW_MAX];
    int value[RD_DRAW_MAX];
};

void rd_draw_table_init(struct rd_draw_table *t);
/* Appends outcome value with probability rate (clamped to [0, 1]; a rate of
 * 0 adds nothing). Once the rates added reach 1 the rest can never fire (the
 * configuration's validator keeps their sum at most 1). Ignored when the
 * table is full. */
void rd_draw_table_add(struct rd_draw_table *t, int value, double rate);
/* One draw from r: the value of the outcome picked, or -1 for none. Takes
 * exactly one rd_rng_next whatever the table holds. */
int rd_draw_table_pick(const struct rd_draw_table *t, struct rd_rng *r);

/* ---- timeout_config ---- */

enum rd_timeout_outcome {
    RD_TIMEOUT_PASS,  /* go on at once */
    RD_TIMEOUT_DELAY, /* wait delay_ms, then go on (a block with no rates) */
    RD_TIMEOUT_FAIL,  /* wait delay_ms, then the provider's 504 */
    RD_TIMEOUT_HANG,  /* never answer */
};

struct rd_timeout_cfg {
    struct rd_draw_table draws; /* hang_rate (RD_TIMEOUT_HANG), then timeout_rate (RD_TIMEOUT_FAIL) */
    uint64_t delay_ms;
    uint64_t label; /* rd_rng_label("timeout") */
};

/* Compiles doc's timeout_config block (doc already validated). Returns
 * true when the stage has something to do: the block is present, not
 * disabled, and sets a rate above 0 or a delay_ms above 0. */
bool rd_timeout_compile(struct json_object *doc, struct rd_timeout_cfg *out);
/* The outcome of one request: one draw u from r; u < hang_rate: HANG;
 * u < hang_rate + timeout_rate: FAIL; otherwise DELAY when the block sets
 * no rate and a delay, else PASS. */
enum rd_timeout_outcome rd_timeout_decide(const struct rd_timeout_cfg *c, struct rd_rng *r);

/* ---- error_injection ---- */

/* Retry-After of an injected 429 or 503 when retry_after_s is not set. */
#define RD_INJECT_RETRY_AFTER_DEFAULT 1
/* The request limit an injected 429's rate-limit headers state when the
 * proxy has no rate_limiting block to take it from (the product
 * description's example rate). */
#define RD_INJECT_LIMIT_DEFAULT 60

struct rd_inject_cfg {
    struct rd_draw_table draws; /* value: the status; in ascending status order */
    int retry_after_s;          /* on 429 and 503 */
    uint64_t limit;             /* x-ratelimit-limit-requests & co. of a 429 */
    uint64_t label;             /* rd_rng_label("error_injection") */
};

/* Compiles doc's error_injection block (doc already validated). Returns
 * true when some status has a rate above 0 and the block is not disabled.
 * The table lists statuses in ascending order whatever the document's key
 * order, so an outcome depends on the seed, the request number and the
 * rates only. */
bool rd_inject_compile(struct json_object *doc, struct rd_inject_cfg *out);
/* The status injected into one request (one draw from r), or 0 for none. */
int rd_inject_decide(const struct rd_inject_cfg *c, struct rd_rng *r);

#endif
