/* /health (liveness) and /health/detailed (readiness checks).
 *
 * /health answers from memory: it never touches the database, so a wedged
 * store cannot make the liveness probe restart a process that only needs
 * the database back. /health/detailed runs four checks, each reported as
 * {"status":"ok"|"fail","latency_ms","detail"}; any failure makes the answer
 * 503 "unhealthy":
 *   database    rd_store_ping (the control thread owns the store handle);
 *   providers   a TCP connect to each proxy's upstream host:port (DNS + TCP
 *               only, no TLS handshake and no byte sent, so never a billable
 *               request), each result cached for RD_HEALTH_CACHE_MS;
 *   disk_space  statvfs of the data directory: fails below
 *               RD_HEALTH_DISK_MIN_BYTES or RD_HEALTH_DISK_MIN_PCT free;
 *   memory      VmRSS of the process and MemAvailable, failing when
 *               MemAvailable < RD_HEALTH_MEM_MIN_PCT of MemTotal.
 * procfs and statvfs are answered from kernel memory, so they are read on
 * the control loop directly; DNS goes through uv_getaddrinfo (threadpool). */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <uv.h>

#include "api/api.h"
#include "providers/provider.h"
#include "util/mem.h"
#include "util/time.h"

#define RD_HEALTH_CACHE_MS 60000
#define RD_HEALTH_CONNECT_MS 2000
#define RD_HEALTH_DISK_MIN_BYTES (100ull * 1024 * 1024)
#define RD_HEALTH_DISK_MIN_PCT 1.0
#define RD_HEALTH_MEM_MIN_PCT 5.0
#define HOSTPORT_LEN 300
#define DETAIL_LEN 512

/* One upstream's last probe result. */
struct hc_entry {
    struct hc_entry *next;
    char key[HOSTPORT_LEN]; /* "host:port" ("[v6]:port") */
    bool ok;
    char detail[DETAIL_LEN];
    double latency_ms;
    uint64_t at_ms; /* monotonic time of the probe's end */
};

struct rd_api_health {
    struct hc_entry *cache; /* owned list */
};

/* One /health/detailed exchange waiting for its probes. Freed when the
 * last probe reports, whether or not the client is still there. */
struct detailed {
    struct rd_http_exch *x;     /* NULL once the client left (exchange aborted) */
    struct json_object *root;   /* owned */
    struct json_object *ups;    /* borrowed from root: providers.detail */
    struct json_object *provs;  /* borrowed from root: checks.providers */
    int pending;                /* probes not reported yet */
    bool providers_ok;
    double providers_ms;        /* the slowest upstream */
};

/* A TCP reachability probe of one host:port. Its three libuv resources
 * (getaddrinfo request, timer, TCP handle) each hold a reference; it is
 * freed when the last is released (close protocol). */
struct probe {
    struct rd_api_health *h; /* borrowed; outlives every probe (freed after the loop drained) */
    struct detailed *d;      /* borrowed; NULL once reported */
    char key[HOSTPORT_LEN];
    char host[256];
    char port[8];
    uv_getaddrinfo_t gai;
    uv_timer_t timer;
    uv_tcp_t tcp;
    uv_connect_t conn;
    bool gai_pending;         /* the getaddrinfo request has not called back */
    struct addrinfo *res;     /* owned; the resolved addresses */
    struct addrinfo *next_ai; /* borrowed from res: the one to try next */
    bool tcp_open;
    int refs;
    uint64_t t0; /* uv_hrtime() at the start */
};

static double ms_since(uint64_t t0_ns)
{
    return (double)(uv_hrtime() - t0_ns) / 1e6;
}

/* A number printed with three decimals (json-c would print 17 digits). */
static struct json_object *num3(double v)
{
    char text[48];
    snprintf(text, sizeof text, "%.3f", v);
    return json_object_new_double_s(v, text);
}

static struct json_object *check_new(bool ok, double ms, struct json_object *detail)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string(ok ? "ok" : "fail"));
    json_object_object_add(o, "latency_ms", num3(ms));
    json_object_object_add(o, "detail", detail);
    return o;
}

