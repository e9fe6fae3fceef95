/*
 * store_internal.h - what the SQLite store's files (store_sqlite.c: open,
 * migrations, tenants; store_keys.c; store_usage.c; store_files.c: files
 * and batches) share. Not part of the interface: only src/platform/store*.c
 * include it.
 *
 * Locking: every public call takes s->mu for its whole duration and runs
 * its statements on the main connection; functions named *_locked expect
 * the caller to hold it. nuage_store_key_verify alone takes s->rmu and
 * reads on s->rdb instead (the helpers below run on either: they use only
 * the `db` of the store they are given). Errors are recorded with nuage__store_fail /
 * nuage__store_sqlerr, which write this thread's error message (read back
 * by nuage_store_errmsg) and return the code, so a failing path is
 * `return nuage__store_fail(...)` after unlocking.
 */
#ifndef NUAGE_STORE_INTERNAL_H
#define NUAGE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "nuage/nuage.h"
#include "platform/store.h"

struct nuage_store {
    sqlite3 *db;
    pthread_mutex_t mu;
    /* A second, read-only connection for API key verification, so a
     * request's authentication never queues behind another request's
     * usage write (an fsync of ~5 ms under mu). WAL gives it the last
     * committed state. Lock order: never both at once. */
    sqlite3 *rdb;
    pthread_mutex_t rmu;
    /* Billing fails closed (store_usage.c): usage records whose write
     * failed (disk full, I/O error) wait here, oldest first, under mu,
     * and are retried before every later write and by
     * nuage_store_metering_check. */
    nuage_usage_record *pending;
    int n_pending, cap_pending;
    int64_t pending_since_ms;    /* wall time of the first failure; 0 when none pending */
    int64_t last_try_ms;         /* monotonic time of the last flush attempt */
    int64_t n_lost;              /* records beyond NUAGE_STORE_MAX_PENDING (never written) */
    char last_error[160];
};
/* Write the pending usage records in one transaction, if any (mu held).
 * 0 when none is left, else the error. */
int nuage__store_usage_flush_locked(nuage_store *s);

/* Record "fmt..." as this thread's last error; returns rc. */
int nuage__store_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Record "what: <sqlite message>" and return NUAGE_E_IO (also when another
 * process kept the database locked past the busy timeout). */
int nuage__store_sqlerr(nuage_store *s, const char *what);

/* Step st to its end, appending one elem_size-byte element per row (filled
 * by row(st, element)) to a growing malloc'd array; always finalizes st.
 * Returns 0 with *out (caller frees) and *n, or NUAGE_E_NOMEM / the SQL
 * error (with `what` in the message) and nothing allocated. Lock held. */
int nuage__store_collect(nuage_store *s, sqlite3_stmt *st, size_t elem_size,
                         void (*row)(sqlite3_stmt *st, void *elem), const char *what,
                         void **out, int *n);

int64_t nuage__store_now_ms(void);
/* Fill buf with n bytes from getrandom(); 0 or NUAGE_E_IO. */
int nuage__store_random(void *buf, size_t n);
/* Write n uniformly random base62 characters and a NUL to out (cap > n). */
int nuage__store_random_base62(char *out, size_t n);

/* Prepare sql on s->db (error recorded on failure; *st NULL). */
int nuage__store_prepare(nuage_store *s, const char *sql, sqlite3_stmt **st);
/* Step st (a statement without rows) to its end and finalize it: 0, or
 * the error recorded with `what`. */
int nuage__store_run(nuage_store *s, sqlite3_stmt *st, const char *what);
/* Run statements without results (error recorded on failure). */
int nuage__store_exec(nuage_store *s, const char *sql);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK (rollback never fails loudly). */
int nuage__store_begin(nuage_store *s);
int nuage__store_commit(nuage_store *s);
void nuage__store_rollback(nuage_store *s);

/* Copy text column i into buf (truncated, always NUL-terminated). */
void nuage__store_col_text(sqlite3_stmt *st, int i, char *buf, size_t cap);
/* Bind a fixed-size char array field (NUL-terminated or full) as text. */
int nuage__store_bind_field(sqlite3_stmt *st, int i, const char *field, size_t cap);

/* Tenant lookups with s->mu held (0, NUAGE_E_RANGE or an error). */
int nuage__store_tenant_by_name_locked(nuage_store *s, const char *name, nuage_tenant *out);
int nuage__store_tenant_by_id_locked(nuage_store *s, int64_t id, nuage_tenant *out);

/* Store a file with s->mu held, inside the caller's transaction. */
int nuage__store_file_insert_locked(nuage_store *s, int64_t tenant_id, const char *filename,
                                    const char *purpose, const void *data, size_t len,
                                    nuage_file *out);

#endif
