/* rubberduck: command line, wiring and signals. No business logic here: see
 * docs/architecture.md for the path from here to a forwarded request. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "api/api.h"
#include "cache/persist.h"
#include "cli/cassette.h"
#include "http/server.h"
#include "obs/obs.h"
#include "proxy/config.h"
#include "proxy/manager.h"
#include "proxy/secrets.h"
#include "proxy/worker.h"
#include "store/store.h"
#include "upstream/upstream.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/mem.h"

struct opts {
    char listen_host[64];
    int listen_port;
    const char *data_dir;
    int workers;
    bool demo;
    uint64_t header_timeout_ms;
    uint64_t drain_timeout_ms;
    uint64_t log_buffer_bytes;
    uint64_t log_retention_days;
    const char *node_id;
};

struct app {
    struct opts o;
    uv_loop_t *loop;
    struct rd_store *store;
    struct rd_cache_persist *persist; /* the caches' write-behind store; NULL if it could not start */
    struct rd_worker **workers;
    struct rd_manager manager;
    struct rd_api api;
    struct rd_http_listener *admin;
    uv_signal_t sigint, sigterm;
    char token[128];
    int signals;
    int pending_stops;
    int exit_code;
};

static const char usage_main[] =
    "Usage: rubberduck <command> [options]\n"
    "\n"
    "A local caching reverse proxy for LLM provider APIs.\n"
    "\n"
    "Commands:\n"
    "  serve      run the server (admin API and proxies)\n"
    "  cassette   export or import a proxy's cached responses (export|import --proxy NAME FILE)\n"
    "  version    print the version\n"
    "  help [cmd] show help for a command\n";

static const char usage_serve[] =
    "Usage: rubberduck serve [options]\n"
    "\n"
    "Options (each also read from the environment variable shown):\n"
    "  --listen HOST:PORT       admin API address (RUBBERDUCK_LISTEN, default 127.0.0.1:9000)\n"
    "  --data-dir DIR           database and admin token (RUBBERDUCK_DATA_DIR, default ./data)\n"
    "  --workers N              I/O threads (RUBBERDUCK_WORKERS, default: number of cores)\n"
    "  --demo                   create the demo proxy on :8001 if missing (RUBBERDUCK_DEMO=1)\n"
    "  --log-level LEVEL        trace|debug|info|warn|error (RUBBERDUCK_LOG_LEVEL, default info)\n"
    "  --log-format FORMAT      process log lines: text (key=value) or json (RUBBERDUCK_LOG_FORMAT, default text)\n"
    "  --header-timeout-ms MS   time allowed to send request headers (RUBBERDUCK_HEADER_TIMEOUT_MS, 10000)\n"
    "  --drain-timeout-ms MS    how long a stop signal waits for requests, 0: cut them (RUBBERDUCK_DRAIN_TIMEOUT_MS, "
    "30000)\n"
    "  --log-buffer-size SIZE   request log records waiting to be written, at most (RUBBERDUCK_LOG_BUFFER_SIZE, "
    "100MB)\n"
    "  --log-retention-days N   purge request log rows older than N days, 0: keep (RUBBERDUCK_LOG_RETENTION_DAYS, 30)\n"
    "  --node-id ID             this node's name in the request log (RUBBERDUCK_NODE_ID, default: host name)\n"
    "\n"
    "Also: DATABASE_URL=sqlite:///path/to.db overrides the database location;\n"
    "RUBBERDUCK_ADMIN_TOKEN sets the admin token (else generated into DIR/admin.token).\n";

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        return RD_EINVAL;
    *out = v;
    return 0;
}

static int parse_listen(const char *s, struct opts *o)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return RD_EINVAL;
    const char *host = s;
    size_t hlen = (size_t)(colon - s);
    if (host[0] == '[' && hlen >= 2 && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    uint64_t port;
    if (hlen >= sizeof o->listen_host || parse_u64(colon + 1, 1, 65535, &port) != 0)
        return RD_EINVAL;
    memcpy(o->listen_host, host, hlen);
    o->listen_host[hlen] = '\0';
    o->listen_port = (int)port;
    return 0;
}