static struct json_object *timestamp_json(void)
{
    char ts[32];
    return json_object_new_string(rd_time_format(rd_time_wall_ms(), ts, sizeof ts));
}

static void get_health(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)api;
    (void)param;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string("healthy"));
    json_object_object_add(o, "timestamp", timestamp_json());
    rd_api_send_json(x, 200, o);
}

/* ---- local checks ---- */

static struct json_object *check_database(struct rd_api *api, bool *ok)
{
    uint64_t t0 = uv_hrtime();
    *ok = rd_store_ping(api->store) == 0;
    return check_new(*ok, ms_since(t0), json_object_new_string(*ok ? "reachable" : "ping failed"));
}

static struct json_object *check_disk(struct rd_api *api, bool *ok)
{
    uint64_t t0 = uv_hrtime();
    struct statvfs sv;
    const char *dir = api->data_dir ? api->data_dir : ".";
    if (statvfs(dir, &sv) != 0) {
        *ok = false;
        return check_new(false, ms_since(t0), json_object_new_string("statvfs of the data directory failed"));
    }
    uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    double pct = total ? 100.0 * (double)avail / (double)total : 0.0;
    *ok = avail >= RD_HEALTH_DISK_MIN_BYTES && pct >= RD_HEALTH_DISK_MIN_PCT;
    struct json_object *d = json_object_new_object();
    json_object_object_add(d, "free_bytes", json_object_new_int64((int64_t)avail));
    json_object_object_add(d, "total_bytes", json_object_new_int64((int64_t)total));
    json_object_object_add(d, "free_percent", num3(pct));
    json_object_object_add(d, "min_free_bytes", json_object_new_int64((int64_t)RD_HEALTH_DISK_MIN_BYTES));
    json_object_object_add(d, "min_free_percent", json_object_new_double(RD_HEALTH_DISK_MIN_PCT));
    return check_new(*ok, ms_since(t0), d);
}

/* Value in kB of "name:" in a procfs key/value file; -1 when absent. */
static int64_t proc_kb(const char *file, const char *name)
{
    FILE *f = fopen(file, "re");
    if (f == NULL)
        return -1;
    char line[256];
    size_t n = strlen(name);
    int64_t v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            v = strtoll(line + n + 1, NULL, 10);
            break;
        }
    }
    if (fclose(f) != 0)
        v = -1;
    return v;
}

static struct json_object *check_memory(bool *ok)
{
    uint64_t t0 = uv_hrtime();
    int64_t rss = proc_kb("/proc/self/status", "VmRSS");
    int64_t total = proc_kb("/proc/meminfo", "MemTotal");
    int64_t avail = proc_kb("/proc/meminfo", "MemAvailable");
    if (rss < 0 || total <= 0 || avail < 0) {
        *ok = false;
        return check_new(false, ms_since(t0), json_object_new_string("cannot read /proc memory figures"));
    }
    double pct = 100.0 * (double)avail / (double)total;
    *ok = pct >= RD_HEALTH_MEM_MIN_PCT;
    struct json_object *d = json_object_new_object();
    json_object_object_add(d, "rss_bytes", json_object_new_int64(rss * 1024));
    json_object_object_add(d, "available_bytes", json_object_new_int64(avail * 1024));
    json_object_object_add(d, "total_bytes", json_object_new_int64(total * 1024));
    json_object_object_add(d, "available_percent", num3(pct));
    json_object_object_add(d, "min_available_percent", json_object_new_double(RD_HEALTH_MEM_MIN_PCT));
    return check_new(*ok, ms_since(t0), d);
}

/* ---- upstream reachability ---- */

/* host and port of an http(s) URL, without user info, path or query (which
 * may hold a key: only host:port ever reaches the response). Returns false
 * for anything else. */
