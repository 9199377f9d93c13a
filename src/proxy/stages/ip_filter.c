/* The ip_filter stage: decides the client address (the socket peer, or what
 * a trusted proxy forwarded), stores it in req->client_ip for the stages
 * after it and the request log, and refuses clients the ip_filtering block
 * does not admit with the provider's native 403, before any upstream call.
 *
 * Everything is compiled once per configuration (address tries, country
 * maps, the GeoIP databases opened and read into memory): a request costs
 * one trie walk per list it is checked against and, only when country rules
 * exist, one database lookup. How the rules combine is documented in
 * docs/failure-simulation.md ("IP filtering: the ip_filter stage"):
 *
 *   in_allow = address in allowed_ips  or country in countries_allowed
 *   in_block = address in blocked_ips  or country in countries_blocked
 *   allowlist: admitted iff in_allow and not in_block
 *   blocklist: admitted iff not in_block, or in_allow
 *
 * that is, the mode's own lists are the rule and the other mode's lists are
 * exceptions to it. */
#include "proxy/stages/ip_filter.h"

#include <stdio.h>
#include <string.h>

#include "proxy/failure.h"
#include "proxy/req.h"
#include "proxy/stages/stages.h"
#include "util/err.h"
#include "util/json.h"
#include "util/log.h"
#include "util/mem.h"

/* err = field, and the message head + detail + tail (truncated to fit). */
static int fail(struct rd_config_err *err, const char *field, const char *head, const char *detail, const char *tail)
{
    snprintf(err->field, sizeof err->field, "%s", field);
    size_t cap = sizeof err->message, t = strlen(tail), h = strlen(head);
    int n = t + h < cap ? (int)(cap - 1 - t - h) : 0;
    snprintf(err->message, cap, "%s%.*s%s", head, n, detail, tail);
    return RD_EINVAL;
}

/* The patterns of list name into a frozen set (*out NULL when the list is
 * absent or empty). The schema accepted every pattern already; a failure
 * here is the matcher refusing what the schema let through. */
static int compile_list(struct json_object *blk, const char *name, struct rd_ipset **out, struct rd_config_err *err)
{
    struct json_object *list = rd_json_get(blk, name);
    size_t n = list ? json_object_array_length(list) : 0;
    *out = NULL;
    if (n == 0)
        return 0;
    struct rd_ipset *s = rd_ipset_new();
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(list, i);
        char why[160];
        if (rd_ipset_add(s, json_object_get_string(e), why, sizeof why) < 0) {
            rd_ipset_free(s);
            snprintf(err->field, sizeof err->field, "ip_filtering.%s[%zu]", name, i);
            snprintf(err->message, sizeof err->message, "ip_filtering.%s[%zu]: %s", name, i, why);
            return RD_EINVAL;
        }
    }
    rd_ipset_freeze(s);
    *out = s;
    return 0;
}

static bool compile_countries(struct json_object *blk, const char *name, struct rd_country_set *out)
{
    struct json_object *list = rd_json_get(blk, name);
    size_t n = list ? json_object_array_length(list) : 0;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++)
        rd_country_set_add(out, rd_country_id(json_object_get_string(json_object_array_get_idx(list, i))));
    return n > 0;
}

static int open_databases(struct json_object *blk, struct rd_ipfilter *f, struct rd_config_err *err)
{
    char why[256];
    const char *p4 = rd_json_get_str(blk, "geoip_database");
    const char *p6 = rd_json_get_str(blk, "geoip_database_v6");
    int rc = rd_geoip_open(p4 ? p4 : RD_GEOIP_DEFAULT_V4, RD_GEOIP_V4, &f->db4, why, sizeof why);
    if (rc != 0)
        return p4 ? fail(err, "ip_filtering.geoip_database", "ip_filtering.geoip_database: ", why, "")
                  : fail(err, "ip_filtering.geoip_database", "country rules need a GeoIP country database: ", why,
                         " (install Debian's geoip-database package or set ip_filtering.geoip_database)");
    rc = rd_geoip_open(p6 ? p6 : RD_GEOIP_DEFAULT_V6, RD_GEOIP_V6, &f->db6, why, sizeof why);
    /* The default IPv6 database is optional (IPv6 clients then have no
     * country); one named, or a default file that is there but broken, is
     * not. */
    if (rc != 0 && (p6 != NULL || rc != RD_ENOTFOUND))
        return fail(err, "ip_filtering.geoip_database_v6", "ip_filtering.geoip_database_v6: ", why, "");
    return 0;
}

