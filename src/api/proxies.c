/* /api/v1/proxies: create, list, get, patch, delete, start, stop, config. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "obs/obs.h"
#include "obs/rollup.h"
#include "providers/provider.h"
#include "proxy/config.h"
#include "proxy/secrets.h"
#include "util/err.h"
#include "util/json.h"
#include "util/mem.h"
#include "util/time.h"

#define MAX_NAME 64
#define MAX_TEXT 2000
#define MAX_TAGS 32

/* ---- rendering ---- */

static struct json_object *parse_or(const char *text, struct json_object *dflt)
{
    struct json_object *o = NULL;
    if (text && rd_json_parse(text, strlen(text), 1u << 24, &o, NULL) == 0) {
        json_object_put(dflt);
        return o;
    }
    return dflt;
}

/* A configuration document as the API shows it: secrets redacted. */
static struct json_object *config_out(const char *text)
{
    return rd_config_redact(parse_or(text, json_object_new_object()));
}

static struct json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static struct json_object *temp_until_json(const struct rd_proxy_entry *e)
{
    char ts[32];
    return e->temp_config ? json_object_new_string(rd_time_format(e->temp_until_ms, ts, sizeof ts)) : NULL;
}

/* The configuration the proxy runs: the temporary one while there is one,
 * with "temporary_until" (which PUT and PATCH ignore, so the document can
 * be sent back), else the permanent one. */
static struct json_object *effective_config_out(const struct rd_proxy_entry *e)
{
    if (e->temp_config == NULL)
        return config_out(e->rec.config_json);
    struct json_object *o = config_out(e->temp_config);
    json_object_object_add(o, "temporary_until", temp_until_json(e));
    return o;
}

static struct json_object *proxy_json(const struct rd_proxy_entry *e)
{
    const struct rd_proxy_rec *r = &e->rec;
    struct json_object *o = json_object_new_object();
    char ts[32], url[128];
    json_object_object_add(o, "id", json_object_new_int64(r->id));
    json_object_object_add(o, "name", json_object_new_string(r->name));
    json_object_object_add(o, "provider", json_object_new_string(r->provider));
    json_object_object_add(o, "port", json_object_new_int(r->port));
    json_object_object_add(o, "bind", json_object_new_string(r->bind));
    json_object_object_add(o, "upstream_url", str_or_null(r->upstream_url));
    json_object_object_add(o, "status", json_object_new_string(rd_proxy_status_name(e)));
    /* A wildcard bind is reached through loopback from this machine. */
    const char *host = strcmp(r->bind, "0.0.0.0") == 0 ? "127.0.0.1" : strcmp(r->bind, "::") == 0 ? "[::1]" : r->bind;
    if (strchr(host, ':') && host[0] != '[')
        snprintf(url, sizeof url, "http://[%s]:%d", host, r->port);
    else
        snprintf(url, sizeof url, "http://%s:%d", host, r->port);
    json_object_object_add(o, "url", json_object_new_string(url));
    json_object_object_add(o, "description", str_or_null(r->description));
    json_object_object_add(o, "tags", parse_or(r->tags_json, json_object_new_array()));
    json_object_object_add(o, "model", str_or_null(r->model));
    json_object_object_add(o, "config", config_out(r->config_json));
    /* config is the permanent document; GET .../config shows the one running. */
    json_object_object_add(o, "temporary_until", temp_until_json(e));
    json_object_object_add(o, "created_at", json_object_new_string(rd_time_format(r->created_at, ts, sizeof ts)));
    json_object_object_add(o, "updated_at", json_object_new_string(rd_time_format(r->updated_at, ts, sizeof ts)));
    json_object_object_add(o, "last_error", str_or_null(r->last_error));
    return o;
}

/* ---- input ---- */

struct field_err {
    const char *field;
    char message[256];
};

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.'))
            return false;
    }
    return true;
}

static bool valid_bind(const char *s)
{
    unsigned char buf[16];
    return uv_inet_pton(AF_INET, s, buf) == 0 || uv_inet_pton(AF_INET6, s, buf) == 0;
}

