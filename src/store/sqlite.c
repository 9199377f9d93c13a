/* SQLite implementation of struct rd_store_ops.
 *
 * Every query is a prepared statement with bound parameters, prepared once at
 * open time and cached in struct sqlite_store. A statement is always reset
 * before its function returns: a statement left mid-step would hold a read
 * transaction open and stop WAL checkpoints. The store runs on the control
 * thread only (see store.h), so the connection is opened NOMUTEX. */
#include "store/sqlite_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/time.h"

#define BUSY_TIMEOUT_MS 5000

enum stmt_id { ST_PING, ST_VERSION, ST_LIST, ST_GET, ST_INSERT, ST_UPDATE, ST_DELETE, ST_COUNT };

/* Column order read by read_row(); keep the two in step. */
#define PROXY_COLS                                                                                           \
    "id, name, provider, port, bind, upstream_url, description, tags, model, config, desired_status, "      \
    "last_error, created_at, updated_at"

/* In INSERT and UPDATE, ?1..?11 are bound by bind_fields(), ?12 is the
 * timestamp and ?13 the id; GET and DELETE take the id as ?1. */
static const char *const stmt_sql[ST_COUNT] = {
    [ST_PING] = "SELECT 1",
    [ST_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
    [ST_LIST] = "SELECT " PROXY_COLS " FROM proxies ORDER BY id",
    [ST_GET] = "SELECT " PROXY_COLS " FROM proxies WHERE id = ?1",
    [ST_INSERT] = "INSERT INTO proxies (name, provider, port, bind, upstream_url, description, tags, model, "
                  "config, desired_status, last_error, created_at, updated_at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
    [ST_UPDATE] = "UPDATE proxies SET name = ?1, provider = ?2, port = ?3, bind = ?4, upstream_url = ?5, "
                  "description = ?6, tags = ?7, model = ?8, config = ?9, desired_status = ?10, "
                  "last_error = ?11, updated_at = ?12 WHERE id = ?13",
    [ST_DELETE] = "DELETE FROM proxies WHERE id = ?1",
};

struct sqlite_store {
    sqlite3 *db;                  /* owned */
    sqlite3_stmt *st[ST_COUNT];   /* owned, prepared once */
};

static const struct rd_store_ops sqlite_ops;

static struct sqlite_store *impl_of(struct rd_store *s)
{
    return s->impl;
}

/* Turns a failed step into an rd_err. Must run before sqlite3_reset() so the
 * extended code and message still describe this statement. */
static int map_err(sqlite3 *db, const char *what)
{
    int ext = sqlite3_extended_errcode(db);
    if (ext == SQLITE_CONSTRAINT_UNIQUE) {
        /* A user error (name or port taken), not a store failure. */
        rd_debug("store: %s: %s", what, sqlite3_errmsg(db));
        return RD_ECONFLICT;
    }
    if (ext == SQLITE_CONSTRAINT_CHECK || ext == SQLITE_CONSTRAINT_NOTNULL) {
        rd_warn("store: %s: %s", what, sqlite3_errmsg(db));
        return RD_EINVAL;
    }
    rd_error("store: %s failed: %s", what, sqlite3_errmsg(db));
    return RD_ESTORE;
}

static void done(sqlite3_stmt *st)
{
    /* The step's error, if any, was already mapped; reset only repeats it. */
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
}

/* ---- migrations ---------------------------------------------------------- */

static int exec_sql(sqlite3 *db, const char *sql, char *msg, size_t msglen)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        snprintf(msg, msglen, "%s", err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        return RD_ESTORE;
    }
    return 0;
}

int rd_sqlite_read_version(sqlite3 *db, int *out)
{
    sqlite3_stmt *st = NULL;
    int ret = RD_ESTORE;
    if (sqlite3_prepare_v2(db, stmt_sql[ST_VERSION], -1, &st, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW)
        goto out;
    *out = sqlite3_column_int(st, 0);
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

static int record_migration(sqlite3 *db, const struct rd_migration *m)
{
    static const char sql[] = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)";
    sqlite3_stmt *st = NULL;
    int ret = RD_ESTORE;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_bind_int(st, 1, m->version) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, rd_time_wall_ms()) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) == SQLITE_DONE)
        ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

