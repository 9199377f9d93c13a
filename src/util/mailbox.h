/* A thread-safe queue of closures delivered on one libuv loop: other threads
 * post, the owning loop runs them (uv_async wake-up). How control messages go
 * to I/O workers and completions come back. */
#ifndef RD_UTIL_MAILBOX_H
#define RD_UTIL_MAILBOX_H

#include <pthread.h>
#include <uv.h>

struct rd_mail;
typedef void (*rd_mail_fn)(struct rd_mail *m, void *ctx);

/* Embed in a message struct; fn runs on the mailbox's loop and owns m. */
struct rd_mail {
    struct rd_mail *next;
    rd_mail_fn fn;
};

struct rd_mailbox {
    uv_async_t async;
    pthread_mutex_t mu;
    struct rd_mail *head, *tail;
    void *ctx; /* passed to every fn */
};

/* Initialises on loop (call on the loop's thread). Returns 0 or -errno. */
int rd_mailbox_init(uv_loop_t *loop, struct rd_mailbox *mb, void *ctx);
/* Any thread: queues m (ownership passes to the receiver) and wakes the loop. */
void rd_mailbox_post(struct rd_mailbox *mb, struct rd_mail *m, rd_mail_fn fn);
/* Loop thread: runs what is queued, then closes the async handle. */
void rd_mailbox_close(struct rd_mailbox *mb);

#endif
