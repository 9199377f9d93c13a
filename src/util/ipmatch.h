/* IP address sets for the ip_filter stage: allow and block lists and the
 * trusted proxies whose X-Forwarded-For / X-Real-IP the proxy believes.
 *
 * Every address lives in one 128-bit space: an IPv6 address as itself, an
 * IPv4 address as its v4-mapped form ::ffff:a.b.c.d. So an IPv4 entry
 * matches an IPv4 client and a v4-mapped IPv6 client alike (a dual-stack
 * listener reports the latter), and an IPv4 prefix /n is the 128-bit
 * prefix /(96 + n).
 *
 * A set is built with rd_ipset_add, then frozen with rd_ipset_freeze and
 * from then on only read: lookups take no lock and may run on any number of
 * threads at once. Lookups walk a path-compressed binary trie, at most one
 * node per address bit whatever the number of entries. The pattern syntax
 * and the forwarded-header rule are documented for users in
 * docs/failure-simulation.md ("IP filtering: address patterns"). */
#ifndef RD_UTIL_IPMATCH_H
#define RD_UTIL_IPMATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

/* Entries one set takes at most (the trie then holds at most twice as many
 * nodes, 32 bytes each: 16 MB). */
#define RD_IPSET_MAX_ENTRIES (256u * 1024u)
/* Longest pattern or forwarded-header element accepted, in bytes. */
#define RD_IP_MAX_TEXT 64u

/* One address, in network byte order; IPv4 as ::ffff:a.b.c.d. */
struct rd_ipaddr {
    uint8_t b[16];
};

struct rd_ipset;

/* An empty set (matches nothing). Aborts on out-of-memory. Owned by the
 * caller; free with rd_ipset_free. */
struct rd_ipset *rd_ipset_new(void);

/* NULL-safe. */
void rd_ipset_free(struct rd_ipset *s);

/* Adds pattern (a NUL-terminated string) to s:
 *   exact     "10.1.2.3", "2001:db8::1", "::1", "::ffff:1.2.3.4" (= 1.2.3.4)
 *   CIDR      "10.0.0.0/8", "2001:db8::/32", "::ffff:10.0.0.0/104" (= /8)
 *   wildcard  "192.168.*.*", "10.0.*" (= 10.0.0.0/16), "*" (all of IPv4);
 *             '*' only as whole trailing octets of an IPv4 address.
 * No whitespace, no leading zeros (in octets or prefix lengths), no IPv6
 * zone ("%eth0"). A CIDR with host bits set ("10.1.2.3/8") is accepted and
 * masked (10.0.0.0/8); the return value says so, so that the caller can
 * warn. Returns 0, 1 when host bits were cleared, RD_EINVAL for a malformed
 * pattern, RD_ETOOBIG past RD_IPSET_MAX_ENTRIES, RD_ESTATE once frozen; on
 * error err[0..errcap) gets a message naming the problem and its position
 * (1-based), and s is unchanged. Not thread-safe: build before sharing. */
int rd_ipset_add(struct rd_ipset *s, const char *pattern, char *err, size_t errcap);

/* Checks pattern[0..len) against rd_ipset_add's syntax without a set (for
 * the configuration schema). Returns 0, 1 when host bits would be cleared,
 * or RD_EINVAL with err as rd_ipset_add gives it. Pure. */
int rd_ip_pattern_check(const char *pattern, size_t len, char *err, size_t errcap);

/* Ends building: trims the storage and makes later rd_ipset_add calls fail
 * with RD_ESTATE. After this s may be read by any thread without a lock. */
void rd_ipset_freeze(struct rd_ipset *s);

/* Whether a is in s (some entry's prefix covers it). Pure, thread-safe on a
 * frozen set; O(address bits). */
bool rd_ipset_contains_addr(const struct rd_ipset *s, const struct rd_ipaddr *a);

/* The same for a socket address (AF_INET or AF_INET6; false for any other
 * family), a text address (rd_ipaddr_parse's syntax; false when it does not
 * parse) and raw network-order bytes (len 4 for IPv4, 16 for IPv6; false
 * for any other len). */
