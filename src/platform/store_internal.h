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
 *
 * Backends. A store opened on a postgres:// URL has pg set: every public
 * call then goes to the PostgreSQL code (store_pg*.c) at its top, or,
 * where the validation and key hashing are shared, right after them (one
 * `if (s->pg)` line each). The PostgreSQL code uses the same mu / rmu, the
 * same pending-usage queue and the same error helpers; nuage__store_exec,
 * _begin, _commit and _rollback run on whichever backend s has.
 */
#ifndef NUAGE_STORE_INTERNAL_H
#define NUAGE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "nuage/nuage.h"
#include "platform/store.h"

struct pg_conn;  /* libpq's PGconn */
typedef struct nuage__journal nuage__journal; /* store_journal.c */

struct nuage_store {
    /* PostgreSQL backend (store_pg.c) when non-NULL: main connection
     * (under mu) and key-verification connection (under rmu); db and rdb
     * are then NULL. */
    struct pg_conn *pg, *pgr;
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
    /* A PostgreSQL store's local usage journal (store_journal.c), or
     * NULL: usage records then go to the journal instead of the database.
     * Set once at nuage_store_journal_open, before the store is shared. */
    nuage__journal *journal;
};
/* Bind r to the 12 parameters of a usage INSERT (time_ms ... latency_ms,
 * the usage table's column order; store_usage.c and the journal). */
void nuage__store_bind_usage(sqlite3_stmt *st, const nuage_usage_record *r);
/* Append n usage records to s's journal in one transaction (mu held;
 * takes the journal's own lock inside). 0 or NUAGE_E_IO. */
int nuage__journal_insert_locked(nuage_store *s, const nuage_usage_record *r, int n);
/* The journal's counters into out (mu held; no I/O). */
void nuage__journal_status_locked(nuage_store *s, nuage_metering_status *out);
/* Stop the shipper (one last shipment) and free the journal. */
void nuage__journal_close(nuage__journal *j);
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

/* ---- the PostgreSQL backend (store_pg.c, store_pg_files.c) -------------------- */

/* Is this database address a PostgreSQL URL (postgres:// or postgresql://)? */
bool nuage__store_is_pg_url(const char *url);
/* Connect, migrate (under an advisory lock), fill s->pg / s->pgr. */
int nuage__pg_open(nuage_store *s, const char *url);
void nuage__pg_close(nuage_store *s);
int nuage__pg_schema_version(nuage_store *s);
/* Run sql (no parameters, no rows) on the main connection, mu held. */
int nuage__pg_exec(nuage_store *s, const char *sql);
void nuage__pg_rollback(nuage_store *s);

/* Growable byte buffer (finalize builds the output and error files in one):
 * appends n bytes, keeps room for a NUL; NUAGE_E_NOMEM. Caller frees p. */
typedef struct {
    char *p;
    size_t len, cap;
} nuage__store_buf;
int nuage__store_buf_add(nuage__store_buf *b, const char *t, size_t n);
int nuage__pg_delete_owned(nuage_store *s, const char *table, const char *what, int64_t tenant_id,
                           const char *id);
int nuage__pg_tenant_update(nuage_store *s, const char *name, int64_t tpm, int64_t rpm, double weight,
                            nuage_tenant *out);
int nuage__pg_tenant_create(nuage_store *s, const char *name, int64_t tpm, int64_t rpm, double weight,
                            nuage_tenant *out);
int nuage__pg_tenant_by_name_locked(nuage_store *s, const char *name, nuage_tenant *out);
int nuage__pg_tenant_by_id_locked(nuage_store *s, int64_t id, nuage_tenant *out);
int nuage__pg_tenant_list(nuage_store *s, nuage_tenant **out, int *n);
int nuage__pg_tenant_delete(nuage_store *s, const char *name);

/* Key rows: the hashing and checks stay in store_keys.c. */
int nuage__pg_key_insert(nuage_store *s, const char *tenant, const char *kid, const unsigned char *salt,
                         size_t salt_len, const unsigned char *hash, size_t hash_len, const char *deployments,
                         int64_t expires_ms, bool admin, nuage_key *out);
/* The row of kid and its tenant (t->id 0 when it has none) on the read
 * connection: 0, NUAGE_E_RANGE (no such key, or its tenant is gone). */
int nuage__pg_key_lookup(nuage_store *s, const char *kid, nuage_key *k, unsigned char *salt, size_t salt_len,
                         unsigned char *hash, size_t hash_len, nuage_tenant *t);
int nuage__pg_key_list(nuage_store *s, const char *tenant, nuage_key **out, int *n);
/* Revoke by row id (by_row) or key id part, mu held; rows changed in *changed. */
int nuage__pg_key_revoke_where(nuage_store *s, bool by_row, const char *value, int *changed);
int nuage__pg_key_count(nuage_store *s);