/* One migration in one transaction. The version is re-read under the write
 * lock so two processes opening the same file at once apply it only once. */
static int apply_one(sqlite3 *db, const struct rd_migration *m, char *errbuf, size_t errlen)
{
    char msg[512] = "";
    int cur = 0;
    if (exec_sql(db, "BEGIN IMMEDIATE", msg, sizeof msg) < 0)
        goto fail;
    if (rd_sqlite_read_version(db, &cur) < 0) {
        snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(db));
        goto rollback;
    }
    if (cur >= m->version)
        return exec_sql(db, "ROLLBACK", msg, sizeof msg) < 0 ? RD_ESTORE : 0;
    if (exec_sql(db, m->sql, msg, sizeof msg) < 0)
        goto rollback;
    if (record_migration(db, m) < 0) {
        snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(db));
        goto rollback;
    }
    if (exec_sql(db, "COMMIT", msg, sizeof msg) < 0)
        goto rollback;
    rd_info("store: applied migration %s", m->name);
    return 0;
rollback:
    /* msg already holds the first error; ROLLBACK's own message would hide it. */
    if (sqlite3_get_autocommit(db) == 0) {
        char ignored[64];
        (void)exec_sql(db, "ROLLBACK", ignored, sizeof ignored);
    }
fail:
    rd_seterr(errbuf, errlen, "migration %s failed: %s", m->name, msg);
    rd_error("store: migration %s failed: %s", m->name, msg);
    return RD_ESTORE;
}