bool rd_ipset_contains(const struct rd_ipset *s, const struct sockaddr *sa);
bool rd_ipset_contains_text(const struct rd_ipset *s, const char *text, size_t len);
bool rd_ipset_contains_raw(const struct rd_ipset *s, const void *bytes, size_t len);

/* Patterns added so far (the count of rd_ipset_add calls that succeeded). */
size_t rd_ipset_count(const struct rd_ipset *s);

/* Bytes of heap s holds, the struct included. */
size_t rd_ipset_mem(const struct rd_ipset *s);

/* Parses one address text[0..len) (IPv4 dotted quad or IPv6, no prefix, no
 * wildcard, no port) into *out. Returns 0 or RD_EINVAL with a message in
 * err (may be NULL). Never reads past len. Pure. */
int rd_ipaddr_parse(const char *text, size_t len, struct rd_ipaddr *out, char *err, size_t errcap);

/* Reads an AF_INET or AF_INET6 socket address. Returns 0 or RD_EINVAL. */
int rd_ipaddr_from_sockaddr(const struct sockaddr *sa, struct rd_ipaddr *out);

/* Whether a is an IPv4 (v4-mapped) address. */
bool rd_ipaddr_is_v4(const struct rd_ipaddr *a);

/* Renders a: dotted quad for IPv4, RFC 5952 text for IPv6. cap of 46
 * always suffices. Returns the length, or RD_ETOOBIG (out truncated). */
int rd_ipaddr_format(const struct rd_ipaddr *a, char *out, size_t cap);

/* The client address from an X-Forwarded-For value xff[0..len) (several
 * header lines joined with ','), the way nginx's real_ip_recursive does:
 * walking the comma-separated elements from the right, the first one that
 * is not in trusted is the client; when every element is trusted the
 * leftmost is. Call it only when the socket peer itself is trusted.
 * Elements may carry optional spaces/tabs around them and a port ("1.2.3.4:
 * 8080", "[2001:db8::1]:443", "[2001:db8::1]"); empty elements are
 * skipped. Elements left of the client are never looked at (the client
 * wrote them). Returns 0 with *out set; RD_ENOTFOUND when the value holds
 * no element; RD_EINVAL when an element the walk reached is not an address
 * (err says which, *out untouched). Pure; never reads past len. */
int rd_ip_from_forwarded(const char *xff, size_t len, const struct rd_ipset *trusted, struct rd_ipaddr *out, char *err,
                         size_t errcap);

/* The address of an X-Real-IP value v[0..len): one address, optional
 * surrounding spaces/tabs, optional port as above. Returns 0, RD_ENOTFOUND
 * for an empty value, RD_EINVAL (err says why). Pure. */
int rd_ip_from_real_ip(const char *v, size_t len, struct rd_ipaddr *out, char *err, size_t errcap);

/* Where rd_ip_client took the client address from. */
enum rd_ip_source {
    RD_IP_SOURCE_PEER,
    RD_IP_SOURCE_FORWARDED,
    RD_IP_SOURCE_REAL_IP,
};

/* The client address of a request: the socket peer, unless the peer is in
 * trusted (may be NULL: nobody trusted); then X-Forwarded-For (xff, NULL
 * when absent) by rd_ip_from_forwarded, or without one X-Real-IP (xrip,
 * NULL when absent). Returns the source (>= 0) with *out set; RD_EINVAL for
 * a peer that is not AF_INET/AF_INET6; RD_EPROTO when the peer is trusted
 * but the header it sent is malformed: then *out is the peer (nginx keeps
 * the peer too) and err says why, and the caller decides whether to deny.
 * Pure. */
int rd_ip_client(const struct sockaddr *peer, const struct rd_ipset *trusted, const char *xff, size_t xff_len,
                 const char *xrip, size_t xrip_len, struct rd_ipaddr *out, char *err, size_t errcap);

/* rd_ip_client for a peer already read as an address. */
int rd_ip_client_addr(const struct rd_ipaddr *peer, const struct rd_ipset *trusted, const char *xff, size_t xff_len,
                      const char *xrip, size_t xrip_len, struct rd_ipaddr *out, char *err, size_t errcap);

#endif
