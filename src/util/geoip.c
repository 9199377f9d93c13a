/* See geoip.h. */
#include "util/geoip.h"

#include <GeoIP.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/err.h"
#include "util/mem.h"

/* An open database is shared by every configuration that names the same
 * file, unchanged: each snapshot of each proxy would otherwise hold its own
 * copy (10 MB for Debian's two files), and the API's check before storing a
 * document would read the files once more. Entries are keyed by the file's
 * identity and version (device, inode, size, modification time), so a file
 * replaced on disk is read again by the next configuration applied while
 * the old copy lives on until its last snapshot goes. The registry's lock
 * is taken by open and close only (control thread), never by lookups. */
struct rd_geoip {
    GeoIP *gi;
    enum rd_geoip_family family;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    unsigned refs; /* under registry_lock */
    struct rd_geoip *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rd_geoip *registry;

static bool same_file(const struct rd_geoip *g, const struct stat *st, enum rd_geoip_family family)
{
    return g->family == family && g->dev == st->st_dev && g->ino == st->st_ino && g->size == st->st_size &&
           g->mtime.tv_sec == st->st_mtim.tv_sec && g->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

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

/* Opens and checks the file (no registry). */
static int open_file(const char *path, enum rd_geoip_family family, GeoIP **out, char *err, size_t errcap)
{
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
    int id = rd_ipaddr_parse(text, strlen(text), &probe, NULL, 0) == 0 ? lookup(gi, family, &probe) : -1;
    if (id < 0 || (unsigned)id >= GeoIP_num_countries()) {
        GeoIP_delete(gi);
        rd_seterr(err, errcap, "%s is damaged: a lookup gave no valid country", path);
        return RD_EINVAL;
    }
    *out = gi;
    return 0;
}

int rd_geoip_open(const char *path, enum rd_geoip_family family, struct rd_geoip **out, char *err, size_t errcap)
{
    *out = NULL;
    /* GeoIP_open says nothing about why it failed: check readability first
     * for a message that helps. */
    struct stat st;
    if (access(path, R_OK) != 0 || stat(path, &st) != 0) {
        int e = errno;
        rd_seterr(err, errcap, "cannot read %s: %s", path, strerror(e));
        return RD_ENOTFOUND;
    }
    if (!S_ISREG(st.st_mode)) {
        rd_seterr(err, errcap, "%s is not a regular file", path);
        return RD_EINVAL;
    }
    pthread_mutex_lock(&registry_lock);
    for (struct rd_geoip *g = registry; g; g = g->next) {
        if (same_file(g, &st, family)) {
            g->refs++;
            *out = g;
            pthread_mutex_unlock(&registry_lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    /* Read outside the lock (a few milliseconds); two configurations
     * opening the same new file at once may both read it, which is only
     * wasted work: the second copy is dropped below. */
    GeoIP *gi = NULL;
    int rc = open_file(path, family, &gi, err, errcap);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&registry_lock);
    for (struct rd_geoip *g = registry; g; g = g->next) {
        if (same_file(g, &st, family)) {
            g->refs++;
            *out = g;
            pthread_mutex_unlock(&registry_lock);
            GeoIP_delete(gi);
            return 0;
        }
    }
    struct rd_geoip *g = rd_calloc(1, sizeof *g);
    g->gi = gi;
    g->family = family;
    g->dev = st.st_dev;
    g->ino = st.st_ino;
    g->size = st.st_size;
    g->mtime = st.st_mtim;
    g->refs = 1;
    g->next = registry;
    registry = g;
    *out = g;
    pthread_mutex_unlock(&registry_lock);
    return 0;
}

void rd_geoip_close(struct rd_geoip *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&registry_lock);
    bool last = --g->refs == 0;
    if (last) {
        struct rd_geoip **link = &registry;
        while (*link != g)
            link = &(*link)->next;
        *link = g->next;
    }
    pthread_mutex_unlock(&registry_lock);
    if (last) {
        GeoIP_delete(g->gi);
        free(g);
    }
}

size_t rd_geoip_open_count(void)
{
    size_t n = 0;
    pthread_mutex_lock(&registry_lock);
    for (const struct rd_geoip *g = registry; g; g = g->next)
        n++;
    pthread_mutex_unlock(&registry_lock);
    return n;
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
