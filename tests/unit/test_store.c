/* Store tests against real SQLite files in a fresh temporary directory per
 * test. A second raw sqlite3 connection checks what actually reached disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/sqlite_int.h"
#include "store/store.h"
#include "util/err.h"
#include "util/time.h"

/* The schema version a new database reaches: the last embedded migration's. */
#define LATEST (rd_migrations[rd_migrations_count - 1].version)

struct fix {
    char dir[64];
    char db[128];
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
    snprintf(f->dir, sizeof f->dir, "/tmp/rd-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/rd.db", f->dir);
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

static struct rd_store *open_ok(const char *url)
{
    struct rd_store *s = NULL;
    char err[256] = "";
    int rc = rd_store_open(url, &s, err, sizeof err);
    if (rc != 0)
        fail_msg("rd_store_open(%s): %d %s", url, rc, err);
    assert_non_null(s);
    return s;
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return db;
}

/* First column of the first row of sql as an int64 (a bound-free test query). */
static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A record whose strings all point into static storage (the store only
 * borrows them, so it is never freed). The defaulted fields are set, so
 * insert does not allocate into it. */
static struct rd_proxy_rec mk(char *name, int port)
{
    return (struct rd_proxy_rec){.name = name, .provider = "openai", .port = port, .bind = "127.0.0.1",
                                 .tags_json = "[]", .config_json = "{}", .desired_status = "stopped"};
}

static void assert_str_or_null(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_rec_equal(const struct rd_proxy_rec *a, const struct rd_proxy_rec *b)
{
    assert_int_equal(a->id, b->id);
    assert_str_or_null(a->name, b->name);
    assert_str_or_null(a->provider, b->provider);
    assert_int_equal(a->port, b->port);
    assert_str_or_null(a->bind, b->bind);
    assert_str_or_null(a->upstream_url, b->upstream_url);
    assert_str_or_null(a->description, b->description);
    assert_str_or_null(a->tags_json, b->tags_json);
    assert_str_or_null(a->model, b->model);
    assert_str_or_null(a->config_json, b->config_json);
    assert_str_or_null(a->desired_status, b->desired_status);
    assert_str_or_null(a->last_error, b->last_error);
    assert_int_equal(a->created_at, b->created_at);
    assert_int_equal(a->updated_at, b->updated_at);
}

static size_t count_proxies(struct rd_store *s)
{
    struct rd_proxy_rec *recs = NULL;
    size_t n = 99;
    assert_int_equal(rd_store_proxy_list(s, &recs, &n), 0);
    rd_proxy_recs_free(recs, n);
    return n;
}

static void test_open_creates_and_migrates(void **state)
{
    struct fix *f = *state;
    char path[192], wal[200];
    snprintf(path, sizeof path, "%s/a/b/rd.db", f->dir); /* parents missing */
    snprintf(wal, sizeof wal, "%s-wal", path);
    struct rd_store *s = open_ok(path);
    assert_true(file_exists(path));
    assert_true(file_exists(wal));
    char dir[192];
    snprintf(dir, sizeof dir, "%s/a/b", f->dir);
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(rd_store_schema_version(s), LATEST);
    assert_int_equal(rd_store_ping(s), 0);
    assert_string_equal(s->ops->name, "sqlite");

    sqlite3 *db = raw_open(path);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM schema_migrations WHERE version = 1 AND name = '001_init'"),
                     1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('proxies', 'settings')"), 2);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM schema_migrations WHERE version = 2 AND name = '002_cache'"),
                     1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND "
                                 "name IN ('idx_cache_key', 'idx_cache_expiry') AND tbl_name = 'cache_entries'"),
                     2);
    sqlite3_close(db);
    rd_store_close(s);
}