/* Applies one option (from a flag or its environment variable). */
static int set_option(struct opts *o, const char *name, const char *value)
{
    uint64_t v;
    if (strcmp(name, "listen") == 0)
        return parse_listen(value, o);
    if (strcmp(name, "data-dir") == 0) {
        if (value[0] == '\0')
            return RD_EINVAL;
        o->data_dir = value;
        return 0;
    }
    if (strcmp(name, "workers") == 0) {
        if (parse_u64(value, 1, 64, &v) != 0)
            return RD_EINVAL;
        o->workers = (int)v;
        return 0;
    }
    if (strcmp(name, "log-level") == 0) {
        enum rd_log_level lvl;
        if (rd_log_parse_level(value, &lvl) != 0)
            return RD_EINVAL;
        rd_log_set_level(lvl);
        return 0;
    }
    if (strcmp(name, "log-format") == 0) {
        enum rd_log_format fmt;
        if (rd_log_parse_format(value, &fmt) != 0)
            return RD_EINVAL;
        rd_log_set_format(fmt);
        return 0;
    }
    if (strcmp(name, "header-timeout-ms") == 0)
        return parse_u64(value, 1, 3600000, &o->header_timeout_ms);
    if (strcmp(name, "drain-timeout-ms") == 0)
        return parse_u64(value, 0, 86400000, &o->drain_timeout_ms);
    if (strcmp(name, "log-buffer-size") == 0) {
        if (rd_config_parse_size(value, &v) != 0 || v < 64 * 1024)
            return RD_EINVAL;
        o->log_buffer_bytes = v;
        return 0;
    }
    if (strcmp(name, "log-retention-days") == 0)
        return parse_u64(value, 0, 36500, &o->log_retention_days);
    if (strcmp(name, "node-id") == 0) {
        if (value[0] == '\0' || strlen(value) > 63)
            return RD_EINVAL;
        o->node_id = value;
        return 0;
    }
    return RD_EINVAL;
}

static const struct {
    const char *flag;
    const char *env;
} option_names[] = {
    {"listen", "RUBBERDUCK_LISTEN"},
    {"data-dir", "RUBBERDUCK_DATA_DIR"},
    {"workers", "RUBBERDUCK_WORKERS"},
    {"log-level", "RUBBERDUCK_LOG_LEVEL"},
    {"log-format", "RUBBERDUCK_LOG_FORMAT"},
    {"header-timeout-ms", "RUBBERDUCK_HEADER_TIMEOUT_MS"},
    {"drain-timeout-ms", "RUBBERDUCK_DRAIN_TIMEOUT_MS"},
    {"log-buffer-size", "RUBBERDUCK_LOG_BUFFER_SIZE"},
    {"log-retention-days", "RUBBERDUCK_LOG_RETENTION_DAYS"},
    {"node-id", "RUBBERDUCK_NODE_ID"},
};

static int parse_serve(int argc, char **argv, struct opts *o)
{
    snprintf(o->listen_host, sizeof o->listen_host, "127.0.0.1");
    o->listen_port = 9000;
    o->data_dir = "./data";
    o->workers = (int)uv_available_parallelism();
    o->header_timeout_ms = 10000;
    o->drain_timeout_ms = 30000;
    o->log_buffer_bytes = 100u << 20;
    o->log_retention_days = 30;
    for (size_t i = 0; i < sizeof option_names / sizeof option_names[0]; i++) {
        const char *v = getenv(option_names[i].env);
        if (v && v[0] && set_option(o, option_names[i].flag, v) != 0) {
            fprintf(stderr, "rubberduck: invalid %s=%s\n", option_names[i].env, v);
            return 2;
        }
    }
    const char *demo = getenv("RUBBERDUCK_DEMO");
    o->demo = demo && (strcmp(demo, "1") == 0 || strcmp(demo, "true") == 0);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--demo") == 0) {
            o->demo = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_serve, stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "rubberduck: unexpected argument '%s'\n\n%s", a, usage_serve);
            return 2;
        }
        const char *name = a + 2, *value = NULL;
        char namebuf[64];
        const char *eq = strchr(name, '=');
        if (eq) {
            snprintf(namebuf, sizeof namebuf, "%.*s", (int)(eq - name), name);
            name = namebuf;
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        }
        if (value == NULL) {
            fprintf(stderr, "rubberduck: option '%s' needs a value\n\n%s", a, usage_serve);
            return 2;
        }
        if (set_option(o, name, value) != 0) {
            fprintf(stderr, "rubberduck: invalid option '%s%s%s'\n\n%s", a, eq ? "" : " ", eq ? "" : value,
                    usage_serve);
            return 2;
        }
    }
    return 0;
}

