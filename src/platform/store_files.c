/*
 * store_files.c - files (OpenAI Files API) and batch jobs (Batch API) in
 * the store (store.h).
 *
 * Files are rows with their bytes in a BLOB: batch inputs and outputs are
 * megabytes, which SQLite handles well, and keeping them in the one file
 * keeps backup and durability one story. Ids are "file-" + 24 random
 * base62 characters; every query filters by tenant, so another tenant's id
 * is simply "not found" (NUAGE_E_RANGE), never "forbidden".
 *
 * Batches: one row per job (status, timestamps, counters) plus one row per
 * finished input line in batch_lines, keyed (batch_id, line). Recording a
 * line inserts it and bumps the job's completed/failed counter in one
 * IMMEDIATE transaction, so the counters always equal the rows; a line
 * already present is left alone (NUAGE_E_STATE), which makes a resumed
 * runner's re-delivery harmless. Finalize concatenates the lines in line
 * order into an output file (responses) and an error file (errors) in one
 * transaction; a file is made only when it has at least one line, as the
 * OpenAI API leaves output_file_id / error_file_id null otherwise.
 * Finalizing twice keeps the first result.
 *
 * Leases (several replicas on one store, docs/cluster.md): lease_owner /
 * lease_until on the job's row; a claim picks the oldest unfinished job
 * whose lease is free or the caller's and takes it in one IMMEDIATE
 * transaction; renew and release touch the row only while the caller
 * still owns it.
 *
 * Status changes: a job in a terminal state (completed, failed, cancelled,
 * expired) cannot change any more (NUAGE_E_STATE); entering a state stamps
 * its time once (in_progress_ms, finalizing_ms, completed_ms, failed_ms,
 * cancelled_ms: a resumed job keeps its first in_progress time).
 */
#include "platform/store_internal.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- files ------------------------------------------------------------------- */

#define FILE_COLS "id, tenant_id, filename, purpose, bytes, created_ms"
/* A file being uploaded (store_blob.c) does not exist yet for anyone. */
#define FILE_PUBLISHED " AND id NOT IN (SELECT id FROM files_staging)"

static void file_row(sqlite3_stmt *st, nuage_file *f) {
    memset(f, 0, sizeof *f);
    nuage__store_col_text(st, 0, f->id, sizeof f->id);
    f->tenant_id = sqlite3_column_int64(st, 1);
    nuage__store_col_text(st, 2, f->filename, sizeof f->filename);
    nuage__store_col_text(st, 3, f->purpose, sizeof f->purpose);
    f->bytes = sqlite3_column_int64(st, 4);
    f->created_ms = sqlite3_column_int64(st, 5);
}

static void file_row_v(sqlite3_stmt *st, void *elem) { file_row(st, elem); }

int nuage__store_file_insert_locked(nuage_store *s, int64_t tenant_id, const char *filename,
                                    const char *purpose, const void *data, size_t len,
                                    nuage_file *out) {
    char id[40];
    memcpy(id, "file-", 5);
    int rc = nuage__store_random_base62(id + 5, 24);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = nuage__store_prepare(s, "INSERT INTO files(id, tenant_id, filename, purpose, bytes,"
                                   " created_ms, data) VALUES(?, ?, ?, ?, ?, ?, ?)"
                                   " RETURNING " FILE_COLS, &st)))
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, tenant_id);
    sqlite3_bind_text(st, 3, filename, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, purpose, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, (int64_t)len);
    sqlite3_bind_int64(st, 6, nuage__store_now_ms());
    /* A zero-length blob binds as an empty BLOB, not NULL. */
    if (len) sqlite3_bind_blob64(st, 7, data, len, SQLITE_STATIC);
    else sqlite3_bind_zeroblob(st, 7, 0);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        if (out) file_row(st, out);
        step = sqlite3_step(st);
    }
    if (step != SQLITE_DONE) rc = nuage__store_sqlerr(s, "create file");
    sqlite3_finalize(st);
    return rc;
}

