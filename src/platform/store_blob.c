/*
 * store_blob.c - a file's contents written into and read from the SQLite
 * store in chunks.
 *
 * Writing. nuage_store_file_create takes the contents as one buffer; an
 * upload of hundreds of megabytes must not be held in memory, and must not
 * hold the store's lock while it is copied either: every other request
 * (key lookups, usage records) goes through that lock and would stall for
 * the seconds a large copy takes. So the contents come from a descriptor
 * (the server spools an upload to an unlinked temporary file as it
 * arrives) and go in through a staging row:
 *
 *   1. one short transaction inserts the row with a zero-filled blob of
 *      the final size and its id into files_staging: every query on
 *      files (store_files.c's FILE_PUBLISHED) skips such ids, so nobody
 *      can see, list, read, delete or batch the file yet;
 *   2. the bytes are copied in with incremental blob I/O, one segment
 *      (NUAGE__BLOB_SEGMENT) per transaction; the lock is taken per
 *      segment only and the descriptor is read outside it;
 *   3. one short transaction publishes the file: its files_staging row
 *      goes (the id is returned only then). The files row itself is never
 *      updated: SQLite rewrites a whole record on UPDATE, blob included.
 *
 * A failure deletes both rows; a crash leaves them behind, and the next
 * upload sweeps staged files once they are a day old (an upload in flight
 * in another process is younger). Memory stays at one segment plus
 * SQLite's bounded page cache.
 *
 * Reading (nuage_store_file_read). A download reads the blob piecewise,
 * one sqlite3_blob_read per call under the lock; each call looks the row
 * up again by id and tenant, so the reader keeps no state in the store.
 */
#include "platform/store_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NUAGE__BLOB_SEGMENT (512u * 1024)

/* The rowid of published (staged: the staging row's) file id under
 * tenant (mu held): 0 and *rowid, *bytes, or NUAGE_E_RANGE, or an error. */
static int blob_row_locked(nuage_store *s, int64_t tenant_id, const char *id, bool staged, sqlite3_int64 *rowid,
                           uint64_t *bytes) {
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, staged ? "SELECT rowid, length(data) FROM files WHERE id = ?1 AND"
                                              " id IN (SELECT id FROM files_staging)"
                                            : "SELECT rowid, length(data) FROM files WHERE id = ?1 AND tenant_id = ?2"
                                              " AND id NOT IN (SELECT id FROM files_staging)",
                                  &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    if (!staged) sqlite3_bind_int64(st, 2, tenant_id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *rowid = sqlite3_column_int64(st, 0);
        *bytes = (uint64_t)sqlite3_column_int64(st, 1);
    } else {
        rc = step == SQLITE_DONE ? nuage__store_fail(NUAGE_E_RANGE, "no file '%.40s'", id)
                                 : nuage__store_sqlerr(s, "file lookup");
    }
    sqlite3_finalize(st);
    return rc;
}

/* Delete a staged file, both rows (best effort, after a failure). */
static void blob_drop_staging(nuage_store *s, const char *id) {
    sqlite3_stmt *st;
    pthread_mutex_lock(&s->mu);
    if (!nuage__store_prepare(s, "DELETE FROM files WHERE id = ?1 AND id IN (SELECT id FROM files_staging)", &st)) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        (void)nuage__store_run(s, st, "drop staged file");
    }
    if (!nuage__store_prepare(s, "DELETE FROM files_staging WHERE id = ?1", &st)) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        (void)nuage__store_run(s, st, "drop staged file");
    }
    pthread_mutex_unlock(&s->mu);
}

/* Step 1: the row with a zero blob of len bytes (nothing allocated in
 * memory), marked staged. Also sweeps abandoned staged files. */
static int blob_stage(nuage_store *s, int64_t tenant_id, const char *filename, const char *purpose, uint64_t len,
                      nuage_file *f) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_begin(s);
    if (rc) goto fail_begin;
    int64_t old = nuage__store_now_ms() - NUAGE__STAGING_MAX_AGE_MS;
    if ((rc = nuage__store_prepare(s, "DELETE FROM files WHERE id IN (SELECT id FROM files_staging"
                                      " WHERE created_ms < ?1)", &st)))
        goto fail_tx;
    sqlite3_bind_int64(st, 1, old);
    if ((rc = nuage__store_run(s, st, "sweep staged files"))) goto fail_tx;
    if ((rc = nuage__store_prepare(s, "DELETE FROM files_staging WHERE created_ms < ?1", &st))) goto fail_tx;
    sqlite3_bind_int64(st, 1, old);
    if ((rc = nuage__store_run(s, st, "sweep staged files"))) goto fail_tx;
    /* No RETURNING: SQLite would copy the new row, zero blob expanded,
     * into memory. */
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
                                      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, zeroblob(?5))", &st)))
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

