/*
 * store_pg_files.c - the PostgreSQL backend (store_pg.c) for files, batch
 * jobs and their lines, stored responses and the replica registry.
 *
 * File contents. A file is a row in `files` (id, tenant, name, purpose,
 * size) and its bytes in `file_chunks` rows of NUAGE_PG_CHUNK (1 MiB)
 * each, keyed (file_id, n), deleted with the file (ON DELETE CASCADE).
 * Chunks keep every value far below PostgreSQL's 1 GB field limit and let
 * an upload spooled to a descriptor be copied in with one chunk of memory;
 * the rows of one file are written in one transaction, so a failure leaves
 * nothing behind. The per-file limit is NUAGE_PG_FILE_MAX (2 GiB - 1, the
 * same as the SQLite backend's); reading a file back assembles it in
 * memory, as nuage_store_file_content's contract says.
 *
 * Batches follow store_files.c: recording a line inserts it (ON CONFLICT
 * DO NOTHING on the primary key (batch_id, line): a line is recorded once,
 * whatever the number of replicas that try) and bumps the job's counter
 * in the same transaction; status changes read the job FOR UPDATE so two
 * replicas changing one job serialise. A replica claims a job with
 * SELECT ... FOR UPDATE SKIP LOCKED and an UPDATE of its lease in one
 * transaction (see "batch leases" below).
 *
 * Replicas: one row per `nuage serve --replica-id`, upserted by its
 * heartbeat; listing first marks gone every row whose heartbeat is older
 * than the caller's limit.
 */
#define _GNU_SOURCE
#include "platform/store_pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NUAGE_PG_CHUNK (1u << 20)
#define NUAGE_PG_FILE_MAX ((uint64_t)INT32_MAX)

/* ---- files -------------------------------------------------------------------------- */

#define PG_FILE_COLS "id, tenant_id, filename, purpose, bytes, created_ms"

static void pg_file_row(PGresult *r, int i, void *elem) {
    nuage_file *f = elem;
    memset(f, 0, sizeof *f);
    nuage__pg_text(r, i, 0, f->id, sizeof f->id);
    f->tenant_id = nuage__pg_int(r, i, 1);
    nuage__pg_text(r, i, 2, f->filename, sizeof f->filename);
    nuage__pg_text(r, i, 3, f->purpose, sizeof f->purpose);
    f->bytes = nuage__pg_int(r, i, 4);
    f->created_ms = nuage__pg_int(r, i, 5);
}

/* Insert the file row (mu held, inside the caller's transaction). */
static int pg_file_row_insert(nuage_store *s, int64_t tenant_id, const char *filename, const char *purpose,
                              uint64_t len, nuage_file *out) {
    char id[40];
    memcpy(id, "file-", 5);
    int rc = nuage__store_random_base62(id + 5, 24);
    if (rc) return rc;
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, tenant_id);
    nuage__pg_txt(&a, filename);
    nuage__pg_txt(&a, purpose);
    nuage__pg_i64(&a, (int64_t)len);
    nuage__pg_i64(&a, nuage__store_now_ms());
    PGresult *r;
    if ((rc = nuage__pg_query(s, "INSERT INTO files(id, tenant_id, filename, purpose, bytes, created_ms)"
                              " VALUES($1, $2, $3, $4, $5, $6) RETURNING " PG_FILE_COLS, &a, &r, "create file")))
        return rc;
    pg_file_row(r, 0, out);
    PQclear(r);
    return 0;
}

static int pg_chunk_insert(nuage_store *s, const char *id, int n, const void *p, size_t len) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, n);
    nuage__pg_bin(&a, p, len);
    return nuage__pg_run(s, "INSERT INTO file_chunks(file_id, n, data) VALUES($1, $2, $3)", &a, NULL,
                         "write file contents");
}

/* The whole file from memory (mu held, inside a transaction). */
static int pg_file_insert_locked(nuage_store *s, int64_t tenant_id, const char *filename, const char *purpose,
                                 const void *data, size_t len, nuage_file *out) {
    if ((uint64_t)len > NUAGE_PG_FILE_MAX)
        return nuage__store_fail(NUAGE_E_INVAL, "file too large (%zu bytes; the limit is %llu)", len,
                                 (unsigned long long)NUAGE_PG_FILE_MAX);
    nuage_file f;
    int rc = pg_file_row_insert(s, tenant_id, filename, purpose, len, &f);
    for (size_t off = 0, k = 0; !rc && off < len; off += NUAGE_PG_CHUNK, k++) {
        size_t n = len - off < NUAGE_PG_CHUNK ? len - off : NUAGE_PG_CHUNK;
        rc = pg_chunk_insert(s, f.id, (int)k, (const char *)data + off, n);
    }
    if (!rc && out) *out = f;
    return rc;
}

