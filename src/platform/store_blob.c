/*
 * store_blob.c - a file's contents written into the store in chunks.
 *
 * nuage_store_file_create takes the contents as one buffer; an upload of
 * hundreds of megabytes must not be held in memory. Here the contents come
 * from a descriptor (the server spools an upload to an unlinked temporary
 * file as it arrives): the row is inserted with a zero-filled blob of the
 * final size (SQLite does not materialise a zeroblob) and the bytes are
 * copied in with incremental blob I/O, 256 KiB at a time, inside one
 * transaction, so that a failure leaves no row behind and memory stays at
 * one chunk plus SQLite's bounded page cache.
 */
#include "platform/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NUAGE__BLOB_CHUNK (256u * 1024)

int nuage_store_file_create_fd(nuage_store *s, int64_t tenant_id, const char *filename, const char *purpose,
                               int fd, uint64_t len, nuage_file *out) {
    if (!s || !filename || !purpose || fd < 0 || len > (uint64_t)INT32_MAX) return NUAGE_E_INVAL;
    if (!*filename || strlen(filename) >= sizeof((nuage_file *)0)->filename)
        return nuage__store_fail(NUAGE_E_INVAL, "file name must be 1-255 bytes");
    if (!*purpose || strlen(purpose) >= sizeof((nuage_file *)0)->purpose)
        return nuage__store_fail(NUAGE_E_INVAL, "invalid purpose");
    if (s->pg) return nuage__pg_file_create_fd(s, tenant_id, filename, purpose, fd, len, out);
    char *buf = malloc(NUAGE__BLOB_CHUNK);
    if (!buf) return nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
    nuage_file f;
    sqlite3_blob *b = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = nuage__store_begin(s);
    if (rc) goto fail_begin;
    /* the row, with a zero blob of the final size (nothing allocated) */
    if ((rc = nuage__store_file_insert_locked(s, tenant_id, filename, purpose, NULL, 0, &f))) goto fail_tx;
    sqlite3_stmt *st;
    if ((rc = nuage__store_prepare(s, "UPDATE files SET data = zeroblob(?1), bytes = ?1 WHERE id = ?2", &st)))
        goto fail_tx;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)len);
    sqlite3_bind_text(st, 2, f.id, -1, SQLITE_TRANSIENT);
    if ((rc = nuage__store_run(s, st, "size file"))) goto fail_tx;
    if (len) {
        sqlite3_stmt *rs;
        sqlite3_int64 rowid = 0;
        if ((rc = nuage__store_prepare(s, "SELECT rowid FROM files WHERE id = ?1", &rs))) goto fail_tx;
        sqlite3_bind_text(rs, 1, f.id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(rs) == SQLITE_ROW) rowid = sqlite3_column_int64(rs, 0);
        sqlite3_finalize(rs);
        if (!rowid || sqlite3_blob_open(s->db, "main", "files", "data", rowid, 1, &b) != SQLITE_OK) {
            rc = nuage__store_sqlerr(s, "open file contents");
            goto fail_tx;
        }
        for (uint64_t off = 0; off < len;) {
            size_t want = len - off < NUAGE__BLOB_CHUNK ? (size_t)(len - off) : NUAGE__BLOB_CHUNK;
            ssize_t k = pread(fd, buf, want, (off_t)off);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                rc = nuage__store_fail(NUAGE_E_IO, "cannot read the upload back: %s", k ? strerror(errno) : "short file");
                goto fail_blob;
            }
            if (sqlite3_blob_write(b, buf, (int)k, (int)off) != SQLITE_OK) {
                rc = nuage__store_sqlerr(s, "write file contents");
                goto fail_blob;
            }
            off += (uint64_t)k;
        }
        sqlite3_blob_close(b);
        b = NULL;
    }
    if ((rc = nuage__store_commit(s))) goto fail_tx;
    pthread_mutex_unlock(&s->mu);
    free(buf);
    f.bytes = (int64_t)len;
    if (out) *out = f;
    return 0;
fail_blob:
    sqlite3_blob_close(b);
fail_tx:
    nuage__store_rollback(s);
fail_begin:
    pthread_mutex_unlock(&s->mu);
    free(buf);
    return rc;
}
