/* Tests for the ip_filter stage's decision (src/proxy/stages/ip_filter.c)
 * and the GeoIP country lookup behind it (src/util/geoip.c): which client
 * address is decided on (peer or trusted forwarded headers), allowlist and
 * blocklist with their exceptions, country rules on Debian's geoip-database
 * files (installed by scripts/install-deps.sh test), malformed forwarded
 * headers, databases that cannot be opened, and a 10,000-entry list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy/config.h"
#include "proxy/pipeline.h"
#include "proxy/stages/ip_filter.h"
#include "util/err.h"
#include "util/geoip.h"
#include "util/json.h"

/* Public addresses whose country the Debian database knows (only ever
 * written into headers; nothing connects to them). */
#define US_V4 "8.8.8.8"
#define GB_V4 "81.2.69.142"
#define NL_V4 "193.0.6.139"
#define US_V6 "2001:4860:4860::8888"
#define DE_V6 "2a00:1450:4001::1"

static struct json_object *doc(const char *quoted)
{
    char *text = strdup(quoted);
    assert_non_null(text);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    struct json_object *o = NULL;
    assert_int_equal(rd_json_parse(text, strlen(text), RD_CONFIG_MAX_DOC_BYTES, &o, NULL), 0);
    free(text);
    struct rd_config_err err;
    if (rd_config_validate(o, &err) != 0)
        fail_msg("invalid test document: %s: %s", err.field, err.message);
    return o;
}

static struct rd_ipfilter *filter(const char *quoted)
{
    struct json_object *d = doc(quoted);
    struct rd_ipfilter *f = NULL;
    struct rd_config_err err;
    int rc = rd_ipfilter_compile(d, &f, &err);
    if (rc != 0)
        fail_msg("compile: %s: %s", err.field, err.message);
    json_object_put(d);
    assert_non_null(f);
    return f;
}

static struct rd_ipaddr addr(const char *text)
{
    struct rd_ipaddr a;
    assert_int_equal(rd_ipaddr_parse(text, strlen(text), &a, NULL, 0), 0);
    return a;
}

/* The verdict for peer with optional X-Forwarded-For / X-Real-IP; the
 * decided client's text in client (when not NULL). */
static enum rd_ipfilter_verdict decide(const struct rd_ipfilter *f, const char *peer, const char *xff, const char *xrip,
                                       char *client, struct rd_ipfilter_result *out)
{
    struct rd_ipaddr p = addr(peer);
    struct rd_ipfilter_result res;
    enum rd_ipfilter_verdict v =
        rd_ipfilter_decide(f, &p, xff, xff ? strlen(xff) : 0, xrip, xrip ? strlen(xrip) : 0, &res);
    assert_int_equal(v, res.verdict);
    if (client)
        assert_true(rd_ipaddr_format(&res.client, client, 64) > 0);
    if (out)
        *out = res;
    return v;
}

static bool have_db(void)
{
    if (access(RD_GEOIP_DEFAULT_V4, R_OK) != 0 || access(RD_GEOIP_DEFAULT_V6, R_OK) != 0)
        fail_msg("%s / %s missing: run scripts/install-deps.sh test (Debian package geoip-database)",
                 RD_GEOIP_DEFAULT_V4, RD_GEOIP_DEFAULT_V6);
    return true;
}