int nuage__pg_file_create(nuage_store *s, int64_t tenant_id, const char *filename, const char *purpose,
                          const void *data, size_t len, nuage_file *out) {
    pthread_mutex_lock(&s->mu);
    int rc = nuage__pg_exec(s, "BEGIN");
    if (!rc) rc = pg_file_insert_locked(s, tenant_id, filename, purpose, data, len, out);
    if (!rc) rc = nuage__pg_exec(s, "COMMIT");
    if (rc) nuage__pg_rollback(s);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* A staging row (tenant NUAGE__STAGING_TENANT) dropped after a failure,
 * its chunks with it (best effort). */
static void pg_drop_staging(nuage_store *s, const char *id) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, NUAGE__STAGING_TENANT);
    pthread_mutex_lock(&s->mu);
    (void)nuage__pg_run(s, "DELETE FROM files WHERE id = $1 AND tenant_id = $2", &a, NULL, "drop staged file");
    pthread_mutex_unlock(&s->mu);
}

/* As store_blob.c: a staging row, one chunk per statement (the lock held
 * for that chunk only, the descriptor read outside it), then the row moves
 * to its tenant; a failure deletes the staging row and its chunks. */
int nuage__pg_file_create_fd(nuage_store *s, int64_t tenant_id, const char *filename, const char *purpose,
                             int fd, uint64_t len, nuage_file *out) {
    if (len > NUAGE_PG_FILE_MAX)
        return nuage__store_fail(NUAGE_E_INVAL, "file too large (%llu bytes; the limit is %llu)",
                                 (unsigned long long)len, (unsigned long long)NUAGE_PG_FILE_MAX);
    char *buf = malloc(NUAGE_PG_CHUNK);
    if (!buf) return nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
    nuage_file f;
    nuage__pgargs sw = {0};
    nuage__pg_i64(&sw, NUAGE__STAGING_TENANT);
    nuage__pg_i64(&sw, nuage__store_now_ms() - NUAGE__STAGING_MAX_AGE_MS);
    pthread_mutex_lock(&s->mu);
    (void)nuage__pg_run(s, "DELETE FROM files WHERE tenant_id = $1 AND created_ms < $2", &sw, NULL,
                        "sweep staged files");
    int rc = pg_file_row_insert(s, NUAGE__STAGING_TENANT, filename, purpose, len, &f);
    pthread_mutex_unlock(&s->mu);
    if (rc) goto out;
    int k = 0;
    for (uint64_t off = 0; off < len; k++) {
        size_t want = len - off < NUAGE_PG_CHUNK ? (size_t)(len - off) : NUAGE_PG_CHUNK;
        size_t got = 0;
        while (got < want) {
            ssize_t r = pread(fd, buf + got, want - got, (off_t)(off + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                rc = nuage__store_fail(NUAGE_E_IO, "cannot read the upload back: %s",
                                       r ? strerror(errno) : "short file");
                goto fail;
            }
            got += (size_t)r;
        }
        pthread_mutex_lock(&s->mu);
        rc = pg_chunk_insert(s, f.id, k, buf, want);
        pthread_mutex_unlock(&s->mu);
        if (rc) goto fail;
        off += want;
    }
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, tenant_id);
    nuage__pg_txt(&a, f.id);
    nuage__pg_i64(&a, NUAGE__STAGING_TENANT);
    int64_t changed = 0;
    pthread_mutex_lock(&s->mu);
    rc = nuage__pg_run(s, "UPDATE files SET tenant_id = $1 WHERE id = $2 AND tenant_id = $3", &a, &changed,
                       "publish file");
    pthread_mutex_unlock(&s->mu);
    if (!rc && changed != 1) rc = nuage__store_fail(NUAGE_E_STATE, "staged file '%.40s' vanished", f.id);
    if (rc) goto fail;
    f.tenant_id = tenant_id;
    if (out) *out = f;
    goto out;
fail:
    pg_drop_staging(s, f.id);
out:
    free(buf);
    return rc;
}

/* The tenant's file row id: 0 with *out, NUAGE_E_RANGE or an error (mu held). */
static int pg_file_get_locked(nuage_store *s, int64_t tenant_id, const char *id, nuage_file *out) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, tenant_id);
    PGresult *r;
    int rc = nuage__pg_query(s, "SELECT " PG_FILE_COLS " FROM files WHERE id = $1 AND tenant_id = $2", &a, &r,
                             "file lookup");
    if (rc) return rc;
    if (PQntuples(r) < 1) rc = nuage__store_fail(NUAGE_E_RANGE, "no file '%.40s'", id);
    else if (out) pg_file_row(r, 0, out);
    PQclear(r);
    return rc;
}

