/* `rubberduck cassette export|import --proxy NAME FILE` (cli/cassette.h). */
#include "cli/cassette.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/config.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/json.h"

/* The admin API's body cap (api.c: a configuration document is the largest
 * body it takes): an import larger than this goes in several requests,
 * split at line boundaries. */
#define IMPORT_CHUNK RD_CONFIG_MAX_DOC_BYTES
/* What is read of a cassette file to import, and of a JSON answer. */
#define FILE_MAX (4ull * 1024u * 1024u * 1024u)
#define ANSWER_MAX (64u * 1024u * 1024u)

const char rd_cli_cassette_usage[] = "Usage: rubberduck cassette export --proxy NAME FILE\n"
                                     "       rubberduck cassette import --proxy NAME FILE\n"
                                     "\n"
                                     "Writes a proxy's cached responses to a cassette file (JSON lines, one entry\n"
                                     "per line, bodies and streams included, no secrets), or loads one into the\n"
                                     "proxy's cache, through a running server's admin API. FILE - is stdout or\n"
                                     "stdin. An imported entry that has expired gets its TTL again from the\n"
                                     "import; malformed lines are reported as FILE:LINE and make the command\n"
                                     "exit 1.\n"
                                     "\n"
                                     "Options:\n"
                                     "  --proxy NAME      the proxy's name (or its numeric id)\n"
                                     "  --admin URL       the admin API (RUBBERDUCK_ADMIN_URL; else http:// and\n"
                                     "                    RUBBERDUCK_LISTEN; else http://127.0.0.1:9000)\n"
                                     "  --data-dir DIR    where admin.token is read when RUBBERDUCK_ADMIN_TOKEN is\n"
                                     "                    not set (RUBBERDUCK_DATA_DIR, default ./data)\n";

struct client {
    CURL *h;
    char base[512]; /* the admin URL, without a trailing '/' */
    char auth[300]; /* "Authorization: Bearer <token>" */
};

struct cli_args {
    const char *verb, *proxy, *file, *admin, *data_dir;
};

/* ---- arguments ---- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("rubberduck: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", rd_cli_cassette_usage);
    return 2;
}

static int parse_args(int argc, char **argv, struct cli_args *a)
{
    if (argc < 1)
        return usage_error("cassette needs %s", "export or import");
    a->verb = argv[0];
    if (strcmp(a->verb, "export") != 0 && strcmp(a->verb, "import") != 0)
        return usage_error("unknown cassette command '%s'", a->verb);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char **slot = strcmp(s, "--proxy") == 0      ? &a->proxy
                            : strcmp(s, "--admin") == 0    ? &a->admin
                            : strcmp(s, "--data-dir") == 0 ? &a->data_dir
                                                           : NULL;
        if (slot) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0')
                return usage_error("%s needs a value", s);
            *slot = argv[++i];
        } else if (strncmp(s, "--", 2) == 0 || a->file) {
            return usage_error("unexpected argument '%s'", s);
        } else {
            a->file = s;
        }
    }
    if (a->proxy == NULL)
        return usage_error("%s is required", "--proxy NAME");
    if (a->file == NULL || a->file[0] == '\0')
        return usage_error("%s is required", "FILE");
    return 0;
}

/* The admin URL: --admin, RUBBERDUCK_ADMIN_URL, RUBBERDUCK_LISTEN (a wildcard
 * address is reached on loopback), or the server's default. */
static int admin_url(const struct cli_args *a, char *out, size_t len)
{
    const char *env = getenv("RUBBERDUCK_ADMIN_URL");
    const char *listen = getenv("RUBBERDUCK_LISTEN");
    int n;
    if (a->admin) {
        n = snprintf(out, len, "%s", a->admin);
    } else if (env && env[0]) {
        n = snprintf(out, len, "%s", env);
    } else if (listen && listen[0]) {
        const char *host = "", *rest = listen;
        if (strncmp(listen, "0.0.0.0:", 8) == 0) {
            host = "127.0.0.1:";
            rest = listen + 8;
        } else if (strncmp(listen, "[::]:", 5) == 0) {
            host = "[::1]:";
            rest = listen + 5;
        }
        n = snprintf(out, len, "http://%s%s", host, rest);
    } else {
        n = snprintf(out, len, "http://127.0.0.1:9000");
    }
    if (n < 0 || (size_t)n >= len) {
        fprintf(stderr, "rubberduck: the admin URL is too long\n");
        return RD_EINVAL;
    }
    if (strncmp(out, "http://", 7) != 0 && strncmp(out, "https://", 8) != 0) {
        fprintf(stderr, "rubberduck: the admin URL must start with http:// or https:// (got '%s')\n", out);
        return RD_EINVAL;
    }
    size_t l = strlen(out);
    while (l > 0 && out[l - 1] == '/')
        out[--l] = '\0';
    return 0;
}

