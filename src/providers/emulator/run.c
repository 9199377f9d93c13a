/* Plays an emulator reply through the source callbacks on a libuv loop, at a
 * tokens-per-second pace, with backpressure. Two embedded handles drive
 * everything, so no callback ever fires from inside start/resume/abort:
 * a timer for pacing delays, and an idle handle for "on the next loop iteration". A 0 ms timer cannot do the latter on libuv 1.44 (Debian 12):
 * a timer re-armed from its own callback with timeout 0 is due again in the
 * same uv__run_timers pass, so a whole stream would go out in one iteration
 * without the loop ever polling the client socket. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/emulator/emulator.h"
#include "util/err.h"
#include "util/mem.h"

enum run_state {
    RUN_HEAD,    /* head not sent yet */
    RUN_BODY,    /* sending chunks */
    RUN_CLOSING, /* finished or aborted: the timer is closing */
};

struct rd_emu_run {
    uv_timer_t timer; /* pacing delays */
    uv_idle_t idle;   /* next-iteration steps */
    int open_handles; /* the last close callback frees the run */
    bool armed;       /* a step is scheduled on one of the handles */
    struct rd_emu_reply reply; /* owned */
    double tps;
    struct rd_source_cbs cbs;
    void *ud;
    enum run_state state;
    size_t next;     /* index of the next chunk to offer */
    bool waited;     /* the pacing delay before chunk `next` (or the head) has passed */
    bool paused;     /* on_data refused chunk `next`; waiting for resume */
    double owed_ms;  /* pacing remainder below one millisecond, carried over */
};

static void on_close(uv_handle_t *h)
{
    struct rd_emu_run *r = h->data;
    if (--r->open_handles > 0)
        return;
    rd_emu_reply_free(&r->reply);
    free(r);
}

static void shut(struct rd_emu_run *r)
{
    if (r->state == RUN_CLOSING)
        return;
    r->state = RUN_CLOSING;
    r->armed = false;
    uv_timer_stop(&r->timer);
    uv_idle_stop(&r->idle);
    uv_close((uv_handle_t *)&r->timer, on_close);
    uv_close((uv_handle_t *)&r->idle, on_close);
}

/* Ends the run and reports err. The timer starts closing first, so an abort
 * called from inside on_done is a no-op and the memory outlives the call. */
static void finish(struct rd_emu_run *r, int err, const char *detail)
{
    shut(r);
    r->cbs.on_done(r->ud, err, detail);
}

/* Milliseconds to wait before something carrying tokens, with the
 * sub-millisecond remainder carried to the next wait so the average rate
 * stays exact. */
static uint64_t pace_ms(struct rd_emu_run *r, uint64_t tokens)
{
    if (r->tps <= 0 || tokens == 0)
        return 0;
    r->owed_ms += (double)tokens * 1000.0 / r->tps;
    /* A one-hour cap keeps absurd rates (tps = 1e-9) from overflowing. */
    if (r->owed_ms > 3600e3)
        r->owed_ms = 3600e3;
    double whole = floor(r->owed_ms);
    r->owed_ms -= whole;
    return (uint64_t)whole;
}

static void on_timer(uv_timer_t *t);
static void on_idle(uv_idle_t *h);

/* Schedules the next step: after ms, or on the next loop iteration. */
static void arm(struct rd_emu_run *r, uint64_t ms)
{
    /* Both starts only fail on a closing handle, and a closing run is never
     * re-armed. */
    int rc = ms > 0 ? uv_timer_start(&r->timer, on_timer, ms, 0) : uv_idle_start(&r->idle, on_idle);
    if (rc != 0)
        abort();
    r->armed = true;
}

