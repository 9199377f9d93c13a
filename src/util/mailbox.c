#include "util/mailbox.h"

#include <stddef.h>

static void drain(struct rd_mailbox *mb)
{
    for (;;) {
        pthread_mutex_lock(&mb->mu);
        struct rd_mail *m = mb->head;
        mb->head = mb->tail = NULL;
        pthread_mutex_unlock(&mb->mu);
        if (m == NULL)
            return;
        while (m) {
            struct rd_mail *next = m->next;
            m->fn(m, mb->ctx);
            m = next;
        }
    }
}

static void on_async(uv_async_t *a)
{
    drain(a->data);
}

int rd_mailbox_init(uv_loop_t *loop, struct rd_mailbox *mb, void *ctx)
{
    mb->head = mb->tail = NULL;
    mb->ctx = ctx;
    pthread_mutex_init(&mb->mu, NULL);
    mb->async.data = mb;
    return uv_async_init(loop, &mb->async, on_async);
}

void rd_mailbox_post(struct rd_mailbox *mb, struct rd_mail *m, rd_mail_fn fn)
{
    m->fn = fn;
    m->next = NULL;
    pthread_mutex_lock(&mb->mu);
    if (mb->tail)
        mb->tail->next = m;
    else
        mb->head = m;
    mb->tail = m;
    pthread_mutex_unlock(&mb->mu);
    uv_async_send(&mb->async);
}

void rd_mailbox_close(struct rd_mailbox *mb)
{
    drain(mb);
    uv_close((uv_handle_t *)&mb->async, NULL);
}