static void test_reopen_is_idempotent(void **state)
{
    struct fix *f = *state;
    struct rd_store *s = open_ok(f->db);
    struct rd_proxy_rec r = mk("keep", 8001);
    assert_int_equal(rd_store_proxy_insert(s, &r), 0);
    rd_store_close(s);
    sqlite3 *db = raw_open(f->db);
    int64_t applied = raw_int(db, "SELECT applied_at FROM schema_migrations WHERE version = 1");
    sqlite3_close(db);

    s = open_ok(f->db);
    assert_int_equal(rd_store_schema_version(s), LATEST);
    struct rd_proxy_rec got = {0};
    assert_int_equal(rd_store_proxy_get(s, r.id, &got), 0);
    assert_string_equal(got.name, "keep");
    rd_proxy_rec_free(&got);
    rd_store_close(s);

    db = raw_open(f->db);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM schema_migrations"), (int64_t)rd_migrations_count);
    assert_int_equal(raw_int(db, "SELECT applied_at FROM schema_migrations WHERE version = 1"), applied);
    sqlite3_close(db);
}

/* The log writer's connection: a small page cache on that connection
 * only, and it still reads and writes. */
static void test_appender_small_cache(void **state)
{
    struct fix *f = *state;
    struct rd_store *a = open_ok(f->db), *b = open_ok(f->db);
    rd_store_appender(a);
    rd_store_appender(NULL); /* NULL-safe */
    assert_int_equal(raw_int(rd_sqlite_db(a), "PRAGMA cache_size"), -128);
    assert_int_equal(raw_int(rd_sqlite_db(b), "PRAGMA cache_size"), -2000);
    struct rd_proxy_rec r = mk("appender", 8002);
    assert_int_equal(rd_store_proxy_insert(a, &r), 0);
    assert_int_equal(rd_store_ping(a), 0);
    rd_store_close(a);
    rd_store_close(b);
}

static void test_round_trip_every_field(void **state)
{
    struct fix *f = *state;
    struct rd_store *s = open_ok(f->db);
    struct rd_proxy_rec full = {
        .name = "утка-🦆", .provider = "anthropic", .port = 65535, .bind = "0.0.0.0",
        .upstream_url = "https://api.example.com/v1", .description = "Größe \"quoted\" 'single' ✓",
        .tags_json = "[\"a\",\"ü\"]", .model = "claude-3", .config_json = "{\"cache\":{\"ttl\":60}}",
        .desired_status = "running", .last_error = "boom: ошибка",
    };
    struct rd_proxy_rec full_in;
    rd_proxy_rec_copy(&full_in, &full); /* owned copy the store may update */
    int64_t before = rd_time_wall_ms();
    assert_int_equal(rd_store_proxy_insert(s, &full_in), 0);
    int64_t after = rd_time_wall_ms();
    assert_true(full_in.id > 0);
    assert_true(full_in.created_at >= before && full_in.created_at <= after);
    assert_int_equal(full_in.updated_at, full_in.created_at);

    /* NULL optional fields stay NULL; NULL defaulted fields get the defaults. */
    struct rd_proxy_rec min;
    rd_proxy_rec_copy(&min, &(struct rd_proxy_rec){.name = "minimal", .provider = "openai", .port = 1});
    assert_int_equal(rd_store_proxy_insert(s, &min), 0);
    assert_string_equal(min.bind, "127.0.0.1");
    assert_string_equal(min.tags_json, "[]");
    assert_string_equal(min.config_json, "{}");
    assert_string_equal(min.desired_status, "stopped");

    struct rd_proxy_rec got = {0};
    assert_int_equal(rd_store_proxy_get(s, full_in.id, &got), 0);
    assert_rec_equal(&got, &full_in);
    assert_string_equal(got.name, "утка-🦆");
    rd_proxy_rec_free(&got);
    assert_int_equal(rd_store_proxy_get(s, min.id, &got), 0);
    assert_rec_equal(&got, &min);
    assert_null(got.upstream_url);
    assert_null(got.description);
    assert_null(got.model);
    assert_null(got.last_error);
    rd_proxy_rec_free(&got);

    struct rd_proxy_rec *recs = NULL;
    size_t n = 0;
    assert_int_equal(rd_store_proxy_list(s, &recs, &n), 0);
    assert_int_equal(n, 2);
    assert_rec_equal(&recs[0], &full_in); /* ordered by id */
    assert_rec_equal(&recs[1], &min);
    rd_proxy_recs_free(recs, n);

    /* Update every column, turning optional ones to NULL. */
    struct rd_proxy_rec upd = {
        .id = full_in.id, .name = "renamed ✓", .provider = "openai", .port = 9000, .bind = "::1",
        .tags_json = "[\"z\"]", .config_json = "{\"x\":1}", .desired_status = "stopped",
    };
    assert_int_equal(rd_store_proxy_update(s, &upd), 0);
    assert_int_equal(rd_store_proxy_get(s, full_in.id, &got), 0);
    upd.created_at = full_in.created_at;
    assert_true(got.updated_at >= full_in.updated_at && got.updated_at <= rd_time_wall_ms());
    upd.updated_at = got.updated_at;
    assert_rec_equal(&got, &upd);
    rd_proxy_rec_free(&got);

    assert_int_equal(rd_store_proxy_delete(s, full_in.id), 0);
    assert_int_equal(rd_store_proxy_get(s, full_in.id, &got), RD_ENOTFOUND);
    assert_int_equal(count_proxies(s), 1);
    rd_proxy_rec_free(&full_in);
    rd_proxy_rec_free(&min);
    rd_store_close(s);
}