static int send_head(struct rd_emu_run *r)
{
    char clen[32];
    struct rd_hdrs h;
    rd_hdrs_init(&h, NULL);
    rd_hdrs_add_ref(&h, "Content-Type", r->reply.content_type ? r->reply.content_type : "application/json");
    for (size_t i = 0; i < r->reply.nheaders; i++)
        rd_hdrs_add_ref(&h, r->reply.headers[i].name, r->reply.headers[i].value);
    if (r->reply.stream) {
        rd_hdrs_add_ref(&h, "Cache-Control", "no-cache");
    } else {
        size_t total = 0;
        for (size_t i = 0; i < r->reply.n; i++)
            total += r->reply.chunks[i].len;
        snprintf(clen, sizeof clen, "%zu", total);
        rd_hdrs_add_ref(&h, "Content-Length", clen);
    }
    int rc = r->cbs.on_head(r->ud, r->reply.status ? r->reply.status : 200, &h);
    rd_hdrs_free(&h);
    return rc;
}

static uint64_t total_tokens(const struct rd_emu_reply *reply)
{
    uint64_t t = 0;
    for (size_t i = 0; i < reply->n; i++)
        t += reply->chunks[i].tokens;
    return t;
}

/* Head step. A plain reply waits for its whole generation time before the
 * head, as a real non-streaming API does; a stream sends the head at once. */
static void step_head(struct rd_emu_run *r)
{
    if (!r->reply.stream && !r->waited) {
        r->waited = true;
        uint64_t ms = pace_ms(r, total_tokens(&r->reply));
        if (ms > 0) {
            arm(r, ms);
            return;
        }
    }
    int rc = send_head(r);
    if (r->state == RUN_CLOSING)
        return; /* aborted from inside on_head */
    if (rc < 0) {
        finish(r, RD_EABORTED, "on_head refused the response");
        return;
    }
    r->state = RUN_BODY;
    r->waited = !r->reply.stream; /* a plain body already waited */
    if (r->reply.stream)
        arm(r, 0); /* the first chunk on its own loop iteration */
}

/* Body step: offers chunks. A stream offers one per timer expiry, after its
 * pacing delay; a plain reply offers them all at once. */
static void step_body(struct rd_emu_run *r)
{
    while (r->next < r->reply.n) {
        struct rd_emu_chunk *ch = &r->reply.chunks[r->next];
        if (!r->waited) {
            r->waited = true;
            arm(r, pace_ms(r, ch->tokens));
            return;
        }
        int rc = r->cbs.on_data(r->ud, ch->data, ch->len);
        if (r->state == RUN_CLOSING)
            return; /* aborted from inside on_data */
        if (rc == RD_SOURCE_PAUSE) {
            r->paused = true; /* keep the chunk; resume offers it again */
            return;
        }
        r->next++;
        if (r->reply.stream)
            r->waited = false;
    }
    finish(r, 0, NULL);
}

static void step(struct rd_emu_run *r)
{
    r->armed = false;
    if (r->state == RUN_HEAD)
        step_head(r);
    if (r->state == RUN_BODY && !r->paused && !r->armed)
        step_body(r);
}

static void on_timer(uv_timer_t *t)
{
    step(t->data);
}

static void on_idle(uv_idle_t *h)
{
    uv_idle_stop(h);
    step(h->data);
}

struct rd_emu_run *rd_emu_run_start(uv_loop_t *loop, struct rd_emu_reply *reply, double tokens_per_second,
                                    const struct rd_source_cbs *cbs, void *ud)
{
    struct rd_emu_run *r = rd_calloc(1, sizeof *r);
    r->reply = *reply;
    memset(reply, 0, sizeof *reply);
    r->tps = isfinite(tokens_per_second) ? tokens_per_second : 0;
    r->cbs = *cbs;
    r->ud = ud;
    r->state = RUN_HEAD;
    /* Neither init can fail on a valid loop. */
    if (uv_timer_init(loop, &r->timer) != 0 || uv_idle_init(loop, &r->idle) != 0)
        abort();
    r->timer.data = r;
    r->idle.data = r;
    r->open_handles = 2;
    arm(r, 0);
    return r;
}

void rd_emu_run_resume(struct rd_emu_run *r)
{
    if (r == NULL || r->state != RUN_BODY || !r->paused)
        return;
    r->paused = false;
    arm(r, 0);
}

void rd_emu_run_abort(struct rd_emu_run *r)
{
    if (r == NULL)
        return;
    shut(r);
}