static bool valid_upstream(const char *s)
{
    if (strcmp(s, "emulator") == 0)
        return true;
    size_t n = strlen(s);
    if (n > MAX_TEXT)
        return false;
    const char *rest = strncmp(s, "http://", 7) == 0 ? s + 7 : strncmp(s, "https://", 8) == 0 ? s + 8 : NULL;
    if (rest == NULL || *rest == '\0' || *rest == '/')
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#')
            return false;
    /* No user:password@ in the authority: credentials would be stored and
     * shown by the API. They belong in request headers. */
    size_t authority = strcspn(rest, "/");
    if (memchr(rest, '@', authority) != NULL)
        return false;
    return true;
}

static void replace(char **slot, const char *v)
{
    free(*slot);
    *slot = v ? rd_strdup(v) : NULL;
}

#define FAIL(f, ...)                                                   \
    do {                                                               \
        fe->field = (f);                                               \
        snprintf(fe->message, sizeof fe->message, __VA_ARGS__);        \
        return false;                                                  \
    } while (0)

static bool apply_string(struct json_object *v, const char *field, bool nullable, size_t max, char **slot,
                         struct field_err *fe)
{
    if (v == NULL && nullable) {
        replace(slot, NULL);
        return true;
    }
    if (!json_object_is_type(v, json_type_string))
        FAIL(field, "%s must be a string%s", field, nullable ? " or null" : "");
    if ((size_t)json_object_get_string_len(v) > max)
        FAIL(field, "%s is longer than %zu characters", field, max);
    replace(slot, json_object_get_string(v));
    return true;
}

static bool apply_tags(struct json_object *v, struct rd_proxy_rec *rec, struct field_err *fe)
{
    if (!json_object_is_type(v, json_type_array))
        FAIL("tags", "tags must be an array of strings");
    size_t n = json_object_array_length(v);
    if (n > MAX_TAGS)
        FAIL("tags", "at most %d tags", MAX_TAGS);
    for (size_t i = 0; i < n; i++) {
        struct json_object *t = json_object_array_get_idx(v, i);
        if (!json_object_is_type(t, json_type_string) || json_object_get_string_len(t) == 0 ||
            json_object_get_string_len(t) > MAX_NAME)
            FAIL("tags", "tags must be non-empty strings of at most %d characters", MAX_NAME);
    }
    replace(&rec->tags_json, rd_json_str(v, NULL));
    return true;
}

static bool apply_config(struct json_object *v, struct rd_proxy_rec *rec, struct field_err *fe)
{
    static _Thread_local char field[160];
    struct rd_config_err cerr;
    memset(&cerr, 0, sizeof cerr);
    /* A document fetched from the API and sent back keeps its secrets. */
    rd_config_restore_secrets(v, rec->config_json);
    /* Restored secrets come back sealed: opened to be validated like new
     * ones, then every secret is sealed for the database. */
    const char *sfield = NULL;
    if (rd_config_unseal(v, &sfield) != 0) {
        snprintf(field, sizeof field, "%s", sfield ? sfield : "config");
        fe->field = field;
        snprintf(fe->message, sizeof fe->message,
                 "the stored secret cannot be opened with this server's secrets key (was secrets.key replaced?): "
                 "send the value again");
        return false;
    }
    if (rd_config_validate(v, &cerr) != 0 ||
        rd_pipeline_check(v, rd_provider_find(rec->provider ? rec->provider : ""), &cerr) != 0) {
        snprintf(field, sizeof field, "%s", cerr.field[0] ? cerr.field : "config");
        fe->field = field;
        snprintf(fe->message, sizeof fe->message, "%s", cerr.message);
        return false;
    }
    if (rd_config_seal(v) != 0) {
        fe->field = "config";
        snprintf(fe->message, sizeof fe->message, "the configuration's secrets could not be sealed for storing");
        return false;
    }
    replace(&rec->config_json, rd_json_str(v, NULL));
    return true;
}

