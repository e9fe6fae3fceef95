/*
 * store_blob.c - uploaded files written into the SQLite store in chunks,
 * and any file read back piecewise.
 *
 * Writing. nuage_store_file_create takes the contents as one buffer; an
 * upload of hundreds of megabytes must not be held in memory, and must not
 * hold the store's lock while it is copied either: every other request
 * (key lookups, usage records) goes through that lock and would stall for
 * the seconds a large copy takes. So the contents come from a descriptor
 * (the server spools an upload to an unlinked temporary file as it
 * arrives) and go in as rows of file_chunks (file_id, n, data), each of
 * NUAGE__BLOB_SEGMENT bytes (the last one shorter), through three steps:
 *
 *   1. one short transaction inserts the files row (its `data` empty, its
 *      `bytes` the size) and its id into files_staging: every query on
 *      files (store_files.c's FILE_PUBLISHED) skips such ids, so nobody
 *      can see, list, read, delete or batch the file yet;
 *   2. each chunk is one INSERT in its own transaction; the lock is held
 *      for that statement only and the descriptor is read outside it;
 *   3. one short transaction publishes the file: its files_staging row
 *      goes (the id is returned only then).
 *
 * Why not one blob written in place: the blob must first exist at its full
 * size, and a zeroblob of 512 MB is 512 MB of pages written (and
 * checkpointed) in one transaction, i.e. seconds under the lock; and an
 * UPDATE of the row afterwards would rewrite the whole record, blob
 * included. Chunk rows cost one short transaction each.
 *
 * A failure deletes the staged rows; a crash leaves them behind, and the
 * next upload sweeps staged files once they are a day old (an upload in
 * flight in another process is younger). Memory stays at one chunk plus
 * SQLite's bounded page cache.
 *
 * Reading (nuage_store_file_read). A download reads piecewise, one
 * sqlite3_blob_read per call under the lock, from the row's blob or from
 * the chunk that holds the offset; each call looks the file up again by
 * id and tenant, so the reader keeps no state in the store.
 * NUAGE__BLOB_SEGMENT is part of the file format: chunk n holds bytes
 * [n * SEGMENT, (n + 1) * SEGMENT).
 */
#include "platform/store_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NUAGE__BLOB_SEGMENT (512u * 1024)

/* Run a statement with ?1 = id (mu held). */
static int blob_run_id(nuage_store *s, const char *sql, const char *id, const char *what) {
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, sql, &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    return nuage__store_run(s, st, what);
}

