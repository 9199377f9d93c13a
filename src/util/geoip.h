/* Country of an IP address, from a GeoIP country database (the legacy
 * MaxMind format read by libGeoIP: Debian's geoip-database package ships
 * /usr/share/GeoIP/GeoIP.dat for IPv4 and GeoIPv6.dat for IPv6). The only
 * module that includes <GeoIP.h>.
 *
 * A database is opened once (at configuration time, on the control thread:
 * it reads the whole file) with GEOIP_MEMORY_CACHE and without
 * GEOIP_CHECK_CACHE, and from then on only read. Lookups use libGeoIP's
 * "_gl" calls, which keep their per-lookup state (the netmask) in a
 * caller-owned struct instead of the shared handle, so any number of
 * threads may look up at once without a lock (libGeoIP is thread-safe
 * unless GEOIP_CHECK_CACHE is used; see its README and changelog, 1.6.3).
 *
 * Countries are numbered by libGeoIP's table (0: unknown, "--"), so that a
 * set of countries is a 256-bit map (struct rd_country_set). */
#ifndef RD_UTIL_GEOIP_H
#define RD_UTIL_GEOIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ipmatch.h"

/* Where Debian's geoip-database package installs its files. */
#define RD_GEOIP_DEFAULT_V4 "/usr/share/GeoIP/GeoIP.dat"
#define RD_GEOIP_DEFAULT_V6 "/usr/share/GeoIP/GeoIPv6.dat"

/* Country numbers: 1..RD_COUNTRY_MAX-1 are countries, 0 is "unknown". */
#define RD_COUNTRY_MAX 256

/* A set of countries by number. */
struct rd_country_set {
    uint64_t bits[RD_COUNTRY_MAX / 64];
};

struct rd_geoip;

enum rd_geoip_family { RD_GEOIP_V4, RD_GEOIP_V6 };

/* Opens the country database at path, which must be of the country edition
 * for family (IPv4: "GeoIP Country Edition", IPv6: "GeoIP Country V6
 * Edition"), and reads it into memory. Opening a file that is open already
 * and unchanged on disk (same device, inode, size and modification time)
 * shares the copy in memory (reference counted). Returns 0 with *out set
 * (release with rd_geoip_close), RD_ENOTFOUND when the file cannot be read,
 * RD_EINVAL when it is not such a database; err[0..errcap) says why. Blocks
 * on file I/O: never call on an I/O thread. Thread-safe. */
int rd_geoip_open(const char *path, enum rd_geoip_family family, struct rd_geoip **out, char *err, size_t errcap);

/* Drops one reference; the last frees the database. NULL-safe, thread-safe. */
void rd_geoip_close(struct rd_geoip *g);

/* Databases in memory now (distinct files), for tests. */
size_t rd_geoip_open_count(void);

/* The country number of a (0 when the database has no country for it, e.g.
 * private and loopback ranges, or when db is NULL). An IPv4 (v4-mapped)
 * address is looked up in v4, any other in v6. Thread-safe, no lock. */
int rd_geoip_country(const struct rd_geoip *v4, const struct rd_geoip *v6, const struct rd_ipaddr *a);

/* The number of a two-letter country code ("US"), 0 when libGeoIP does not
 * know it. Pure. */
int rd_country_id(const char *code);
/* The two-letter code of a country number; "--" for 0 or out of range. */
const char *rd_country_code(int id);

static inline void rd_country_set_add(struct rd_country_set *s, int id)
{
    if (id > 0 && id < RD_COUNTRY_MAX)
        s->bits[id / 64] |= UINT64_C(1) << (id % 64);
}

static inline bool rd_country_set_has(const struct rd_country_set *s, int id)
{
    return id > 0 && id < RD_COUNTRY_MAX && (s->bits[id / 64] >> (id % 64) & 1u);
}

#endif