/* Applies the fields present in body to rec. Read-only fields that GET
 * returns are accepted and ignored, so a fetched object can be sent back. */
static bool apply_fields(struct json_object *body, struct rd_proxy_rec *rec, bool *start, struct field_err *fe)
{
    json_object_object_foreach(body, key, v)
    {
        if (strcmp(key, "name") == 0) {
            if (!json_object_is_type(v, json_type_string) || !valid_name(json_object_get_string(v)))
                FAIL("name", "name must be 1-%d characters of letters, digits, '-', '_' or '.'", MAX_NAME);
            replace(&rec->name, json_object_get_string(v));
        } else if (strcmp(key, "provider") == 0) {
            if (!json_object_is_type(v, json_type_string) || rd_provider_find(json_object_get_string(v)) == NULL)
                FAIL("provider", "unknown provider (see GET /api/v1/providers)");
            replace(&rec->provider, json_object_get_string(v));
        } else if (strcmp(key, "port") == 0) {
            int64_t port = rd_json_is_int(v) ? json_object_get_int64(v) : -1;
            if (port < 1 || port > 65535)
                FAIL("port", "port must be an integer between 1 and 65535");
            rec->port = (int)port;
        } else if (strcmp(key, "bind") == 0) {
            if (!json_object_is_type(v, json_type_string) || !valid_bind(json_object_get_string(v)))
                FAIL("bind", "bind must be an IPv4 or IPv6 address");
            replace(&rec->bind, json_object_get_string(v));
        } else if (strcmp(key, "upstream_url") == 0) {
            if (v != NULL && (!json_object_is_type(v, json_type_string) || !valid_upstream(json_object_get_string(v))))
                FAIL("upstream_url", "upstream_url must be \"emulator\", an http(s) URL without query or credentials, "
                                     "or null");
            replace(&rec->upstream_url, v ? json_object_get_string(v) : NULL);
        } else if (strcmp(key, "description") == 0) {
            if (!apply_string(v, "description", true, MAX_TEXT, &rec->description, fe))
                return false;
        } else if (strcmp(key, "model") == 0) {
            if (!apply_string(v, "model", true, 256, &rec->model, fe))
                return false;
        } else if (strcmp(key, "tags") == 0) {
            if (!apply_tags(v, rec, fe))
                return false;
        } else if (strcmp(key, "config") == 0) {
            if (!apply_config(v, rec, fe))
                return false;
        } else if (strcmp(key, "start") == 0 && start) {
            if (!json_object_is_type(v, json_type_boolean))
                FAIL("start", "start must be a boolean");
            *start = json_object_get_boolean(v);
        } else if (strcmp(key, "id") == 0 || strcmp(key, "status") == 0 || strcmp(key, "url") == 0 ||
                   strcmp(key, "created_at") == 0 || strcmp(key, "updated_at") == 0 ||
                   strcmp(key, "last_error") == 0) {
            continue;
        } else {
            FAIL(key, "unknown field '%s'", key);
        }
    }
    return true;
}

#undef FAIL

/* A provider without a default upstream (azure_openai: the customer's own
 * resource; openai_compatible: the user's server) cannot run without an
 * upstream_url, so the API refuses to create or leave such a proxy rather
 * than let it fail at start. */
static bool check_upstream_required(const struct rd_proxy_rec *rec, struct field_err *fe)
{
    const struct rd_provider *p = rec->provider ? rd_provider_find(rec->provider) : NULL;
    if (p == NULL || !p->upstream_required || (rec->upstream_url && rec->upstream_url[0]))
        return true;
    fe->field = "upstream_url";
    snprintf(fe->message, sizeof fe->message,
             "provider %s has no default upstream: upstream_url is required (%s, or \"emulator\")", p->name,
             strcmp(p->name, "azure_openai") == 0 ? "your resource's endpoint, e.g. https://myresource.openai.azure.com"
                                                  : "your server's base URL without /v1, e.g. http://127.0.0.1:8000");
    return false;
}

/* ---- handlers ---- */