int nuage__pg_file_get(nuage_store *s, int64_t tenant_id, const char *id, nuage_file *out) {
    pthread_mutex_lock(&s->mu);
    int rc = pg_file_get_locked(s, tenant_id, id, out);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_file_content(nuage_store *s, int64_t tenant_id, const char *id, void **data, size_t *len) {
    pthread_mutex_lock(&s->mu);
    nuage_file f;
    char *copy = NULL;
    PGresult *r = NULL;
    /* one snapshot for the row and its chunks */
    int rc = nuage__pg_exec(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (rc) goto out;
    if ((rc = pg_file_get_locked(s, tenant_id, id, &f))) goto fail;
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    if ((rc = nuage__pg_query_on(s->pg, "SELECT data FROM file_chunks WHERE file_id = $1 ORDER BY n", &a, 1, &r,
                                 "read file contents")))
        goto fail;
    size_t total = 0;
    for (int i = 0; i < PQntuples(r); i++) total += (size_t)PQgetlength(r, i, 0);
    if (total != (size_t)f.bytes) {
        rc = nuage__store_fail(NUAGE_E_FORMAT, "file '%.40s': %zu bytes stored, %lld expected", id, total,
                               (long long)f.bytes);
        goto fail;
    }
    /* One spare byte, zeroed, so text content can be used as a C string. */
    if (!(copy = malloc(total + 1))) {
        rc = nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
        goto fail;
    }
    size_t off = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        size_t n = (size_t)PQgetlength(r, i, 0);
        if (n) memcpy(copy + off, PQgetvalue(r, i, 0), n);
        off += n;
    }
    copy[total] = 0;
    PQclear(r);
    r = NULL;
    nuage__pg_exec(s, "COMMIT");
    *data = copy;
    *len = total;
    goto out;
fail:
    PQclear(r);
    free(copy);
    nuage__pg_rollback(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* One piece of a file: the chunk holding off, sliced by the server. */
int nuage__pg_file_read(nuage_store *s, int64_t tenant_id, const char *id, uint64_t off, void *buf, size_t cap,
                        size_t *got, uint64_t *size) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, tenant_id);
    nuage__pg_i64(&a, (int64_t)(off / NUAGE_PG_CHUNK));
    nuage__pg_i64(&a, (int64_t)(off % NUAGE_PG_CHUNK) + 1);
    nuage__pg_i64(&a, (int64_t)(cap < NUAGE_PG_CHUNK ? cap : NUAGE_PG_CHUNK));
    pthread_mutex_lock(&s->mu);
    PGresult *r = NULL;
    /* the file row, and the slice of its chunk when off is inside it */
    int rc = nuage__pg_query_on(s->pg,
                                "SELECT f.bytes, substring(c.data FROM $4::int FOR $5::int) FROM files f"
                                " LEFT JOIN file_chunks c ON c.file_id = f.id AND c.n = $3::int"
                                " WHERE f.id = $1 AND f.tenant_id = $2",
                                &a, 1, &r, "read file contents");
    if (rc) goto out;
    if (PQntuples(r) < 1) {
        rc = nuage__store_fail(NUAGE_E_RANGE, "no file '%.40s'", id);
        goto out;
    }
    /* binary results: bytes is a big-endian int8 */
    const unsigned char *bp = (const unsigned char *)PQgetvalue(r, 0, 0);
    uint64_t bytes = 0;
    for (int i = 0; i < 8 && PQgetlength(r, 0, 0) == 8; i++) bytes = bytes << 8 | bp[i];
    if (size) *size = bytes;
    if (off >= bytes || !cap) goto out;
    size_t n = PQgetisnull(r, 0, 1) ? 0 : (size_t)PQgetlength(r, 0, 1);
    if (!n || n > cap) {
        rc = nuage__store_fail(NUAGE_E_FORMAT, "file '%.40s': chunk %llu missing", id,
                               (unsigned long long)(off / NUAGE_PG_CHUNK));
        goto out;
    }
    memcpy(buf, PQgetvalue(r, 0, 1), n);
    *got = n;
out:
    PQclear(r);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_file_list(nuage_store *s, int64_t tenant_id, const char *purpose, nuage_file **out, int *n) {
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, tenant_id);
    if (purpose) nuage__pg_txt(&a, purpose);
    else nuage__pg_null(&a);
    pthread_mutex_lock(&s->mu);
    PGresult *r;
    /* Newest first, as the OpenAI API lists them. */
    int rc = nuage__pg_query(s, "SELECT " PG_FILE_COLS " FROM files WHERE tenant_id = $1 AND"
                             " ($2::text IS NULL OR purpose = $2::text) ORDER BY created_ms DESC, seq DESC", &a,
                             &r, "list files");
    if (!rc) rc = nuage__pg_collect(r, sizeof **out, pg_file_row, (void **)out, n);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* DELETE one row of `table` (a fixed table name, never user input) by id
 * and owner: NUAGE_E_RANGE "no WHAT 'id'" when the tenant has none. */
int nuage__pg_delete_owned(nuage_store *s, const char *table, const char *what, int64_t tenant_id,
                           const char *id) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, tenant_id);
    char sql[96], ctx[48];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id = $1 AND tenant_id = $2", table);
    snprintf(ctx, sizeof ctx, "delete %s", what);
    pthread_mutex_lock(&s->mu);
    int64_t k = 0;
    int rc = nuage__pg_run(s, sql, &a, &k, ctx);
    if (!rc && k == 0) rc = nuage__store_fail(NUAGE_E_RANGE, "no %s '%.64s'", what, id);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_file_delete(nuage_store *s, int64_t tenant_id, const char *id) {
    return nuage__pg_delete_owned(s, "files", "file", tenant_id, id);
}

/* ---- batch jobs ------------------------------------------------------------------------ */

#define PG_BATCH_COLS                                                                      \
    "id, tenant_id, endpoint, input_file_id, output_file_id, error_file_id,"               \
    " completion_window, status, created_ms, in_progress_ms, finalizing_ms, completed_ms," \
    " cancelled_ms, failed_ms, expires_ms, total, completed, failed, deployment"

static void pg_batch_row(PGresult *r, int i, void *elem) {
    nuage_batch_job *b = elem;
    memset(b, 0, sizeof *b);
    nuage__pg_text(r, i, 0, b->id, sizeof b->id);
    b->tenant_id = nuage__pg_int(r, i, 1);
    nuage__pg_text(r, i, 2, b->endpoint, sizeof b->endpoint);
    nuage__pg_text(r, i, 3, b->input_file_id, sizeof b->input_file_id);
    nuage__pg_text(r, i, 4, b->output_file_id, sizeof b->output_file_id);
    nuage__pg_text(r, i, 5, b->error_file_id, sizeof b->error_file_id);
    nuage__pg_text(r, i, 6, b->completion_window, sizeof b->completion_window);
    nuage__pg_text(r, i, 7, b->status, sizeof b->status);
    int64_t *times[] = {&b->created_ms, &b->in_progress_ms, &b->finalizing_ms, &b->completed_ms,
                        &b->cancelled_ms, &b->failed_ms, &b->expires_ms};
    for (int j = 0; j < 7; j++) *times[j] = nuage__pg_int(r, i, 8 + j);
    b->total = nuage__pg_int(r, i, 15);
    b->completed = nuage__pg_int(r, i, 16);
    b->failed = nuage__pg_int(r, i, 17);
    nuage__pg_text(r, i, 18, b->deployment, sizeof b->deployment);
}

int nuage__pg_batch_create(nuage_store *s, const char *id, int64_t tenant_id, const char *endpoint,
                           const char *input_file_id, const char *completion_window, int64_t window_ms,
                           const char *deployment, const char *metadata, nuage_batch_job *out) {
    pthread_mutex_lock(&s->mu);
    /* The input file must exist and belong to the tenant. */
    int rc = pg_file_get_locked(s, tenant_id, input_file_id, NULL);
    if (rc) goto out;
    int64_t now = nuage__store_now_ms();
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, tenant_id);
    nuage__pg_txt(&a, endpoint);
    nuage__pg_txt(&a, input_file_id);
    nuage__pg_txt(&a, completion_window);
    nuage__pg_i64(&a, now);
    nuage__pg_i64(&a, now + window_ms);
    nuage__pg_txt(&a, deployment);
    nuage__pg_txt(&a, metadata);
    PGresult *r;
    if ((rc = nuage__pg_query(s, "INSERT INTO batches(id, tenant_id, endpoint, input_file_id, completion_window,"
                              " status, created_ms, expires_ms, deployment, metadata) VALUES($1, $2, $3, $4, $5,"
                              " 'validating', $6, $7, $8, $9) RETURNING " PG_BATCH_COLS, &a, &r, "create batch")))
        goto out;
    if (out) pg_batch_row(r, 0, out);
    PQclear(r);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* One batch (tenant_id < 0: any tenant's), mu held; lock: FOR UPDATE. */
static int pg_batch_get_locked(nuage_store *s, int64_t tenant_id, const char *id, bool lock, nuage_batch_job *out) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, tenant_id);
    PGresult *r;
    int rc = nuage__pg_query(s, lock ? "SELECT " PG_BATCH_COLS " FROM batches WHERE id = $1 AND"
                                       " ($2::bigint < 0 OR tenant_id = $2::bigint) FOR UPDATE"
                                     : "SELECT " PG_BATCH_COLS " FROM batches WHERE id = $1 AND"
                                       " ($2::bigint < 0 OR tenant_id = $2::bigint)",
                             &a, &r, "batch lookup");
    if (rc) return rc;
    if (PQntuples(r) < 1) rc = nuage__store_fail(NUAGE_E_RANGE, "no batch '%.40s'", id);
    else if (out) pg_batch_row(r, 0, out);
    PQclear(r);
    return rc;
}