static void test_unique_conflicts(void **state)
{
    struct fix *f = *state;
    struct rd_store *s = open_ok(f->db);
    struct rd_proxy_rec a = mk("a", 8001), b = mk("b", 8002);
    assert_int_equal(rd_store_proxy_insert(s, &a), 0);
    assert_int_equal(rd_store_proxy_insert(s, &b), 0);

    struct rd_proxy_rec dup_name = mk("a", 8003);
    assert_int_equal(rd_store_proxy_insert(s, &dup_name), RD_ECONFLICT);
    assert_int_equal(dup_name.id, 0);
    struct rd_proxy_rec dup_port = mk("c", 8001);
    assert_int_equal(rd_store_proxy_insert(s, &dup_port), RD_ECONFLICT);
    assert_int_equal(count_proxies(s), 2);

    /* Update into another proxy's port or name: conflict, row unchanged. */
    struct rd_proxy_rec mv = b;
    mv.port = 8001;
    assert_int_equal(rd_store_proxy_update(s, &mv), RD_ECONFLICT);
    mv = b;
    mv.name = "a";
    assert_int_equal(rd_store_proxy_update(s, &mv), RD_ECONFLICT);
    struct rd_proxy_rec got = {0};
    assert_int_equal(rd_store_proxy_get(s, b.id, &got), 0);
    assert_rec_equal(&got, &b);
    rd_proxy_rec_free(&got);

    /* Updating a row to its own name and port is not a conflict. */
    assert_int_equal(rd_store_proxy_update(s, &b), 0);
    rd_store_close(s);
}

static void test_missing_ids(void **state)
{
    struct fix *f = *state;
    struct rd_store *s = open_ok(f->db);
    struct rd_proxy_rec got = {0};
    assert_int_equal(rd_store_proxy_get(s, 42, &got), RD_ENOTFOUND);
    assert_null(got.name);
    assert_int_equal(rd_store_proxy_delete(s, 42), RD_ENOTFOUND);
    struct rd_proxy_rec r = mk("ghost", 8080);
    r.id = 42;
    assert_int_equal(rd_store_proxy_update(s, &r), RD_ENOTFOUND);
    assert_int_equal(count_proxies(s), 0);
    rd_store_close(s);
}

static void test_invalid_records(void **state)
{
    struct fix *f = *state;
    struct rd_store *s = open_ok(f->db);
    struct rd_proxy_rec r = mk("x", 0);
    assert_int_equal(rd_store_proxy_insert(s, &r), RD_EINVAL);
    r.port = 65536;
    assert_int_equal(rd_store_proxy_insert(s, &r), RD_EINVAL);
    r = mk(NULL, 80);
    assert_int_equal(rd_store_proxy_insert(s, &r), RD_EINVAL);
    r = mk("", 80);
    assert_int_equal(rd_store_proxy_insert(s, &r), RD_EINVAL);
    r = mk("x", 80);
    r.desired_status = "paused";
    assert_int_equal(rd_store_proxy_insert(s, &r), RD_EINVAL);
    assert_int_equal(count_proxies(s), 0);
    rd_store_close(s);
}