static void test_absent_or_disabled(void **state)
{
    (void)state;
    struct rd_config_err err;
    struct rd_ipfilter *f = (struct rd_ipfilter *)1;
    struct json_object *d = doc("{}");
    assert_int_equal(rd_ipfilter_compile(d, &f, &err), 0);
    assert_null(f);
    json_object_put(d);
    d = doc("{'ip_filtering': {'enabled': false, 'mode': 'allowlist', 'allowed_ips': ['10.0.0.1']}}");
    assert_int_equal(rd_ipfilter_compile(d, &f, &err), 0);
    assert_null(f);
    /* not in the run list: costs nothing */
    struct rd_pipeline pl;
    assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), 0);
    assert_null(pl.state[RD_STAGE_IP_FILTER]);
    assert_int_equal(pl.n, 2); /* the cache (on by default) and the upstream */
    rd_pipeline_free(&pl);
    json_object_put(d);
    /* configured: first in the run list */
    d = doc("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['10.0.0.1']}}");
    assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), 0);
    assert_int_equal(pl.n, 3); /* ip_filter, cache, upstream */
    assert_string_equal(pl.run[0].stage->name, "ip_filter");
    assert_true(pl.active);
    rd_pipeline_free(&pl);
    /* dropped by middleware_pipeline */
    json_object_put(d);
    d = doc("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['10.0.0.1']}, 'middleware_pipeline': "
            "['rate_limiting', 'provider_forwarding']}");
    assert_int_equal(rd_pipeline_compile(d, NULL, &pl, &err), 0);
    assert_int_equal(pl.n, 1);
    rd_pipeline_free(&pl);
    json_object_put(d);
}

static void test_allowlist(void **state)
{
    (void)state;
    struct rd_ipfilter *f = filter("{'ip_filtering': {'mode': 'allowlist', 'allowed_ips': ['127.0.0.1', "
                                   "'10.0.*', '2001:db8::/32', '::1'], 'blocked_ips': ['10.0.0.50']}}");
    char c[64];
    assert_int_equal(decide(f, "127.0.0.1", NULL, NULL, c, NULL), RD_IPF_ALLOW);
    assert_string_equal(c, "127.0.0.1");
    /* a dual-stack listener's form of the same address */
    assert_int_equal(decide(f, "::ffff:127.0.0.1", NULL, NULL, c, NULL), RD_IPF_ALLOW);
    assert_string_equal(c, "127.0.0.1");
    assert_int_equal(decide(f, "127.0.0.2", NULL, NULL, c, NULL), RD_IPF_DENY_ADDRESS);
    assert_string_equal(c, "127.0.0.2");
    assert_int_equal(decide(f, "10.0.255.255", NULL, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "10.1.0.0", NULL, NULL, NULL, NULL), RD_IPF_DENY_ADDRESS);
    assert_int_equal(decide(f, "2001:db8:ffff::1", NULL, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "2001:db9::1", NULL, NULL, NULL, NULL), RD_IPF_DENY_ADDRESS);
    assert_int_equal(decide(f, "::1", NULL, NULL, NULL, NULL), RD_IPF_ALLOW);
    /* blocked_ips are cut out of the allowlist */
    assert_int_equal(decide(f, "10.0.0.50", NULL, NULL, NULL, NULL), RD_IPF_DENY_BLOCKED);
    /* nobody trusted: a forwarded header changes nothing */
    assert_int_equal(decide(f, "127.0.0.2", "127.0.0.1", "127.0.0.1", c, NULL), RD_IPF_DENY_ADDRESS);
    assert_string_equal(c, "127.0.0.2");
    assert_int_equal(decide(f, "127.0.0.1", "garbage", NULL, NULL, NULL), RD_IPF_ALLOW);
    rd_ipfilter_free(f);
}

static void test_blocklist(void **state)
{
    (void)state;
    struct rd_ipfilter *f = filter("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['192.168.*.*', "
                                   "'10.0.0.0/8', 'fe80::/10', '127.0.0.2'], 'allowed_ips': ['10.9.9.9']}}");
    assert_int_equal(decide(f, "192.168.0.0", NULL, NULL, NULL, NULL), RD_IPF_DENY_BLOCKED);
    assert_int_equal(decide(f, "192.168.255.255", NULL, NULL, NULL, NULL), RD_IPF_DENY_BLOCKED);
    assert_int_equal(decide(f, "192.169.0.0", NULL, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "10.255.0.1", NULL, NULL, NULL, NULL), RD_IPF_DENY_BLOCKED);
    assert_int_equal(decide(f, "11.0.0.0", NULL, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "fe80::1", NULL, NULL, NULL, NULL), RD_IPF_DENY_BLOCKED);
    assert_int_equal(decide(f, "fec0::1", NULL, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "127.0.0.2", NULL, NULL, NULL, NULL), RD_IPF_DENY_BLOCKED);
    assert_int_equal(decide(f, "127.0.0.1", NULL, NULL, NULL, NULL), RD_IPF_ALLOW);
    /* allowed_ips are exceptions to the blocklist */
    assert_int_equal(decide(f, "10.9.9.9", NULL, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "10.9.9.8", NULL, NULL, NULL, NULL), RD_IPF_DENY_BLOCKED);
    rd_ipfilter_free(f);
}

