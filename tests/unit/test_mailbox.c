/* Tests for src/util/mailbox.c: closures posted from any thread run on the
 * mailbox's loop, each once, in posting order per producer, and close runs
 * what is still queued. Run under ASan (each message is freed by its
 * handler, so a lost one is a leak and a doubled one a double free) and
 * TSan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <uv.h>

#include "util/mailbox.h"

#define PRODUCERS 4
#define PER_PRODUCER 5000

struct msg {
    struct rd_mail mail; /* first: handlers get the struct rd_mail back */
    int producer, seq;
};

struct sink {
    uv_loop_t loop;
    struct rd_mailbox mb;
    pthread_t loop_thread;
    int next[PRODUCERS]; /* next seq expected from each producer */
    int received, out_of_order, wrong_ctx;
    int close_reposts;   /* handlers that post again, during close */
};

static void on_msg(struct rd_mail *m, void *ctx)
{
    struct msg *msg = (struct msg *)m;
    struct sink *s = ctx;
    if (!pthread_equal(pthread_self(), s->loop_thread))
        s->wrong_ctx++;
    if (msg->seq != s->next[msg->producer])
        s->out_of_order++;
    s->next[msg->producer] = msg->seq + 1;
    s->received++;
    free(msg);
}

static void post(struct sink *s, int producer, int seq, rd_mail_fn fn)
{
    struct msg *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->producer = producer;
    m->seq = seq;
    rd_mailbox_post(&s->mb, &m->mail, fn);
}

struct producer {
    struct sink *sink;
    int id;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++)
        post(p->sink, p->id, i, on_msg);
    return NULL;
}

static void on_watchdog(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static struct sink *sink_new(void)
{
    struct sink *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(uv_loop_init(&s->loop), 0);
    s->loop_thread = pthread_self();
    assert_int_equal(rd_mailbox_init(&s->loop, &s->mb, s), 0);
    return s;
}

static void sink_free(struct sink *s)
{
    /* close ran the queue and closed the async handle: nothing is left */
    assert_int_equal(uv_run(&s->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    assert_int_equal(pthread_mutex_destroy(&s->mb.mu), 0);
    free(s);
}

static void test_posts_from_threads_arrive_once_in_order(void **state)
{
    (void)state;
    struct sink *s = sink_new();
    pthread_t t[PRODUCERS];
    struct producer p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){.sink = s, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    }
    /* The loop runs while the producers post; the watchdog bounds a lost
     * wake-up (the test fails instead of hanging). */
    uv_timer_t watchdog;
    bool expired = false;
    assert_int_equal(uv_timer_init(&s->loop, &watchdog), 0);
    watchdog.data = &expired;
    assert_int_equal(uv_timer_start(&watchdog, on_watchdog, 10000, 0), 0);
    while (s->received < PRODUCERS * PER_PRODUCER && !expired)
        uv_run(&s->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&watchdog, NULL);
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_false(expired);
    assert_int_equal(s->received, PRODUCERS * PER_PRODUCER);
    assert_int_equal(s->out_of_order, 0);
    assert_int_equal(s->wrong_ctx, 0);
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(s->next[i], PER_PRODUCER);
    rd_mailbox_close(&s->mb);
    assert_int_equal(s->received, PRODUCERS * PER_PRODUCER); /* nothing ran twice */
    sink_free(s);
}

/* A handler that posts once more: what it posts during close still runs. */
static void on_msg_repost(struct rd_mail *m, void *ctx)
{
    struct sink *s = ctx;
    struct msg *msg = (struct msg *)m;
    int producer = msg->producer, seq = msg->seq;
    on_msg(m, ctx);
    s->close_reposts++;
    post(s, producer, seq + 1, on_msg);
}

static void test_close_runs_pending_mail(void **state)
{
    (void)state;
    struct sink *s = sink_new();
    /* queued from other threads, none delivered yet: the loop has not run */
    pthread_t t[PRODUCERS];
    struct producer p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){.sink = s, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    post(s, 0, PER_PRODUCER, on_msg_repost);
    assert_int_equal(s->received, 0);
    rd_mailbox_close(&s->mb);
    /* every message handled (and freed by its handler), in order, on the
     * closing thread, the one posted by a handler during close included */
    assert_int_equal(s->received, PRODUCERS * PER_PRODUCER + 2);
    assert_int_equal(s->close_reposts, 1);
    assert_int_equal(s->out_of_order, 0);
    assert_int_equal(s->wrong_ctx, 0);
    assert_int_equal(s->next[0], PER_PRODUCER + 2);
    sink_free(s);
}

static void test_close_empty(void **state)
{
    (void)state;
    struct sink *s = sink_new();
    rd_mailbox_close(&s->mb);
    assert_int_equal(s->received, 0);
    sink_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_from_threads_arrive_once_in_order),
        cmocka_unit_test(test_close_runs_pending_mail),
        cmocka_unit_test(test_close_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