/* The token: RUBBERDUCK_ADMIN_TOKEN, else DIR/admin.token (as serve does). */
static int admin_token(const struct cli_args *a, char *out, size_t len)
{
    const char *env = getenv("RUBBERDUCK_ADMIN_TOKEN");
    if (env && env[0]) {
        if (strlen(env) >= len) {
            fprintf(stderr, "rubberduck: RUBBERDUCK_ADMIN_TOKEN is too long\n");
            return RD_EINVAL;
        }
        snprintf(out, len, "%s", env);
        return 0;
    }
    const char *dir = a->data_dir ? a->data_dir : getenv("RUBBERDUCK_DATA_DIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "./data";
    char path[4096];
    snprintf(path, sizeof path, "%s/admin.token", dir);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        fprintf(stderr, "rubberduck: no admin token: set RUBBERDUCK_ADMIN_TOKEN or --data-dir (cannot read %s: %s)\n",
                path, strerror(errno));
        return RD_EINVAL;
    }
    bool ok = fgets(out, (int)len, f) != NULL;
    fclose(f);
    if (ok)
        out[strcspn(out, "\r\n")] = '\0';
    if (!ok || out[0] == '\0') {
        fprintf(stderr, "rubberduck: %s is empty\n", path);
        return RD_EINVAL;
    }
    return 0;
}

/* ---- HTTP ---- */

/* Where an answer's body goes: a 200 export to a file, everything else
 * (JSON answers, errors) to buf. */
struct sink {
    CURL *h;
    FILE *file; /* NULL: buf */
    struct rd_buf buf;
    uint64_t bytes, lines;
    bool failed_write;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    if (s->file && status == 200) {
        if (fwrite(p, 1, len, s->file) != len) {
            s->failed_write = true;
            return 0;
        }
        s->bytes += len;
        for (size_t i = 0; i < len; i++)
            s->lines += p[i] == '\n';
        return len;
    }
    return rd_buf_append(&s->buf, p, len) == 0 ? len : 0;
}

/* Sends one request; the body (if any) is body[0..len). Returns the HTTP
 * status, or -1 after printing why no answer came. */
static long request(struct client *c, const char *method, const char *path, const char *body, size_t len,
                    struct sink *s)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", c->base, path);
    struct curl_slist *hdrs = curl_slist_append(NULL, c->auth);
    if (body)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/x-ndjson");
    curl_easy_reset(c->h);
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    /* No overall timeout (a large export takes its time), but a stalled one ends. */
    curl_easy_setopt(c->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c->h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    s->h = c->h;
    CURLcode rc = curl_easy_perform(c->h);
    curl_slist_free_all(hdrs);
    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        if (s->failed_write)
            fprintf(stderr, "rubberduck: cannot write the cassette: %s\n", strerror(errno));
        else if (status == 0)
            fprintf(stderr, "rubberduck: cannot reach the admin API at %s: %s\n", c->base, curl_easy_strerror(rc));
        else
            fprintf(stderr, "rubberduck: %s %s: the answer was cut: %s\n", method, path, curl_easy_strerror(rc));
        return -1;
    }
    return status;
}

