/* The request log's buffer and writer thread against a real SQLite file:
 * what two workers push is all written, in increasing seq, by the time stop
 * returns; a full buffer drops and counts without blocking the pusher; the
 * history answers "since" with the oldest row it kept; the notify fires on
 * a real libuv loop and can be unset; a store that refuses every insert
 * costs the rows (counted), never a hang, and the writer recovers when the
 * store does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "obs/logwriter.h"
#include "store/store.h"

#define N_PER_THREAD 3000

struct fix {
    char dir[64];
    char url[160];
    char path[128];
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/rd-logw-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/rd.db", f->dir);
    snprintf(f->url, sizeof f->url, "sqlite://%s", f->path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    int rc = nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

static struct rd_log_writer *start(const struct fix *f, unsigned nslots, uint64_t bytes, size_t history)
{
    struct rd_log_writer_cfg cfg = {.nslots = nslots, .buffer_bytes = bytes, .node_id = "node-t", .history = history};
    struct rd_log_writer *w = NULL;
    char err[200] = "";
    if (rd_log_writer_start(f->url, &cfg, &w, err, sizeof err) != 0)
        fail_msg("writer start: %s", err);
    return w;
}

static void rec_of(struct rd_log_rec *r, unsigned producer, unsigned i)
{
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "req_%08x%08x", producer, i);
    r->ts_ms = 1796205600000LL + i;
    r->proxy_id = producer + 1;
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/v1/chat/completions");
    r->status = 200;
    r->input_tokens = r->output_tokens = r->cached_tokens = r->reasoning_tokens = -1;
    r->upstream_latency_ms = r->ttfb_ms = -1;
}

static sqlite3 *db_open(const struct fix *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t count_rows(const struct fix *f, const char *where)
{
    sqlite3 *db = db_open(f);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM request_logs %s", where);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void exec(const struct fix *f, const char *sql)
{
    sqlite3 *db = db_open(f);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
    sqlite3_close(db);
}

struct producer {
    struct rd_log_writer *w;
    unsigned slot;
    unsigned n;
    unsigned accepted;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    struct rd_log_rec r;
    for (unsigned i = 0; i < p->n; i++) {
        rec_of(&r, p->slot, i);
        if (rd_log_push(p->w, p->slot, &r))
            p->accepted++;
    }
    return NULL;
}

/* Two workers push at once, stop comes right after: every row is there,
 * once, with the node id, and seq follows each producer's order. */