static void test_trusted_proxies(void **state)
{
    (void)state;
    struct rd_ipfilter *f = filter("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['6.6.6.6', '2001:db8::6'],"
                                   " 'trusted_proxies': ['127.0.0.1', '10.0.0.0/8']}}");
    char c[64];
    struct rd_ipfilter_result r;
    /* through a trusted proxy, the forwarded client counts */
    assert_int_equal(decide(f, "127.0.0.1", "6.6.6.6", NULL, c, &r), RD_IPF_DENY_BLOCKED);
    assert_string_equal(c, "6.6.6.6");
    assert_int_equal(r.source, RD_IP_SOURCE_FORWARDED);
    assert_int_equal(decide(f, "127.0.0.1", "1.2.3.4", NULL, c, &r), RD_IPF_ALLOW);
    assert_string_equal(c, "1.2.3.4");
    /* right to left past trusted hops; a spoofed left element is not read */
    assert_int_equal(decide(f, "127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1", NULL, c, NULL), RD_IPF_ALLOW);
    assert_string_equal(c, "1.2.3.4");
    assert_int_equal(decide(f, "127.0.0.1", "1.2.3.4, 6.6.6.6:443, 10.1.1.1", NULL, c, NULL), RD_IPF_DENY_BLOCKED);
    assert_string_equal(c, "6.6.6.6");
    /* several lines joined with ',' by the stage */
    assert_int_equal(decide(f, "10.0.0.1", "[2001:db8::6]:8443,10.2.2.2", NULL, c, NULL), RD_IPF_DENY_BLOCKED);
    assert_string_equal(c, "2001:db8::6");
    /* no X-Forwarded-For: X-Real-IP */
    assert_int_equal(decide(f, "127.0.0.1", NULL, " 6.6.6.6 ", c, &r), RD_IPF_DENY_BLOCKED);
    assert_int_equal(r.source, RD_IP_SOURCE_REAL_IP);
    /* an X-Forwarded-For with no element: X-Real-IP, then the peer */
    assert_int_equal(decide(f, "127.0.0.1", " , ", "6.6.6.6", NULL, NULL), RD_IPF_DENY_BLOCKED);
    assert_int_equal(decide(f, "127.0.0.1", "", NULL, c, &r), RD_IPF_ALLOW);
    assert_string_equal(c, "127.0.0.1");
    assert_int_equal(r.source, RD_IP_SOURCE_PEER);
    /* an untrusted peer's headers are ignored */
    assert_int_equal(decide(f, "127.0.0.2", "6.6.6.6", "6.6.6.6", c, NULL), RD_IPF_ALLOW);
    assert_string_equal(c, "127.0.0.2");
    assert_int_equal(decide(f, "6.6.6.6", "1.2.3.4", NULL, c, NULL), RD_IPF_DENY_BLOCKED);
    assert_string_equal(c, "6.6.6.6");
    rd_ipfilter_free(f);
}

/* A malformed header from a trusted peer is refused in both modes: falling
 * back to the peer would let a client dodge the rules. */
