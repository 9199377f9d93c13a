/* A lazy deadline on one libuv timer (the connection's, the request's, the
 * upstream connection's): the deadline is recorded, and the timer is
 * restarted only when it is idle or due after the new deadline. A timer
 * that fires early re-arms itself for what is left. So moving a deadline
 * further out, which every keep-alive request does, costs no timer-heap
 * operation. Loop thread only. */
#ifndef RD_UTIL_DEADLINE_H
#define RD_UTIL_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct rd_deadline {
    uint64_t at;  /* loop time the deadline passes; 0: none */
    uint64_t due; /* loop time the timer fires, while it is active */
};

/* Sets the deadline ms from now (0 clears it) on timer t, whose callback is cb. */
void rd_deadline_set(struct rd_deadline *d, uv_timer_t *t, uv_timer_cb cb, uint64_t ms);
/* The same with an absolute loop time (0 clears it; a past time fires on
 * the next loop turn). */
void rd_deadline_set_at(struct rd_deadline *d, uv_timer_t *t, uv_timer_cb cb, uint64_t at);
/* Call first in the timer callback: true if the deadline has passed (it is
 * then cleared and the caller acts), false if there is none or the timer
 * fired early (it is re-armed for the rest). */
bool rd_deadline_expired(struct rd_deadline *d, uv_timer_t *t, uv_timer_cb cb);

#endif