int rd_sqlite_migrate(sqlite3 *db, const struct rd_migration *migs, size_t n, char *errbuf, size_t errlen)
{
    char msg[512] = "";
    int latest = 0, cur = 0;
    for (size_t i = 0; i < n; i++) {
        if (migs[i].version <= latest) {
            rd_seterr(errbuf, errlen, "migration %s is out of order (versions must ascend)", migs[i].name);
            return RD_ESTORE;
        }
        latest = migs[i].version;
    }
    if (exec_sql(db,
                 "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
                 msg, sizeof msg) < 0) {
        rd_seterr(errbuf, errlen, "cannot create schema_migrations: %s", msg);
        return RD_ESTORE;
    }
    if (rd_sqlite_read_version(db, &cur) < 0) {
        rd_seterr(errbuf, errlen, "cannot read schema version: %s", sqlite3_errmsg(db));
        return RD_ESTORE;
    }
    if (cur > latest) {
        rd_seterr(errbuf, errlen,
                  "database schema version %d is newer than this rubberduck supports (%d); "
                  "upgrade rubberduck or use another database",
                  cur, latest);
        return RD_ESTORE;
    }
    for (size_t i = 0; i < n; i++) {
        if (migs[i].version <= cur)
            continue;
        int rc = apply_one(db, &migs[i], errbuf, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- open / close -------------------------------------------------------- */

/* mkdir -p of path's directory part, new components mode 0700 (the database
 * describes the user's proxies; nobody else needs to list it). */
static int make_parent_dir(const char *path, char *errbuf, size_t errlen)
{
    char dir[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof dir) {
        rd_seterr(errbuf, errlen, "database path is too long (%zu bytes, max %d)", len, PATH_MAX - 1);
        return RD_EINVAL;
    }
    memcpy(dir, path, len + 1);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0; /* current directory or "/" */
    *slash = '\0';
    for (char *p = dir + 1; ; p++) {
        int last = *p == '\0';
        if (*p != '/' && !last)
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            int err = -errno;
            rd_seterr(errbuf, errlen, "cannot create directory '%s': %s", dir, rd_strerror(err));
            return err;
        }
        if (last)
            return 0;
        *p = '/';
    }
}

static int configure(struct sqlite_store *ss, const char *path, char *errbuf, size_t errlen)
{
    char msg[512] = "";
    sqlite3_stmt *st = NULL;
    int ret = RD_ESTORE;
    /* The busy timeout first: switching to WAL needs a lock another process may hold. */
    if (sqlite3_busy_timeout(ss->db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
        sqlite3_prepare_v2(ss->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rd_seterr(errbuf, errlen, "cannot use database '%s': %s", path, sqlite3_errmsg(ss->db));
        goto out;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (mode == NULL || strcmp(mode, "wal") != 0)
        rd_warn("store: '%s' stays in journal mode %s (WAL unavailable on this file system?)", path,
                mode ? mode : "unknown");
    if (exec_sql(ss->db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", msg, sizeof msg) < 0) {
        rd_seterr(errbuf, errlen, "cannot configure database '%s': %s", path, msg);
        goto out;
    }
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

static int prepare_all(struct sqlite_store *ss, char *errbuf, size_t errlen)
{
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(ss->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &ss->st[i], NULL) !=
            SQLITE_OK) {
            rd_seterr(errbuf, errlen, "cannot prepare statement %d: %s", i, sqlite3_errmsg(ss->db));
            return RD_ESTORE;
        }
    }
    return 0;
}

static void impl_free(struct sqlite_store *ss)
{
    if (ss == NULL)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(ss->st[i]);
    /* All statements are finalized, so close cannot fail with SQLITE_BUSY. */
    if (sqlite3_close(ss->db) != SQLITE_OK)
        rd_error("store: close failed: %s", sqlite3_errmsg(ss->db));
    free(ss);
}

int rd_sqlite_open(const char *path, struct rd_store *s, char *errbuf, size_t errlen)
{
    struct sqlite_store *ss = rd_calloc(1, sizeof *ss);
    int rc = make_parent_dir(path, errbuf, errlen);
    if (rc < 0)
        goto fail;
    rc = sqlite3_open_v2(path, &ss->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rd_seterr(errbuf, errlen, "cannot open database '%s': %s", path,
                  ss->db ? sqlite3_errmsg(ss->db) : sqlite3_errstr(rc));
        rc = RD_ESTORE;
        goto fail;
    }
    sqlite3_extended_result_codes(ss->db, 1);
    if ((rc = configure(ss, path, errbuf, errlen)) < 0 ||
        (rc = rd_sqlite_migrate(ss->db, rd_migrations, rd_migrations_count, errbuf, errlen)) < 0 ||
        (rc = prepare_all(ss, errbuf, errlen)) < 0)
        goto fail;
    s->ops = &sqlite_ops;
    s->impl = ss;
    return 0;
fail:
    impl_free(ss);
    return rc;
}

/* ---- ops ----------------------------------------------------------------- */

static void op_close(struct rd_store *s)
{
    impl_free(impl_of(s));
    s->impl = NULL;
}

static int op_ping(struct rd_store *s)
{
    struct sqlite_store *ss = impl_of(s);
    sqlite3_stmt *st = ss->st[ST_PING];
    int ret = sqlite3_step(st) == SQLITE_ROW ? 0 : map_err(ss->db, "ping");
    done(st);
    return ret;
}

static int op_schema_version(struct rd_store *s)
{
    struct sqlite_store *ss = impl_of(s);
    sqlite3_stmt *st = ss->st[ST_VERSION];
    int ret = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : map_err(ss->db, "schema version");
    done(st);
    return ret;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i); /* NULL for SQL NULL */
    if (t == NULL)
        return NULL;
    return rd_strndup((const char *)t, (size_t)sqlite3_column_bytes(st, i));
}

static void read_row(sqlite3_stmt *st, struct rd_proxy_rec *r)
{
    r->id = sqlite3_column_int64(st, 0);
    r->name = col_dup(st, 1);
    r->provider = col_dup(st, 2);
    r->port = sqlite3_column_int(st, 3);
    r->bind = col_dup(st, 4);
    r->upstream_url = col_dup(st, 5);
    r->description = col_dup(st, 6);
    r->tags_json = col_dup(st, 7);
    r->model = col_dup(st, 8);
    r->config_json = col_dup(st, 9);
    r->desired_status = col_dup(st, 10);
    r->last_error = col_dup(st, 11);
    r->created_at = sqlite3_column_int64(st, 12);
    r->updated_at = sqlite3_column_int64(st, 13);
}

static int op_proxy_list(struct rd_store *s, struct rd_proxy_rec **out, size_t *n)
{
    struct sqlite_store *ss = impl_of(s);
    sqlite3_stmt *st = ss->st[ST_LIST];
    struct rd_proxy_rec *recs = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 8; /* bounded by the 65535 ports the rows can hold */
            recs = rd_realloc(recs, cap * sizeof *recs);
        }
        memset(&recs[count], 0, sizeof recs[count]);
        read_row(st, &recs[count++]);
    }
    if (rc != SQLITE_DONE) {
        int err = map_err(ss->db, "list proxies");
        done(st);
        rd_proxy_recs_free(recs, count);
        return err;
    }
    done(st);
    *out = recs;
    *n = count;
    return 0;
}

static int op_proxy_get(struct rd_store *s, int64_t id, struct rd_proxy_rec *out)
{
    struct sqlite_store *ss = impl_of(s);
    sqlite3_stmt *st = ss->st[ST_GET];
    int ret = 0;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
        ret = map_err(ss->db, "get proxy");
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        read_row(st, out);
    } else {
        ret = rc == SQLITE_DONE ? RD_ENOTFOUND : map_err(ss->db, "get proxy");
    }
out:
    done(st);
    return ret;
}

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* Binds ?1..?11 and the timestamp ?12. Strings are borrowed (SQLITE_STATIC):
 * rec outlives the step, and done() clears the bindings before returning. */
static int bind_fields(sqlite3_stmt *st, const struct rd_proxy_rec *r, int64_t now)
{
    if (bind_text(st, 1, r->name) != SQLITE_OK || bind_text(st, 2, r->provider) != SQLITE_OK ||
        sqlite3_bind_int(st, 3, r->port) != SQLITE_OK || bind_text(st, 4, r->bind) != SQLITE_OK ||
        bind_text(st, 5, r->upstream_url) != SQLITE_OK || bind_text(st, 6, r->description) != SQLITE_OK ||
        bind_text(st, 7, r->tags_json) != SQLITE_OK || bind_text(st, 8, r->model) != SQLITE_OK ||
        bind_text(st, 9, r->config_json) != SQLITE_OK || bind_text(st, 10, r->desired_status) != SQLITE_OK ||
        bind_text(st, 11, r->last_error) != SQLITE_OK || sqlite3_bind_int64(st, 12, now) != SQLITE_OK)
        return -1;
    return 0;
}

static int op_proxy_insert(struct rd_store *s, struct rd_proxy_rec *rec)
{
    struct sqlite_store *ss = impl_of(s);
    sqlite3_stmt *st = ss->st[ST_INSERT];
    int64_t now = rd_time_wall_ms();
    int ret = 0;
    /* One statement is atomic on its own: a constraint failure writes nothing,
     * and AUTOINCREMENT's sequence is rolled back with it. */
    if (bind_fields(st, rec, now) < 0 || sqlite3_step(st) != SQLITE_DONE) {
        ret = map_err(ss->db, "insert proxy");
        goto out;
    }
    rec->id = sqlite3_last_insert_rowid(ss->db);
    rec->created_at = now;
    rec->updated_at = now;
out:
    done(st);
    return ret;
}

static int op_proxy_update(struct rd_store *s, const struct rd_proxy_rec *rec)
{
    struct sqlite_store *ss = impl_of(s);
    sqlite3_stmt *st = ss->st[ST_UPDATE];
    int ret = 0;
    if (bind_fields(st, rec, rd_time_wall_ms()) < 0 || sqlite3_bind_int64(st, 13, rec->id) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        ret = map_err(ss->db, "update proxy");
        goto out;
    }
    /* changes() counts rows matched by WHERE even when no value differs. */
    if (sqlite3_changes(ss->db) == 0)
        ret = RD_ENOTFOUND;
out:
    done(st);
    return ret;
}

static int op_proxy_delete(struct rd_store *s, int64_t id)
{
    struct sqlite_store *ss = impl_of(s);
    sqlite3_stmt *st = ss->st[ST_DELETE];
    int ret = 0;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        ret = map_err(ss->db, "delete proxy");
        goto out;
    }
    if (sqlite3_changes(ss->db) == 0)
        ret = RD_ENOTFOUND;
out:
    done(st);
    return ret;
}

static const struct rd_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = op_close,
    .ping = op_ping,
    .proxy_list = op_proxy_list,
    .proxy_get = op_proxy_get,
    .proxy_insert = op_proxy_insert,
    .proxy_update = op_proxy_update,
    .proxy_delete = op_proxy_delete,
    .schema_version = op_schema_version,
};
