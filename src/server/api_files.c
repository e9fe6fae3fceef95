/*
 * api_files.c - the OpenAI Files API (/v1/files) on the store.
 *
 * Uploads are streamed. The OpenAI SDKs send POST /v1/files as
 * multipart/form-data with a "purpose" field and a "file" part, up to
 * 512 MB (NUAGE_FILES_MAX_BYTES). Such a body is never held in memory: as
 * soon as the request head arrived (and the caller was authenticated),
 * http.c hands every body chunk to libmicrohttpd's post processor, which
 * splits the parts; the file part's bytes are appended to an unlinked
 * temporary file (the spool, in $TMPDIR or /var/tmp), and when the body
 * ended the store copies the spool into the database in chunks
 * (nuage_store_file_create_fd). Memory per upload: the post processor's
 * 64 KiB buffer and a store chunk, whatever the file's size. Any other
 * body on this route is refused (400: multipart/form-data required).
 *
 * Names. A file name must be valid UTF-8 (else 400 invalid_file_name):
 * the API returns it in JSON. A file is stored only once its object is
 * built, and removed again if the answer cannot be made, so that a client
 * never leaves a file it was not told the id of.
 *
 * Objects. A file is {"id", "object": "file", "bytes", "created_at"
 * (seconds), "filename", "purpose", "status": "processed"}. Purposes
 * accepted on upload: "batch" (the input of a batch job: must be
 * non-empty; each line is checked when the batch runs, so that one bad
 * line fails only itself), plus "user_data" and "evals" stored as is.
 * Batch results have purpose "batch_output" (made by the store).
 *
 * Downloads are streamed too: GET /v1/files/{id}/content (batch outputs
 * included) answers with the file's size and hands libmicrohttpd a
 * reader that takes the bytes from the store one block at a time as the
 * client reads them (nuage_store_file_read: the store's lock for one
 * block, never the whole file in memory). A file deleted mid-download
 * cuts the connection short (the client sees fewer bytes than announced).
 *
 * Isolation: every store call takes the caller's tenant; another
 * tenant's id answers 404 like an unknown one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server/api_batch.h"

/* ---- objects ----------------------------------------------------------------------------- */

static json_t *nuage__file_object(const nuage_file *f) {
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:n, s:n}", "id", f->id, "object", "file", "bytes",
                     (json_int_t)f->bytes, "created_at", (json_int_t)(f->created_ms / 1000), "filename",
                     f->filename, "purpose", f->purpose, "status", "processed", "expires_at", "status_details");
}

/* 501 without a store; false then. */
static void nuage__file_404(nuage__hresp *r, const char *id) {
    nuage__resp_error(r, 404, "invalid_request_error", "not_found", "id", "No such File object: %.64s", id);
}

/* ---- upload ---------------------------------------------------------------------------------- */

#define NUAGE__PP_BUFFER (64 * 1024)

struct nuage__fupload {
    struct MHD_PostProcessor *pp;  /* NULL: not a multipart body */
    int fd;                        /* spool of the file part (unlinked), -1 until it starts */
    uint64_t bytes;                /* file bytes spooled */
    char purpose[32];
    bool has_purpose, purpose_long;
    char filename[256];
    bool name_long;
    int n_files;
    bool in_file;                  /* the last part seen is the file part */
    bool too_large, io_error, stopped;
};

static int nuage__spool_open(void) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/var/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    char path[4096];
    snprintf(path, sizeof path, "%s/nuage-upload-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0) unlink(path);
    return fd;
}

static enum MHD_Result nuage__pp_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                      const char *content_type, const char *transfer_encoding, const char *data,
                                      uint64_t off, size_t size) {
    (void)kind;
    (void)content_type;
    (void)transfer_encoding;
    nuage__fupload *u = cls;
    if (!key) return MHD_YES;
    if (!strcmp(key, "purpose")) {
        u->in_file = false;
        u->has_purpose = true;
        for (size_t i = 0; i < size; i++) {
            size_t at = (size_t)off + i;
            if (at < sizeof u->purpose - 1) u->purpose[at] = data[i];
            else u->purpose_long = true;
        }
        return MHD_YES;
    }
    if (strcmp(key, "file")) {
        u->in_file = false;
        return MHD_YES;
    }
    if (off == 0 && !(u->in_file && u->bytes == 0)) {
        /* a new file part (a 0-byte call may precede the data of the same one) */
        if (++u->n_files > 1) return MHD_YES;
        u->in_file = true;
        const char *fn = filename && *filename ? filename : "upload";
        if (strlen(fn) >= sizeof u->filename) u->name_long = true;
        snprintf(u->filename, sizeof u->filename, "%s", fn);
    }
    if (u->n_files > 1 || !size) return MHD_YES;
    if (u->bytes + size > NUAGE_FILES_MAX_BYTES) {
        u->too_large = true;
        return MHD_NO;
    }
    if (u->fd < 0 && (u->fd = nuage__spool_open()) < 0) {
        u->io_error = true;
        return MHD_NO;
    }
    while (size) {
        ssize_t k = write(u->fd, data, size);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            u->io_error = true;
            return MHD_NO;
        }
        data += k;
        size -= (size_t)k;
        u->bytes += (uint64_t)k;
    }
    return MHD_YES;
}