static bool url_hostport(const char *url, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *p;
    const char *dflt;
    if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        dflt = "443";
    } else if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
        dflt = "80";
    } else
        return false;
    size_t alen = strcspn(p, "/?#");
    const char *end = p + alen;
    const char *at = memchr(p, '@', alen);
    while (at) { /* the last '@' ends the user info */
        p = at + 1;
        at = memchr(p, '@', (size_t)(end - p));
    }
    const char *hend;
    const char *colon;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL)
            return false;
        p++;
        hend = rb;
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        if (colon == NULL && rb + 1 != end)
            return false;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
    }
    size_t hl = (size_t)(hend - p);
    if (hl == 0 || hl >= hostlen)
        return false;
    memcpy(host, p, hl);
    host[hl] = '\0';
    if (colon) {
        size_t pl = (size_t)(end - colon - 1);
        if (pl == 0 || pl >= portlen)
            return false;
        for (size_t i = 0; i < pl; i++)
            if (!isdigit((unsigned char)colon[1 + i]))
                return false;
        memcpy(port, colon + 1, pl);
        port[pl] = '\0';
        long v = strtol(port, NULL, 10);
        if (v < 1 || v > 65535)
            return false;
    } else
        snprintf(port, portlen, "%s", dflt);
    return true;
}