static void test_malformed_forwarded(void **state)
{
    (void)state;
    const char *const docs[] = {
        "{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['6.6.6.6'], 'trusted_proxies': ['127.0.0.1']}}",
        "{'ip_filtering': {'mode': 'allowlist', 'allowed_ips': ['127.0.0.1', '1.2.3.4'], 'trusted_proxies': "
        "['127.0.0.1']}}",
    };
    const char *const bad[] = {"unknown", "1.2.3.4, garbage", "1.2.3.999", "[::1", "1.2.3.4:99999", "10.0.0.0/8",
                               "fe80::1%eth0", "1.2.3.4 5.6.7.8"};
    for (size_t d = 0; d < 2; d++) {
        struct rd_ipfilter *f = filter(docs[d]);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char c[64];
            struct rd_ipfilter_result r;
            assert_int_equal(decide(f, "127.0.0.1", bad[i], NULL, c, &r), RD_IPF_DENY_FORWARDED);
            assert_string_equal(c, "127.0.0.1"); /* logged as the peer */
            assert_non_null(strstr(r.why, "X-Forwarded-For"));
            assert_int_equal(decide(f, "127.0.0.1", NULL, bad[i], NULL, &r), RD_IPF_DENY_FORWARDED);
            assert_non_null(strstr(r.why, "X-Real-IP"));
        }
        /* a malformed element left of the client is never read */
        assert_int_equal(decide(f, "127.0.0.1", "garbage, 1.2.3.4", NULL, NULL, NULL), RD_IPF_ALLOW);
        rd_ipfilter_free(f);
    }
}

static void test_geoip_lookup(void **state)
{
    (void)state;
    have_db();
    struct rd_geoip *v4 = NULL, *v6 = NULL;
    char err[256];
    assert_int_equal(rd_geoip_open(RD_GEOIP_DEFAULT_V4, RD_GEOIP_V4, &v4, err, sizeof err), 0);
    assert_int_equal(rd_geoip_open(RD_GEOIP_DEFAULT_V6, RD_GEOIP_V6, &v6, err, sizeof err), 0);
    static const struct {
        const char *ip, *cc;
    } cases[] = {
        {US_V4, "US"}, {GB_V4, "GB"}, {NL_V4, "NL"}, {"::ffff:" NL_V4, "NL"}, {US_V6, "US"}, {DE_V6, "DE"},
        {"127.0.0.1", "--"}, {"10.1.2.3", "--"}, {"192.168.1.1", "--"}, {"::1", "--"}, {"fe80::1", "--"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rd_ipaddr a = addr(cases[i].ip);
        int id = rd_geoip_country(v4, v6, &a);
        if (strcmp(rd_country_code(id), cases[i].cc) != 0)
            fail_msg("%s: got %s, want %s", cases[i].ip, rd_country_code(id), cases[i].cc);
    }
    /* without an IPv6 database, IPv6 addresses have no country */
    struct rd_ipaddr a = addr(US_V6);
    assert_int_equal(rd_geoip_country(v4, NULL, &a), 0);
    assert_int_equal(rd_country_id("US"), rd_geoip_country(v4, v6, &a));
    assert_int_equal(rd_country_id("ZZ"), 0);
    assert_string_equal(rd_country_code(0), "--");
    assert_string_equal(rd_country_code(RD_COUNTRY_MAX), "--");
    rd_geoip_close(v4);
    rd_geoip_close(v6);
    rd_geoip_close(NULL);
}

/* Databases that cannot serve: a clear error naming the file, nothing kept. */
static void test_geoip_open_errors(void **state)
{
    (void)state;
    have_db();
    struct rd_geoip *g = (struct rd_geoip *)1;
    char err[256];
    assert_int_equal(rd_geoip_open("/nonexistent/GeoIP.dat", RD_GEOIP_V4, &g, err, sizeof err), RD_ENOTFOUND);
    assert_null(g);
    assert_non_null(strstr(err, "cannot read /nonexistent/GeoIP.dat"));
    /* the wrong family's file */
    assert_int_equal(rd_geoip_open(RD_GEOIP_DEFAULT_V6, RD_GEOIP_V4, &g, err, sizeof err), RD_EINVAL);
    assert_non_null(strstr(err, "is not a GeoIP IPv4 country database"));
    assert_int_equal(rd_geoip_open(RD_GEOIP_DEFAULT_V4, RD_GEOIP_V6, &g, err, sizeof err), RD_EINVAL);
    /* garbage, an empty file, a directory */
    char path[] = "/tmp/rd_geoip_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(rd_geoip_open(path, RD_GEOIP_V4, &g, err, sizeof err), RD_EINVAL);
    uint8_t junk[65536];
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < sizeof junk; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        junk[i] = (uint8_t)x;
    }
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    assert_int_equal(rd_geoip_open(path, RD_GEOIP_V4, &g, err, sizeof err), RD_EINVAL);
    assert_int_equal(rd_geoip_open(path, RD_GEOIP_V6, &g, err, sizeof err), RD_EINVAL);
    assert_null(g);
    assert_int_equal(rd_geoip_open("/tmp", RD_GEOIP_V4, &g, err, sizeof err), RD_EINVAL);

    /* through the stage: a 400 naming the field */
    char text[512];
    snprintf(text, sizeof text,
             "{'ip_filtering': {'mode': 'blocklist', 'countries_blocked': ['GB'], 'geoip_database': '%s'}}", path);
    struct json_object *d = doc(text);
    struct rd_ipfilter *f = NULL;
    struct rd_config_err cerr;
    assert_int_equal(rd_ipfilter_compile(d, &f, &cerr), RD_EINVAL);
    assert_null(f);
    assert_string_equal(cerr.field, "ip_filtering.geoip_database");
    assert_non_null(strstr(cerr.message, path));
    assert_int_equal(rd_pipeline_check(d, NULL, &cerr), RD_EINVAL);
    assert_string_equal(cerr.field, "ip_filtering.geoip_database");
    json_object_put(d);
    d = doc("{'ip_filtering': {'mode': 'blocklist', 'countries_blocked': ['GB'], 'geoip_database_v6': "
            "'/nonexistent/v6.dat'}}");
    assert_int_equal(rd_ipfilter_compile(d, &f, &cerr), RD_EINVAL);
    assert_string_equal(cerr.field, "ip_filtering.geoip_database_v6");
    assert_non_null(strstr(cerr.message, "cannot read /nonexistent/v6.dat"));
    json_object_put(d);
    /* no country list: no database is opened, a bad path is not looked at */
    snprintf(text, sizeof text, "{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['1.2.3.4'], "
                                "'geoip_database': '%s'}}", path);
    d = doc(text);
    assert_int_equal(rd_ipfilter_compile(d, &f, &cerr), 0);
    assert_null(f->db4);
    rd_ipfilter_free(f);
    json_object_put(d);
    unlink(path);
}