/* ---- set-up ---- */

static int ensure_dir(const char *dir)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

/* The admin token: RUBBERDUCK_ADMIN_TOKEN, else DIR/admin.token, created at
 * the first start (mode 0600) from 32 random bytes. */
static int load_token(struct app *app)
{
    const char *env = getenv("RUBBERDUCK_ADMIN_TOKEN");
    if (env && env[0]) {
        if (strlen(env) >= sizeof app->token) {
            rd_error("RUBBERDUCK_ADMIN_TOKEN is too long");
            return RD_EINVAL;
        }
        snprintf(app->token, sizeof app->token, "%s", env);
        return 0;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/admin.token", app->o.data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, app->token, sizeof app->token - 1);
        close(fd);
        if (n <= 0) {
            rd_error("cannot read %s", path);
            return RD_EINVAL;
        }
        app->token[n] = '\0';
        app->token[strcspn(app->token, "\r\n")] = '\0';
        if (app->token[0] == '\0') {
            rd_error("%s is empty", path);
            return RD_EINVAL;
        }
        rd_info("admin token in %s", path);
        return 0;
    }
    uint8_t raw[32];
    if (rd_random_bytes(raw, sizeof raw) != 0)
        return RD_EINVAL;
    char hex[2 * sizeof raw + 1];
    rd_hex(raw, sizeof raw, hex);
    snprintf(app->token, sizeof app->token, "rd_%s", hex);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = errno;
        rd_error("cannot create %s: %s", path, strerror(err));
        return -err;
    }
    size_t len = strlen(app->token);
    bool ok = write(fd, app->token, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
    if (close(fd) != 0 || !ok) {
        rd_error("cannot write %s", path);
        return RD_EINVAL;
    }
    rd_info("admin token generated in %s", path);
    return 0;
}

/* The key that seals secrets stored in the database (proxy/secrets.h):
 * DIR/secrets.key, created at the first start (mode 0600). */
static int load_secrets_key(struct app *app)
{
    char path[4096];
    char why[4200];
    snprintf(path, sizeof path, "%s/secrets.key", app->o.data_dir);
    int rc = rd_secrets_load_key(path, why, sizeof why);
    if (rc != 0)
        rd_error("%s", why);
    return rc;
}

static void ensure_demo(struct app *app)
{
    for (struct rd_proxy_entry *e = app->manager.entries; e; e = e->next) {
        if (strcmp(e->rec.name, "demo") == 0) {
            rd_info("demo proxy \"demo\" (%s) on http://%s:%d: %s", e->rec.provider, e->rec.bind, e->rec.port,
                    rd_proxy_status_name(e));
            return;
        }
    }
    struct rd_proxy_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.name = rd_strdup("demo");
    rec.provider = rd_strdup("openai");
    rec.bind = rd_strdup("127.0.0.1");
    rec.upstream_url = rd_strdup("emulator");
    rec.description = rd_strdup("Demo proxy answered offline by the built-in OpenAI emulator");
    rec.tags_json = rd_strdup("[\"demo\"]");
    rec.config_json = rd_strdup("{}");
    rec.desired_status = rd_strdup("stopped");
    rec.port = 8001;
    for (struct rd_proxy_entry *e = app->manager.entries; e; e = e->next)
        if (e->rec.port == 8001)
            rec.port = rd_manager_pick_port(&app->manager, "127.0.0.1");
    struct rd_proxy_entry *e = NULL;
    struct rd_mgr_err err;
    if (rec.port > 0 && rd_manager_create(&app->manager, &rec, true, &e, &err) == 0)
        rd_info("demo proxy \"demo\" (openai, emulator) on http://127.0.0.1:%d: %s", e->rec.port,
                rd_proxy_status_name(e));
    else
        rd_warn("cannot create the demo proxy: %s", rec.port > 0 ? err.message : "no free port");
    rd_proxy_rec_free(&rec);
}

