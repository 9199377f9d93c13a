/* See geoip.h. */
#include "util/geoip.h"

#include <GeoIP.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/err.h"
#include "util/mem.h"

struct rd_geoip {
    GeoIP *gi;
    enum rd_geoip_family family;
};

/* The lookup of a (in the database's family); a negative or too large
 * number means the file is not a database (libGeoIP does not refuse every
 * garbage file at open: without the structure marker it assumes the IPv4
 * country edition). */
static int lookup(GeoIP *gi, enum rd_geoip_family family, const struct rd_ipaddr *a)
{
    GeoIPLookup gl;
    memset(&gl, 0, sizeof gl);
    if (family == RD_GEOIP_V4) {
        unsigned long ipnum = (unsigned long)a->b[12] << 24 | (unsigned long)a->b[13] << 16 |
                              (unsigned long)a->b[14] << 8 | a->b[15];
        return GeoIP_id_by_ipnum_gl(gi, ipnum, &gl);
    }
    geoipv6_t in6;
    memcpy(&in6, a->b, sizeof a->b);
    return GeoIP_id_by_ipnum_v6_gl(gi, in6, &gl);
}

int rd_geoip_open(const char *path, enum rd_geoip_family family, struct rd_geoip **out, char *err, size_t errcap)
{
    *out = NULL;
    /* GeoIP_open says nothing about why it failed: check readability first
     * for a message that helps. */
    if (access(path, R_OK) != 0) {
        int e = errno;
        rd_seterr(err, errcap, "cannot read %s: %s", path, strerror(e));
        return RD_ENOTFOUND;
    }
    GeoIP *gi = GeoIP_open(path, GEOIP_MEMORY_CACHE | GEOIP_SILENCE);
    if (gi == NULL) {
        rd_seterr(err, errcap, "%s is not a GeoIP database (libGeoIP could not open it)", path);
        return RD_EINVAL;
    }
    unsigned char want = family == RD_GEOIP_V4 ? GEOIP_COUNTRY_EDITION : GEOIP_COUNTRY_EDITION_V6;
    unsigned char edition = GeoIP_database_edition(gi);
    char *info = GeoIP_database_info(gi);
    bool has_info = info != NULL;
    free(info);
    if (edition != want || !has_info) {
        GeoIP_delete(gi);
        rd_seterr(err, errcap, "%s is not a GeoIP %s country database (legacy .dat format, e.g. %s)", path,
                  family == RD_GEOIP_V4 ? "IPv4" : "IPv6",
                  family == RD_GEOIP_V4 ? RD_GEOIP_DEFAULT_V4 : RD_GEOIP_DEFAULT_V6);
        return RD_EINVAL;
    }
    /* A probe: a damaged file answers with a number outside the table. */
    struct rd_ipaddr probe;
    const char *text = family == RD_GEOIP_V4 ? "8.8.8.8" : "2001:4860:4860::8888";
    if (rd_ipaddr_parse(text, strlen(text), &probe, NULL, 0) != 0) {
        GeoIP_delete(gi);
        rd_seterr(err, errcap, "internal error: probe address");
        return RD_EINVAL;
    }
    int id = lookup(gi, family, &probe);
    if (id < 0 || (unsigned)id >= GeoIP_num_countries()) {
        GeoIP_delete(gi);
        rd_seterr(err, errcap, "%s is damaged: a lookup gave no valid country", path);
        return RD_EINVAL;
    }
    struct rd_geoip *g = rd_calloc(1, sizeof *g);
    g->gi = gi;
    g->family = family;
    *out = g;
    return 0;
}

void rd_geoip_close(struct rd_geoip *g)
{
    if (g == NULL)
        return;
    GeoIP_delete(g->gi);
    free(g);
}

int rd_geoip_country(const struct rd_geoip *v4, const struct rd_geoip *v6, const struct rd_ipaddr *a)
{
    const struct rd_geoip *g = rd_ipaddr_is_v4(a) ? v4 : v6;
    if (g == NULL)
        return 0;
    /* libGeoIP's lookups take a non-const handle but, without
     * GEOIP_CHECK_CACHE, only read it (geoip.h). */
    int id = lookup(g->gi, g->family, a);
    return id > 0 && id < RD_COUNTRY_MAX && (unsigned)id < GeoIP_num_countries() ? id : 0;
}

int rd_country_id(const char *code)
{
    int id = GeoIP_id_by_code(code);
    return id > 0 && id < RD_COUNTRY_MAX ? id : 0;
}

const char *rd_country_code(int id)
{
    if (id <= 0 || id >= RD_COUNTRY_MAX || (unsigned)id >= GeoIP_num_countries())
        return "--";
    const char *c = GeoIP_code_by_id(id);
    return c ? c : "--";
}