static struct rd_proxy_entry *find_or_404(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    char *end = NULL;
    long long id = strtoll(param, &end, 10);
    struct rd_proxy_entry *e = NULL;
    if (end && *end == '\0' && end != param)
        e = rd_manager_find(api->manager, id);
    if (e == NULL)
        rd_api_send_error(x, 404, "not_found", NULL, "no proxy with id '%s'", param);
    return e;
}

/* What an API call that completes later answers with. */
enum pending_reply { REPLY_PROXY, REPLY_CONFIG, REPLY_DELETED };

static int update(struct rd_api *api, struct rd_http_exch *x, struct rd_proxy_entry *e, struct rd_proxy_rec *rec,
                   enum pending_reply reply);

static void send_mgr_err(struct rd_http_exch *x, const struct rd_mgr_err *err)
{
    rd_api_send_error(x, err->status, err->code, err->field, "%s", err->message);
}

static void create_proxy(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    struct json_object *body = rd_api_body_object(x);
    if (body == NULL)
        return;
    struct rd_proxy_rec rec;
    memset(&rec, 0, sizeof rec);
    rec.bind = rd_strdup("127.0.0.1");
    rec.tags_json = rd_strdup("[]");
    rec.config_json = rd_strdup("{}");
    rec.desired_status = rd_strdup("stopped");
    bool start = true;
    struct field_err fe = {0};
    if (!apply_fields(body, &rec, &start, &fe)) {
        rd_api_send_error(x, 400, fe.field && strchr(fe.field, '.') ? "invalid_config" : "invalid_field", fe.field,
                          "%s", fe.message);
        goto out;
    }
    if (rec.name == NULL || rec.provider == NULL) {
        rd_api_send_error(x, 400, "invalid_field", rec.name ? "provider" : "name", "%s is required",
                          rec.name ? "provider" : "name");
        goto out;
    }
    if (!check_upstream_required(&rec, &fe)) {
        rd_api_send_error(x, 400, "invalid_field", fe.field, "%s", fe.message);
        goto out;
    }
    if (rec.port == 0) {
        rec.port = rd_manager_pick_port(api->manager, rec.bind);
        if (rec.port < 0) {
            rd_api_send_error(x, 409, "no_free_port", "port", "no free port from 8001 upward");
            goto out;
        }
    }
    struct rd_proxy_entry *e = NULL;
    struct rd_mgr_err err;
    if (rd_manager_create(api->manager, &rec, start, &e, &err) != 0) {
        send_mgr_err(x, &err);
        goto out;
    }
    rd_api_send_json(x, 201, proxy_json(e));
out:
    rd_proxy_rec_free(&rec);
    json_object_put(body);
}

static void list_proxies(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    (void)param;
    struct json_object *arr = json_object_new_array();
    for (struct rd_proxy_entry *e = api->manager->entries; e; e = e->next)
        if (!rd_proxy_is_deleting(e))
            json_object_array_add(arr, proxy_json(e));
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "proxies", arr);
    rd_api_send_json(x, 200, root);
}

static void get_proxy(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = find_or_404(api, x, param);
    if (e)
        rd_api_send_json(x, 200, proxy_json(e));
}

static void patch_proxy(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = find_or_404(api, x, param);
    if (e == NULL)
        return;
    struct json_object *body = rd_api_body_object(x);
    if (body == NULL)
        return;
    struct rd_proxy_rec rec;
    rd_proxy_rec_copy(&rec, &e->rec);
    struct field_err fe = {0};
    if (!apply_fields(body, &rec, NULL, &fe))
        rd_api_send_error(x, 400, fe.field && strchr(fe.field, '.') ? "invalid_config" : "invalid_field", fe.field,
                          "%s", fe.message);
    else if (!check_upstream_required(&rec, &fe))
        rd_api_send_error(x, 400, "invalid_field", fe.field, "%s", fe.message);
    else if (update(api, x, e, &rec, REPLY_PROXY) == 0 && json_object_object_get_ex(body, "config", NULL))
        rd_manager_end_temp(api->manager, e); /* a permanent configuration, like PUT .../config */
    rd_proxy_rec_free(&rec);
    json_object_put(body);
}