static void test_two_producers_all_written(void **state)
{
    struct fix *f = *state;
    struct rd_log_writer *w = start(f, 2, 64u << 20, 16);
    struct producer p[2] = {{w, 0, N_PER_THREAD, 0}, {w, 1, N_PER_THREAD, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(p[0].accepted, N_PER_THREAD);
    assert_int_equal(p[1].accepted, N_PER_THREAD);
    rd_log_writer_stop(w); /* no flush first: stop writes what is queued */

    assert_int_equal(count_rows(f, ""), 2 * N_PER_THREAD);
    assert_int_equal(count_rows(f, "WHERE node_id = 'node-t'"), 2 * N_PER_THREAD);
    assert_int_equal(count_rows(f, "WHERE proxy_id = 1"), N_PER_THREAD);
    /* Distinct ids, and within a producer seq grows with the push order. */
    sqlite3 *db = db_open(f);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(DISTINCT request_id) FROM request_logs", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), 2 * N_PER_THREAD);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT proxy_id, timestamp FROM request_logs ORDER BY seq", -1, &st, NULL),
                     SQLITE_OK);
    int64_t last[3] = {0, 0, 0};
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t pid = sqlite3_column_int64(st, 0), ts = sqlite3_column_int64(st, 1);
        assert_true(pid == 1 || pid == 2);
        assert_true(ts > last[pid]);
        last[pid] = ts;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* The writer is stuck behind another connection's write lock: the ring
 * fills, further pushes return false at once and are counted; once the lock
 * goes, what was accepted is written. */
static void test_full_buffer_drops_and_counts(void **state)
{
    struct fix *f = *state;
    struct rd_log_writer *w = start(f, 1, 4 * sizeof(struct rd_log_rec), 0);
    sqlite3 *db = db_open(f);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    struct producer p = {w, 0, 2000, 0};
    produce(&p);
    /* At most one batch in the writer's hands plus the ring's four. */
    assert_true(p.accepted <= 512 + 4);
    struct rd_log_writer_stats s;
    rd_log_writer_stats(w, &s);
    assert_int_equal(s.dropped, 2000 - p.accepted);
    assert_int_equal(s.queued, p.accepted);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(rd_log_writer_flush(w, 20000), 0);
    rd_log_writer_stats(w, &s);
    assert_int_equal(s.written + s.failed, p.accepted);
    assert_int_equal(s.pending, 0);
    uint64_t written = s.written;
    rd_log_writer_stop(w);
    assert_int_equal(count_rows(f, ""), (int64_t)written);
}

/* A buffer smaller than one record takes nothing. */
static void test_zero_capacity(void **state)
{
    struct fix *f = *state;
    struct rd_log_writer *w = start(f, 2, sizeof(struct rd_log_rec), 0);
    struct rd_log_rec r;
    rec_of(&r, 0, 1);
    assert_false(rd_log_push(w, 0, &r));
    assert_false(rd_log_push(w, 1, &r));
    assert_false(rd_log_push(w, 7, &r)); /* no such slot */
    struct rd_log_writer_stats s;
    rd_log_writer_stats(w, &s);
    assert_int_equal(s.dropped, 3);
    assert_int_equal(s.queued, 0);
    rd_log_writer_stop(w);
    assert_int_equal(count_rows(f, ""), 0);
    assert_false(rd_log_push(NULL, 0, &r));
}

/* The history keeps the last rows written, oldest first, by seq. */
static void test_history_since(void **state)
{
    struct fix *f = *state;
    struct rd_log_writer *w = start(f, 1, 1u << 20, 8);
    uint64_t first = 0;
    struct rd_log_rec out[16];
    assert_int_equal(rd_log_history_since(w, 0, out, 16, &first), 0);
    assert_int_equal(first, 0);
    assert_int_equal(rd_log_last_seq(w), 0);
    struct rd_log_rec r;
    for (unsigned i = 0; i < 20; i++) {
        rec_of(&r, 0, i);
        assert_true(rd_log_push(w, 0, &r));
    }
    assert_int_equal(rd_log_writer_flush(w, 20000), 0);
    uint64_t last = rd_log_last_seq(w);
    assert_true(last >= 20);
    size_t n = rd_log_history_since(w, 0, out, 16, &first);
    assert_int_equal(n, 8);
    assert_int_equal(first, out[0].seq);
    assert_int_equal(out[7].seq, last);
    assert_string_equal(out[7].id, "req_0000000000000013"); /* the 20th pushed */
    assert_string_equal(out[0].node_id, "node-t");
    for (size_t i = 1; i < n; i++)
        assert_true(out[i].seq > out[i - 1].seq);
    /* after the third from last: two rows; max honoured; after the last: none */
    assert_int_equal(rd_log_history_since(w, out[5].seq, out + 8, 8, &first), 2);
    assert_int_equal(out[8].seq, out[6].seq);
    assert_int_equal(rd_log_history_since(w, 0, out + 8, 3, &first), 3);
    assert_int_equal(out[8].seq, first);
    assert_int_equal(rd_log_history_since(w, last, out, 16, &first), 0);
    rd_log_writer_stop(w);
}

/* Row i of producer 0 pushed, and written by the time this returns. */
static void push_written(struct rd_log_writer *w, unsigned producer, unsigned i)
{
    struct rd_log_rec r;
    rec_of(&r, producer, i);
    assert_true(rd_log_push(w, producer, &r));
    assert_int_equal(rd_log_writer_flush(w, 20000), 0);
}

/* The history points into the queue's chunks: while one worker pushes
 * (many chunks' worth, so chunks are recycled as the history moves on) a
 * reader keeps asking for it, and every row it gets is whole and the one
 * its seq says (a chunk reused too early would show another row's id).
 * Deleting the newest rows makes the history start over; stop with the
 * history holding chunks leaks nothing (LeakSanitizer). */
struct hist_reader {
    struct rd_log_writer *w;
    atomic_bool stop;
    unsigned reads, rows, bad;
};

static void *read_history(void *arg)
{
    struct hist_reader *h = arg;
    static struct rd_log_rec out[64];
    while (!atomic_load(&h->stop)) {
        uint64_t first = 0;
        size_t n = rd_log_history_since(h->w, 0, out, 64, &first);
        for (size_t i = 0; i < n; i++) {
            char want[24];
            snprintf(want, sizeof want, "req_%08x%08x", 0u, (unsigned)(out[i].seq - 1));
            if (strcmp(out[i].id, want) != 0 || strcmp(out[i].node_id, "node-t") != 0 ||
                (i && out[i].seq != out[i - 1].seq + 1))
                h->bad++;
        }
        h->reads++;
        h->rows += (unsigned)n;
    }
    return NULL;
}

static void test_history_holds_chunks(void **state)
{
    struct fix *f = *state;
    struct rd_log_writer *w = start(f, 1, 1u << 20, 300);
    struct hist_reader h = {.w = w};
    atomic_init(&h.stop, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_history, &h), 0);
    struct rd_log_rec r;
    for (unsigned i = 0; i < 5000; i++) {
        rec_of(&r, 0, i);
        while (!rd_log_push(w, 0, &r)) /* the buffer (about 1,000 rows) is full: let the writer catch up */
            (void)rd_log_writer_flush(w, 20000);
        if (i % 700 == 0)
            (void)rd_log_writer_flush(w, 20000);
    }
    assert_int_equal(rd_log_writer_flush(w, 20000), 0);
    atomic_store(&h.stop, true);
    pthread_join(t, NULL);
    assert_int_equal(h.bad, 0);
    assert_true(h.reads > 0);
    struct rd_log_rec out[300];
    uint64_t first = 0;
    assert_int_equal(rd_log_history_since(w, 0, out, 300, &first), 300);
    assert_int_equal(out[299].seq, 5000);
    assert_string_equal(out[0].id, "req_000000000000125c"); /* row 4700 */
    /* The newest rows purged: the next row still gets the next seq (a seq
     * is never given twice), the history goes on. */
    exec(f, "DELETE FROM request_log_keys; DELETE FROM request_log_blocks");
    push_written(w, 0, 5000);
    assert_int_equal(rd_log_history_since(w, 0, out, 300, &first), 300);
    assert_int_equal(out[299].seq, 5001);
    /* A database whose seqs go back (an older copy restored under the
     * server): the history starts over with the lower seq. */
    exec(f, "DELETE FROM request_log_blocks; DELETE FROM request_log_seq");
    push_written(w, 0, 0);
    assert_int_equal(rd_log_history_since(w, 0, out, 300, &first), 1);
    assert_int_equal(out[0].seq, 1);
    /* and fills again past one chunk before stop */
    for (unsigned i = 1; i < 200; i++) {
        rec_of(&r, 0, i);
        assert_true(rd_log_push(w, 0, &r));
    }
    assert_int_equal(rd_log_writer_flush(w, 20000), 0);
    assert_int_equal(rd_log_history_since(w, 0, out, 300, &first), 200);
    rd_log_writer_stop(w);
}