nuage__fupload *nuage__files_upload_begin(struct MHD_Connection *conn) {
    nuage__fupload *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->fd = -1;
    u->pp = MHD_create_post_processor(conn, NUAGE__PP_BUFFER, nuage__pp_iter, u);
    return u;
}

bool nuage__files_upload_feed(nuage__fupload *u, const char *data, size_t n) {
    if (!u->pp || u->stopped) return false;
    if (MHD_post_process(u->pp, data, n) != MHD_YES) u->stopped = true;
    return !u->stopped;
}

bool nuage__files_upload_too_large(const nuage__fupload *u) { return u->too_large; }

void nuage__files_upload_free(nuage__fupload *u) {
    if (!u) return;
    if (u->pp) MHD_destroy_post_processor(u->pp);
    if (u->fd >= 0) close(u->fd);
    free(u);
}

static void nuage__files_upload(nuage__hreq *q, nuage__hresp *r) {
    nuage__fupload *u = q->upload;
    if (!u || !u->pp) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_multipart", NULL,
                          "The body of POST /v1/files must be multipart/form-data with 'purpose' and 'file'.");
        return;
    }
    /* end of the body: the post processor flushes its last part */
    enum MHD_Result end = MHD_destroy_post_processor(u->pp);
    u->pp = NULL;
    if (u->too_large) {
        nuage__resp_error(r, 413, "invalid_request_error", "file_too_large", "file",
                          "The file is larger than the limit of %u bytes.", NUAGE_FILES_MAX_BYTES);
        return;
    }
    if (u->io_error) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "Cannot spool the upload: %s", strerror(errno));
        return;
    }
    if (end != MHD_YES || u->stopped) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_multipart", NULL,
                          "The multipart body is malformed or truncated.");
        return;
    }
    if (!u->has_purpose) {
        nuage__resp_error(r, 400, "invalid_request_error", "missing_required_parameter", "purpose",
                          "Missing required parameter: 'purpose'.");
        return;
    }
    if (u->purpose_long || (strcmp(u->purpose, "batch") && strcmp(u->purpose, "user_data") && strcmp(u->purpose, "evals"))) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_value", "purpose",
                          "Invalid value for 'purpose' (supported: batch, user_data, evals).");
        return;
    }
    if (u->n_files != 1) {
        nuage__resp_error(r, 400, "invalid_request_error", "missing_required_parameter", "file",
                          u->n_files > 1 ? "Exactly one 'file' part is allowed." : "Missing required parameter: 'file'.");
        return;
    }
    if (u->name_long || !nuage__utf8_ok(u->filename, strlen(u->filename))) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_file_name", "file",
                          "The file name must be valid UTF-8 of at most 255 bytes.");
        return;
    }
    if (!strcmp(u->purpose, "batch") && u->bytes == 0) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_file", "file",
                          "A batch input file must contain at least one request line.");
        return;
    }
    nuage_file f;
    int rc = u->fd >= 0 ? nuage_store_file_create_fd(q->srv->store, q->auth.tenant_id, u->filename, u->purpose,
                                                      u->fd, u->bytes, &f)
                        : nuage_store_file_create(q->srv->store, q->auth.tenant_id, u->filename, u->purpose,
                                                  "", 0, &f);
    if (rc) {
        nuage__resp_error(r, rc == NUAGE_E_INVAL ? 400 : 500, rc == NUAGE_E_INVAL ? "invalid_request_error"
                                                                                 : "server_error",
                          NULL, NULL, "Cannot store the file: %s", nuage_store_errmsg(q->srv->store));
        return;
    }
    json_t *o = nuage__file_object(&f);
    if (!o) {
        /* the client would never learn this id: do not keep the file */
        nuage_store_file_delete(q->srv->store, q->auth.tenant_id, f.id);
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    nuage__resp_json(r, 200, o);
}

/* ---- list / get / content / delete ------------------------------------------------------------ */

static const char *nuage__qarg(nuage__hreq *q, const char *key) {
    return q->conn ? MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, key) : NULL;
}