int nuage_store_file_create(nuage_store *s, int64_t tenant_id, const char *filename,
                            const char *purpose, const void *data, size_t len, nuage_file *out) {
    if (!s || !filename || !purpose || (!data && len)) return NUAGE_E_INVAL;
    if (!*filename || strlen(filename) >= sizeof((nuage_file *)0)->filename)
        return nuage__store_fail(NUAGE_E_INVAL, "file name must be 1-255 bytes");
    if (!*purpose || strlen(purpose) >= sizeof((nuage_file *)0)->purpose)
        return nuage__store_fail(NUAGE_E_INVAL, "invalid purpose");
    if (s->pg) return nuage__pg_file_create(s, tenant_id, filename, purpose, data, len, out);
    pthread_mutex_lock(&s->mu);
    int rc = nuage__store_file_insert_locked(s, tenant_id, filename, purpose, data, len, out);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Prepare `sql` (whose ?1 is the id and ?2 the tenant) and step it once. */
static int file_query(nuage_store *s, const char *sql, int64_t tenant_id, const char *id,
                      sqlite3_stmt **st) {
    int rc = nuage__store_prepare(s, sql, st);
    if (rc) return rc;
    sqlite3_bind_text(*st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(*st, 2, tenant_id);
    int step = sqlite3_step(*st);
    if (step == SQLITE_ROW) return 0;
    rc = step == SQLITE_DONE ? nuage__store_fail(NUAGE_E_RANGE, "no file '%.40s'", id)
                             : nuage__store_sqlerr(s, "file lookup");
    sqlite3_finalize(*st);
    *st = NULL;
    return rc;
}

int nuage_store_file_get(nuage_store *s, int64_t tenant_id, const char *id, nuage_file *out) {
    if (!s || !id) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_file_get(s, tenant_id, id, out);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = file_query(s, "SELECT " FILE_COLS " FROM files WHERE id = ?1 AND tenant_id = ?2" FILE_PUBLISHED,
                        tenant_id, id, &st);
    if (!rc) {
        if (out) file_row(st, out);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_file_content(nuage_store *s, int64_t tenant_id, const char *id, void **data,
                             size_t *len) {
    if (!s || !id || !data || !len) return NUAGE_E_INVAL;
    *data = NULL;
    *len = 0;
    if (s->pg) return nuage__pg_file_content(s, tenant_id, id, data, len);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = file_query(s, "SELECT data, bytes FROM files WHERE id = ?1 AND tenant_id = ?2" FILE_PUBLISHED,
                        tenant_id, id, &st);
    if (rc) goto out;
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    const void *blob = sqlite3_column_blob(st, 0);
    int64_t bytes = sqlite3_column_int64(st, 1);
    /* an upload's bytes are in file_chunks (store_blob.c), its row's empty */
    bool chunked = !n && bytes > 0;
    if (chunked) n = (size_t)bytes;
    /* One spare byte, zeroed, so text content can be used as a C string. */
    char *copy = malloc(n + 1);
    if (!copy) {
        rc = nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
    } else {
        if (chunked) rc = nuage__store_file_chunks_locked(s, id, copy, n);
        else if (n) memcpy(copy, blob, n);
        copy[n] = 0;
        if (rc) {
            free(copy);
        } else {
            *data = copy;
            *len = n;
        }
    }
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_file_list(nuage_store *s, int64_t tenant_id, const char *purpose,
                          nuage_file **out, int *n) {
    if (!s || !out || !n) return NUAGE_E_INVAL;
    *out = NULL;
    *n = 0;
    if (s->pg) return nuage__pg_file_list(s, tenant_id, purpose, out, n);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    /* Newest first, as the OpenAI API lists them. */
    int rc = nuage__store_prepare(s, "SELECT " FILE_COLS " FROM files WHERE tenant_id = ?1 AND"
                                  " (?2 IS NULL OR purpose = ?2)" FILE_PUBLISHED
                                  " ORDER BY created_ms DESC, rowid DESC", &st);
    if (rc) goto out;
    sqlite3_bind_int64(st, 1, tenant_id);
    if (purpose) sqlite3_bind_text(st, 2, purpose, -1, SQLITE_TRANSIENT);
    rc = nuage__store_collect(s, st, sizeof(**out), file_row_v, "list files", (void **)out, n);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_file_delete(nuage_store *s, int64_t tenant_id, const char *id) {
    if (!s || !id) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_file_delete(s, tenant_id, id);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_begin(s);
    if (rc) goto out;
    if ((rc = nuage__store_prepare(s, "DELETE FROM files WHERE id = ?1 AND tenant_id = ?2" FILE_PUBLISHED, &st)))
        goto fail_tx;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, tenant_id);
    if (!(rc = nuage__store_run(s, st, "delete file")) && sqlite3_changes(s->db) == 0)
        rc = nuage__store_fail(NUAGE_E_RANGE, "no file '%.40s'", id);
    if (rc) goto fail_tx;
    /* an upload's contents (store_blob.c) */
    if ((rc = nuage__store_prepare(s, "DELETE FROM file_chunks WHERE file_id = ?1", &st))) goto fail_tx;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    if ((rc = nuage__store_run(s, st, "delete file"))) goto fail_tx;
    if (!(rc = nuage__store_commit(s))) goto out;
fail_tx:
    nuage__store_rollback(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- batch jobs ------------------------------------------------------------------ */

#define BATCH_COLS                                                                         \
    "id, tenant_id, endpoint, input_file_id, output_file_id, error_file_id,"               \
    " completion_window, status, created_ms, in_progress_ms, finalizing_ms, completed_ms," \
    " cancelled_ms, failed_ms, expires_ms, total, completed, failed, deployment"

static void batch_row(sqlite3_stmt *st, nuage_batch_job *b) {
    memset(b, 0, sizeof *b);
    nuage__store_col_text(st, 0, b->id, sizeof b->id);
    b->tenant_id = sqlite3_column_int64(st, 1);
    nuage__store_col_text(st, 2, b->endpoint, sizeof b->endpoint);
    nuage__store_col_text(st, 3, b->input_file_id, sizeof b->input_file_id);
    nuage__store_col_text(st, 4, b->output_file_id, sizeof b->output_file_id);
    nuage__store_col_text(st, 5, b->error_file_id, sizeof b->error_file_id);
    nuage__store_col_text(st, 6, b->completion_window, sizeof b->completion_window);
    nuage__store_col_text(st, 7, b->status, sizeof b->status);
    int64_t *times[] = {&b->created_ms, &b->in_progress_ms, &b->finalizing_ms, &b->completed_ms,
                        &b->cancelled_ms, &b->failed_ms, &b->expires_ms};
    for (int i = 0; i < 7; i++) *times[i] = sqlite3_column_int64(st, 8 + i);
    b->total = sqlite3_column_int64(st, 15);
    b->completed = sqlite3_column_int64(st, 16);
    b->failed = sqlite3_column_int64(st, 17);
    nuage__store_col_text(st, 18, b->deployment, sizeof b->deployment);
}

static void batch_row_v(sqlite3_stmt *st, void *elem) { batch_row(st, elem); }

/* "<N>h" -> milliseconds (1 <= N <= 8760), or -1. */
static int64_t window_ms(const char *w) {
    char *end;
    long h = strtol(w, &end, 10);
    if (end == w || strcmp(end, "h") != 0 || h < 1 || h > 8760) return -1;
    return (int64_t)h * 3600 * 1000;
}

int nuage_store_batch_create(nuage_store *s, int64_t tenant_id, const char *endpoint,
                             const char *input_file_id, const char *completion_window,
                             const char *deployment, const char *metadata,
                             nuage_batch_job *out) {
    if (!s || !endpoint || !input_file_id) return NUAGE_E_INVAL;
    if (!completion_window) completion_window = "24h";
    if (!deployment) deployment = "";
    if (!metadata) metadata = "";
    int64_t window = window_ms(completion_window);
    if (window < 0 || strlen(completion_window) >= sizeof((nuage_batch_job *)0)->completion_window)
        return nuage__store_fail(NUAGE_E_INVAL, "invalid completion_window '%.16s'",
                                 completion_window);
    if (!*endpoint || strlen(endpoint) >= sizeof((nuage_batch_job *)0)->endpoint ||
        strlen(deployment) >= sizeof((nuage_batch_job *)0)->deployment)
        return nuage__store_fail(NUAGE_E_INVAL, "invalid endpoint or deployment");
    char id[40];
    memcpy(id, "batch_", 6);
    int rc = nuage__store_random_base62(id + 6, 24);
    if (rc) return rc;
    if (s->pg)
        return nuage__pg_batch_create(s, id, tenant_id, endpoint, input_file_id, completion_window, window,
                                      deployment, metadata, out);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    /* The input file must exist and belong to the tenant. */
    if ((rc = file_query(s, "SELECT 1 FROM files WHERE id = ?1 AND tenant_id = ?2" FILE_PUBLISHED, tenant_id,
                         input_file_id, &st)))
        goto out;
    sqlite3_finalize(st);
    if ((rc = nuage__store_prepare(s, "INSERT INTO batches(id, tenant_id, endpoint, input_file_id,"
                                   " completion_window, status, created_ms, expires_ms,"
                                   " deployment, metadata) VALUES(?, ?, ?, ?, ?, 'validating', ?,"
                                   " ?, ?, ?) RETURNING " BATCH_COLS, &st)))
        goto out;
    int64_t now = nuage__store_now_ms();
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, tenant_id);
    sqlite3_bind_text(st, 3, endpoint, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, input_file_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, completion_window, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 6, now);
    sqlite3_bind_int64(st, 7, now + window);
    sqlite3_bind_text(st, 8, deployment, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 9, metadata, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        if (out) batch_row(st, out);
        step = sqlite3_step(st);
    }
    if (step != SQLITE_DONE) rc = nuage__store_sqlerr(s, "create batch");
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* One batch row into out (tenant_id < 0: any tenant). */
static int batch_get_locked(nuage_store *s, int64_t tenant_id, const char *id,
                            nuage_batch_job *out) {
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "SELECT " BATCH_COLS " FROM batches WHERE id = ?1 AND"
                                  " (?2 < 0 OR tenant_id = ?2)", &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, tenant_id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        if (out) batch_row(st, out);
    } else {
        rc = step == SQLITE_DONE ? nuage__store_fail(NUAGE_E_RANGE, "no batch '%.40s'", id)
                                 : nuage__store_sqlerr(s, "batch lookup");
    }
    sqlite3_finalize(st);
    return rc;
}

/* tenant_id < 0 is accepted here too (any tenant's job), for the runner. */
int nuage_store_batch_get(nuage_store *s, int64_t tenant_id, const char *id,
                          nuage_batch_job *out) {
    if (!s || !id) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_batch_get(s, tenant_id, id, out);
    pthread_mutex_lock(&s->mu);
    int rc = batch_get_locked(s, tenant_id, id, out);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_batch_metadata(nuage_store *s, int64_t tenant_id, const char *id, char **json) {
    if (!s || !id || !json) return NUAGE_E_INVAL;
    *json = NULL;
    if (s->pg) return nuage__pg_batch_metadata(s, tenant_id, id, json);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "SELECT metadata FROM batches WHERE id = ?1 AND"
                                  " (?2 < 0 OR tenant_id = ?2)", &st);
    if (rc) goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, tenant_id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        *json = strdup(t ? t : "");
        if (!*json) rc = nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
    } else {
        rc = step == SQLITE_DONE ? nuage__store_fail(NUAGE_E_RANGE, "no batch '%.40s'", id)
                                 : nuage__store_sqlerr(s, "batch metadata");
    }
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Oldest first, so the runner resumes jobs in arrival order. */
int nuage_store_batch_list(nuage_store *s, int64_t tenant_id, nuage_batch_job **out, int *n) {
    if (!s || !out || !n) return NUAGE_E_INVAL;
    *out = NULL;
    *n = 0;
    if (s->pg) return nuage__pg_batch_list(s, tenant_id, out, n);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "SELECT " BATCH_COLS " FROM batches WHERE"
                                  " (?1 < 0 OR tenant_id = ?1) ORDER BY created_ms, rowid", &st);
    if (rc) goto out;
    sqlite3_bind_int64(st, 1, tenant_id);
    rc = nuage__store_collect(s, st, sizeof(**out), batch_row_v, "list batches", (void **)out, n);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Valid statuses and the timestamp column each one stamps (NULL: none). */
static const struct {
    const char *status, *column;
    bool terminal;
} statuses[] = {
    {"validating", NULL, false},          {"in_progress", "in_progress_ms", false},
    {"finalizing", "finalizing_ms", false}, {"completed", "completed_ms", true},
    {"failed", "failed_ms", true},        {"cancelling", NULL, false},
    {"cancelled", "cancelled_ms", true},  {"expired", NULL, true},
};
#define N_STATUSES ((int)(sizeof statuses / sizeof statuses[0]))

static int status_index(const char *status) {
    for (int i = 0; i < N_STATUSES; i++)
        if (!strcmp(statuses[i].status, status)) return i;
    return -1;
}

bool nuage__store_batch_status_terminal(const char *status) {
    int i = status_index(status);
    return i >= 0 && statuses[i].terminal;
}

int nuage_store_batch_set_status(nuage_store *s, const char *id, const char *status,
                                 int64_t total) {
    if (!s || !id || !status) return NUAGE_E_INVAL;
    int to = status_index(status);
    if (to < 0) return nuage__store_fail(NUAGE_E_INVAL, "unknown batch status '%.24s'", status);
    if (s->pg) return nuage__pg_batch_set_status(s, id, statuses[to].status, statuses[to].column, total);
    pthread_mutex_lock(&s->mu);
    nuage_batch_job b;
    sqlite3_stmt *st = NULL;
    int rc = nuage__store_begin(s);
    if (rc) goto out;
    if ((rc = batch_get_locked(s, -1, id, &b))) goto fail_rollback;
    int from = status_index(b.status);
    if (from >= 0 && statuses[from].terminal) {
        rc = nuage__store_fail(NUAGE_E_STATE, "batch %s is already %s", id, b.status);
        goto fail_rollback;
    }
    char sql[256];
    const char *col = statuses[to].column;
    /* The column name comes from the table above, never from the caller. */
    if (col) {
        snprintf(sql, sizeof sql, "UPDATE batches SET status = ?1, %s = CASE WHEN %s = 0 THEN ?2"
                 " ELSE %s END, total = CASE WHEN ?3 > 0 THEN ?3 ELSE total END WHERE id = ?4",
                 col, col, col);
    } else {
        snprintf(sql, sizeof sql, "UPDATE batches SET status = ?1, total = CASE WHEN ?3 > 0"
                 " THEN ?3 ELSE total END WHERE id = ?4");
    }
    if ((rc = nuage__store_prepare(s, sql, &st))) goto fail_rollback;
    sqlite3_bind_text(st, 1, statuses[to].status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, nuage__store_now_ms());
    sqlite3_bind_int64(st, 3, total);
    sqlite3_bind_text(st, 4, id, -1, SQLITE_TRANSIENT);
    rc = nuage__store_run(s, st, "set batch status");
    st = NULL;
    if (rc) goto fail_rollback;
    if ((rc = nuage__store_commit(s))) goto fail_rollback;
    goto out;

fail_rollback:
    sqlite3_finalize(st);
    nuage__store_rollback(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_batch_line_done(nuage_store *s, const char *id, int64_t line, bool is_error,
                                const char *jsonl) {
    if (!s || !id || !jsonl) return NUAGE_E_INVAL;
    if (line < 1) return nuage__store_fail(NUAGE_E_INVAL, "batch lines are numbered from 1");
    if (s->pg) return nuage__pg_batch_line_done(s, id, line, is_error, jsonl);
    pthread_mutex_lock(&s->mu);
    nuage_batch_job b;
    sqlite3_stmt *st = NULL;
    int rc = nuage__store_begin(s);
    if (rc) goto out;
    if ((rc = batch_get_locked(s, -1, id, &b))) goto fail_rollback;
    if (b.total > 0 && line > b.total) {
        rc = nuage__store_fail(NUAGE_E_INVAL, "line %lld beyond the batch's %lld lines",
                               (long long)line, (long long)b.total);
        goto fail_rollback;
    }
    if ((rc = nuage__store_prepare(s, "INSERT INTO batch_lines(batch_id, line, is_error, jsonl)"
                                   " VALUES(?, ?, ?, ?) ON CONFLICT DO NOTHING", &st)))
        goto fail_rollback;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, line);
    sqlite3_bind_int(st, 3, is_error ? 1 : 0);
    sqlite3_bind_text(st, 4, jsonl, -1, SQLITE_TRANSIENT);
    rc = nuage__store_run(s, st, "record batch line");
    st = NULL;
    if (rc) goto fail_rollback;
    if (sqlite3_changes(s->db) == 0) {
        rc = nuage__store_fail(NUAGE_E_STATE, "line %lld of %s already recorded",
                               (long long)line, id);
        goto fail_rollback;
    }
    if ((rc = nuage__store_prepare(s, is_error ? "UPDATE batches SET failed = failed + 1 WHERE id = ?"
                                               : "UPDATE batches SET completed = completed + 1"
                                                 " WHERE id = ?", &st)))
        goto fail_rollback;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    rc = nuage__store_run(s, st, "count batch line");
    st = NULL;
    if (rc) goto fail_rollback;
    if ((rc = nuage__store_commit(s))) goto fail_rollback;
    goto out;

fail_rollback:
    sqlite3_finalize(st);
    nuage__store_rollback(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void line_row(sqlite3_stmt *st, void *elem) { *(int64_t *)elem = sqlite3_column_int64(st, 0); }

int nuage_store_batch_lines_done(nuage_store *s, const char *id, int64_t **lines, int *n) {
    if (!s || !id || !lines || !n) return NUAGE_E_INVAL;
    *lines = NULL;
    *n = 0;
    if (s->pg) return nuage__pg_batch_lines_done(s, id, lines, n);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = batch_get_locked(s, -1, id, NULL);
    if (rc) goto out;
    if ((rc = nuage__store_prepare(s, "SELECT line FROM batch_lines WHERE batch_id = ?"
                                   " ORDER BY line", &st)))
        goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    rc = nuage__store_collect(s, st, sizeof **lines, line_row, "list batch lines",
                              (void **)lines, n);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__store_buf_add(nuage__store_buf *b, const char *t, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, t, n);
    b->len += n;
    return 0;
}

int nuage_store_batch_finalize(nuage_store *s, const char *id) {
    if (!s || !id) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_batch_finalize(s, id);
    pthread_mutex_lock(&s->mu);
    nuage_batch_job b;
    sqlite3_stmt *st = NULL;
    nuage__store_buf out[2] = {{0}};  /* [0] responses, [1] errors */
    nuage_file files[2];
    int rc = nuage__store_begin(s);
    if (rc) goto out;
    if ((rc = batch_get_locked(s, -1, id, &b))) goto fail_rollback;
    if (b.output_file_id[0] || b.error_file_id[0]) {
        nuage__store_rollback(s);
        goto out;  /* already finalized */
    }
    if ((rc = nuage__store_prepare(s, "SELECT is_error, jsonl FROM batch_lines WHERE batch_id = ?"
                                   " ORDER BY line", &st)))
        goto fail_rollback;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        nuage__store_buf *dst = &out[sqlite3_column_int(st, 0) ? 1 : 0];
        const char *text = (const char *)sqlite3_column_text(st, 1);
        size_t n = (size_t)sqlite3_column_bytes(st, 1);
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) n--;
        if ((rc = nuage__store_buf_add(dst, text ? text : "", n)) || (rc = nuage__store_buf_add(dst, "\n", 1)))
            goto fail_rollback;
    }
    if (step != SQLITE_DONE) {
        rc = nuage__store_sqlerr(s, "read batch lines");
        goto fail_rollback;
    }
    sqlite3_finalize(st);
    st = NULL;
    static const char *const kinds[2] = {"output", "error"};
    for (int i = 0; i < 2; i++) {
        files[i].id[0] = 0;
        if (!out[i].len) continue;
        char name[96];
        snprintf(name, sizeof name, "%s_%s.jsonl", id, kinds[i]);
        if ((rc = nuage__store_file_insert_locked(s, b.tenant_id, name, "batch_output", out[i].p,
                                                  out[i].len, &files[i])))
            goto fail_rollback;
    }
    if ((rc = nuage__store_prepare(s, "UPDATE batches SET output_file_id = ?, error_file_id = ?"
                                   " WHERE id = ?", &st)))
        goto fail_rollback;
    sqlite3_bind_text(st, 1, files[0].id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, files[1].id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
    rc = nuage__store_run(s, st, "finalize batch");
    st = NULL;
    if (rc) goto fail_rollback;
    if ((rc = nuage__store_commit(s))) goto fail_rollback;
    goto out;

fail_rollback:
    sqlite3_finalize(st);
    nuage__store_rollback(s);
out:
    free(out[0].p);
    free(out[1].p);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- batch leases ----------------------------------------------------------------------
 * One IMMEDIATE transaction takes SQLite's write lock, so the pick and the
 * conditional UPDATE below happen as one step for every process sharing
 * the file; the UPDATE repeats the lease condition all the same, so the
 * claim never depends on the SELECT alone. */

#define BATCH_ACTIVE "status IN ('validating', 'in_progress', 'finalizing', 'cancelling')"

int nuage_store_batch_claim(nuage_store *s, const char *owner, int64_t now_ms, int64_t lease_ms,
                            nuage_batch_job *out) {
    if (!s || !owner || !*owner || lease_ms <= 0) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_batch_claim(s, owner, now_ms, lease_ms, out);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    char id[40] = "";
    int rc = nuage__store_begin(s);
    if (rc) goto out;
    if ((rc = nuage__store_prepare(s, "SELECT id FROM batches WHERE " BATCH_ACTIVE " AND"
                                   " (lease_owner = ?1 OR lease_until <= ?2)"
                                   " ORDER BY created_ms, rowid LIMIT 1", &st)))
        goto fail_rollback;
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now_ms);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) nuage__store_col_text(st, 0, id, sizeof id);
    else if (step != SQLITE_DONE) rc = nuage__store_sqlerr(s, "claim a batch");
    sqlite3_finalize(st);
    st = NULL;
    if (rc) goto fail_rollback;
    if (!id[0]) {
        rc = nuage__store_fail(NUAGE_E_RANGE, "no batch job to claim");
        goto fail_rollback;
    }
    if ((rc = nuage__store_prepare(s, "UPDATE batches SET lease_owner = ?1, lease_until = ?2 WHERE id = ?3"
                                   " AND (lease_owner = ?1 OR lease_until <= ?4)", &st)))
        goto fail_rollback;
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now_ms + lease_ms);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now_ms);
    rc = nuage__store_run(s, st, "lease a batch");
    st = NULL;
    if (rc) goto fail_rollback;
    if (sqlite3_changes(s->db) != 1) {
        rc = nuage__store_fail(NUAGE_E_RANGE, "no batch job to claim");
        goto fail_rollback;
    }
    if ((rc = batch_get_locked(s, -1, id, out))) goto fail_rollback;
    if ((rc = nuage__store_commit(s))) goto fail_rollback;
    goto out;

fail_rollback:
    sqlite3_finalize(st);
    nuage__store_rollback(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* UPDATE sql (?1 id, ?2 owner, ?3 until) on owner's lease; rows changed in *n. */
static int lease_update(nuage_store *s, const char *sql, const char *id, const char *owner, int64_t until,
                        int *n) {
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, sql, &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, until);
    if ((rc = nuage__store_run(s, st, "batch lease"))) return rc;
    *n = sqlite3_changes(s->db);
    return 0;
}

int nuage_store_batch_renew(nuage_store *s, const char *id, const char *owner, int64_t now_ms,
                            int64_t lease_ms) {
    if (!s || !id || !owner || !*owner || lease_ms <= 0) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_batch_renew(s, id, owner, now_ms, lease_ms);
    pthread_mutex_lock(&s->mu);
    int n = 0;
    int rc = lease_update(s, "UPDATE batches SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2", id, owner,
                          now_ms + lease_ms, &n);
    if (!rc && n != 1) rc = nuage__store_fail(NUAGE_E_STATE, "batch %.40s: lease lost", id);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_batch_release(nuage_store *s, const char *id, const char *owner) {
    if (!s || !id || !owner) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_batch_release(s, id, owner);
    pthread_mutex_lock(&s->mu);
    int n = 0;
    int rc = lease_update(s, "UPDATE batches SET lease_owner = '', lease_until = ?3 WHERE id = ?1"
                          " AND lease_owner = ?2", id, owner, 0, &n);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_batch_lease_get(nuage_store *s, const char *id, char *owner, size_t cap, int64_t *until_ms) {
    if (!s || !id) return NUAGE_E_INVAL;
    if (owner && cap) owner[0] = 0;
    if (until_ms) *until_ms = 0;
    if (s->pg) return nuage__pg_batch_lease_get(s, id, owner, cap, until_ms);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "SELECT lease_owner, lease_until FROM batches WHERE id = ?1", &st);
    if (rc) goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        if (owner && cap) nuage__store_col_text(st, 0, owner, cap);
        if (until_ms) *until_ms = sqlite3_column_int64(st, 1);
    } else {
        rc = step == SQLITE_DONE ? nuage__store_fail(NUAGE_E_RANGE, "no batch '%.40s'", id)
                                 : nuage__store_sqlerr(s, "batch lease");
    }
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}