/* Delete a staged file, all its rows (best effort, after a failure). */
static void blob_drop_staging(nuage_store *s, const char *id) {
    pthread_mutex_lock(&s->mu);
    if (!nuage__store_begin(s)) {
        int rc = blob_run_id(s, "DELETE FROM file_chunks WHERE file_id = ?1", id, "drop staged file");
        if (!rc) rc = blob_run_id(s, "DELETE FROM files WHERE id = ?1", id, "drop staged file");
        if (!rc) rc = blob_run_id(s, "DELETE FROM files_staging WHERE id = ?1", id, "drop staged file");
        if (rc || nuage__store_commit(s)) nuage__store_rollback(s);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Step 1: the row, marked staged. Also sweeps abandoned staged files. */
static int blob_stage(nuage_store *s, int64_t tenant_id, const char *filename, const char *purpose, uint64_t len,
                      nuage_file *f) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_begin(s);
    if (rc) goto fail_begin;
    static const char *const sweep[] = {
        "DELETE FROM file_chunks WHERE file_id IN (SELECT id FROM files_staging WHERE created_ms < ?1)",
        "DELETE FROM files WHERE id IN (SELECT id FROM files_staging WHERE created_ms < ?1)",
        "DELETE FROM files_staging WHERE created_ms < ?1",
    };
    for (int i = 0; i < 3; i++) {
        if ((rc = nuage__store_prepare(s, sweep[i], &st))) goto fail_tx;
        sqlite3_bind_int64(st, 1, nuage__store_now_ms() - NUAGE__STAGING_MAX_AGE_MS);
        if ((rc = nuage__store_run(s, st, "sweep staged files"))) goto fail_tx;
    }
    memset(f, 0, sizeof *f);
    memcpy(f->id, "file-", 5);
    if ((rc = nuage__store_random_base62(f->id + 5, 24))) goto fail_tx;
    f->id[29] = 0;
    f->tenant_id = tenant_id;
    snprintf(f->filename, sizeof f->filename, "%s", filename);
    snprintf(f->purpose, sizeof f->purpose, "%s", purpose);
    f->bytes = (int64_t)len;
    f->created_ms = nuage__store_now_ms();
    if ((rc = nuage__store_prepare(s, "INSERT INTO files_staging(id, created_ms) VALUES(?1, ?2)", &st))) goto fail_tx;
    sqlite3_bind_text(st, 1, f->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, f->created_ms);
    if ((rc = nuage__store_run(s, st, "stage file"))) goto fail_tx;
    if ((rc = nuage__store_prepare(s, "INSERT INTO files(id, tenant_id, filename, purpose, bytes, created_ms, data)"
                                      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, zeroblob(0))", &st)))
        goto fail_tx;
    sqlite3_bind_text(st, 1, f->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, tenant_id);
    sqlite3_bind_text(st, 3, filename, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, purpose, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)len);
    sqlite3_bind_int64(st, 6, f->created_ms);
    if ((rc = nuage__store_run(s, st, "create file"))) goto fail_tx;
    if ((rc = nuage__store_commit(s))) goto fail_tx;
    pthread_mutex_unlock(&s->mu);
    return 0;
fail_tx:
    nuage__store_rollback(s);
fail_begin:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Step 2, one chunk (its own transaction). */
static int blob_write_chunk(nuage_store *s, const char *id, int64_t n, const char *buf, size_t len) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "INSERT INTO file_chunks(file_id, n, data) VALUES(?1, ?2, ?3)", &st);
    if (!rc) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, n);
        sqlite3_bind_blob64(st, 3, buf, len, SQLITE_STATIC);
        rc = nuage__store_run(s, st, "write file contents");
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Step 3: the file becomes visible. */
static int blob_publish(nuage_store *s, const char *id) {
    pthread_mutex_lock(&s->mu);
    int rc = blob_run_id(s, "DELETE FROM files_staging WHERE id = ?1", id, "publish file");
    if (!rc && sqlite3_changes(s->db) != 1) rc = nuage__store_fail(NUAGE_E_STATE, "staged file '%.40s' vanished", id);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_file_create_fd(nuage_store *s, int64_t tenant_id, const char *filename, const char *purpose,
                               int fd, uint64_t len, nuage_file *out) {
    if (!s || !filename || !purpose || fd < 0 || len > (uint64_t)INT32_MAX) return NUAGE_E_INVAL;
    if (!*filename || strlen(filename) >= sizeof((nuage_file *)0)->filename)
        return nuage__store_fail(NUAGE_E_INVAL, "file name must be 1-255 bytes");
    if (!*purpose || strlen(purpose) >= sizeof((nuage_file *)0)->purpose)
        return nuage__store_fail(NUAGE_E_INVAL, "invalid purpose");
    if (s->pg) return nuage__pg_file_create_fd(s, tenant_id, filename, purpose, fd, len, out);
    char *buf = malloc(NUAGE__BLOB_SEGMENT);
    if (!buf) return nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
    nuage_file f;
    int rc = blob_stage(s, tenant_id, filename, purpose, len, &f);
    if (rc) goto fail_stage;
    int64_t n = 0;
    for (uint64_t off = 0; off < len; n++) {
        size_t want = len - off < NUAGE__BLOB_SEGMENT ? (size_t)(len - off) : NUAGE__BLOB_SEGMENT, got = 0;
        /* read the chunk outside the lock */
        while (got < want) {
            ssize_t k = pread(fd, buf + got, want - got, (off_t)(off + got));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                rc = nuage__store_fail(NUAGE_E_IO, "cannot read the upload back: %s", k ? strerror(errno) : "short file");
                goto fail_copy;
            }
            got += (size_t)k;
        }
        if ((rc = blob_write_chunk(s, f.id, n, buf, want))) goto fail_copy;
        off += want;
    }
    if ((rc = blob_publish(s, f.id))) goto fail_copy;
    free(buf);
    if (out) *out = f;
    return 0;
fail_copy:
    blob_drop_staging(s, f.id);
fail_stage:
    free(buf);
    return rc;
}

/* Read n bytes at off of the blob in `table` row rowid (mu held). */
static int blob_read_at(nuage_store *s, const char *table, sqlite3_int64 rowid, void *buf, size_t n, uint64_t off) {
    sqlite3_blob *b = NULL;
    int rc = 0;
    if (sqlite3_blob_open(s->db, "main", table, "data", rowid, 0, &b) != SQLITE_OK ||
        sqlite3_blob_read(b, buf, (int)n, (int)off) != SQLITE_OK)
        rc = nuage__store_sqlerr(s, "read file contents");
    if (b) sqlite3_blob_close(b);
    return rc;
}

/* The rowid and length of chunk n of upload id (mu held). */
static int blob_chunk_row(nuage_store *s, const char *id, int64_t n, sqlite3_int64 *rowid, uint64_t *len) {
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "SELECT rowid, length(data) FROM file_chunks WHERE file_id = ?1 AND n = ?2", &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, n);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *rowid = sqlite3_column_int64(st, 0);
        *len = (uint64_t)sqlite3_column_int64(st, 1);
    } else {
        rc = step == SQLITE_DONE ? nuage__store_fail(NUAGE_E_FORMAT, "file '%.40s': chunk %lld missing", id, (long long)n)
                                 : nuage__store_sqlerr(s, "file lookup");
    }
    sqlite3_finalize(st);
    return rc;
}