static void nuage__files_list(nuage__hreq *q, nuage__hresp *r) {
    const char *purpose = nuage__qarg(q, "purpose");
    const char *order = nuage__qarg(q, "order");
    const char *after = nuage__qarg(q, "after");
    const char *lim = nuage__qarg(q, "limit");
    long limit = 10000;
    if (lim) {
        char *e;
        limit = strtol(lim, &e, 10);
        if (*e || limit < 1 || limit > 10000) {
            nuage__resp_error(r, 400, "invalid_request_error", "invalid_value", "limit",
                              "limit must be an integer between 1 and 10000.");
            return;
        }
    }
    if (order && strcmp(order, "asc") && strcmp(order, "desc")) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_value", "order", "order must be asc or desc.");
        return;
    }
    bool asc = order && !strcmp(order, "asc");
    nuage_file *fs = NULL;
    int n = 0;
    if (nuage_store_file_list(q->srv->store, q->auth.tenant_id, purpose && *purpose ? purpose : NULL, &fs, &n)) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "Cannot list files: %s",
                          nuage_store_errmsg(q->srv->store));
        return;
    }
    /* Newest first by default. The store lists newest first (created_at,
     * then insertion order): walk it backwards for order=asc. */
    json_t *data = json_array();
    int start = 0, step = 1;
    if (asc) {
        start = n - 1;
        step = -1;
    }
    bool skipping = after && *after;
    bool more = false;
    for (int i = start; i >= 0 && i < n; i += step) {
        if (skipping) {
            if (!strcmp(fs[i].id, after)) skipping = false;
            continue;
        }
        if ((long)json_array_size(data) >= limit) {
            more = true;
            break;
        }
        json_array_append_new(data, nuage__file_object(&fs[i]));
    }
    free(fs);
    size_t k = json_array_size(data);
    json_t *o = json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", more);
    json_object_set(o, "first_id", k ? json_object_get(json_array_get(data, 0), "id") : json_null());
    json_object_set(o, "last_id", k ? json_object_get(json_array_get(data, k - 1), "id") : json_null());
    nuage__resp_json(r, 200, o);
}

/* A download's reader state (the nuage__source first). */
typedef struct {
    nuage__source src;
    nuage_store *store;
    int64_t tenant_id;
    char id[64];
} nuage__file_source;

static ssize_t nuage__file_source_read(nuage__source *self, uint64_t pos, char *buf, size_t max) {
    nuage__file_source *fs = (nuage__file_source *)self;
    size_t got = 0;
    if (nuage_store_file_read(fs->store, fs->tenant_id, fs->id, pos, buf, max, &got, NULL) || !got) return -1;
    return (ssize_t)got;
}

static void nuage__file_source_free(nuage__source *self) { free(self); }

static void nuage__files_content(nuage__hreq *q, nuage__hresp *r, const char *id) {
    uint64_t size = 0;
    size_t got = 0;
    /* existence and size only: the bytes follow as the client reads */
    int rc = nuage_store_file_read(q->srv->store, q->auth.tenant_id, id, 0, NULL, 0, &got, &size);
    if (rc == NUAGE_E_RANGE) {
        nuage__file_404(r, id);
        return;
    }
    if (rc) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "Cannot read the file: %s",
                          nuage_store_errmsg(q->srv->store));
        return;
    }
    r->status = 200;
    r->content_type = "application/octet-stream";
    if (!size) {
        r->body = malloc(1);
        r->len = 0;
        return;
    }
    nuage__file_source *fs = calloc(1, sizeof *fs);
    if (!fs) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    fs->src.read = nuage__file_source_read;
    fs->src.free = nuage__file_source_free;
    fs->src.size = size;
    fs->store = q->srv->store;
    fs->tenant_id = q->auth.tenant_id;
    snprintf(fs->id, sizeof fs->id, "%s", id);
    r->source = &fs->src;
}

void nuage__api_files(nuage__hreq *q, nuage__hresp *r, const char *sub) {
    if (!nuage__require_store(q, r)) return;
    bool get = !strcmp(q->method, "GET") || !strcmp(q->method, "HEAD");
    if (!*sub || !strcmp(sub, "/")) {
        if (!strcmp(q->method, "POST")) nuage__files_upload(q, r);
        else if (get) nuage__files_list(q, r);
        else
            nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                              "Method %s is not allowed on /v1/files (use GET or POST).", q->method);
        return;
    }
    /* "/{id}" or "/{id}/content" */
    char id[64];
    const char *action;
    if (!nuage__split_id(q, r, sub, "content", id, sizeof id, &action)) return;
    if (*action) {
        if (!get) {
            nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                              "Method %s is not allowed on %.200s (use GET).", q->method, q->path);
        } else {
            nuage__files_content(q, r, id);
        }
        return;
    }
    nuage_file f;
    if (get) {
        int rc = nuage_store_file_get(q->srv->store, q->auth.tenant_id, id, &f);
        if (rc == NUAGE_E_RANGE) nuage__file_404(r, id);
        else if (rc) nuage__resp_error(r, 500, "server_error", NULL, NULL, "%s", nuage_store_errmsg(q->srv->store));
        else nuage__resp_json(r, 200, nuage__file_object(&f));
    } else if (!strcmp(q->method, "DELETE")) {
        int rc = nuage_store_file_delete(q->srv->store, q->auth.tenant_id, id);
        if (rc == NUAGE_E_RANGE) nuage__file_404(r, id);
        else if (rc) nuage__resp_error(r, 500, "server_error", NULL, NULL, "%s", nuage_store_errmsg(q->srv->store));
        else nuage__resp_json(r, 200, json_pack("{s:s, s:s, s:b}", "id", id, "object", "file", "deleted", 1));
    } else {
        nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                          "Method %s is not allowed on %.200s (use GET or DELETE).", q->method, q->path);
    }
}