static void test_ids_not_reused(void **state)
{
    struct fix *f = *state;
    struct rd_store *s = open_ok(f->db);
    struct rd_proxy_rec a = mk("a", 1001), b = mk("b", 1002), c = mk("c", 1003), d = mk("d", 1004);
    assert_int_equal(rd_store_proxy_insert(s, &a), 0);
    assert_int_equal(rd_store_proxy_insert(s, &b), 0);
    assert_int_equal(rd_store_proxy_delete(s, b.id), 0); /* the highest id */
    assert_int_equal(rd_store_proxy_insert(s, &c), 0);
    assert_true(c.id > b.id);
    assert_int_equal(rd_store_proxy_delete(s, c.id), 0);
    rd_store_close(s);
    s = open_ok(f->db); /* the sequence survives a restart */
    assert_int_equal(rd_store_proxy_insert(s, &d), 0);
    assert_true(d.id > c.id);
    rd_store_close(s);
}

static void test_url_forms(void **state)
{
    struct fix *f = *state;
    char url[256], path[256];
    snprintf(url, sizeof url, "sqlite://%s/abs.db", f->dir); /* dir starts with '/' */
    assert_int_equal(strncmp(url, "sqlite:///", 10), 0);
    rd_store_close(open_ok(url));
    snprintf(path, sizeof path, "%s/abs.db", f->dir);
    assert_true(file_exists(path));

    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(f->dir), 0);
    rd_store_close(open_ok("sqlite://rel/x.db"));
    rd_store_close(open_ok("plain.db"));
    rd_store_close(open_ok("SQLite://upper.db")); /* schemes are case-insensitive */
    assert_int_equal(chdir(cwd), 0);
    snprintf(path, sizeof path, "%s/rel/x.db", f->dir);
    assert_true(file_exists(path));
    snprintf(path, sizeof path, "%s/plain.db", f->dir);
    assert_true(file_exists(path));
    snprintf(path, sizeof path, "%s/upper.db", f->dir);
    assert_true(file_exists(path));

    struct rd_store *s = NULL;
    char err[256];
    assert_int_equal(rd_store_open("postgresql://rd:s3cret@localhost/rd", &s, err, sizeof err), RD_EINVAL);
    assert_string_equal(err, "unsupported database URL scheme 'postgresql' (PostgreSQL support comes later)");
    assert_null(strstr(err, "s3cret"));
    assert_int_equal(rd_store_open("postgres://rd:s3cret@localhost/rd", &s, err, sizeof err), RD_EINVAL);
    assert_null(strstr(err, "s3cret"));
    assert_non_null(strstr(err, "'postgres'"));
    assert_int_equal(rd_store_open("mysql://u:s3cret@h/db", &s, err, sizeof err), RD_EINVAL);
    assert_non_null(strstr(err, "'mysql'"));
    assert_null(strstr(err, "s3cret"));
    assert_int_equal(rd_store_open("", &s, err, sizeof err), RD_EINVAL);
    assert_string_equal(err, "empty database URL");
    assert_int_equal(rd_store_open(NULL, &s, err, sizeof err), RD_EINVAL);
    assert_int_equal(rd_store_open("sqlite://", &s, err, sizeof err), RD_EINVAL);
    assert_int_equal(rd_store_open("", &s, NULL, 0), RD_EINVAL); /* errbuf is optional */
    assert_null(s);
}

static void test_newer_schema_refused(void **state)
{
    struct fix *f = *state;
    rd_store_close(open_ok(f->db));
    sqlite3 *db = raw_open(f->db);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_migrations VALUES (999, '999_future', 0)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    struct rd_store *s = NULL;
    char err[256] = "";
    assert_int_equal(rd_store_open(f->db, &s, err, sizeof err), RD_ESTORE);
    assert_null(s);
    assert_non_null(strstr(err, "999"));
    assert_non_null(strstr(err, "newer"));
}

