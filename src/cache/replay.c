/* See replay.h. */
#include "cache/replay.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/err.h"
#include "util/mem.h"

enum rp_state {
    RP_HEAD,    /* head not sent yet (a joiner may wait for it) */
    RP_BODY,    /* sending bytes */
    RP_CLOSING, /* finished or aborted: the handles are closing */
};

struct rp {
    uv_idle_t idle;   /* next-iteration steps */
    uv_timer_t timer; /* original timing */
    uv_async_t async; /* a joiner: the leader's publications */
    int open_handles; /* the last close callback frees the replay */
    bool has_async;
    bool following; /* registered with the entry (rd_cache_follow) */
    bool armed;     /* a step is scheduled on idle or timer */
    bool paused;    /* on_data refused; waiting for resume */
    enum rp_state state;
    bool timing; /* original timing (complete streams with marks only) */
    struct rd_cache_entry *e; /* one reference */
    struct rd_cache_follow follow;
    struct rd_source_cbs cbs;
    void *ud;
    /* position: bytes [0, pos) are delivered; chunk/coff is where pos is */
    struct rd_cache_chunk *chunk;
    size_t coff;
    uint64_t pos;
    size_t mark;  /* the next event whose time has not come yet (timing) */
    uint64_t t0;  /* loop time the head went out */
};

static void on_close(uv_handle_t *h)
{
    struct rp *r = h->data;
    if (--r->open_handles > 0)
        return;
    rd_cache_entry_unref(r->e);
    free(r);
}

static void unfollow(struct rp *r)
{
    if (r->following) {
        r->following = false;
        rd_cache_unfollow(r->e, &r->follow);
    }
}

static void shut(struct rp *r)
{
    if (r->state == RP_CLOSING)
        return;
    unfollow(r); /* after it returns the leader never wakes us again */
    r->state = RP_CLOSING;
    r->armed = false;
    uv_idle_stop(&r->idle);
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->idle, on_close);
    uv_close((uv_handle_t *)&r->timer, on_close);
    if (r->has_async)
        uv_close((uv_handle_t *)&r->async, on_close);
}

/* Ends the replay and reports err; shut first, so an abort from inside
 * on_done is a no-op and the memory outlives the call. */
static void finish(struct rp *r, int err, const char *detail)
{
    shut(r);
    r->cbs.on_done(r->ud, err, detail);
}

static void on_idle(uv_idle_t *h);
static void on_timer(uv_timer_t *t);

static void arm_idle(struct rp *r)
{
    if (uv_idle_start(&r->idle, on_idle) != 0)
        abort(); /* fails only on a closing handle, never re-armed */
    r->armed = true;
}

static void arm_timer(struct rp *r, uint64_t ms)
{
    if (uv_timer_start(&r->timer, on_timer, ms, 0) != 0)
        abort();
    r->armed = true;
}

void rd_cache_replay_head(const struct rd_cache_entry *e, bool with_length, struct rd_hdrs *h, char clen[24])
{
    for (size_t i = 0; i < e->nhdrs; i++)
        rd_hdrs_add_refn(h, e->hdrs[i].name, e->hdrs[i].name_len, e->hdrs[i].value, e->hdrs[i].value_len);
    if (with_length) {
        snprintf(clen, 24, "%llu", (unsigned long long)e->len);
        rd_hdrs_add_ref(h, "Content-Length", clen);
    }
}

static int send_head(struct rp *r, bool complete)
{
    const struct rd_cache_entry *e = r->e;
    struct rd_hdrs h;
    rd_hdrs_init(&h, NULL);
    char clen[24];
    rd_cache_replay_head(e, complete && !e->stream, &h, clen);
    int rc = r->cbs.on_head(r->ud, e->status, &h);
    rd_hdrs_free(&h);
    return rc;
}

/* The contiguous published bytes at pos, up to limit: the entry's mutex
 * guards the lengths a leader may still be growing. */
static size_t span_at(struct rp *r, uint64_t limit, const char **p)
{
    struct rd_cache_entry *e = r->e;
    size_t n = 0;
    pthread_mutex_lock(&e->mu);
    if (r->chunk == NULL) {
        r->chunk = e->first;
        r->coff = 0;
    }
    while (r->chunk && r->coff == r->chunk->len && r->chunk->next) {
        r->chunk = r->chunk->next;
        r->coff = 0;
    }
    if (r->chunk) {
        n = r->chunk->len - r->coff;
        *p = r->chunk->data + r->coff;
    }
    pthread_mutex_unlock(&e->mu);
    if (n > limit - r->pos)
        n = (size_t)(limit - r->pos);
    return n;
}

/* With original timing: how far the bytes may go now (the end of the last
 * event whose time has come; everything once the last event is due), and
 * the timer for the next event. */
