/* Schema migrations embedded at build time from src/store/migrations/NNN_name.sql
 * (see scripts/embed-sql.sh). Applied in order; each runs in one transaction. */
#ifndef RD_STORE_MIGRATIONS_H
#define RD_STORE_MIGRATIONS_H

#include <stddef.h>

struct rd_migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct rd_migration rd_migrations[];
extern const size_t rd_migrations_count;

#endif
