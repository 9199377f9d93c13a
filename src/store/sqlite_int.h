/* Private to src/store/ (and its unit test): the SQLite store's entry points
 * below the generic rd_store_open(). */
#ifndef RD_STORE_SQLITE_INT_H
#define RD_STORE_SQLITE_INT_H

#include <stddef.h>

#include <sqlite3.h>

#include "store/migrations.h"
#include "store/store.h"

/* Opens (creating if needed, parent directory included with mode 0700) the
 * SQLite database at path, sets WAL, synchronous=NORMAL, foreign keys and a
 * 5 s busy timeout, applies rd_migrations[] and fills s->ops and s->impl.
 * path is borrowed. On failure returns RD_ESTORE, RD_EINVAL or -errno, writes
 * a reason into errbuf (may be NULL) and leaves s untouched. Control thread. */
int rd_sqlite_open(const char *path, struct rd_store *s, char *errbuf, size_t errlen);

/* Applies every migration of migs[0..n) whose version is above the database's
 * current one, each in its own BEGIN IMMEDIATE transaction together with its
 * schema_migrations row. migs must be in strictly ascending version order.
 * Returns 0, or RD_ESTORE with "migration <name> failed: <sqlite message>" in
 * errbuf (that migration rolled back, earlier ones kept), or RD_ESTORE when the
 * database's version is newer than the last of migs. db is borrowed. */
int rd_sqlite_migrate(sqlite3 *db, const struct rd_migration *migs, size_t n, char *errbuf, size_t errlen);

/* Highest applied schema version (0 for none) into *out; RD_ESTORE on error. */
int rd_sqlite_read_version(sqlite3 *db, int *out);

/* ---- shared by the store's other files (sqlite_logs.c, ...) ----
 * Each file has its own range of statement slots, prepared on first use and
 * finalized when the store closes. */
enum rd_sqlite_ext {
    RD_SQ_LOG_FIRST = 0, /* sqlite_logs.c: 0..31 */
    RD_SQ_ROLLUP_FIRST = 32, /* sqlite_rollups.c: 32..47 */
    RD_SQLITE_EXT_COUNT = 48
};

sqlite3 *rd_sqlite_db(struct rd_store *s);
/* A buffer of the connection's for the text of one write (empty on
 * return), kept between writes; scratch_done frees it if it grew past
 * what is worth keeping. One user at a time, like the connection. */
struct rd_buf *rd_sqlite_scratch(struct rd_store *s);
void rd_sqlite_scratch_done(struct rd_store *s);
/* The statement of slot id, prepared from sql on first use (the same sql
 * every time for one slot); NULL (logged) when it cannot be prepared. */
sqlite3_stmt *rd_sqlite_stmt(struct rd_store *s, enum rd_sqlite_ext id, const char *sql);
/* Maps the connection's last error to an rd_err (logged); call before
 * rd_sqlite_done. */
int rd_sqlite_err(struct rd_store *s, const char *what);
/* Resets st and clears its bindings. */
void rd_sqlite_done(sqlite3_stmt *st);
/* BEGIN IMMEDIATE / COMMIT (rolled back when it fails) / ROLLBACK if open. */
int rd_sqlite_begin(struct rd_store *s);
int rd_sqlite_commit(struct rd_store *s);
void rd_sqlite_rollback(struct rd_store *s);

/* The request log's ops (sqlite_logs.c); see store.h rd_store_log_*. */
int rd_sqlite_log_put(struct rd_store *s, struct rd_log_rec *const *recs, size_t n);
int rd_sqlite_log_query(struct rd_store *s, const struct rd_log_filter *f, size_t limit, rd_log_rec_fn fn, void *ud);
int64_t rd_sqlite_log_count(struct rd_store *s, const struct rd_log_filter *f);
int rd_sqlite_log_get(struct rd_store *s, const char *id, struct rd_log_rec *out);
int64_t rd_sqlite_log_delete(struct rd_store *s, const struct rd_log_filter *f);

/* The roll-ups' ops (sqlite_rollups.c); see store.h rd_store_rollup_*. */
int rd_sqlite_rollup_add(struct rd_store *s, const struct rd_rollup_rec *recs, size_t n,
                         const struct rd_rollup_fail_rec *fails, size_t nfails, rd_rollup_merge_fn merge, void *ud);
int rd_sqlite_rollup_query(struct rd_store *s, const struct rd_rollup_filter *f, rd_rollup_rec_fn fn, void *ud);
int rd_sqlite_rollup_sums(struct rd_store *s, int32_t res_s, rd_rollup_rec_fn fn, void *ud);
int rd_sqlite_rollup_fail_sums(struct rd_store *s, int32_t res_s, rd_rollup_fail_fn fn, void *ud);
int64_t rd_sqlite_rollup_purge(struct rd_store *s, int32_t res_s, int64_t before_ms);

#endif