/* An API call that completes later (start, stop, PATCH, delete). If the client goes away
 * first, the exchange is ended at once and the completion only cleans up. */
struct pending {
    struct rd_api *api;
    struct rd_http_exch *x;
    int64_t id;
    enum pending_reply reply;
};

static void pending_gone(void *ud)
{
    struct pending *p = ud;
    struct rd_http_exch *x = p->x;
    p->x = NULL;
    rd_http_abort(x);
}

/* Renders the proxy as it is now: the manager calls this when the outcome
 * the call waited for has happened. */
static void pending_done(void *ud, const struct rd_mgr_err *err)
{
    struct pending *p = ud;
    if (p->x) {
        struct rd_proxy_entry *e = rd_manager_find(p->api->manager, p->id);
        if (err)
            send_mgr_err(p->x, err);
        else if (p->reply == REPLY_DELETED)
            rd_api_send_json(p->x, 204, NULL);
        else if (e && p->reply == REPLY_CONFIG)
            rd_api_send_json(p->x, 200, effective_config_out(e));
        else if (e)
            rd_api_send_json(p->x, 200, proxy_json(e));
        else
            rd_api_send_error(p->x, 404, "not_found", NULL, "proxy %lld was deleted", (long long)p->id);
    }
    free(p);
}

static struct pending *pending_new(struct rd_api *api, struct rd_http_exch *x, int64_t id,
                                   enum pending_reply reply)
{
    struct pending *p = rd_calloc(1, sizeof *p);
    p->api = api;
    p->x = x;
    p->id = id;
    p->reply = reply;
    rd_http_set_callbacks(x, NULL, pending_gone, p);
    return p;
}

/* Applies rec; the answer comes once the change is in effect. Returns 0
 * when the change was accepted (else the error is sent). */
static int update(struct rd_api *api, struct rd_http_exch *x, struct rd_proxy_entry *e, struct rd_proxy_rec *rec,
                  enum pending_reply reply)
{
    struct rd_mgr_err err;
    struct pending *p = pending_new(api, x, e->rec.id, reply);
    int rc = rd_manager_update(api->manager, e, rec, &err, pending_done, p);
    if (rc != 0) {
        rd_http_set_callbacks(x, NULL, NULL, NULL);
        free(p);
        send_mgr_err(x, &err);
    }
    return rc;
}

static void stop_proxy(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = find_or_404(api, x, param);
    if (e == NULL)
        return;
    char mode_buf[16], timeout_buf[16];
    const char *mode = rd_api_query(x, "mode", mode_buf, sizeof mode_buf);
    const char *timeout = rd_api_query(x, "timeout_s", timeout_buf, sizeof timeout_buf);
    enum rd_http_stop_mode m = RD_HTTP_STOP_GRACEFUL;
    if (mode && strcmp(mode, "force") == 0)
        m = RD_HTTP_STOP_FORCE;
    else if (mode && strcmp(mode, "graceful") != 0) {
        rd_api_send_error(x, 400, "invalid_field", "mode", "mode must be graceful or force");
        return;
    }
    long long timeout_s = 30;
    if (timeout) {
        char *end = NULL;
        timeout_s = strtoll(timeout, &end, 10);
        if (end == timeout || *end != '\0' || timeout_s < 0 || timeout_s > 86400) {
            rd_api_send_error(x, 400, "invalid_field", "timeout_s", "timeout_s must be an integer from 0 to 86400");
            return;
        }
    }
    /* timeout_s=0 means "cut now": the manager turns a graceful stop with
     * no time left into a force stop (a listener deadline of 0 would mean
     * no deadline at all). */
    struct pending *p = pending_new(api, x, e->rec.id, REPLY_PROXY);
    rd_manager_stop(api->manager, e, m, (uint64_t)timeout_s * 1000u, true, pending_done, p);
}