/* Configurations naming the same unchanged file share one copy; a changed
 * file is read again while the old copy serves those that hold it. */
static void test_geoip_shared(void **state)
{
    (void)state;
    have_db();
    char err[256];
    size_t base = rd_geoip_open_count();
    struct rd_geoip *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(rd_geoip_open(RD_GEOIP_DEFAULT_V4, RD_GEOIP_V4, &a, err, sizeof err), 0);
    assert_int_equal(rd_geoip_open(RD_GEOIP_DEFAULT_V4, RD_GEOIP_V4, &b, err, sizeof err), 0);
    assert_ptr_equal(a, b);
    assert_int_equal(rd_geoip_open_count(), base + 1);
    /* the same file asked for as the other family is still refused */
    assert_int_equal(rd_geoip_open(RD_GEOIP_DEFAULT_V4, RD_GEOIP_V6, &c, err, sizeof err), RD_EINVAL);
    rd_geoip_close(a);
    assert_int_equal(rd_geoip_open_count(), base + 1);
    struct rd_ipaddr us = addr(US_V4);
    assert_string_equal(rd_country_code(rd_geoip_country(b, NULL, &us)), "US");
    rd_geoip_close(b);
    assert_int_equal(rd_geoip_open_count(), base);

    /* a copy of the file, then the copy changed on disk */
    char path[] = "/tmp/rd_geoip_copy_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *in = fopen(RD_GEOIP_DEFAULT_V4, "rb");
    assert_non_null(in);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(write(fd, buf, n), (ssize_t)n);
    fclose(in);
    assert_int_equal(rd_geoip_open(path, RD_GEOIP_V4, &a, err, sizeof err), 0);
    struct timespec times[2] = {{.tv_sec = 1000000000, .tv_nsec = 0}, {.tv_sec = 1000000000, .tv_nsec = 0}};
    assert_int_equal(futimens(fd, times), 0);
    close(fd);
    assert_int_equal(rd_geoip_open(path, RD_GEOIP_V4, &b, err, sizeof err), 0);
    assert_ptr_not_equal(a, b);
    assert_int_equal(rd_geoip_open_count(), base + 2);
    rd_geoip_close(a);
    rd_geoip_close(b);
    assert_int_equal(rd_geoip_open_count(), base);
    unlink(path);
}