int nuage__store_file_chunks_locked(nuage_store *s, const char *id, char *dst, size_t bytes) {
    for (size_t off = 0; off < bytes;) {
        sqlite3_int64 rowid = 0;
        uint64_t len = 0;
        int rc = blob_chunk_row(s, id, (int64_t)(off / NUAGE__BLOB_SEGMENT), &rowid, &len);
        if (rc) return rc;
        if (!len || len > bytes - off) return nuage__store_fail(NUAGE_E_FORMAT, "file '%.40s': bad chunk size", id);
        if ((rc = blob_read_at(s, "file_chunks", rowid, dst + off, (size_t)len, 0))) return rc;
        off += (size_t)len;
    }
    return 0;
}

int nuage_store_file_read(nuage_store *s, int64_t tenant_id, const char *id, uint64_t off, void *buf,
                          size_t cap, size_t *got, uint64_t *size) {
    if (!s || !id || !got || (!buf && cap)) return NUAGE_E_INVAL;
    *got = 0;
    if (s->pg) return nuage__pg_file_read(s, tenant_id, id, off, buf, cap, got, size);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "SELECT rowid, length(data), bytes FROM files WHERE id = ?1 AND tenant_id = ?2"
                                     " AND id NOT IN (SELECT id FROM files_staging)", &st);
    if (rc) goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, tenant_id);
    int step = sqlite3_step(st);
    sqlite3_int64 rowid = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    uint64_t inline_len = step == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 1) : 0;
    uint64_t bytes = step == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 2) : 0;
    if (step != SQLITE_ROW)
        rc = step == SQLITE_DONE ? nuage__store_fail(NUAGE_E_RANGE, "no file '%.40s'", id)
                                 : nuage__store_sqlerr(s, "file lookup");
    sqlite3_finalize(st);
    if (rc) goto out;
    if (size) *size = bytes;
    if (off >= bytes || !cap) goto out;
    size_t n = bytes - off < cap ? (size_t)(bytes - off) : cap;
    if (inline_len == bytes) {
        rc = blob_read_at(s, "files", rowid, buf, n, off);
    } else {
        /* an upload: the part of the chunk that holds off */
        uint64_t clen = 0;
        if ((rc = blob_chunk_row(s, id, (int64_t)(off / NUAGE__BLOB_SEGMENT), &rowid, &clen))) goto out;
        uint64_t in = off % NUAGE__BLOB_SEGMENT;
        if (in >= clen) {
            rc = nuage__store_fail(NUAGE_E_FORMAT, "file '%.40s': short chunk", id);
            goto out;
        }
        if (n > clen - in) n = (size_t)(clen - in);
        rc = blob_read_at(s, "file_chunks", rowid, buf, n, in);
    }
    if (!rc) *got = n;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}