static void start_proxy(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = find_or_404(api, x, param);
    if (e == NULL)
        return;
    struct pending *p = pending_new(api, x, e->rec.id, REPLY_PROXY);
    rd_manager_start(api->manager, e, pending_done, p);
}

static void delete_proxy(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = find_or_404(api, x, param);
    if (e == NULL)
        return;
    struct pending *p = pending_new(api, x, e->rec.id, REPLY_DELETED);
    rd_manager_delete(api->manager, e, pending_done, p);
}

static void get_config(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = find_or_404(api, x, param);
    if (e)
        rd_api_send_json(x, 200, effective_config_out(e));
}

#define TTL_S_MAX 86400

/* ?ttl_s=N: 0 when absent, N in 1..TTL_S_MAX, or -1 with the 400 sent. */
static long long ttl_param(struct rd_http_exch *x)
{
    char buf[32];
    const char *v = rd_api_query(x, "ttl_s", buf, sizeof buf);
    if (v == NULL)
        return 0;
    char *end = NULL;
    long long ttl = strtoll(v, &end, 10);
    /* A value that filled buf may have been cut short: refused, not guessed. */
    if (strlen(v) > 12 || end == v || *end != '\0' || ttl < 1 || ttl > TTL_S_MAX) {
        rd_api_send_error(x, 400, "invalid_field", "ttl_s", "ttl_s must be an integer from 1 to %d (seconds)",
                          TTL_S_MAX);
        return -1;
    }
    return ttl;
}

/* Validates doc as the proxy's configuration (secrets of base restored and
 * sealed, as PUT stores them) and applies it: for ttl_s seconds when
 * ttl_s > 0 (then reverting to the permanent one), else for good, which
 * also ends a temporary one. Answers the call. */
static void apply_doc(struct rd_api *api, struct rd_http_exch *x, struct rd_proxy_entry *e, struct json_object *doc,
                      const char *base, long long ttl_s)
{
    json_object_object_del(doc, "temporary_until"); /* shown by GET, read-only */
    struct rd_proxy_rec rec;
    rd_proxy_rec_copy(&rec, &e->rec);
    replace(&rec.config_json, base);
    struct field_err fe = {0};
    if (!apply_config(doc, &rec, &fe)) {
        rd_api_send_error(x, 400, "invalid_config", fe.field, "%s", fe.message);
    } else if (ttl_s > 0) {
        struct rd_mgr_err err;
        if (rd_manager_set_temp(api->manager, e, rec.config_json, (uint64_t)ttl_s * 1000u, &err) == 0) {
            rec.config_json = NULL; /* taken over */
            rd_api_send_json(x, 200, effective_config_out(e));
        } else {
            send_mgr_err(x, &err);
        }
    } else {
        if (update(api, x, e, &rec, REPLY_CONFIG) == 0)
            rd_manager_end_temp(api->manager, e);
    }
    rd_proxy_rec_free(&rec);
}

/* What PUT and PATCH of a configuration read first: the proxy, ttl_s and
 * the body's object. NULL when one of them has already been answered with
 * its error. */
static struct json_object *config_request(struct rd_api *api, struct rd_http_exch *x, const char *param,
                                          struct rd_proxy_entry **e, long long *ttl_s)
{
    *e = find_or_404(api, x, param);
    if (*e == NULL)
        return NULL;
    *ttl_s = ttl_param(x);
    if (*ttl_s < 0)
        return NULL;
    return rd_api_body_object(x);
}

static void put_config(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e;
    long long ttl_s;
    struct json_object *body = config_request(api, x, param, &e, &ttl_s);
    if (body == NULL)
        return;
    /* Secrets sent back redacted are those of the permanent document. */
    apply_doc(api, x, e, body, e->rec.config_json, ttl_s);
    json_object_put(body);
}

/* PATCH: each top-level block of the body replaces that block of the
 * current document (null removes it); the others are kept. With ttl_s the
 * current document is the one running (a temporary one stacks), without it
 * the permanent one. */