struct notify_state {
    uv_loop_t *loop;
    struct rd_log_writer *w;
    int calls;
};

static void on_written(void *ud)
{
    struct notify_state *ns = ud;
    ns->calls++;
    uint64_t first;
    struct rd_log_rec r;
    /* The row is in the history by the time the notify runs. */
    if (rd_log_history_since(ns->w, 0, &r, 1, &first) == 1)
        uv_stop(ns->loop);
}

static void on_give_up(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* The notify runs on the loop given, after the row is written; unset, its
 * handle closes and the loop closes clean. */
static void test_notify_on_loop(void **state)
{
    struct fix *f = *state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct rd_log_writer *w = start(f, 1, 1u << 20, 4);
    struct notify_state ns = {&loop, w, 0};
    rd_log_writer_set_notify(w, &loop, on_written, &ns);
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_give_up, 20000, 0); /* bound, not a timing assertion */
    struct rd_log_rec r;
    rec_of(&r, 0, 0);
    assert_true(rd_log_push(w, 0, &r));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(ns.calls >= 1);
    rd_log_writer_set_notify(w, NULL, NULL, NULL);
    /* Written after the unset: no call, and no touch of the closed handle. */
    int before = ns.calls;
    rec_of(&r, 0, 1);
    assert_true(rd_log_push(w, 0, &r));
    assert_int_equal(rd_log_writer_flush(w, 20000), 0);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(ns.calls, before);
    assert_int_equal(uv_loop_close(&loop), 0);
    rd_log_writer_stop(w);
    assert_int_equal(count_rows(f, ""), 2);
}

/* A store that refuses every insert (a trigger root cannot write through):
 * the rows are counted as failed, flush and stop return, and once the store
 * takes rows again they are written. */
static void test_store_failure_counted(void **state)
{
    struct fix *f = *state;
    struct rd_log_writer *w = start(f, 1, 1u << 20, 4);
    exec(f, "CREATE TRIGGER refuse BEFORE INSERT ON request_log_blocks BEGIN SELECT RAISE(ABORT, 'refused'); END");
    struct producer p = {w, 0, 10, 0};
    produce(&p);
    assert_int_equal(rd_log_writer_flush(w, 20000), 0);
    struct rd_log_writer_stats s;
    rd_log_writer_stats(w, &s);
    assert_int_equal(s.failed, 10);
    assert_int_equal(s.written, 0);
    assert_int_equal(s.pending, 0);
    assert_int_equal(rd_log_last_seq(w), 0);
    exec(f, "DROP TRIGGER refuse");
    p.n = 5;
    produce(&p);
    assert_int_equal(rd_log_writer_flush(w, 20000), 0);
    rd_log_writer_stats(w, &s);
    assert_int_equal(s.written, 5);
    assert_int_equal(s.failed, 10);
    rd_log_writer_stop(w);
    assert_int_equal(count_rows(f, ""), 5);
}

static void test_start_failure(void **state)
{
    (void)state;
    struct rd_log_writer_cfg cfg = {.nslots = 1, .buffer_bytes = 1u << 20};
    struct rd_log_writer *w = (struct rd_log_writer *)&cfg;
    char err[200] = "";
    assert_true(rd_log_writer_start("sqlite:///dev/null/rd.db" /* under a file: not even root */, &cfg, &w, err, sizeof err) < 0);
    assert_null(w);
    assert_true(err[0] != '\0');
    rd_log_writer_stop(NULL);
    assert_int_equal(rd_log_writer_flush(NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_producers_all_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_buffer_drops_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_holds_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_on_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_failure_counted, setup, teardown),
        cmocka_unit_test(test_start_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