int nuage__pg_usage_insert_locked(nuage_store *s, const nuage_usage_record *r);
/* n records in one transaction, each skipped when its request id is
 * already there (takes mu). 0 once PostgreSQL committed, else the error. */
int nuage__pg_usage_ship(nuage_store *s, const nuage_usage_record *r, int n);
int nuage__pg_usage_totals(nuage_store *s, int64_t tenant_id, int64_t since_ms, int64_t until_ms, const char *by,
                           nuage_usage_total **out, int *n);

int nuage__pg_file_create(nuage_store *s, int64_t tenant_id, const char *filename, const char *purpose,
                          const void *data, size_t len, nuage_file *out);
/* Copy the file_chunks of upload id (store_blob.c) into dst, which holds
 * its `bytes` (mu held): 0, or NUAGE_E_FORMAT when they do not add up. */
int nuage__store_file_chunks_locked(nuage_store *s, const char *id, char *dst, size_t bytes);
/* The tenant of a file being uploaded (store_blob.c, store_pg_files.c): no
 * caller's tenant is ever this, so the row is invisible until published. */
#define NUAGE__STAGING_TENANT INT64_MIN
/* A staging row older than this is an abandoned upload (a crash): swept. */
#define NUAGE__STAGING_MAX_AGE_MS (24 * 3600 * 1000LL)
int nuage__pg_file_create_fd(nuage_store *s, int64_t tenant_id, const char *filename, const char *purpose,
                             int fd, uint64_t len, nuage_file *out);
int nuage__pg_file_get(nuage_store *s, int64_t tenant_id, const char *id, nuage_file *out);
int nuage__pg_file_content(nuage_store *s, int64_t tenant_id, const char *id, void **data, size_t *len);
int nuage__pg_file_read(nuage_store *s, int64_t tenant_id, const char *id, uint64_t off, void *buf, size_t cap,
                        size_t *got, uint64_t *size);
int nuage__pg_file_list(nuage_store *s, int64_t tenant_id, const char *purpose, nuage_file **out, int *n);
int nuage__pg_file_delete(nuage_store *s, int64_t tenant_id, const char *id);

int nuage__pg_batch_create(nuage_store *s, const char *id, int64_t tenant_id, const char *endpoint,
                           const char *input_file_id, const char *completion_window, int64_t window_ms,
                           const char *deployment, const char *metadata, nuage_batch_job *out);
int nuage__pg_batch_get(nuage_store *s, int64_t tenant_id, const char *id, nuage_batch_job *out);
int nuage__pg_batch_metadata(nuage_store *s, int64_t tenant_id, const char *id, char **json);
int nuage__pg_batch_list(nuage_store *s, int64_t tenant_id, nuage_batch_job **out, int *n);
/* status valid; column: the timestamp it stamps (NULL: none). */
int nuage__pg_batch_set_status(nuage_store *s, const char *id, const char *status, const char *column,
                               int64_t total);
int nuage__pg_batch_line_done(nuage_store *s, const char *id, int64_t line, bool is_error, const char *jsonl);
int nuage__pg_batch_lines_done(nuage_store *s, const char *id, int64_t **lines, int *n);
int nuage__pg_batch_finalize(nuage_store *s, const char *id);
int nuage__pg_batch_claim(nuage_store *s, const char *owner, int64_t now_ms, int64_t lease_ms,
                          nuage_batch_job *out);
int nuage__pg_batch_renew(nuage_store *s, const char *id, const char *owner, int64_t now_ms, int64_t lease_ms);
int nuage__pg_batch_release(nuage_store *s, const char *id, const char *owner);
int nuage__pg_batch_lease_get(nuage_store *s, const char *id, char *owner, size_t cap, int64_t *until_ms);
/* Is a batch in this status final (store_files.c's table)? */
bool nuage__store_batch_status_terminal(const char *status);

int nuage__pg_response_put(nuage_store *s, const nuage_stored_response *r);
int nuage__pg_response_get_locked(nuage_store *s, int64_t tenant_id, const char *id, int64_t now_ms,
                                  nuage_stored_response *out);
int nuage__pg_response_delete(nuage_store *s, int64_t tenant_id, const char *id);
int nuage__pg_response_purge(nuage_store *s, int64_t now_ms, int64_t *n_deleted);

int nuage__pg_replica_heartbeat(nuage_store *s, const nuage_replica *r, int64_t now_ms);
int nuage__pg_replica_leave(nuage_store *s, const char *id, int64_t now_ms);
int nuage__pg_replica_list(nuage_store *s, int64_t now_ms, int64_t gone_after_ms, nuage_replica **out, int *n);

#endif