/* Step 2, one segment: buf[0, n) at offset off of the staged blob, in its
 * own transaction (the blob handle's). */
static int blob_write_segment(nuage_store *s, const char *id, const char *buf, size_t n, uint64_t off) {
    pthread_mutex_lock(&s->mu);
    sqlite3_int64 rowid = 0;
    uint64_t bytes = 0;
    sqlite3_blob *b = NULL;
    int rc = blob_row_locked(s, 0, id, true, &rowid, &bytes);
    if (!rc && off + n > bytes) rc = nuage__store_fail(NUAGE_E_STATE, "staged file '%.40s' changed size", id);
    if (!rc && sqlite3_blob_open(s->db, "main", "files", "data", rowid, 1, &b) != SQLITE_OK)
        rc = nuage__store_sqlerr(s, "open file contents");
    if (!rc && sqlite3_blob_write(b, buf, (int)n, (int)off) != SQLITE_OK) rc = nuage__store_sqlerr(s, "write file contents");
    /* closing the handle commits its write transaction */
    if (b && sqlite3_blob_close(b) != SQLITE_OK && !rc) rc = nuage__store_sqlerr(s, "write file contents");
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Step 3: the file becomes visible. */
static int blob_publish(nuage_store *s, const char *id) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "DELETE FROM files_staging WHERE id = ?1", &st);
    if (!rc) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        rc = nuage__store_run(s, st, "publish file");
        if (!rc && sqlite3_changes(s->db) != 1)
            rc = nuage__store_fail(NUAGE_E_STATE, "staged file '%.40s' vanished", id);
    }
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
    size_t seg = len < NUAGE__BLOB_SEGMENT ? (size_t)len : NUAGE__BLOB_SEGMENT;
    char *buf = malloc(seg ? seg : 1);
    if (!buf) return nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
    nuage_file f;
    int rc = blob_stage(s, tenant_id, filename, purpose, len, &f);
    if (rc) goto fail_stage;
    for (uint64_t off = 0; off < len;) {
        size_t want = len - off < seg ? (size_t)(len - off) : seg, got = 0;
        /* read the segment outside the lock */
        while (got < want) {
            ssize_t k = pread(fd, buf + got, want - got, (off_t)(off + got));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                rc = nuage__store_fail(NUAGE_E_IO, "cannot read the upload back: %s", k ? strerror(errno) : "short file");
                goto fail_copy;
            }
            got += (size_t)k;
        }
        if ((rc = blob_write_segment(s, f.id, buf, want, off))) goto fail_copy;
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

int nuage_store_file_read(nuage_store *s, int64_t tenant_id, const char *id, uint64_t off, void *buf,
                          size_t cap, size_t *got, uint64_t *size) {
    if (!s || !id || !got || (!buf && cap)) return NUAGE_E_INVAL;
    *got = 0;
    if (s->pg) return nuage__pg_file_read(s, tenant_id, id, off, buf, cap, got, size);
    pthread_mutex_lock(&s->mu);
    sqlite3_int64 rowid = 0;
    uint64_t bytes = 0;
    sqlite3_blob *b = NULL;
    int rc = blob_row_locked(s, tenant_id, id, false, &rowid, &bytes);
    if (rc) goto out;
    if (size) *size = bytes;
    if (off >= bytes || !cap) goto out;
    size_t n = bytes - off < cap ? (size_t)(bytes - off) : cap;
    if (sqlite3_blob_open(s->db, "main", "files", "data", rowid, 0, &b) != SQLITE_OK ||
        sqlite3_blob_read(b, buf, (int)n, (int)off) != SQLITE_OK)
        rc = nuage__store_sqlerr(s, "read file contents");
    else
        *got = n;
    if (b) sqlite3_blob_close(b);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}
