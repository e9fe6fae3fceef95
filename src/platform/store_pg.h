/*
 * store_pg.h - what the PostgreSQL backend's files (store_pg.c,
 * store_pg_files.c) share: parameter lists for PQexecParams and small
 * result helpers. Internal: only src/platform/store_pg*.c include it.
 *
 * Locking: as in store_internal.h -- the caller of a helper that runs on
 * s->pg holds s->mu; key lookups run on s->pgr under s->rmu.
 */
#ifndef NUAGE_STORE_PG_H
#define NUAGE_STORE_PG_H

#include <libpq-fe.h>

#include "platform/store_internal.h"

/* Up to 16 parameters: values point into buf (numbers) or at the
 * caller's strings / bytes, which must outlive the query. */
typedef struct {
    int n;
    const char *v[16];
    int len[16], fmt[16];
    char buf[16][32];
} nuage__pgargs;

void nuage__pg_i64(nuage__pgargs *a, int64_t v);
void nuage__pg_dbl(nuage__pgargs *a, double v);
void nuage__pg_txt(nuage__pgargs *a, const char *t);
/* A fixed-size char array field (NUL-terminated, or full without NUL). */
void nuage__pg_field(nuage__pgargs *a, const char *field, size_t cap);
/* Bytes (bytea), sent in binary. */
void nuage__pg_bin(nuage__pgargs *a, const void *p, size_t len);
void nuage__pg_null(nuage__pgargs *a);

/* Run sql with a on connection c (binary: results in binary format).
 * 0 with *out (PQclear it), or NUAGE_E_STATE (unique violation),
 * NUAGE_E_IO, with this thread's error message "what: <server message>". */
int nuage__pg_query_on(PGconn *c, const char *sql, const nuage__pgargs *a, int binary, PGresult **out,
                       const char *what);
/* The same on s->pg (mu held). */
int nuage__pg_query(nuage_store *s, const char *sql, const nuage__pgargs *a, PGresult **out, const char *what);
/* A statement without rows; *changed (may be NULL) rows affected. */
int nuage__pg_run(nuage_store *s, const char *sql, const nuage__pgargs *a, int64_t *changed, const char *what);
int64_t nuage__pg_int(PGresult *r, int row, int col);
/* Copy a text value (NULL as "") into buf, truncated, NUL-terminated. */
void nuage__pg_text(PGresult *r, int row, int col, char *buf, size_t cap);
/* Every row of r into a malloc'd array (row(r, i, elem) fills one,
 * zeroed first); always clears r. 0 or NUAGE_E_NOMEM. */
int nuage__pg_collect(PGresult *r, size_t elem_size, void (*row)(PGresult *r, int i, void *elem), void **out,
                      int *n);

#endif