static void test_not_a_database(void **state)
{
    struct fix *f = *state;
    FILE *fp = fopen(f->db, "w");
    assert_non_null(fp);
    assert_true(fputs("this is not an sqlite file, just enough bytes to fill a header page...", fp) >= 0);
    assert_int_equal(fclose(fp), 0);
    struct rd_store *s = NULL;
    char err[256] = "";
    assert_int_equal(rd_store_open(f->db, &s, err, sizeof err), RD_ESTORE);
    assert_null(s);
    assert_non_null(strstr(err, "not a database"));
}

static void test_migration_failure_rolls_back(void **state)
{
    struct fix *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    const struct rd_migration bad[] = {
        {1, "001_ok", "CREATE TABLE a (x INTEGER);"},
        {2, "002_bad", "CREATE TABLE b (y INTEGER);\nINSERT INTO nope VALUES (1);"},
    };
    char err[256] = "";
    assert_int_equal(rd_sqlite_migrate(db, bad, 2, err, sizeof err), RD_ESTORE);
    assert_non_null(strstr(err, "002_bad"));
    assert_non_null(strstr(err, "no such table: nope"));
    int v = -1;
    assert_int_equal(rd_sqlite_read_version(db, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'a'"), 1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'"), 0);
    assert_int_not_equal(sqlite3_get_autocommit(db), 0); /* no transaction left open */

    /* Fixed migration applies on the next run; 001 is not re-applied. */
    const struct rd_migration good[] = {
        {1, "001_ok", "CREATE TABLE a (x INTEGER);"},
        {2, "002_fixed", "CREATE TABLE b (y INTEGER);"},
    };
    assert_int_equal(rd_sqlite_migrate(db, good, 2, err, sizeof err), 0);
    assert_int_equal(rd_sqlite_read_version(db, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM schema_migrations"), 2);
    assert_int_equal(rd_sqlite_migrate(db, good, 2, err, sizeof err), 0);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM schema_migrations"), 2);

    /* Only 001 known but the database is at 2: refused. */
    assert_int_equal(rd_sqlite_migrate(db, good, 1, err, sizeof err), RD_ESTORE);
    assert_non_null(strstr(err, "newer"));

    const struct rd_migration unordered[] = {{2, "002_x", "SELECT 1;"}, {1, "001_y", "SELECT 1;"}};
    assert_int_equal(rd_sqlite_migrate(db, unordered, 2, err, sizeof err), RD_ESTORE);
    assert_non_null(strstr(err, "out of order"));
    sqlite3_close(db);
}

static void test_rec_copy_is_deep(void **state)
{
    (void)state;
    struct rd_proxy_rec src = {0};
    rd_proxy_rec_copy(&src, &(struct rd_proxy_rec){.id = 7, .name = "n", .provider = "p", .port = 5,
                                                    .description = "d", .created_at = 1, .updated_at = 2});
    struct rd_proxy_rec dst;
    rd_proxy_rec_copy(&dst, &src);
    assert_ptr_not_equal(dst.name, src.name);
    rd_proxy_rec_free(&src);
    assert_null(src.name);
    assert_string_equal(dst.name, "n"); /* still valid after src is freed (ASan checks) */
    assert_string_equal(dst.description, "d");
    assert_null(dst.model);
    assert_int_equal(dst.id, 7);
    assert_int_equal(dst.updated_at, 2);
    rd_proxy_rec_free(&dst);
    rd_proxy_rec_free(NULL);
    rd_proxy_recs_free(NULL, 3);
    rd_store_close(NULL);
}


/* ---- cache_entries ---- */

/* A cache row of proxy pid whose key is all byte k, created at `created`,
 * with a 10-byte body: strings static, so the store only borrows them. */
static struct rd_cache_rec mk_cache(int64_t pid, uint8_t k, int64_t created, int64_t expires)
{
    struct rd_cache_rec r = {.proxy_id = pid, .model = "gpt-4o", .kind = "chat", .method = "POST",
                             .path = "/v1/chat/completions", .status = 200, .headers = "[]", .headers_len = 2,
                             .body = "0123456789", .body_len = 10, .upstream_model = "", .finish = "",
                             .created_at = created, .expires_at = expires, .ttl_s = 60};
    memset(r.key, k, sizeof r.key);
    return r;
}

struct loaded {
    size_t n;
    uint8_t first_byte[16]; /* key[0] of each row, in load order */
    struct rd_cache_rec last;
    char body[64], marks[64], headers[64], model[32], kind[16], path[64], upstream_model[32], finish[16];
    int stop_after; /* return 1 after this many rows (0: never) */
};

static int on_row(void *ud, const struct rd_cache_rec *r)
{
    struct loaded *l = ud;
    if (l->n < sizeof l->first_byte)
        l->first_byte[l->n] = r->key[0];
    l->n++;
    /* Copy what the pointers show: they are valid only during the call. */
    l->last = *r;
    assert_true(r->body_len < sizeof l->body && r->marks_len < sizeof l->marks && r->headers_len < sizeof l->headers);
    if (r->body_len) /* an empty body may come as NULL */
        memcpy(l->body, r->body, r->body_len);
    if (r->marks_len)
        memcpy(l->marks, r->marks, r->marks_len);
    memcpy(l->headers, r->headers, r->headers_len);
    snprintf(l->model, sizeof l->model, "%s", r->model);
    snprintf(l->kind, sizeof l->kind, "%s", r->kind);
    snprintf(l->path, sizeof l->path, "%s", r->path);
    snprintf(l->upstream_model, sizeof l->upstream_model, "%s", r->upstream_model);
    snprintf(l->finish, sizeof l->finish, "%s", r->finish);
    return l->stop_after && (int)l->n >= l->stop_after;
}

static int64_t add_proxy(struct rd_store *s, char *name, int port)
{
    struct rd_proxy_rec r = mk(name, port);
    assert_int_equal(rd_store_proxy_insert(s, &r), 0);
    return r.id;
}

static void test_cache_round_trip(void **state)
{
    struct fix *f = *state;
    struct rd_store *s = open_ok(f->db);
    int64_t pid = add_proxy(s, "c", 8100);
    static const char body[] = "data: {\"a\":1}\n\n\0data: [DONE]\n\n"; /* an embedded NUL stays */
    static const uint8_t marks[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    struct rd_cache_rec r = mk_cache(pid, 0xab, 1000, 5000);
    r.model = "claude-3";
    r.kind = "embedding";
    r.path = "/v1/messages";
    r.status = 201;
    r.stream = true;
    r.headers = "[[\"content-type\",\"text/event-stream\"]]";
    r.headers_len = strlen(r.headers);
    r.body = body;
    r.body_len = sizeof body - 1;
    r.marks = marks;
    r.marks_len = sizeof marks;
    r.input_tokens = 1, r.output_tokens = 2, r.cached_tokens = 3, r.cache_write_tokens = 4, r.reasoning_tokens = 5;
    r.upstream_model = "claude-3-20240229";
    r.finish = "length";
    r.ttl_s = 4, r.hits = 9;
    assert_int_equal(rd_store_cache_put(s, &r, 1), 1);

    struct loaded l = {0};
    assert_int_equal(rd_store_cache_load(s, pid, 4999, 0, 0, on_row, &l), 1);
    assert_memory_equal(l.last.key, r.key, sizeof r.key);
    assert_int_equal(l.last.proxy_id, pid);
    assert_string_equal(l.model, "claude-3");
    assert_string_equal(l.kind, "embedding");
    assert_string_equal(l.path, "/v1/messages");
    assert_int_equal(l.last.status, 201);
    assert_true(l.last.stream);
    assert_int_equal(l.last.headers_len, r.headers_len);
    assert_memory_equal(l.headers, r.headers, r.headers_len);
    assert_int_equal(l.last.body_len, r.body_len);
    assert_memory_equal(l.body, body, r.body_len);
    assert_int_equal(l.last.marks_len, sizeof marks);
    assert_memory_equal(l.marks, marks, sizeof marks);
    assert_int_equal(l.last.input_tokens + 10 * l.last.output_tokens + 100 * l.last.cached_tokens +
                         1000 * l.last.cache_write_tokens + 10000 * l.last.reasoning_tokens,
                     54321);
    assert_string_equal(l.upstream_model, "claude-3-20240229");
    assert_string_equal(l.finish, "length");
    assert_int_equal(l.last.created_at, 1000);
    assert_int_equal(l.last.expires_at, 5000);
    assert_int_equal(l.last.ttl_s, 4);
    assert_int_equal(l.last.hits, 9);

    /* Expired at now: not loaded. Another proxy's rows are not either. */
    l = (struct loaded){0};
    assert_int_equal(rd_store_cache_load(s, pid, 5000, 0, 0, on_row, &l), 0);
    assert_int_equal(rd_store_cache_load(s, pid + 1, 0, 0, 0, on_row, &l), 0);

    /* The key is stored as 64 lower-case hex. */
    sqlite3 *db = raw_open(f->db);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM cache_entries WHERE cache_key = "
                                 "'abababababababababababababababababababababababababababababababab'"),
                     1);
    sqlite3_close(db);
    rd_store_close(s);
}

static void test_cache_upsert_and_empty_body(void **state)
{
    struct fix *f = *state;
    struct rd_store *s = open_ok(f->db);
    int64_t pid = add_proxy(s, "c", 8100);
    struct rd_cache_rec r[2] = {mk_cache(pid, 1, 1000, 9000), mk_cache(pid, 1, 2000, 9000)};
    r[1].body = NULL;
    r[1].body_len = 0;
    /* Same key twice in one batch: the later one wins. */
    assert_int_equal(rd_store_cache_put(s, r, 2), 2);
    struct loaded l = {0};
    assert_int_equal(rd_store_cache_load(s, pid, 0, 0, 0, on_row, &l), 1);
    assert_int_equal(l.last.created_at, 2000);
    assert_int_equal(l.last.body_len, 0);
    assert_int_equal(l.last.marks_len, 0);
    rd_store_close(s);
}

static void test_cache_bad_rows(void **state)
{
    struct fix *f = *state;
    struct rd_store *s = open_ok(f->db);
    int64_t pid = add_proxy(s, "c", 8100);
    /* A row of a proxy that is gone is skipped; the rest of the batch is written. */
    struct rd_cache_rec r[3] = {mk_cache(pid, 1, 1, 9000), mk_cache(pid + 50, 2, 1, 9000), mk_cache(pid, 3, 1, 9000)};
    assert_int_equal(rd_store_cache_put(s, r, 3), 2);
    struct loaded l = {0};
    assert_int_equal(rd_store_cache_load(s, pid, 0, 0, 0, on_row, &l), 2);

    /* Invalid records: nothing of the batch is written. */
    struct rd_cache_rec bad[2] = {mk_cache(pid, 4, 1, 9000), mk_cache(pid, 5, 1, 9000)};
    bad[1].ttl_s = 0;
    assert_int_equal(rd_store_cache_put(s, bad, 2), RD_EINVAL);
    bad[1] = mk_cache(pid, 5, 1, 9000);
    bad[1].status = 99;
    assert_int_equal(rd_store_cache_put(s, bad, 2), RD_EINVAL);
    bad[1] = mk_cache(pid, 5, 1, 9000);
    bad[1].model = NULL;
    assert_int_equal(rd_store_cache_put(s, bad, 2), RD_EINVAL);
    l = (struct loaded){0};
    assert_int_equal(rd_store_cache_load(s, pid, 0, 0, 0, on_row, &l), 2);
    assert_int_equal(rd_store_cache_put(s, NULL, 0), 0);

    /* A row edited by hand into a non-hex key is skipped on load. */
    sqlite3 *db = raw_open(f->db);
    assert_int_equal(sqlite3_exec(db, "UPDATE cache_entries SET cache_key = replace(cache_key, '0', 'z') "
                                      "WHERE cache_key LIKE '01%'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    l = (struct loaded){0};
    assert_int_equal(rd_store_cache_load(s, pid, 0, 0, 0, on_row, &l), 1);
    assert_int_equal(l.first_byte[0], 3);
    rd_store_close(s);
}

static void test_cache_delete_clear_purge_cascade(void **state)
{
    struct fix *f = *state;
    struct rd_store *s = open_ok(f->db);
    int64_t a = add_proxy(s, "a", 8100), b = add_proxy(s, "b", 8101);
    struct rd_cache_rec r[5] = {mk_cache(a, 1, 1, 100), mk_cache(a, 2, 1, 200), mk_cache(a, 3, 1, 300),
                                mk_cache(b, 1, 1, 100), mk_cache(b, 2, 1, 900)};
    assert_int_equal(rd_store_cache_put(s, r, 5), 5);
    struct loaded l = {0};

    /* Keys are per proxy: deleting a's key 1 leaves b's. */
    assert_int_equal(rd_store_cache_delete(s, a, r[0].key), 1);
    assert_int_equal(rd_store_cache_delete(s, a, r[0].key), 0);
    assert_int_equal(rd_store_cache_load(s, b, 0, 0, 0, on_row, &l), 2);

    assert_int_equal(rd_store_cache_purge(s, 200), 2); /* a's key 2 and b's key 1: expires_at <= now */
    l = (struct loaded){0};
    assert_int_equal(rd_store_cache_load(s, a, 0, 0, 0, on_row, &l), 1);
    assert_int_equal(l.first_byte[0], 3);

    assert_int_equal(rd_store_cache_clear(s, a), 1);
    assert_int_equal(rd_store_cache_load(s, a, 0, 0, 0, on_row, &l), 0);
    assert_int_equal(rd_store_cache_put(s, r, 3), 3);
    assert_int_equal(rd_store_cache_clear(s, 0), 4); /* every proxy */

    /* Deleting a proxy deletes its entries (ON DELETE CASCADE). */
    assert_int_equal(rd_store_cache_put(s, r, 5), 5);
    assert_int_equal(rd_store_proxy_delete(s, a), 0);
    sqlite3 *db = raw_open(f->db);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM cache_entries"), 2);
    sqlite3_close(db);
    rd_store_close(s);
}

static void test_cache_load_limits_newest_first(void **state)
{
    struct fix *f = *state;
    struct rd_store *s = open_ok(f->db);
    int64_t pid = add_proxy(s, "c", 8100);
    /* key byte i created at 100 * i; each row counts 10 + 2 = 12 bytes. */
    struct rd_cache_rec r[6];
    for (uint8_t i = 0; i < 6; i++)
        r[i] = mk_cache(pid, i, 100 * i, 10000);
    r[4].expires_at = 50; /* expired: never given, not counted */
    assert_int_equal(rd_store_cache_put(s, r, 6), 6);

    struct loaded l = {0};
    assert_int_equal(rd_store_cache_load(s, pid, 60, 0, 0, on_row, &l), 5);
    assert_memory_equal(l.first_byte, ((uint8_t[]){5, 3, 2, 1, 0}), 5);

    l = (struct loaded){0};
    assert_int_equal(rd_store_cache_load(s, pid, 60, 2, 0, on_row, &l), 2);
    assert_memory_equal(l.first_byte, ((uint8_t[]){5, 3}), 2);

    l = (struct loaded){0};
    assert_int_equal(rd_store_cache_load(s, pid, 60, 0, 36, on_row, &l), 3); /* exactly 3 rows fit */
    assert_memory_equal(l.first_byte, ((uint8_t[]){5, 3, 2}), 3);
    l = (struct loaded){0};
    assert_int_equal(rd_store_cache_load(s, pid, 60, 0, 35, on_row, &l), 2);
    assert_int_equal(rd_store_cache_load(s, pid, 60, 0, 11, on_row, &l), 0);

    l = (struct loaded){.stop_after = 1};
    assert_int_equal(rd_store_cache_load(s, pid, 60, 0, 0, on_row, &l), 1);
    rd_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_and_migrates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appender_small_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unique_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_not_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_failure_rolls_back, setup, teardown),
        cmocka_unit_test(test_rec_copy_is_deep),
        cmocka_unit_test_setup_teardown(test_cache_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_upsert_and_empty_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_bad_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_delete_clear_purge_cascade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_load_limits_newest_first, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