/* Prints the API's {"error":{"message"}} for a failed call. */
static void print_api_error(const char *what, long status, const struct rd_buf *b)
{
    struct json_object *o = NULL;
    const char *msg = NULL;
    if (b->len && rd_json_parse(b->data, b->len, ANSWER_MAX, &o, NULL) == 0)
        msg = rd_json_get_str(rd_json_get(o, "error"), "message");
    if (status == 401)
        fprintf(stderr, "rubberduck: %s: the admin token was refused (HTTP 401); check RUBBERDUCK_ADMIN_TOKEN\n", what);
    else
        fprintf(stderr, "rubberduck: %s: %s (HTTP %ld)\n", what, msg ? msg : "unexpected answer", status);
    json_object_put(o);
}

/* A JSON object answer with status 200, or NULL after printing why not. */
static struct json_object *call_json(struct client *c, const char *method, const char *path, const char *body,
                                     size_t len, const char *what)
{
    struct sink s = {0};
    rd_buf_init(&s.buf, ANSWER_MAX);
    struct json_object *o = NULL;
    long status = request(c, method, path, body, len, &s);
    if (status == 200 && rd_json_parse(s.buf.data ? s.buf.data : "", s.buf.len, ANSWER_MAX, &o, NULL) == 0 &&
        json_object_is_type(o, json_type_object)) {
        rd_buf_free(&s.buf);
        return o;
    }
    json_object_put(o);
    if (status >= 0)
        print_api_error(what, status, &s.buf);
    rd_buf_free(&s.buf);
    return NULL;
}

/* The id of the proxy named name (or whose id it is); -1 after printing why not. */
static long long resolve_proxy(struct client *c, const char *name)
{
    struct json_object *o = call_json(c, "GET", "/api/v1/proxies", NULL, 0, "listing the proxies");
    if (o == NULL)
        return -1;
    long long id = -1;
    struct json_object *arr = rd_json_get(o, "proxies");
    size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    for (size_t i = 0; i < n && id < 0; i++) {
        struct json_object *p = json_object_array_get_idx(arr, i);
        long long pid = (long long)rd_json_get_int(p, "id", -1);
        const char *pname = rd_json_get_str(p, "name");
        char idtext[24];
        snprintf(idtext, sizeof idtext, "%lld", pid);
        if ((pname && strcmp(pname, name) == 0) || strcmp(idtext, name) == 0)
            id = pid;
    }
    json_object_put(o);
    if (id < 0)
        fprintf(stderr, "rubberduck: no proxy named '%s' on %s\n", name, c->base);
    return id;
}

/* ---- export ---- */

static int do_export(struct client *c, long long id, const struct cli_args *a)
{
    bool to_stdout = strcmp(a->file, "-") == 0;
    char tmp[4200];
    FILE *f = stdout;
    /* A cut export must not replace a good file: write aside, then rename. */
    if (!to_stdout) {
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", a->file, (long)getpid());
        f = fopen(tmp, "we");
        if (f == NULL) {
            fprintf(stderr, "rubberduck: cannot create %s: %s\n", tmp, strerror(errno));
            return 1;
        }
    }
    char path[96];
    snprintf(path, sizeof path, "/api/v1/proxies/%lld/cache/export", id);
    struct sink s = {.file = f};
    rd_buf_init(&s.buf, ANSWER_MAX);
    long status = request(c, "GET", path, NULL, 0, &s);
    bool ok = status == 200;
    if (status >= 0 && status != 200)
        print_api_error("export", status, &s.buf);
    rd_buf_free(&s.buf);
    if (!to_stdout) {
        if (fclose(f) != 0 && ok) {
            fprintf(stderr, "rubberduck: cannot write %s: %s\n", tmp, strerror(errno));
            ok = false;
        }
        if (ok && rename(tmp, a->file) != 0) {
            fprintf(stderr, "rubberduck: cannot rename %s to %s: %s\n", tmp, a->file, strerror(errno));
            ok = false;
        }
        if (!ok)
            (void)unlink(tmp);
    } else if (fflush(stdout) != 0) {
        ok = false;
    }
    if (!ok)
        return 1;
    fprintf(to_stdout ? stderr : stdout, "exported %llu entries of proxy %s to %s (%llu bytes)\n",
            (unsigned long long)s.lines, a->proxy, a->file, (unsigned long long)s.bytes);
    return 0;
}

/* ---- import ---- */

