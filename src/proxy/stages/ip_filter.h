/* The ip_filter stage's compiled filter and its decision, apart from the
 * request so that unit tests can drive it (tests/unit/test_ipfilter.c).
 * The rules are documented for users in docs/failure-simulation.md, "IP
 * filtering: the ip_filter stage". */
#ifndef RD_PROXY_STAGES_IP_FILTER_H
#define RD_PROXY_STAGES_IP_FILTER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "proxy/config.h"
#include "util/geoip.h"
#include "util/ipmatch.h"

/* The ip_filtering block, compiled (immutable once built; read by every
 * worker without a lock). */
struct rd_ipfilter {
    bool allowlist;               /* mode "allowlist"; else "blocklist" */
    struct rd_ipset *allowed;     /* NULL: empty list */
    struct rd_ipset *blocked;     /* NULL: empty list */
    struct rd_ipset *trusted;     /* NULL: nobody's forwarded headers are believed */
    struct rd_country_set countries_allowed, countries_blocked;
    bool has_countries;           /* some country list is non-empty: look the client's country up */
    struct rd_geoip *db4, *db6;   /* open when has_countries (db6 may be NULL: no IPv6 countries) */
};

enum rd_ipfilter_verdict {
    RD_IPF_ALLOW,
    RD_IPF_DENY_ADDRESS,   /* allowlist: neither the address nor the country is allowed */
    RD_IPF_DENY_BLOCKED,   /* the address is in blocked_ips (and not excepted) */
    RD_IPF_DENY_COUNTRY,   /* the country is in countries_blocked (and not excepted) */
    RD_IPF_DENY_FORWARDED, /* a trusted proxy sent a malformed X-Forwarded-For / X-Real-IP */
};

struct rd_ipfilter_result {
    enum rd_ipfilter_verdict verdict;
    struct rd_ipaddr client;  /* the client address decided on */
    enum rd_ip_source source; /* where it came from */
    int country;              /* its country number (util/geoip.h), 0 unknown or not looked up */
    char why[200];            /* DENY_FORWARDED: what is wrong with the header */
};

/* Compiles the ip_filtering block of doc (validated by rd_config_validate).
 * *out is NULL when the block is absent or "enabled": false. Opens the
 * GeoIP databases when a country list is non-empty. Returns 0, or
 * RD_EINVAL with err naming the field (a database that cannot be read or
 * is not a country database: ip_filtering.geoip_database). Control thread
 * (reads files). */
int rd_ipfilter_compile(struct json_object *doc, struct rd_ipfilter **out, struct rd_config_err *err);
/* NULL-safe. */
void rd_ipfilter_free(struct rd_ipfilter *f);

/* Decides for a request from peer (the socket peer) carrying the
 * X-Forwarded-For value xff[0..xff_len) (several lines joined with ',';
 * NULL when absent) and the X-Real-IP value xrip (NULL when absent). Fills
 * res and returns its verdict. Pure, thread-safe. */
enum rd_ipfilter_verdict rd_ipfilter_decide(const struct rd_ipfilter *f, const struct rd_ipaddr *peer, const char *xff,
                                            size_t xff_len, const char *xrip, size_t xrip_len,
                                            struct rd_ipfilter_result *res);

/* "allow", "not_allowed", "blocked", "country_blocked", "bad_forwarded_header". */
const char *rd_ipfilter_verdict_name(enum rd_ipfilter_verdict v);

#endif
