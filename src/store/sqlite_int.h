/* Private to src/store/ (and its unit test): the SQLite store's entry points
 * below the generic rd_store_open(). */
#ifndef RD_STORE_SQLITE_INT_H
#define RD_STORE_SQLITE_INT_H

#include <stddef.h>

#include <sqlite3.h>

#include "store/migrations.h"
#include "store/store.h"

/* Opens (creating if needed, parent directory included with mode 0700) the
 * SQLite database at path, sets WAL, synchronous=NORMAL, foreign keys and a
 * 5 s busy timeout, applies rd_migrations[] and fills s->ops and s->impl.
 * path is borrowed. On failure returns RD_ESTORE, RD_EINVAL or -errno, writes
 * a reason into errbuf (may be NULL) and leaves s untouched. Control thread. */
int rd_sqlite_open(const char *path, struct rd_store *s, char *errbuf, size_t errlen);

/* Applies every migration of migs[0..n) whose version is above the database's
 * current one, each in its own BEGIN IMMEDIATE transaction together with its
 * schema_migrations row. migs must be in strictly ascending version order.
 * Returns 0, or RD_ESTORE with "migration <name> failed: <sqlite message>" in
 * errbuf (that migration rolled back, earlier ones kept), or RD_ESTORE when the
 * database's version is newer than the last of migs. db is borrowed. */
int rd_sqlite_migrate(sqlite3 *db, const struct rd_migration *migs, size_t n, char *errbuf, size_t errlen);

/* Highest applied schema version (0 for none) into *out; RD_ESTORE on error. */
int rd_sqlite_read_version(sqlite3 *db, int *out);

#endif
