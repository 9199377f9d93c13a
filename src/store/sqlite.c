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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/time.h"

#define BUSY_TIMEOUT_MS 5000

enum stmt_id {
    ST_PING,
    ST_VERSION,
    ST_LIST,
    ST_GET,
    ST_INSERT,
    ST_UPDATE,
    ST_DELETE,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_CACHE_PUT,
    ST_CACHE_DELETE,
    ST_CACHE_CLEAR,
    ST_CACHE_CLEAR_ALL,
    ST_CACHE_PURGE,
    ST_CACHE_LOAD,
    ST_COUNT
};

/* Column order read by read_row(); keep the two in step. */
#define PROXY_COLS                                                                                           \
    "id, name, provider, port, bind, upstream_url, description, tags, model, config, desired_status, "      \
    "last_error, created_at, updated_at"

/* Column order bound by bind_cache() (?1..?22) and read by read_cache(). */
#define CACHE_COLS                                                                                           \
    "proxy_id, cache_key, model, kind, method, path, status, stream, headers, body, marks, input_tokens, "  \
    "output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, upstream_model, finish, "           \
    "created_at, expires_at, ttl_s, hits"

/* In INSERT and UPDATE, ?1..?11 are bound by bind_fields(), ?12 is the
 * timestamp and ?13 the id; GET and DELETE take the id as ?1. */
static const char *const stmt_sql[ST_COUNT] = {
    [ST_PING] = "SELECT COUNT(*) FROM schema_migrations",
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
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    /* An upsert rather than INSERT OR REPLACE: the same statement works on
     * PostgreSQL, and a replace would count as a delete for triggers. */
    [ST_CACHE_PUT] = "INSERT INTO cache_entries (" CACHE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                     "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22) "
                     "ON CONFLICT (proxy_id, cache_key) DO UPDATE SET model = ?3, kind = ?4, method = ?5, "
                     "path = ?6, status = ?7, stream = ?8, headers = ?9, body = ?10, marks = ?11, "
                     "input_tokens = ?12, output_tokens = ?13, cached_tokens = ?14, cache_write_tokens = ?15, "
                     "reasoning_tokens = ?16, upstream_model = ?17, finish = ?18, created_at = ?19, "
                     "expires_at = ?20, ttl_s = ?21, hits = ?22",
    [ST_CACHE_DELETE] = "DELETE FROM cache_entries WHERE proxy_id = ?1 AND cache_key = ?2",
    [ST_CACHE_CLEAR] = "DELETE FROM cache_entries WHERE proxy_id = ?1",
    [ST_CACHE_CLEAR_ALL] = "DELETE FROM cache_entries",
    [ST_CACHE_PURGE] = "DELETE FROM cache_entries WHERE expires_at <= ?1",
    [ST_CACHE_LOAD] = "SELECT " CACHE_COLS " FROM cache_entries WHERE proxy_id = ?1 AND expires_at > ?2 "
                      "ORDER BY created_at DESC, cache_key",
};

struct sqlite_store {
    sqlite3 *db;                  /* owned */
    sqlite3_stmt *st[ST_COUNT];   /* owned, prepared once */
    sqlite3_stmt *ext[RD_SQLITE_EXT_COUNT]; /* the other files' (sqlite_int.h), prepared on first use */
    /* The database file as opened: a file deleted or replaced under the
     * server (its writes would go to an unlinked inode and be lost) fails
     * the ping. have_file is false for an in-memory database. */
    char *path;
    bool have_file;
    dev_t dev;
    ino_t ino;
    struct rd_buf scratch; /* rd_sqlite_scratch */
};

#define SCRATCH_KEEP (1024u * 1024u) /* a scratch buffer larger than this is freed after use */

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
    for (int i = 0; i < RD_SQLITE_EXT_COUNT; i++)
        sqlite3_finalize(ss->ext[i]);
    /* All statements are finalized, so close cannot fail with SQLITE_BUSY. */
    if (sqlite3_close(ss->db) != SQLITE_OK)
        rd_error("store: close failed: %s", sqlite3_errmsg(ss->db));
    free(ss->path);
    rd_buf_free(&ss->scratch);
    free(ss);
}