static struct hc_entry *cache_find(struct rd_api_health *h, const char *key)
{
    for (struct hc_entry *e = h->cache; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void cache_store(struct rd_api_health *h, const char *key, bool ok, const char *detail, double ms)
{
    struct hc_entry *e = cache_find(h, key);
    if (e == NULL) {
        e = rd_calloc(1, sizeof *e);
        snprintf(e->key, sizeof e->key, "%s", key);
        e->next = h->cache;
        h->cache = e;
    }
    e->ok = ok;
    snprintf(e->detail, sizeof e->detail, "%s", detail);
    e->latency_ms = ms;
    e->at_ms = rd_time_mono_ms();
}

static void send_detailed(struct detailed *d)
{
    struct json_object *checks = json_object_object_get(d->root, "checks");
    json_object_object_add(d->provs, "status", json_object_new_string(d->providers_ok ? "ok" : "fail"));
    json_object_object_add(d->provs, "latency_ms", num3(d->providers_ms));
    bool healthy = true;
    json_object_object_foreach(checks, name, c)
    {
        (void)name;
        const char *s = json_object_get_string(json_object_object_get(c, "status"));
        if (s == NULL || strcmp(s, "ok") != 0)
            healthy = false;
    }
    json_object_object_add(d->root, "status", json_object_new_string(healthy ? "healthy" : "unhealthy"));
    struct rd_http_exch *x = d->x;
    rd_http_set_callbacks(x, NULL, NULL, NULL);
    rd_api_send_json(x, healthy ? 200 : 503, json_object_get(d->root));
}

static void detailed_free(struct detailed *d)
{
    json_object_put(d->root);
    free(d);
}

/* Adds one upstream's result to the response. */
static void add_result(struct detailed *d, const char *key, bool ok, const char *detail, double ms, bool cached)
{
    struct json_object *u = check_new(ok, ms, json_object_new_string(detail));
    json_object_object_add(u, "cached", json_object_new_boolean(cached));
    json_object_object_add(d->ups, key, u);
    if (!ok)
        d->providers_ok = false;
    if (ms > d->providers_ms)
        d->providers_ms = ms;
}

static void detailed_report_done(struct detailed *d)
{
    if (--d->pending > 0)
        return;
    if (d->x)
        send_detailed(d);
    detailed_free(d);
}

static void probe_release(struct probe *p)
{
    if (--p->refs > 0)
        return;
    uv_freeaddrinfo(p->res);
    free(p);
}

static void on_probe_close(uv_handle_t *hd)
{
    probe_release(hd->data);
}

/* The probe's outcome: cached, reported, and every handle closed. */
static void probe_finish(struct probe *p, bool ok, const char *detail)
{
    if (p->d == NULL)
        return;
    double ms = ms_since(p->t0);
    cache_store(p->h, p->key, ok, detail, ms);
    add_result(p->d, p->key, ok, detail, ms, false);
    struct detailed *d = p->d;
    p->d = NULL;
    uv_close((uv_handle_t *)&p->timer, on_probe_close);
    if (p->tcp_open)
        uv_close((uv_handle_t *)&p->tcp, on_probe_close); /* cancels a pending connect */
    else if (p->gai_pending)
        (void)uv_cancel((uv_req_t *)&p->gai); /* may be past cancelling: on_resolved then releases */
    detailed_report_done(d);
}

static void on_connected(uv_connect_t *req, int status);

static void fail_connect(struct probe *p, int rc)
{
    char msg[DETAIL_LEN];
    snprintf(msg, sizeof msg, "tcp connect to %s failed: %s", p->key, uv_strerror(rc));
    probe_finish(p, false, msg);
}

/* Starts a connect to the next resolved address. Returns 0 or a libuv code
 * (the handle, when opened, is closed by probe_finish). */
static int connect_next(struct probe *p)
{
    struct addrinfo *ai = p->next_ai;
    if (ai == NULL)
        return UV_EADDRNOTAVAIL;
    p->next_ai = ai->ai_next;
    int rc = uv_tcp_init(p->timer.loop, &p->tcp);
    if (rc != 0)
        return rc;
    p->tcp.data = p;
    p->tcp_open = true;
    p->refs++;
    p->conn.data = p;
    return uv_tcp_connect(&p->conn, &p->tcp, ai->ai_addr, on_connected);
}

/* The failed address's handle is closed: the next address, unless the
 * probe ended meanwhile. */
static void on_retry_close(uv_handle_t *hd)
{
    struct probe *p = hd->data;
    if (p->d) {
        int rc = connect_next(p);
        if (rc != 0)
            fail_connect(p, rc);
    }
    probe_release(p); /* the closed handle's reference (the timer holds one while d is set) */
}

static void on_connected(uv_connect_t *req, int status)
{
    struct probe *p = req->data;
    if (status == UV_ECANCELED || p->d == NULL)
        return;
    if (status == 0)
        probe_finish(p, true, "tcp connect ok");
    else if (p->next_ai) { /* e.g. ::1 refused, 127.0.0.1 listens */
        p->tcp_open = false;
        uv_close((uv_handle_t *)&p->tcp, on_retry_close);
    } else
        fail_connect(p, status);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct probe *p = req->data;
    p->gai_pending = false;
    p->res = res; /* freed with the probe */
    if (p->d == NULL) { /* timed out meanwhile */
        probe_release(p);
        return;
    }
    if (status != 0) {
        char msg[DETAIL_LEN];
        snprintf(msg, sizeof msg, "cannot resolve %s: %s", p->key, uv_strerror(status));
        probe_finish(p, false, msg);
        probe_release(p);
        return;
    }
    p->next_ai = res;
    int rc = connect_next(p);
    probe_release(p); /* the getaddrinfo request's reference */
    if (rc != 0)
        fail_connect(p, rc);
}

static void on_probe_timeout(uv_timer_t *t)
{
    struct probe *p = t->data;
    char msg[DETAIL_LEN];
    snprintf(msg, sizeof msg, "no TCP connection to %s within %d ms", p->key, RD_HEALTH_CONNECT_MS);
    probe_finish(p, false, msg);
}

static void probe_start(uv_loop_t *loop, struct rd_api_health *h, struct detailed *d, const char *key,
                        const char *host, const char *port)
{
    struct probe *p = rd_calloc(1, sizeof *p);
    p->h = h;
    p->d = d;
    snprintf(p->key, sizeof p->key, "%s", key);
    snprintf(p->host, sizeof p->host, "%s", host);
    snprintf(p->port, sizeof p->port, "%s", port);
    p->t0 = uv_hrtime();
    d->pending++;
    (void)uv_timer_init(loop, &p->timer); /* cannot fail on a live loop */
    p->timer.data = p;
    p->refs = 1;
    (void)uv_timer_start(&p->timer, on_probe_timeout, RD_HEALTH_CONNECT_MS, 0);
    p->gai.data = p;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(loop, &p->gai, on_resolved, p->host, p->port, &hints);
    if (rc == 0) {
        p->refs++;
        p->gai_pending = true;
        return;
    }
    char msg[DETAIL_LEN];
    snprintf(msg, sizeof msg, "cannot resolve %s: %s", key, uv_strerror(rc));
    probe_finish(p, false, msg); /* d keeps the handler's own reference */
}

static void detailed_gone(void *ud)
{
    struct detailed *d = ud;
    struct rd_http_exch *x = d->x;
    d->x = NULL;
    rd_http_abort(x);
}

/* Adds the proxy's upstream to the response from the cache, or starts its
 * probe. Proxies sharing an upstream share its result. */
static void check_upstream(struct rd_api *api, struct detailed *d, const struct rd_proxy_entry *e)
{
    const char *url = e->rec.upstream_url;
    if (url == NULL) {
        const struct rd_provider *pv = rd_provider_find(e->rec.provider);
        url = pv ? pv->default_upstream : NULL;
    }
    if (url == NULL || strcmp(url, "emulator") == 0)
        return;
    char host[256], port[8], key[HOSTPORT_LEN];
    if (!url_hostport(url, host, sizeof host, port, sizeof port))
        return; /* the proxy's validation accepted it, so it is not a network URL */
    snprintf(key, sizeof key, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    if (json_object_object_get_ex(d->ups, key, NULL))
        return;
    const struct hc_entry *c = cache_find(api->health, key);
    if (c && rd_time_mono_ms() - c->at_ms < RD_HEALTH_CACHE_MS) {
        add_result(d, key, c->ok, c->detail, c->latency_ms, true);
        return;
    }
    /* A null member marks the upstream as being probed until its result
     * arrives: a second proxy on the same upstream waits for this probe. */
    json_object_object_add(d->ups, key, NULL);
    probe_start(api->manager->loop, api->health, d, key, host, port);
}

static bool detailed_authorized(struct rd_api *api, struct rd_http_exch *x)
{
    if (api->metrics_token == NULL || api->metrics_token[0] == '\0')
        return true;
    return rd_api_bearer_matches(x, api->metrics_token) || rd_api_bearer_matches(x, api->admin_token);
}

static void get_health_detailed(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    if (!detailed_authorized(api, x)) {
        rd_api_send_error(x, 401, "unauthorized", NULL, "missing or invalid metrics token");
        return;
    }
    if (api->health == NULL)
        api->health = rd_calloc(1, sizeof *api->health);
    struct detailed *d = rd_calloc(1, sizeof *d);
    d->x = x;
    d->pending = 1; /* this call's own, dropped below */
    d->providers_ok = true;
    d->root = json_object_new_object();
    json_object_object_add(d->root, "status", NULL);
    json_object_object_add(d->root, "timestamp", timestamp_json());
    struct json_object *checks = json_object_new_object();
    json_object_object_add(d->root, "checks", checks);
    bool ok;
    json_object_object_add(checks, "database", check_database(api, &ok));
    d->ups = json_object_new_object();
    d->provs = check_new(true, 0, d->ups);
    json_object_object_add(checks, "providers", d->provs);
    json_object_object_add(checks, "disk_space", check_disk(api, &ok));
    json_object_object_add(checks, "memory", check_memory(&ok));
    rd_http_set_callbacks(x, NULL, detailed_gone, d);
    for (const struct rd_proxy_entry *e = api->manager->entries; e; e = e->next)
        if (!rd_proxy_is_deleting(e))
            check_upstream(api, d, e);
    detailed_report_done(d);
}

void rd_api_health_free(struct rd_api *api)
{
    if (api->health == NULL)
        return;
    struct hc_entry *e = api->health->cache;
    while (e) {
        struct hc_entry *next = e->next;
        free(e);
        e = next;
    }
    free(api->health);
    api->health = NULL;
}

const struct rd_api_route rd_api_health_routes[] = {
    {"GET", "/health", get_health, false},
    /* Its own check: open, or RUBBERDUCK_METRICS_TOKEN (or the admin token). */
    {"GET", "/health/detailed", get_health_detailed, false},
};
const size_t rd_api_health_nroutes = sizeof rd_api_health_routes / sizeof rd_api_health_routes[0];