static void test_countries(void **state)
{
    (void)state;
    have_db();
    /* allowlist by country, with an address exception and a blocked address */
    struct rd_ipfilter *f = filter("{'ip_filtering': {'mode': 'allowlist', 'countries_allowed': ['US', 'NL'], "
                                   "'allowed_ips': ['127.0.0.1'], 'blocked_ips': ['8.8.4.4'], "
                                   "'trusted_proxies': ['127.0.0.1'], 'geoip_database': '" RD_GEOIP_DEFAULT_V4 "'}}");
    struct rd_ipfilter_result r;
    assert_int_equal(decide(f, "127.0.0.1", US_V4, NULL, NULL, &r), RD_IPF_ALLOW);
    assert_string_equal(rd_country_code(r.country), "US");
    assert_int_equal(decide(f, "127.0.0.1", NL_V4, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "127.0.0.1", GB_V4, NULL, NULL, &r), RD_IPF_DENY_ADDRESS);
    assert_string_equal(rd_country_code(r.country), "GB");
    assert_int_equal(decide(f, "127.0.0.1", US_V6, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "127.0.0.1", DE_V6, NULL, NULL, NULL), RD_IPF_DENY_ADDRESS);
    /* US, but the address is blocked */
    assert_int_equal(decide(f, "127.0.0.1", "8.8.4.4", NULL, NULL, NULL), RD_IPF_DENY_BLOCKED);
    /* loopback has no country: only its address lets it in */
    assert_int_equal(decide(f, "127.0.0.1", NULL, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "127.0.0.2", NULL, NULL, NULL, &r), RD_IPF_DENY_ADDRESS);
    assert_int_equal(r.country, 0);
    rd_ipfilter_free(f);

    /* blocklist by country (default database paths), an allowed address excepted */
    f = filter("{'ip_filtering': {'mode': 'blocklist', 'countries_blocked': ['GB', 'DE'], 'allowed_ips': ['" GB_V4
               "'], 'blocked_ips': ['127.0.0.3'], 'trusted_proxies': ['127.0.0.1']}}");
    assert_non_null(f->db6);
    assert_int_equal(decide(f, "127.0.0.1", "81.2.69.143", NULL, NULL, NULL), RD_IPF_DENY_COUNTRY);
    assert_int_equal(decide(f, "127.0.0.1", GB_V4, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "127.0.0.1", DE_V6, NULL, NULL, NULL), RD_IPF_DENY_COUNTRY);
    assert_int_equal(decide(f, "127.0.0.1", US_V4, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "127.0.0.1", US_V6, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "127.0.0.1", NULL, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "127.0.0.3", NULL, NULL, NULL, NULL), RD_IPF_DENY_BLOCKED);
    /* countries_allowed in blocklist mode: exceptions too */
    rd_ipfilter_free(f);
    f = filter("{'ip_filtering': {'mode': 'blocklist', 'blocked_ips': ['0.0.0.0/0'], 'countries_allowed': ['NL'], "
               "'trusted_proxies': ['127.0.0.1']}}");
    assert_int_equal(decide(f, "127.0.0.1", NL_V4, NULL, NULL, NULL), RD_IPF_ALLOW);
    assert_int_equal(decide(f, "127.0.0.1", US_V4, NULL, NULL, NULL), RD_IPF_DENY_BLOCKED);
    rd_ipfilter_free(f);
}