/* ---- shutdown ---- */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void all_stopped(void *ud)
{
    struct app *app = ud;
    if (--app->pending_stops > 0)
        return;
    rd_api_logs_stop(&app->api);
    uv_close((uv_handle_t *)&app->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&app->sigterm, on_handle_closed);
    /* Nothing else keeps the loop alive (the completion mailbox is unref'd):
     * uv_run returns once pending callbacks ran. */
}

static void proxies_stopped(void *ud, const struct rd_mgr_err *err)
{
    (void)err;
    all_stopped(ud);
}

static void admin_stopped(void *ud)
{
    struct app *app = ud;
    app->admin = NULL; /* the listener frees itself after this */
    all_stopped(ud);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *app = s->data;
    app->signals++;
    if (app->signals == 1) {
        rd_info("%s: stopping (waiting up to %llu ms for requests in flight)", strsignal(signum),
                (unsigned long long)app->o.drain_timeout_ms);
        app->pending_stops = 2;
        /* A drain timeout of 0 waits for nothing, as for the proxies (for a
         * listener, deadline 0 would mean no deadline). */
        enum rd_http_stop_mode admin_mode = app->o.drain_timeout_ms ? RD_HTTP_STOP_GRACEFUL : RD_HTTP_STOP_FORCE;
        rd_http_listener_stop(app->admin, admin_mode, app->o.drain_timeout_ms, admin_stopped, app);
        /* Live streams never end by themselves: end them now, cleanly. */
        rd_api_log_stream_stop(&app->api);
        rd_manager_shutdown(&app->manager, RD_HTTP_STOP_GRACEFUL, app->o.drain_timeout_ms, proxies_stopped, app);
    } else if (app->signals == 2) {
        rd_warn("%s again: closing every connection now", strsignal(signum));
        app->exit_code = 1;
        if (app->admin)
            rd_http_listener_stop(app->admin, RD_HTTP_STOP_FORCE, 0, NULL, NULL);
        rd_manager_shutdown(&app->manager, RD_HTTP_STOP_FORCE, 0, NULL, NULL);
    }
}

static int start_admin(struct app *app)
{
    int fd = rd_http_bind(app->o.listen_host, app->o.listen_port, false, RD_HTTP_BACKLOG);
    if (fd < 0) {
        rd_error("cannot listen on %s:%d: %s", app->o.listen_host, app->o.listen_port, uv_strerror(fd));
        return fd;
    }
    struct rd_http_listener_cfg cfg;
    rd_api_listener_cfg(&app->api, &cfg);
    int rc = rd_http_listener_start(app->loop, fd, &cfg, &app->admin);
    if (rc < 0)
        return rc;
    const char *h = app->o.listen_host;
    rd_info("admin API on http://%s%s%s:%d", strchr(h, ':') ? "[" : "", h, strchr(h, ':') ? "]" : "",
            app->o.listen_port);
    return 0;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rd_warn("cannot raise the open file limit: %s", strerror(errno));
    }
}