int nuage__pg_batch_get(nuage_store *s, int64_t tenant_id, const char *id, nuage_batch_job *out) {
    pthread_mutex_lock(&s->mu);
    int rc = pg_batch_get_locked(s, tenant_id, id, false, out);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_batch_metadata(nuage_store *s, int64_t tenant_id, const char *id, char **json) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, tenant_id);
    pthread_mutex_lock(&s->mu);
    PGresult *r;
    int rc = nuage__pg_query(s, "SELECT metadata FROM batches WHERE id = $1 AND ($2::bigint < 0 OR"
                             " tenant_id = $2::bigint)", &a, &r, "batch metadata");
    if (!rc) {
        if (PQntuples(r) < 1) rc = nuage__store_fail(NUAGE_E_RANGE, "no batch '%.40s'", id);
        else if (!(*json = strdup(PQgetvalue(r, 0, 0)))) rc = nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
        PQclear(r);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_batch_list(nuage_store *s, int64_t tenant_id, nuage_batch_job **out, int *n) {
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, tenant_id);
    pthread_mutex_lock(&s->mu);
    PGresult *r;
    int rc = nuage__pg_query(s, "SELECT " PG_BATCH_COLS " FROM batches WHERE ($1::bigint < 0 OR"
                             " tenant_id = $1::bigint) ORDER BY created_ms, seq", &a, &r, "list batches");
    if (!rc) rc = nuage__pg_collect(r, sizeof **out, pg_batch_row, (void **)out, n);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_batch_set_status(nuage_store *s, const char *id, const char *status, const char *column,
                               int64_t total) {
    pthread_mutex_lock(&s->mu);
    nuage_batch_job b;
    int rc = nuage__pg_exec(s, "BEGIN");
    if (rc) goto out;
    if ((rc = pg_batch_get_locked(s, -1, id, true, &b))) goto fail;
    if (nuage__store_batch_status_terminal(b.status)) {
        rc = nuage__store_fail(NUAGE_E_STATE, "batch %s is already %s", id, b.status);
        goto fail;
    }
    char sql[320];
    /* The column name comes from store_files.c's table, never from a user. */
    if (column)
        snprintf(sql, sizeof sql, "UPDATE batches SET status = $1, %s = CASE WHEN %s = 0 THEN $2::bigint ELSE %s"
                 " END, total = CASE WHEN $3::bigint > 0 THEN $3::bigint ELSE total END WHERE id = $4",
                 column, column, column);
    else
        snprintf(sql, sizeof sql, "UPDATE batches SET status = $1, total = CASE WHEN $3::bigint > 0 THEN"
                 " $3::bigint ELSE total END WHERE id = $4 AND $2::bigint IS NOT NULL");
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, status);
    nuage__pg_i64(&a, nuage__store_now_ms());
    nuage__pg_i64(&a, total);
    nuage__pg_txt(&a, id);
    if ((rc = nuage__pg_run(s, sql, &a, NULL, "set batch status"))) goto fail;
    if ((rc = nuage__pg_exec(s, "COMMIT"))) goto fail;
    goto out;
fail:
    nuage__pg_rollback(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_batch_line_done(nuage_store *s, const char *id, int64_t line, bool is_error, const char *jsonl) {
    pthread_mutex_lock(&s->mu);
    nuage_batch_job b;
    int rc = nuage__pg_exec(s, "BEGIN");
    if (rc) goto out;
    if ((rc = pg_batch_get_locked(s, -1, id, false, &b))) goto fail;
    if (b.total > 0 && line > b.total) {
        rc = nuage__store_fail(NUAGE_E_INVAL, "line %lld beyond the batch's %lld lines", (long long)line,
                               (long long)b.total);
        goto fail;
    }
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, line);
    nuage__pg_i64(&a, is_error ? 1 : 0);
    nuage__pg_txt(&a, jsonl);
    int64_t k = 0;
    if ((rc = nuage__pg_run(s, "INSERT INTO batch_lines(batch_id, line, is_error, jsonl) VALUES($1, $2, $3, $4)"
                            " ON CONFLICT DO NOTHING", &a, &k, "record batch line")))
        goto fail;
    if (k == 0) {
        rc = nuage__store_fail(NUAGE_E_STATE, "line %lld of %s already recorded", (long long)line, id);
        goto fail;
    }
    nuage__pgargs a1 = {0};
    nuage__pg_txt(&a1, id);
    if ((rc = nuage__pg_run(s, is_error ? "UPDATE batches SET failed = failed + 1 WHERE id = $1"
                                        : "UPDATE batches SET completed = completed + 1 WHERE id = $1",
                            &a1, NULL, "count batch line")))
        goto fail;
    if ((rc = nuage__pg_exec(s, "COMMIT"))) goto fail;
    goto out;
fail:
    nuage__pg_rollback(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void pg_line_row(PGresult *r, int i, void *elem) { *(int64_t *)elem = nuage__pg_int(r, i, 0); }

int nuage__pg_batch_lines_done(nuage_store *s, const char *id, int64_t **lines, int *n) {
    pthread_mutex_lock(&s->mu);
    int rc = pg_batch_get_locked(s, -1, id, false, NULL);
    if (!rc) {
        nuage__pgargs a = {0};
        nuage__pg_txt(&a, id);
        PGresult *r;
        rc = nuage__pg_query(s, "SELECT line FROM batch_lines WHERE batch_id = $1 ORDER BY line", &a, &r,
                             "list batch lines");
        if (!rc) rc = nuage__pg_collect(r, sizeof **lines, pg_line_row, (void **)lines, n);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_batch_finalize(nuage_store *s, const char *id) {
    pthread_mutex_lock(&s->mu);
    nuage_batch_job b;
    PGresult *r = NULL;
    nuage__store_buf out[2] = {{0}}; /* [0] responses, [1] errors */
    nuage_file files[2];
    int rc = nuage__pg_exec(s, "BEGIN");
    if (rc) goto out;
    if ((rc = pg_batch_get_locked(s, -1, id, true, &b))) goto fail;
    if (b.output_file_id[0] || b.error_file_id[0]) {
        nuage__pg_rollback(s);
        goto out; /* already finalized */
    }
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    if ((rc = nuage__pg_query(s, "SELECT is_error, jsonl FROM batch_lines WHERE batch_id = $1 ORDER BY line", &a,
                              &r, "read batch lines")))
        goto fail;
    for (int i = 0; i < PQntuples(r); i++) {
        nuage__store_buf *dst = &out[nuage__pg_int(r, i, 0) ? 1 : 0];
        const char *text = PQgetvalue(r, i, 1);
        size_t n = (size_t)PQgetlength(r, i, 1);
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) n--;
        if ((rc = nuage__store_buf_add(dst, text, n)) || (rc = nuage__store_buf_add(dst, "\n", 1))) goto fail;
    }
    PQclear(r);
    r = NULL;
    static const char *const kinds[2] = {"output", "error"};
    for (int i = 0; i < 2; i++) {
        files[i].id[0] = 0;
        if (!out[i].len) continue;
        char name[96];
        snprintf(name, sizeof name, "%s_%s.jsonl", id, kinds[i]);
        if ((rc = pg_file_insert_locked(s, b.tenant_id, name, "batch_output", out[i].p, out[i].len, &files[i])))
            goto fail;
    }
    nuage__pgargs u = {0};
    nuage__pg_txt(&u, files[0].id);
    nuage__pg_txt(&u, files[1].id);
    nuage__pg_txt(&u, id);
    if ((rc = nuage__pg_run(s, "UPDATE batches SET output_file_id = $1, error_file_id = $2 WHERE id = $3", &u, NULL,
                            "finalize batch")))
        goto fail;
    if ((rc = nuage__pg_exec(s, "COMMIT"))) goto fail;
    goto out;
fail:
    PQclear(r);
    nuage__pg_rollback(s);
out:
    free(out[0].p);
    free(out[1].p);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- batch leases ------------------------------------------------------------------------
 * Claim: in one transaction, SELECT the oldest free job FOR UPDATE SKIP
 * LOCKED (a row another replica is claiming right now is skipped, not
 * waited for; a row it claimed and committed meanwhile is re-checked
 * against the WHERE clause by PostgreSQL and dropped), then UPDATE it. */

int nuage__pg_batch_claim(nuage_store *s, const char *owner, int64_t now_ms, int64_t lease_ms,
                          nuage_batch_job *out) {
    pthread_mutex_lock(&s->mu);
    PGresult *r = NULL;
    nuage_batch_job b;
    int rc = nuage__pg_exec(s, "BEGIN");
    if (rc) goto out;
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, owner);
    nuage__pg_i64(&a, now_ms);
    if ((rc = nuage__pg_query(s, "SELECT " PG_BATCH_COLS " FROM batches WHERE status IN ('validating',"
                              " 'in_progress', 'finalizing', 'cancelling') AND (lease_owner = $1 OR"
                              " lease_until <= $2::bigint) ORDER BY created_ms, seq LIMIT 1"
                              " FOR UPDATE SKIP LOCKED", &a, &r, "claim a batch")))
        goto fail;
    if (PQntuples(r) < 1) {
        PQclear(r);
        rc = nuage__store_fail(NUAGE_E_RANGE, "no batch job to claim");
        goto fail;
    }
    pg_batch_row(r, 0, &b);
    PQclear(r);
    nuage__pgargs a1 = {0};
    nuage__pg_txt(&a1, owner);
    nuage__pg_i64(&a1, now_ms + lease_ms);
    nuage__pg_txt(&a1, b.id);
    if ((rc = nuage__pg_run(s, "UPDATE batches SET lease_owner = $1, lease_until = $2::bigint WHERE id = $3", &a1,
                            NULL, "lease a batch")))
        goto fail;
    if ((rc = nuage__pg_exec(s, "COMMIT"))) goto fail;
    if (out) *out = b;
    goto out;
fail:
    nuage__pg_rollback(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_batch_renew(nuage_store *s, const char *id, const char *owner, int64_t now_ms, int64_t lease_ms) {
    pthread_mutex_lock(&s->mu);
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_txt(&a, owner);
    nuage__pg_i64(&a, now_ms + lease_ms);
    int64_t k = 0;
    int rc = nuage__pg_run(s, "UPDATE batches SET lease_until = $3::bigint WHERE id = $1 AND lease_owner = $2", &a,
                           &k, "renew a batch lease");
    if (!rc && k != 1) rc = nuage__store_fail(NUAGE_E_STATE, "batch %.40s: lease lost", id);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_batch_release(nuage_store *s, const char *id, const char *owner) {
    pthread_mutex_lock(&s->mu);
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_txt(&a, owner);
    int rc = nuage__pg_run(s, "UPDATE batches SET lease_owner = '', lease_until = 0 WHERE id = $1 AND"
                           " lease_owner = $2", &a, NULL, "release a batch lease");
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_batch_lease_get(nuage_store *s, const char *id, char *owner, size_t cap, int64_t *until_ms) {
    pthread_mutex_lock(&s->mu);
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    PGresult *r;
    int rc = nuage__pg_query(s, "SELECT lease_owner, lease_until FROM batches WHERE id = $1", &a, &r,
                             "batch lease");
    if (!rc) {
        if (PQntuples(r) < 1) {
            rc = nuage__store_fail(NUAGE_E_RANGE, "no batch '%.40s'", id);
        } else {
            if (owner && cap) nuage__pg_text(r, 0, 0, owner, cap);
            if (until_ms) *until_ms = nuage__pg_int(r, 0, 1);
        }
        PQclear(r);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- stored responses ---------------------------------------------------------------------- */

#define PG_RESP_COLS "id, tenant_id, created_ms, expires_ms, status, previous_id, object, input"

int nuage__pg_response_put(nuage_store *s, const nuage_stored_response *q) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, q->id);
    nuage__pg_i64(&a, q->tenant_id);
    nuage__pg_i64(&a, q->created_ms);
    nuage__pg_i64(&a, q->expires_ms);
    nuage__pg_txt(&a, q->status);
    nuage__pg_txt(&a, q->previous_id);
    nuage__pg_txt(&a, q->object);
    nuage__pg_txt(&a, q->input ? q->input : "[]");
    pthread_mutex_lock(&s->mu);
    int64_t k = 0;
    /* Insert, or update the row when it is this tenant's. */
    int rc = nuage__pg_run(s, "INSERT INTO responses(" PG_RESP_COLS ") VALUES($1, $2, $3, $4, $5, $6, $7, $8)"
                           " ON CONFLICT(id) DO UPDATE SET status = excluded.status, object = excluded.object,"
                           " input = excluded.input WHERE responses.tenant_id = excluded.tenant_id",
                           &a, &k, "store response");
    if (!rc && k == 0)
        rc = nuage__store_fail(NUAGE_E_STATE, "response id '%.64s' belongs to another tenant", q->id);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_response_get_locked(nuage_store *s, int64_t tenant_id, const char *id, int64_t now_ms,
                                  nuage_stored_response *out) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, tenant_id);
    nuage__pg_i64(&a, now_ms);
    PGresult *r;
    int rc = nuage__pg_query(s, "SELECT " PG_RESP_COLS " FROM responses WHERE id = $1 AND tenant_id = $2"
                             " AND expires_ms > $3", &a, &r, "response lookup");
    if (rc) return rc;
    memset(out, 0, sizeof *out);
    if (PQntuples(r) < 1) {
        rc = nuage__store_fail(NUAGE_E_RANGE, "no response '%.64s'", id);
    } else {
        nuage__pg_text(r, 0, 0, out->id, sizeof out->id);
        out->tenant_id = nuage__pg_int(r, 0, 1);
        out->created_ms = nuage__pg_int(r, 0, 2);
        out->expires_ms = nuage__pg_int(r, 0, 3);
        nuage__pg_text(r, 0, 4, out->status, sizeof out->status);
        nuage__pg_text(r, 0, 5, out->previous_id, sizeof out->previous_id);
        out->object = strdup(PQgetvalue(r, 0, 6));
        out->input = strdup(PQgetvalue(r, 0, 7));
        if (!out->object || !out->input) {
            nuage_stored_response_free(out);
            rc = NUAGE_E_NOMEM;
        }
    }
    PQclear(r);
    return rc;
}

int nuage__pg_response_delete(nuage_store *s, int64_t tenant_id, const char *id) {
    return nuage__pg_delete_owned(s, "responses", "response", tenant_id, id);
}

int nuage__pg_response_purge(nuage_store *s, int64_t now_ms, int64_t *n_deleted) {
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, now_ms);
    pthread_mutex_lock(&s->mu);
    int64_t k = 0;
    int rc = nuage__pg_run(s, "DELETE FROM responses WHERE expires_ms <= $1", &a, &k, "purge responses");
    if (!rc && n_deleted) *n_deleted = k;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- replicas ------------------------------------------------------------------------------------ */

int nuage__pg_replica_heartbeat(nuage_store *s, const nuage_replica *p, int64_t now_ms) {
    nuage__pgargs a = {0};
    nuage__pg_field(&a, p->id, sizeof p->id);
    nuage__pg_field(&a, p->address, sizeof p->address);
    nuage__pg_field(&a, p->deployments, sizeof p->deployments);
    nuage__pg_dbl(&a, p->load);
    nuage__pg_field(&a, p->version, sizeof p->version);
    nuage__pg_i64(&a, now_ms);
    pthread_mutex_lock(&s->mu);
    int rc = nuage__pg_run(s, "INSERT INTO replicas(id, address, deployments, load, version, started_ms,"
                           " heartbeat_ms, gone) VALUES($1, $2, $3, $4, $5, $6, $6, 0) ON CONFLICT(id) DO UPDATE"
                           " SET address = excluded.address, deployments = excluded.deployments,"
                           " load = excluded.load, version = excluded.version, heartbeat_ms = excluded.heartbeat_ms,"
                           " started_ms = CASE WHEN replicas.gone = 0 THEN replicas.started_ms"
                           " ELSE excluded.started_ms END, gone = 0", &a, NULL, "replica heartbeat");
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_replica_leave(nuage_store *s, const char *id, int64_t now_ms) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, id);
    nuage__pg_i64(&a, now_ms);
    pthread_mutex_lock(&s->mu);
    int64_t k = 0;
    int rc = nuage__pg_run(s, "UPDATE replicas SET gone = 1, heartbeat_ms = GREATEST(heartbeat_ms, $2)"
                           " WHERE id = $1", &a, &k, "replica leave");
    if (!rc && k == 0) rc = nuage__store_fail(NUAGE_E_RANGE, "no replica '%.64s'", id);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void pg_replica_row(PGresult *r, int i, void *elem) {
    nuage_replica *p = elem;
    memset(p, 0, sizeof *p);
    nuage__pg_text(r, i, 0, p->id, sizeof p->id);
    nuage__pg_text(r, i, 1, p->address, sizeof p->address);
    nuage__pg_text(r, i, 2, p->deployments, sizeof p->deployments);
    p->load = strtod(PQgetvalue(r, i, 3), NULL);
    nuage__pg_text(r, i, 4, p->version, sizeof p->version);
    p->started_ms = nuage__pg_int(r, i, 5);
    p->heartbeat_ms = nuage__pg_int(r, i, 6);
    p->gone = nuage__pg_int(r, i, 7) != 0;
}

int nuage__pg_replica_list(nuage_store *s, int64_t now_ms, int64_t gone_after_ms, nuage_replica **out, int *n) {
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, now_ms - gone_after_ms);
    pthread_mutex_lock(&s->mu);
    PGresult *r;
    int rc = nuage__pg_run(s, "UPDATE replicas SET gone = 1 WHERE gone = 0 AND heartbeat_ms < $1", &a, NULL,
                           "mark replicas gone");
    if (!rc)
        rc = nuage__pg_query(s, "SELECT id, address, deployments, load, version, started_ms, heartbeat_ms, gone"
                             " FROM replicas ORDER BY id", NULL, &r, "list replicas");
    if (!rc) rc = nuage__pg_collect(r, sizeof **out, pg_replica_row, (void **)out, n);
    pthread_mutex_unlock(&s->mu);
    return rc;
}