static void *lookup_thread(void *arg)
{
    const struct rd_ipfilter *f = arg;
    static const char *const ips[] = {US_V4, GB_V4, NL_V4, US_V6, DE_V6, "127.0.0.1"};
    static const char *const want[] = {"US", "GB", "NL", "US", "DE", "--"};
    for (int round = 0; round < 20000; round++) {
        size_t i = (size_t)round % 6;
        struct rd_ipaddr a;
        if (rd_ipaddr_parse(ips[i], strlen(ips[i]), &a, NULL, 0) != 0 ||
            strcmp(rd_country_code(rd_geoip_country(f->db4, f->db6, &a)), want[i]) != 0)
            return (void *)1;
    }
    return NULL;
}

/* Lookups from several threads at once on one compiled filter (the workers
 * share the snapshot) give the single-threaded answers. */
static void test_concurrent_lookups(void **state)
{
    (void)state;
    have_db();
    struct rd_ipfilter *f = filter("{'ip_filtering': {'mode': 'blocklist', 'countries_blocked': ['GB']}}");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, lookup_thread, f), 0);
    for (int i = 0; i < 4; i++) {
        void *rc = NULL;
        assert_int_equal(pthread_join(t[i], &rc), 0);
        assert_null(rc);
    }
    rd_ipfilter_free(f);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A 10,000-entry blocklist: every entry blocks, its neighbours do not, and
 * a decision stays cheap. */
static void test_large_list(void **state)
{
    (void)state;
    struct json_object *list = json_object_new_array();
    char pat[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(pat, sizeof pat, "10.%d.%d.%d", i / 5000, i / 50 % 100, i % 50 * 2);
        json_object_array_add(list, json_object_new_string(pat));
    }
    struct json_object *blk = json_object_new_object();
    json_object_object_add(blk, "mode", json_object_new_string("blocklist"));
    json_object_object_add(blk, "blocked_ips", list);
    struct json_object *d = json_object_new_object();
    json_object_object_add(d, "ip_filtering", blk);
    struct rd_config_err err;
    assert_int_equal(rd_config_validate(d, &err), 0);
    struct rd_ipfilter *f = NULL;
    double t0 = now_s();
    assert_int_equal(rd_ipfilter_compile(d, &f, &err), 0);
    double t_compile = now_s() - t0;
    assert_true(t_compile < 1.0);
    assert_int_equal(rd_ipset_count(f->blocked), 10000);
    t0 = now_s();
    size_t blocked = 0;
    for (int i = 0; i < 10000; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.%d.%d.%d", i / 5000, i / 50 % 100, i % 50 * 2);
        blocked += decide(f, ip, NULL, NULL, NULL, NULL) == RD_IPF_DENY_BLOCKED;
        snprintf(ip, sizeof ip, "10.%d.%d.%d", i / 5000, i / 50 % 100, i % 50 * 2 + 1);
        blocked += decide(f, ip, NULL, NULL, NULL, NULL) == RD_IPF_DENY_BLOCKED;
    }
    double t_decide = now_s() - t0;
    assert_int_equal(blocked, 10000);
    /* 20,000 decisions (with their address parsing) well under a second
     * even under ASan: a few microseconds each at most */
    assert_true(t_decide < 1.0);
    rd_ipfilter_free(f);
    json_object_put(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent_or_disabled),
        cmocka_unit_test(test_allowlist),
        cmocka_unit_test(test_blocklist),
        cmocka_unit_test(test_trusted_proxies),
        cmocka_unit_test(test_malformed_forwarded),
        cmocka_unit_test(test_geoip_lookup),
        cmocka_unit_test(test_geoip_open_errors),
        cmocka_unit_test(test_geoip_shared),
        cmocka_unit_test(test_countries),
        cmocka_unit_test(test_concurrent_lookups),
        cmocka_unit_test(test_large_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