int rd_ipfilter_compile(struct json_object *doc, struct rd_ipfilter **out, struct rd_config_err *err)
{
    struct json_object *blk = rd_json_get(doc, "ip_filtering");
    *out = NULL;
    if (blk == NULL || !rd_json_get_bool(blk, "enabled", true))
        return 0;
    struct rd_ipfilter *f = rd_calloc(1, sizeof *f);
    const char *mode = rd_json_get_str(blk, "mode");
    f->allowlist = mode != NULL && strcmp(mode, "allowlist") == 0;
    int rc = compile_list(blk, "allowed_ips", &f->allowed, err);
    if (rc == 0)
        rc = compile_list(blk, "blocked_ips", &f->blocked, err);
    if (rc == 0)
        rc = compile_list(blk, "trusted_proxies", &f->trusted, err);
    if (rc == 0) {
        bool a = compile_countries(blk, "countries_allowed", &f->countries_allowed);
        bool b = compile_countries(blk, "countries_blocked", &f->countries_blocked);
        f->has_countries = a || b;
        if (f->has_countries)
            rc = open_databases(blk, f, err);
    }
    if (rc != 0) {
        rd_ipfilter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

void rd_ipfilter_free(struct rd_ipfilter *f)
{
    if (f == NULL)
        return;
    rd_ipset_free(f->allowed);
    rd_ipset_free(f->blocked);
    rd_ipset_free(f->trusted);
    rd_geoip_close(f->db4);
    rd_geoip_close(f->db6);
    free(f);
}

static bool in(const struct rd_ipset *s, const struct rd_ipaddr *a)
{
    return s != NULL && rd_ipset_contains_addr(s, a);
}

enum rd_ipfilter_verdict rd_ipfilter_decide(const struct rd_ipfilter *f, const struct rd_ipaddr *peer, const char *xff,
                                            size_t xff_len, const char *xrip, size_t xrip_len,
                                            struct rd_ipfilter_result *res)
{
    res->why[0] = '\0';
    res->country = 0;
    int src = rd_ip_client_addr(peer, f->trusted, xff, xff_len, xrip, xrip_len, &res->client, res->why,
                                sizeof res->why);
    /* A trusted proxy always writes a well-formed header, so a malformed one
     * means the chain cannot be followed. Falling back to the peer (the
     * proxy) would let a client dodge a blocklist by sending garbage through
     * a proxy that passes the header on: refuse instead, in both modes. */
    if (src < 0) {
        res->source = RD_IP_SOURCE_PEER;
        return res->verdict = RD_IPF_DENY_FORWARDED;
    }
    res->source = (enum rd_ip_source)src;
    if (f->has_countries)
        res->country = rd_geoip_country(f->db4, f->db6, &res->client);
    bool allow_addr = in(f->allowed, &res->client);
    bool allow_country = rd_country_set_has(&f->countries_allowed, res->country);
    bool block_addr = in(f->blocked, &res->client);
    bool block_country = rd_country_set_has(&f->countries_blocked, res->country);
    bool in_allow = allow_addr || allow_country;
    enum rd_ipfilter_verdict v = RD_IPF_ALLOW;
    if (f->allowlist) {
        if (!in_allow)
            v = RD_IPF_DENY_ADDRESS;
        else if (block_addr)
            v = RD_IPF_DENY_BLOCKED;
        else if (block_country)
            v = RD_IPF_DENY_COUNTRY;
    } else if (!in_allow) {
        if (block_addr)
            v = RD_IPF_DENY_BLOCKED;
        else if (block_country)
            v = RD_IPF_DENY_COUNTRY;
    }
    return res->verdict = v;
}

const char *rd_ipfilter_verdict_name(enum rd_ipfilter_verdict v)
{
    switch (v) {
    case RD_IPF_ALLOW: return "allow";
    case RD_IPF_DENY_ADDRESS: return "not_allowed";
    case RD_IPF_DENY_BLOCKED: return "blocked";
    case RD_IPF_DENY_COUNTRY: return "country_blocked";
    case RD_IPF_DENY_FORWARDED: return "bad_forwarded_header";
    }
    return "?";
}

/* ---- the stage ---- */

static int compile(const struct rd_stage_env *env, void **state, struct rd_config_err *err)
{
    struct rd_ipfilter *f = NULL;
    int rc = rd_ipfilter_compile(env->doc, &f, err);
    *state = f;
    return rc;
}

static void release(void *state)
{
    rd_ipfilter_free(state);
}

/* The X-Forwarded-For lines of the request joined with ',' (one line is
 * used in place; several are copied into the arena). NULL when absent. */
static const char *forwarded_for(struct rd_req *req, size_t *len)
{
    const struct rd_hdrs *h = &req->x->req->headers;
    const struct rd_hdr *first = NULL;
    size_t total = 0, lines = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (!rd_hdr_name_eq(h->v[i].name, h->v[i].name_len, "x-forwarded-for"))
            continue;
        if (first == NULL)
            first = &h->v[i];
        total += h->v[i].value_len + 1;
        lines++;
    }
    if (first == NULL)
        return NULL;
    if (lines == 1) {
        *len = first->value_len;
        return first->value;
    }
    char *v = rd_arena_alloc(&req->arena, total), *w = v;
    for (size_t i = 0; i < h->n; i++) {
        if (!rd_hdr_name_eq(h->v[i].name, h->v[i].name_len, "x-forwarded-for"))
            continue;
        if (w != v)
            *w++ = ',';
        memcpy(w, h->v[i].value, h->v[i].value_len);
        w += h->v[i].value_len;
    }
    *len = (size_t)(w - v);
    return v;
}

static const char *deny_message(enum rd_ipfilter_verdict v)
{
    switch (v) {
    case RD_IPF_DENY_COUNTRY: return "Country, region, or territory not supported.";
    case RD_IPF_DENY_FORWARDED: return "Access denied: the forwarded client address could not be read.";
    default: return "Access denied: requests from your IP address are not allowed.";
    }
}

static enum rd_stage_rc run(struct rd_req *req, const void *state)
{
    const struct rd_ipfilter *f = state;
    struct rd_ipaddr peer;
    if (rd_ipaddr_parse(req->x->client_ip, strlen(req->x->client_ip), &peer, NULL, 0) != 0) {
        /* Not an IP peer (cannot happen on a TCP listener): no rule can be
         * checked against it, so it is refused in both modes, as a
         * malformed forwarded address is. */
        rd_req_warn(req, "ip_filter: peer address \"%s\" is not an IP address", req->x->client_ip);
        struct rd_error_spec e = {.status = 403, .message = deny_message(RD_IPF_DENY_ADDRESS), .retry_after_s = -1};
        rd_req_simulate_error(req, RD_FAIL_IP_BLOCKED, &e);
        return RD_STAGE_DONE;
    }
    const char *xff = NULL, *xrip = NULL;
    size_t xff_len = 0, xrip_len = 0;
    /* The headers are read only from a trusted peer (rd_ip_client_addr
     * ignores them otherwise): skip the header scan for everyone else. */
    if (f->trusted != NULL && rd_ipset_contains_addr(f->trusted, &peer)) {
        xff = forwarded_for(req, &xff_len);
        const struct rd_hdr *h = rd_hdrs_find(&req->x->req->headers, "x-real-ip");
        if (h) {
            xrip = h->value;
            xrip_len = h->value_len;
        }
    }
    struct rd_ipfilter_result res;
    enum rd_ipfilter_verdict v = rd_ipfilter_decide(f, &peer, xff, xff_len, xrip, xrip_len, &res);
    /* The decided address, in one form (a dual-stack listener's
     * "::ffff:a.b.c.d" peer becomes "a.b.c.d"). */
    rd_ipaddr_format(&res.client, req->client_ip, sizeof req->client_ip);
    if (v == RD_IPF_ALLOW)
        return RD_STAGE_NEXT;
    rd_req_debug(req, "ip_filter: %s denied: %s%s%s%s%s", req->client_ip, rd_ipfilter_verdict_name(v),
                 res.country ? ", country " : "", res.country ? rd_country_code(res.country) : "",
                 res.why[0] ? ", " : "", res.why);
    struct rd_error_spec e = {.status = 403, .message = deny_message(v), .retry_after_s = -1};
    rd_req_simulate_error(req, RD_FAIL_IP_BLOCKED, &e);
    return RD_STAGE_DONE;
}

const struct rd_stage rd_stage_ip_filter = {
    .name = "ip_filter",
    .compile = compile,
    .release = release,
    .run = run,
};