static void patch_config(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e;
    long long ttl_s;
    struct json_object *body = config_request(api, x, param, &e, &ttl_s);
    if (body == NULL)
        return;
    const char *base = ttl_s > 0 && e->temp_config ? e->temp_config : e->rec.config_json;
    struct json_object *doc = parse_or(base, json_object_new_object());
    json_object_object_foreach(body, key, v)
    {
        if (v == NULL)
            json_object_object_del(doc, key);
        else
            json_object_object_add(doc, key, json_object_get(v));
    }
    apply_doc(api, x, e, doc, base, ttl_s);
    json_object_put(doc);
    json_object_put(body);
}

/* Simulated outcomes by type and the retry audit (proxy/failstats.h): the
 * counts of earlier runs (the roll-ups) plus this run's. The retry audit is
 * this run's. */
static void get_failures(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = find_or_404(api, x, param);
    if (e == NULL)
        return;
    uint64_t earlier[RD_FAILSTATS_TYPES] = {0};
    int64_t since = INT64_MAX;
    _Static_assert(RD_FAILSTATS_TYPES == RD_ROLLUP_FAIL_TYPES, "one failure type index");
    rd_rollup_failures_base(rd_obs.rollup, e->rec.id, earlier, &since);
    rd_api_send_json(x, 200, rd_failstats_json_with(e->failstats, e->rec.id, earlier, since));
}

struct usage_ctx {
    struct rd_usage_extra *v;
    size_t n, cap;
    int64_t since;
};

static void add_earlier_usage(void *ud, const struct rd_rollup_agg *a)
{
    struct usage_ctx *c = ud;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->v = rd_realloc(c->v, c->cap * sizeof *c->v);
    }
    /* The usage counts billed requests: a cache hit is not one. */
    c->v[c->n++] = (struct rd_usage_extra){.provider = a->provider,
                                           .model = a->model,
                                           .requests = a->requests - a->cache_hits,
                                           .priced = a->priced,
                                           .unpriced = a->unpriced,
                                           .input = a->input_tokens,
                                           .output = a->output_tokens,
                                           .cached = a->cached_tokens,
                                           .cache_write = a->cache_write_tokens,
                                           .reasoning = a->reasoning_tokens,
                                           .cost_usd = a->cost_usd};
    if (a->start_ms < c->since)
        c->since = a->start_ms;
}

/* Token and cost totals by model (proxy/usage.h): those of earlier runs
 * (the roll-ups) plus this run's. */
static void get_usage(struct rd_api *api, struct rd_http_exch *x, const char *param)
{
    struct rd_proxy_entry *e = find_or_404(api, x, param);
    if (e == NULL)
        return;
    struct usage_ctx c = {.since = INT64_MAX};
    rd_rollup_usage_base(rd_obs.rollup, e->rec.id, add_earlier_usage, &c);
    rd_api_send_json(x, 200, rd_proxy_usage_json_with(e->usage, e->rec.id, c.v, c.n, c.since));
    free(c.v);
}

const struct rd_api_route rd_api_proxy_routes[] = {
    {"GET", "/api/v1/proxies", list_proxies, true},
    {"POST", "/api/v1/proxies", create_proxy, true},
    {"GET", "/api/v1/proxies/{id}", get_proxy, true},
    {"PATCH", "/api/v1/proxies/{id}", patch_proxy, true},
    {"DELETE", "/api/v1/proxies/{id}", delete_proxy, true},
    {"POST", "/api/v1/proxies/{id}/start", start_proxy, true},
    {"POST", "/api/v1/proxies/{id}/stop", stop_proxy, true},
    {"GET", "/api/v1/proxies/{id}/config", get_config, true},
    {"PUT", "/api/v1/proxies/{id}/config", put_config, true},
    {"PATCH", "/api/v1/proxies/{id}/config", patch_config, true},
    {"GET", "/api/v1/proxies/{id}/failures", get_failures, true},
    {"GET", "/api/v1/proxies/{id}/usage", get_usage, true},
};
const size_t rd_api_proxy_nroutes = sizeof rd_api_proxy_routes / sizeof rd_api_proxy_routes[0];