static uint64_t timed_limit(struct rp *r, uint64_t len, uv_loop_t *loop)
{
    const struct rd_cache_entry *e = r->e;
    uint64_t now = uv_now(loop);
    while (r->mark < e->nmarks && r->t0 + e->marks[r->mark].t_ms <= now)
        r->mark++;
    if (r->mark >= e->nmarks)
        return len;
    arm_timer(r, r->t0 + e->marks[r->mark].t_ms - now);
    return r->mark > 0 ? e->marks[r->mark - 1].end : 0;
}

static void step_body(struct rp *r)
{
    enum rd_cache_state st;
    uint64_t len;
    bool has_head;
    rd_cache_peek(r->e, &st, &len, &has_head);
    uint64_t limit = len;
    if (r->timing && st == RD_CACHE_COMPLETE)
        limit = timed_limit(r, len, r->idle.loop);
    while (r->pos < limit) {
        const char *p = NULL;
        size_t n = span_at(r, limit, &p);
        if (n == 0)
            break; /* unreachable while pos < published length */
        int rc = r->cbs.on_data(r->ud, p, n);
        if (r->state == RP_CLOSING)
            return; /* aborted from inside on_data */
        if (rc == RD_SOURCE_PAUSE) {
            r->paused = true;
            return;
        }
        r->pos += n;
        r->coff += n;
    }
    if (r->pos < len)
        return; /* the timer brings the next event */
    if (st == RD_CACHE_COMPLETE)
        finish(r, 0, NULL);
    else if (st == RD_CACHE_FAILED)
        finish(r, RD_EUPSTREAM, "the response being cached failed");
    /* FILLING: the leader's next publication wakes us */
}

static void step(struct rp *r)
{
    r->armed = false;
    if (r->state == RP_HEAD) {
        enum rd_cache_state st;
        uint64_t len;
        bool has_head;
        rd_cache_peek(r->e, &st, &len, &has_head);
        if (!has_head) {
            if (st == RD_CACHE_FAILED)
                finish(r, RD_ESTATE, "the request this one joined failed before its head");
            return; /* FILLING: woken when the head is in */
        }
        int rc = send_head(r, st == RD_CACHE_COMPLETE);
        if (r->state == RP_CLOSING)
            return;
        if (rc < 0) {
            finish(r, RD_EABORTED, "on_head refused the response");
            return;
        }
        r->state = RP_BODY;
        r->t0 = uv_now(r->idle.loop);
        r->timing = r->timing && st == RD_CACHE_COMPLETE && r->e->stream && r->e->nmarks > 0;
    }
    if (r->state == RP_BODY && !r->paused)
        step_body(r);
}

static void on_idle(uv_idle_t *h)
{
    uv_idle_stop(h);
    step(h->data);
}

static void on_timer(uv_timer_t *t)
{
    step(t->data);
}

static void on_async(uv_async_t *a)
{
    struct rp *r = a->data;
    if (r->state != RP_CLOSING && !r->paused && !r->armed)
        step(r);
}

/* The leader's thread, under the entry's mutex: only a wake-up. */
static void wake(void *ud)
{
    struct rp *r = ud;
    uv_async_send(&r->async);
}

static void *rp_start(void *ctx, const struct rd_source_req *req, const struct rd_source_cbs *cbs, void *ud)
{
    const struct rd_cache_replay_arg *arg = ctx;
    struct rp *r = rd_calloc(1, sizeof *r);
    r->e = rd_cache_entry_ref(arg->entry);
    r->timing = arg->original_timing;
    r->cbs = *cbs;
    r->ud = ud;
    uv_idle_init(req->loop, &r->idle);
    uv_timer_init(req->loop, &r->timer);
    r->idle.data = r->timer.data = r;
    r->open_handles = 2;
    enum rd_cache_state st;
    uint64_t len;
    bool has_head;
    rd_cache_peek(r->e, &st, &len, &has_head);
    if (st == RD_CACHE_FILLING) {
        uv_async_init(req->loop, &r->async, on_async);
        r->async.data = r;
        r->has_async = true;
        r->open_handles++;
        r->follow = (struct rd_cache_follow){.wake = wake, .ud = r};
        r->following = rd_cache_follow(r->e, &r->follow);
    }
    arm_idle(r);
    return r;
}

static void rp_resume(void *h)
{
    struct rp *r = h;
    if (r->state == RP_CLOSING || !r->paused)
        return;
    r->paused = false;
    if (!r->armed)
        arm_idle(r);
}

static void rp_abort(void *h)
{
    shut(h);
}

const struct rd_source_ops rd_cache_replay_ops = {
    .name = "cache", .start = rp_start, .resume = rp_resume, .abort = rp_abort};