static int read_file(const char *name, struct rd_buf *out)
{
    FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "re");
    if (f == NULL) {
        fprintf(stderr, "rubberduck: cannot open %s: %s\n", name, strerror(errno));
        return 1;
    }
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (rd_buf_append(out, chunk, n) != 0) {
            fprintf(stderr, "rubberduck: %s is larger than %llu bytes\n", name, (unsigned long long)FILE_MAX);
            rc = 1;
        }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "rubberduck: cannot read %s: %s\n", name, strerror(errno));
        rc = 1;
    }
    if (f != stdin)
        fclose(f);
    return rc;
}

struct import_totals {
    long long imported, skipped, errors;
};

/* Adds one answer to the totals and prints its errors as FILE:LINE (the
 * server numbers lines within the chunk). */
static void add_answer(struct json_object *o, const char *file, size_t line0, struct import_totals *t)
{
    t->imported += rd_json_get_int(o, "imported", 0);
    t->skipped += rd_json_get_int(o, "skipped", 0);
    struct json_object *errs = rd_json_get(o, "errors");
    size_t n = json_object_is_type(errs, json_type_array) ? json_object_array_length(errs) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(errs, i);
        const char *msg = rd_json_get_str(e, "message");
        fprintf(stderr, "%s:%lld: %s\n", file, (long long)line0 + rd_json_get_int(e, "line", 0), msg ? msg : "error");
        t->errors++;
    }
}

/* Posts data in chunks of whole lines under the API's body cap. */
static int do_import(struct client *c, long long id, const struct cli_args *a)
{
    struct rd_buf data;
    rd_buf_init(&data, (size_t)FILE_MAX);
    if (read_file(a->file, &data) != 0) {
        rd_buf_free(&data);
        return 1;
    }
    char path[96];
    snprintf(path, sizeof path, "/api/v1/proxies/%lld/cache/import", id);
    struct import_totals t = {0};
    int rc = 0;
    size_t off = 0, line0 = 0;
    while (rc == 0 && off < data.len) {
        size_t end = off, lines = 0;
        /* Whole lines while they fit; a first line over the cap alone is an error. */
        while (end < data.len) {
            const char *nl = memchr(data.data + end, '\n', data.len - end);
            size_t next = nl ? (size_t)(nl - data.data) + 1 : data.len;
            if (next - off > IMPORT_CHUNK)
                break;
            end = next;
            lines++;
        }
        if (end == off) {
            fprintf(stderr, "rubberduck: %s:%zu: the line is longer than the admin API's body limit (%u bytes)\n",
                    a->file, line0 + 1, IMPORT_CHUNK);
            rc = 1;
            break;
        }
        struct json_object *o = call_json(c, "POST", path, data.data + off, end - off, "import");
        if (o == NULL) {
            rc = 1;
            break;
        }
        add_answer(o, a->file, line0, &t);
        json_object_put(o);
        off = end;
        line0 += lines;
    }
    rd_buf_free(&data);
    if (rc != 0)
        return rc;
    printf("imported %lld entries into proxy %s from %s (%lld skipped", t.imported, a->proxy, a->file, t.skipped);
    printf(t.errors ? ", %lld lines in error)\n" : ")\n", t.errors);
    return t.errors ? 1 : 0;
}

int rd_cli_cassette(int argc, char **argv)
{
    struct cli_args a = {0};
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        fputs(rd_cli_cassette_usage, stdout);
        return 0;
    }
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc;
    struct client c = {0};
    char token[256];
    if (admin_url(&a, c.base, sizeof c.base) != 0 || admin_token(&a, token, sizeof token) != 0)
        return 1;
    snprintf(c.auth, sizeof c.auth, "Authorization: Bearer %s", token);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (c.h = curl_easy_init()) == NULL) {
        fprintf(stderr, "rubberduck: cannot initialise libcurl\n");
        return 1;
    }
    long long id = resolve_proxy(&c, a.proxy);
    rc = id < 0 ? 1 : strcmp(a.verb, "export") == 0 ? do_export(&c, id, &a) : do_import(&c, id, &a);
    curl_easy_cleanup(c.h);
    curl_global_cleanup();
    return rc;
}
