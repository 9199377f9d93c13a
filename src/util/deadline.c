#include "util/deadline.h"

void rd_deadline_set_at(struct rd_deadline *d, uv_timer_t *t, uv_timer_cb cb, uint64_t at)
{
    d->at = at;
    if (at == 0)
        return;
    if (!uv_is_active((uv_handle_t *)t) || d->due > at) {
        uint64_t now = uv_now(t->loop);
        d->due = at;
        uv_timer_start(t, cb, at > now ? at - now : 0, 0);
    }
}

void rd_deadline_set(struct rd_deadline *d, uv_timer_t *t, uv_timer_cb cb, uint64_t ms)
{
    rd_deadline_set_at(d, t, cb, ms == 0 ? 0 : uv_now(t->loop) + ms);
}

bool rd_deadline_expired(struct rd_deadline *d, uv_timer_t *t, uv_timer_cb cb)
{
    if (d->at == 0)
        return false;
    uint64_t now = uv_now(t->loop);
    if (now < d->at) {
        d->due = d->at;
        uv_timer_start(t, cb, d->at - now, 0);
        return false;
    }
    d->at = 0;
    return true;
}