int rd_sqlite_open(const char *path, struct rd_store *s, char *errbuf, size_t errlen)
{
    struct sqlite_store *ss = rd_calloc(1, sizeof *ss);
    rd_buf_init(&ss->scratch, 0);
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
    struct stat sb;
    if (strcmp(path, ":memory:") != 0 && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        ss->path = rd_strdup(path);
        ss->have_file = true;
        ss->dev = sb.st_dev;
        ss->ino = sb.st_ino;
    }
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

#define APPENDER_CACHE_KIB 128
#define RD_STR_(x) #x
#define RD_STR(x) RD_STR_(x)

static void op_appender(struct rd_store *s)
{
    char msg[200];
    if (exec_sql(impl_of(s)->db, "PRAGMA cache_size=-" RD_STR(APPENDER_CACHE_KIB), msg, sizeof msg) < 0)
        rd_warn("store: cannot shrink the page cache: %s", msg);
}

static int op_ping(struct rd_store *s)
{
    struct sqlite_store *ss = impl_of(s);
    struct stat sb;
    if (ss->have_file && (stat(ss->path, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_dev != ss->dev ||
                          sb.st_ino != ss->ino)) {
        rd_error("store: the database file was removed or replaced while open; writes would be lost");
        return RD_ESTORE;
    }
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

/* ---- the response cache ------------------------------------------------ */

static void key_to_hex(const uint8_t key[RD_STORE_CACHE_KEY_LEN], char hex[2 * RD_STORE_CACHE_KEY_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < RD_STORE_CACHE_KEY_LEN; i++) {
        hex[2 * i] = digits[key[i] >> 4];
        hex[2 * i + 1] = digits[key[i] & 0xf];
    }
    hex[2 * RD_STORE_CACHE_KEY_LEN] = '\0';
}

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The CHECK constraint guarantees the length only; a row edited by hand may
 * still hold other characters. */
static bool hex_to_key(const unsigned char *hex, int len, uint8_t key[RD_STORE_CACHE_KEY_LEN])
{
    if (hex == NULL || len != 2 * RD_STORE_CACHE_KEY_LEN)
        return false;
    for (size_t i = 0; i < RD_STORE_CACHE_KEY_LEN; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static int bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
    /* A zero-length blob must stay a blob (body is NOT NULL): "" is not NULL. */
    return sqlite3_bind_blob64(st, i, n ? p : "", n, SQLITE_STATIC);
}

/* Binds ?1..?22 in CACHE_COLS order. Borrowed (SQLITE_STATIC) as in bind_fields. */
static int bind_cache(sqlite3_stmt *st, const struct rd_cache_rec *r, const char *hex)
{
    int rc = sqlite3_bind_int64(st, 1, r->proxy_id) | sqlite3_bind_text(st, 2, hex, -1, SQLITE_STATIC) |
             bind_text(st, 3, r->model) | bind_text(st, 4, r->kind) | bind_text(st, 5, r->method) |
             bind_text(st, 6, r->path) | sqlite3_bind_int(st, 7, r->status) |
             sqlite3_bind_int(st, 8, r->stream ? 1 : 0) |
             sqlite3_bind_text64(st, 9, r->headers, r->headers_len, SQLITE_STATIC, SQLITE_UTF8) |
             bind_blob(st, 10, r->body, r->body_len) |
             (r->marks_len ? sqlite3_bind_blob64(st, 11, r->marks, r->marks_len, SQLITE_STATIC)
                           : sqlite3_bind_null(st, 11)) |
             sqlite3_bind_int64(st, 12, r->input_tokens) | sqlite3_bind_int64(st, 13, r->output_tokens) |
             sqlite3_bind_int64(st, 14, r->cached_tokens) | sqlite3_bind_int64(st, 15, r->cache_write_tokens) |
             sqlite3_bind_int64(st, 16, r->reasoning_tokens) | bind_text(st, 17, r->upstream_model) |
             bind_text(st, 18, r->finish) | sqlite3_bind_int64(st, 19, r->created_at) |
             sqlite3_bind_int64(st, 20, r->expires_at) | sqlite3_bind_int64(st, 21, r->ttl_s) |
             sqlite3_bind_int64(st, 22, r->hits);
    /* SQLITE_OK is 0, so any failed bind leaves a bit set. */
    return rc == SQLITE_OK ? 0 : -1;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

/* Points r into the current row of ST_CACHE_LOAD (valid until the next step).
 * Returns false for a row that cannot be a cache entry (bad key text). */
static bool read_cache(sqlite3_stmt *st, struct rd_cache_rec *r)
{
    memset(r, 0, sizeof *r);
    r->proxy_id = sqlite3_column_int64(st, 0);
    if (!hex_to_key(sqlite3_column_text(st, 1), sqlite3_column_bytes(st, 1), r->key))
        return false;
    r->model = col_text(st, 2);
    r->kind = col_text(st, 3);
    r->method = col_text(st, 4);
    r->path = col_text(st, 5);
    r->status = sqlite3_column_int(st, 6);
    r->stream = sqlite3_column_int(st, 7) != 0;
    r->headers = col_text(st, 8);
    r->headers_len = (size_t)sqlite3_column_bytes(st, 8);
    /* Text before bytes: sqlite3_column_bytes after _text/_blob gives that form's length. */
    r->body = sqlite3_column_blob(st, 9);
    r->body_len = (size_t)sqlite3_column_bytes(st, 9);
    r->marks = sqlite3_column_blob(st, 10);
    r->marks_len = (size_t)sqlite3_column_bytes(st, 10);
    r->input_tokens = sqlite3_column_int64(st, 11);
    r->output_tokens = sqlite3_column_int64(st, 12);
    r->cached_tokens = sqlite3_column_int64(st, 13);
    r->cache_write_tokens = sqlite3_column_int64(st, 14);
    r->reasoning_tokens = sqlite3_column_int64(st, 15);
    r->upstream_model = col_text(st, 16);
    r->finish = col_text(st, 17);
    r->created_at = sqlite3_column_int64(st, 18);
    r->expires_at = sqlite3_column_int64(st, 19);
    r->ttl_s = sqlite3_column_int64(st, 20);
    r->hits = sqlite3_column_int64(st, 21);
    return true;
}

static int step_done(struct sqlite_store *ss, enum stmt_id id)
{
    sqlite3_stmt *st = ss->st[id];
    int ret = sqlite3_step(st) == SQLITE_DONE ? 0 : RD_ESTORE;
    if (ret < 0)
        rd_error("store: %s failed: %s", stmt_sql[id], sqlite3_errmsg(ss->db));
    done(st);
    return ret;
}

/* One row of a batch: 1 written, 0 refused on its own (constraint), or
 * RD_ESTORE for a failure that dooms the transaction. */
static int put_one(struct sqlite_store *ss, const struct rd_cache_rec *r)
{
    sqlite3_stmt *st = ss->st[ST_CACHE_PUT];
    char hex[2 * RD_STORE_CACHE_KEY_LEN + 1];
    key_to_hex(r->key, hex);
    int ret = 1;
    if (bind_cache(st, r, hex) < 0) {
        ret = map_err(ss->db, "put cache entry");
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        /* A failed statement is rolled back on its own; the transaction goes on. */
        if ((sqlite3_extended_errcode(ss->db) & 0xff) == SQLITE_CONSTRAINT) {
            rd_warn("store: cache entry of proxy %lld skipped: %s", (long long)r->proxy_id, sqlite3_errmsg(ss->db));
            ret = 0;
        } else {
            ret = map_err(ss->db, "put cache entry");
        }
    }
out:
    done(st);
    return ret;
}

static int op_cache_put(struct rd_store *s, const struct rd_cache_rec *recs, size_t n)
{
    struct sqlite_store *ss = impl_of(s);
    if (step_done(ss, ST_BEGIN) < 0)
        return RD_ESTORE;
    int written = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = put_one(ss, &recs[i]);
        if (rc < 0) {
            /* After some errors (a full disk) SQLite has rolled back already. */
            if (sqlite3_get_autocommit(ss->db) == 0)
                (void)step_done(ss, ST_ROLLBACK);
            return RD_ESTORE;
        }
        written += rc;
    }
    if (step_done(ss, ST_COMMIT) < 0) {
        if (sqlite3_get_autocommit(ss->db) == 0)
            (void)step_done(ss, ST_ROLLBACK);
        return RD_ESTORE;
    }
    return written;
}

/* Runs a bound DELETE and returns how many rows went. */
static int delete_rows(struct sqlite_store *ss, sqlite3_stmt *st, int bind_rc, const char *what)
{
    int ret;
    if (bind_rc != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
        ret = map_err(ss->db, what);
    else
        ret = sqlite3_changes(ss->db);
    done(st);
    return ret;
}

static int op_cache_delete(struct rd_store *s, int64_t proxy_id, const uint8_t key[RD_STORE_CACHE_KEY_LEN])
{
    struct sqlite_store *ss = impl_of(s);
    sqlite3_stmt *st = ss->st[ST_CACHE_DELETE];
    char hex[2 * RD_STORE_CACHE_KEY_LEN + 1];
    key_to_hex(key, hex);
    int rc = sqlite3_bind_int64(st, 1, proxy_id) | sqlite3_bind_text(st, 2, hex, -1, SQLITE_STATIC);
    return delete_rows(ss, st, rc, "delete cache entry");
}

static int op_cache_clear(struct rd_store *s, int64_t proxy_id)
{
    struct sqlite_store *ss = impl_of(s);
    if (proxy_id == 0)
        return delete_rows(ss, ss->st[ST_CACHE_CLEAR_ALL], SQLITE_OK, "clear caches");
    sqlite3_stmt *st = ss->st[ST_CACHE_CLEAR];
    return delete_rows(ss, st, sqlite3_bind_int64(st, 1, proxy_id), "clear cache");
}

static int op_cache_purge(struct rd_store *s, int64_t now_ms)
{
    struct sqlite_store *ss = impl_of(s);
    sqlite3_stmt *st = ss->st[ST_CACHE_PURGE];
    return delete_rows(ss, st, sqlite3_bind_int64(st, 1, now_ms), "purge caches");
}

static int op_cache_load(struct rd_store *s, int64_t proxy_id, int64_t now_ms, uint64_t max_entries,
                         uint64_t max_bytes, rd_cache_rec_fn fn, void *ud)
{
    struct sqlite_store *ss = impl_of(s);
    sqlite3_stmt *st = ss->st[ST_CACHE_LOAD];
    uint64_t bytes = 0;
    int given = 0, rc;
    if (sqlite3_bind_int64(st, 1, proxy_id) != SQLITE_OK || sqlite3_bind_int64(st, 2, now_ms) != SQLITE_OK) {
        given = map_err(ss->db, "load cache");
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct rd_cache_rec r;
        if (!read_cache(st, &r)) {
            rd_warn("store: cache row of proxy %lld with a malformed key skipped", (long long)proxy_id);
            continue;
        }
        uint64_t row = (uint64_t)r.body_len + r.headers_len + r.marks_len;
        if ((max_entries && (uint64_t)given >= max_entries) || (max_bytes && row > max_bytes - bytes) ||
            given == INT_MAX)
            break;
        bytes += row;
        given++;
        if (fn(ud, &r) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        given = map_err(ss->db, "load cache");
out:
    done(st);
    return given;
}

static const struct rd_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = op_close,
    .ping = op_ping,
    .appender = op_appender,
    .proxy_list = op_proxy_list,
    .proxy_get = op_proxy_get,
    .proxy_insert = op_proxy_insert,
    .proxy_update = op_proxy_update,
    .proxy_delete = op_proxy_delete,
    .schema_version = op_schema_version,
    .cache_put = op_cache_put,
    .cache_delete = op_cache_delete,
    .cache_clear = op_cache_clear,
    .cache_purge = op_cache_purge,
    .cache_load = op_cache_load,
    .log_put = rd_sqlite_log_put,
    .log_query = rd_sqlite_log_query,
    .log_count = rd_sqlite_log_count,
    .log_get = rd_sqlite_log_get,
    .log_delete = rd_sqlite_log_delete,
    .rollup_add = rd_sqlite_rollup_add,
    .rollup_query = rd_sqlite_rollup_query,
    .rollup_sums = rd_sqlite_rollup_sums,
    .rollup_fail_sums = rd_sqlite_rollup_fail_sums,
    .rollup_purge = rd_sqlite_rollup_purge,
};

/* ---- what the other sqlite_*.c files share (sqlite_int.h) ---- */

sqlite3 *rd_sqlite_db(struct rd_store *s)
{
    return impl_of(s)->db;
}

struct rd_buf *rd_sqlite_scratch(struct rd_store *s)
{
    struct sqlite_store *ss = impl_of(s);
    rd_buf_reset(&ss->scratch);
    return &ss->scratch;
}

void rd_sqlite_scratch_done(struct rd_store *s)
{
    struct sqlite_store *ss = impl_of(s);
    if (ss->scratch.cap > SCRATCH_KEEP)
        rd_buf_free(&ss->scratch);
    else
        rd_buf_reset(&ss->scratch);
}

sqlite3_stmt *rd_sqlite_stmt(struct rd_store *s, enum rd_sqlite_ext id, const char *sql)
{
    struct sqlite_store *ss = impl_of(s);
    if (ss->ext[id] == NULL &&
        sqlite3_prepare_v3(ss->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &ss->ext[id], NULL) != SQLITE_OK) {
        rd_error("store: cannot prepare statement: %s", sqlite3_errmsg(ss->db));
        return NULL;
    }
    return ss->ext[id];
}

int rd_sqlite_err(struct rd_store *s, const char *what)
{
    return map_err(impl_of(s)->db, what);
}

void rd_sqlite_done(sqlite3_stmt *st)
{
    done(st);
}

int rd_sqlite_begin(struct rd_store *s)
{
    return step_done(impl_of(s), ST_BEGIN) < 0 ? RD_ESTORE : 0;
}

int rd_sqlite_commit(struct rd_store *s)
{
    struct sqlite_store *ss = impl_of(s);
    if (step_done(ss, ST_COMMIT) < 0) {
        rd_sqlite_rollback(s);
        return RD_ESTORE;
    }
    return 0;
}

void rd_sqlite_rollback(struct rd_store *s)
{
    struct sqlite_store *ss = impl_of(s);
    /* After some errors (a full disk) SQLite has rolled back already. */
    if (sqlite3_get_autocommit(ss->db) == 0)
        (void)step_done(ss, ST_ROLLBACK);
}