static int serve(int argc, char **argv)
{
    struct app *app = rd_calloc(1, sizeof *app);
    int rc = parse_serve(argc, argv, &app->o);
    if (rc != 0) {
        free(app);
        return rc == 1 ? 0 : rc;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    int exit_code = 1;
    char errbuf[512] = "";
    bool workers_started = false;
    if ((rc = ensure_dir(app->o.data_dir)) < 0) {
        rd_error("cannot create data directory %s: %s", app->o.data_dir, rd_strerror(rc));
        goto out;
    }
    if (load_token(app) != 0 || load_secrets_key(app) != 0 || rd_upstream_global_init() != 0)
        goto out;
    char dburl[4200];
    const char *env_url = getenv("DATABASE_URL");
    snprintf(dburl, sizeof dburl, "%s/rubberduck.db", app->o.data_dir);
    if (rd_store_open(env_url && env_url[0] ? env_url : dburl, &app->store, errbuf, sizeof errbuf) != 0) {
        rd_error("cannot open the database: %s", errbuf);
        goto out_curl;
    }
    app->loop = uv_default_loop();
    /* Before any proxy listens: the request path reads rd_obs. */
    struct rd_obs_cfg ocfg = {.store_url = env_url && env_url[0] ? env_url : dburl,
                              .nslots = (unsigned)app->o.workers,
                              .log_buffer_bytes = app->o.log_buffer_bytes,
                              .log_retention_days = (uint32_t)app->o.log_retention_days,
                              .node_id = app->o.node_id};
    if (rd_obs_start(&ocfg, errbuf, sizeof errbuf) != 0) {
        rd_error("%s", errbuf);
        goto out_store;
    }
    if (rd_workers_start(app->o.workers, &app->workers) != 0)
        goto out_store;
    workers_started = true;
    if (rd_manager_init(&app->manager, app->loop, app->store, app->workers, app->o.workers,
                        app->o.header_timeout_ms) != 0) {
        rd_error("cannot load proxies from the database");
        goto out_workers;
    }
    /* A second connection for the caches' writer thread: a failure costs
     * persistence (warned), not the server. */
    if (rd_cache_persist_start(env_url && env_url[0] ? env_url : dburl, &app->persist, errbuf, sizeof errbuf) != 0)
        rd_warn("response caches are not persisted: %s", errbuf);
    rd_manager_set_persist(&app->manager, app->persist);
    app->api = (struct rd_api){.manager = &app->manager, .store = app->store, .admin_token = app->token,
                               .metrics_token = getenv("RUBBERDUCK_METRICS_TOKEN"), .data_dir = app->o.data_dir,
                               .header_timeout_ms = app->o.header_timeout_ms};
    rd_api_log_stream_init(&app->api, app->loop); /* before proxies take requests: the log writer's notify */
    if (start_admin(app) != 0) {
        rd_workers_join(app->workers, app->o.workers);
        workers_started = false;
        rd_manager_free(&app->manager);
        rd_api_log_stream_stop(&app->api);
        uv_run(app->loop, UV_RUN_DEFAULT);
        rd_api_log_stream_free(&app->api);
        goto out_workers;
    }
    rd_info("rubberduck %s: %d worker(s), data in %s", RD_VERSION, app->o.workers, app->o.data_dir);
    rd_api_logs_start(&app->api, app->loop, rd_obs.log_retention_days);
    rd_manager_restore(&app->manager);
    if (app->o.demo)
        ensure_demo(app);
    uv_signal_init(app->loop, &app->sigint);
    uv_signal_init(app->loop, &app->sigterm);
    app->sigint.data = app->sigterm.data = app;
    uv_signal_start(&app->sigint, on_signal, SIGINT);
    uv_signal_start(&app->sigterm, on_signal, SIGTERM);
    uv_run(app->loop, UV_RUN_DEFAULT);
    exit_code = app->exit_code;
    /* Workers first: once joined, nothing can post to the manager's
     * mailbox any more, so it can be closed. */
    rd_workers_join(app->workers, app->o.workers);
    workers_started = false;
    rd_manager_free(&app->manager);
    uv_run(app->loop, UV_RUN_DEFAULT);
    rd_api_health_free(&app->api); /* the loop drained: no probe left */
    rd_api_log_stream_free(&app->api);
    rd_info("stopped");
out_workers:
    if (workers_started)
        rd_workers_join(app->workers, app->o.workers);
    /* After the workers and the manager: nothing queues any more; what is
     * queued is written before this returns. */
    rd_cache_persist_stop(app->persist);
    if (uv_loop_close(app->loop) != 0)
        rd_warn("event loop closed with handles open");
out_store:
    rd_obs_stop(); /* after the workers: what is queued is written */
    rd_store_close(app->store);
out_curl:
    rd_upstream_global_cleanup();
out:
    free(app);
    return exit_code;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return serve(argc - 2, argv + 2);
    if (strcmp(cmd, "cassette") == 0)
        return rd_cli_cassette(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("rubberduck %s\n", RD_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        const char *topic = argc > 2 ? argv[2] : NULL;
        if (topic && strcmp(topic, "serve") == 0)
            fputs(usage_serve, stdout);
        else if (topic && strcmp(topic, "cassette") == 0)
            fputs(rd_cli_cassette_usage, stdout);
        else if (topic && strcmp(topic, "version") == 0)
            fputs("Usage: rubberduck version\n\nPrints the version.\n", stdout);
        else if (topic && strcmp(topic, "help") != 0) {
            fprintf(stderr, "rubberduck: unknown command '%s'\n\n%s", topic, usage_main);
            return 2;
        } else
            fputs(usage_main, stdout);
        return 0;
    }
    fprintf(stderr, "rubberduck: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
