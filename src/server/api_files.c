/*
 * api_files.c - the OpenAI Files API (/v1/files) on the store, and the
 * multipart/form-data parser its upload needs.
 *
 * Uploads. The OpenAI SDKs send POST /v1/files as multipart/form-data
 * with a "purpose" field and a "file" part. The server buffers request
 * bodies (up to its body limit), so the parser works on the whole body in
 * memory: find the boundary in the Content-Type header, split the body on
 * "\r\n--boundary", read each part's headers (Content-Disposition: name
 * and filename) and hand its bytes over without copying. It never reads
 * outside the buffer: every search is bounded by the body's length
 * (memmem), part headers are limited to 8 KiB and a body is limited to 32
 * parts; a body that ends without the closing delimiter is an error. File
 * contents are binary-safe (NUL bytes included).
 *
 * Objects. A file is {"id", "object": "file", "bytes", "created_at"
 * (seconds), "filename", "purpose", "status": "processed"}. Purposes
 * accepted on upload: "batch" (the input of a batch job: must be
 * non-empty; each line is checked when the batch runs, so that one bad
 * line fails only itself), plus "user_data" and "evals" stored as is.
 * Batch results have purpose "batch_output" (made by the store).
 *
 * Isolation: every store call takes the caller's tenant; another
 * tenant's id answers 404 like an unknown one.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "server/api_batch.h"

/* ---- multipart ------------------------------------------------------------------------ */

#define NUAGE__MP_MAX_PARTS 32
#define NUAGE__MP_MAX_HEADERS 8192

static void nuage__mp_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Parameter `key` of a header value such as `form-data; name="file";
 * filename="a.jsonl"` (quoted or token) into out. true when found. */
static bool nuage__mp_param(const char *v, size_t n, const char *key, char *out, size_t cap) {
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl < n; i++) {
        if (strncasecmp(v + i, key, kl) || v[i + kl] != '=') continue;
        /* a parameter starts after ';' or whitespace */
        if (i > 0 && v[i - 1] != ';' && v[i - 1] != ' ' && v[i - 1] != '\t') continue;
        size_t j = i + kl + 1, k = 0;
        if (j < n && v[j] == '"') {
            j++;
            while (j < n && v[j] != '"') {
                if (v[j] == '\\' && j + 1 < n) j++;
                if (k + 1 < cap) out[k++] = v[j];
                j++;
            }
        } else {
            while (j < n && v[j] != ';' && v[j] != ' ' && v[j] != '\t' && v[j] != '\r') {
                if (k + 1 < cap) out[k++] = v[j];
                j++;
            }
        }
        out[k] = 0;
        return true;
    }
    return false;
}

int nuage__multipart_parse(const char *content_type, const char *body, size_t len,
                           int (*part)(void *ud, const char *name, const char *filename, const char *data,
                                       size_t n),
                           void *ud, char *err, size_t errlen) {
    if (!content_type || strncasecmp(content_type, "multipart/form-data", 19)) {
        nuage__mp_err(err, errlen, "the body must be multipart/form-data");
        return NUAGE_E_FORMAT;
    }
    char boundary[256];
    if (!nuage__mp_param(content_type, strlen(content_type), "boundary", boundary, sizeof boundary) ||
        !boundary[0] || strlen(boundary) > 200) {
        nuage__mp_err(err, errlen, "multipart/form-data without a valid boundary");
        return NUAGE_E_FORMAT;
    }
    char delim[210];
    int dl = snprintf(delim, sizeof delim, "--%s", boundary);
    /* first delimiter: at the start or after a preamble line */
    const char *p = body ? memmem(body, len, delim, (size_t)dl) : NULL;
    if (!p || (p != body && (p < body + 2 || p[-1] != '\n'))) {
        nuage__mp_err(err, errlen, "multipart body without its opening boundary");
        return NUAGE_E_FORMAT;
    }
    const char *end = body + len;
    char crlf_delim[214];
    int cdl = snprintf(crlf_delim, sizeof crlf_delim, "\r\n--%s", boundary);
    for (int n_parts = 0;; n_parts++) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return 0; /* closing delimiter */
        /* rest of the delimiter line (transport padding) */
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) break;
        p = eol + 1;
        if (n_parts >= NUAGE__MP_MAX_PARTS) {
            nuage__mp_err(err, errlen, "too many parts in the multipart body (at most %d)", NUAGE__MP_MAX_PARTS);
            return NUAGE_E_FORMAT;
        }
        /* headers up to an empty line */
        size_t room = (size_t)(end - p);
        const char *hend = memmem(p, room < NUAGE__MP_MAX_HEADERS ? room : NUAGE__MP_MAX_HEADERS, "\r\n\r\n", 4);
        size_t skip = 4;
        if (!hend && room >= 2 && p[0] == '\r' && p[1] == '\n') { /* no headers at all */
            hend = p;
            skip = 2;
        }
        if (!hend) {
            nuage__mp_err(err, errlen, "multipart part headers missing or longer than %d bytes",
                          NUAGE__MP_MAX_HEADERS);
            return NUAGE_E_FORMAT;
        }
        char name[128] = "", filename[256] = "";
        bool has_name = false, has_filename = false;
        for (const char *h = p; h < hend;) {
            const char *he = memmem(h, (size_t)(hend - h), "\r\n", 2);
            if (!he) he = hend;
            size_t hl = (size_t)(he - h);
            if (hl > 20 && !strncasecmp(h, "content-disposition:", 20)) {
                has_name = nuage__mp_param(h + 20, hl - 20, "name", name, sizeof name);
                has_filename = nuage__mp_param(h + 20, hl - 20, "filename", filename, sizeof filename);
            }
            h = he + 2;
        }
        const char *data = hend + skip;
        if (data > end) break;
        const char *next = memmem(data, (size_t)(end - data), crlf_delim, (size_t)cdl);
        if (!next) break;
        if (!has_name) {
            nuage__mp_err(err, errlen, "a multipart part has no Content-Disposition name");
            return NUAGE_E_FORMAT;
        }
        int rc = part(ud, name, has_filename ? filename : NULL, data, (size_t)(next - data));
        if (rc) return rc;
        p = next + 2; /* at "--boundary" */
    }
    nuage__mp_err(err, errlen, "the multipart body is truncated (no closing boundary)");
    return NUAGE_E_FORMAT;
}

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

typedef struct {
    char purpose[32];
    bool has_purpose, has_file;
    char filename[256];
    const char *data;
    size_t len;
    int n_files;
} nuage__upload;

static int nuage__upload_part(void *ud, const char *name, const char *filename, const char *data, size_t n) {
    nuage__upload *u = ud;
    if (!strcmp(name, "purpose")) {
        u->has_purpose = true;
        size_t k = n < sizeof u->purpose - 1 ? n : sizeof u->purpose - 1;
        memcpy(u->purpose, data, k);
        u->purpose[k] = 0;
        if (k < n) u->purpose[0] = '?'; /* too long: not a known purpose */
    } else if (!strcmp(name, "file")) {
        u->n_files++;
        u->has_file = true;
        snprintf(u->filename, sizeof u->filename, "%s", filename && *filename ? filename : "upload");
        u->data = data;
        u->len = n;
    }
    return 0;
}

static void nuage__files_upload(nuage__hreq *q, nuage__hresp *r) {
    const char *ct = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    nuage__upload u;
    memset(&u, 0, sizeof u);
    char err[200];
    if (nuage__multipart_parse(ct, q->body, q->len, nuage__upload_part, &u, err, sizeof err)) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_multipart", NULL, "%s.", err);
        return;
    }
    if (!u.has_purpose) {
        nuage__resp_error(r, 400, "invalid_request_error", "missing_required_parameter", "purpose",
                          "Missing required parameter: 'purpose'.");
        return;
    }
    if (strcmp(u.purpose, "batch") && strcmp(u.purpose, "user_data") && strcmp(u.purpose, "evals")) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_value", "purpose",
                          "Invalid value for 'purpose': '%.31s' (supported: batch, user_data, evals).", u.purpose);
        return;
    }
    if (!u.has_file || u.n_files != 1) {
        nuage__resp_error(r, 400, "invalid_request_error", "missing_required_parameter", "file",
                          u.n_files > 1 ? "Exactly one 'file' part is allowed." : "Missing required parameter: 'file'.");
        return;
    }
    if (u.len > NUAGE_FILES_MAX_BYTES) {
        nuage__resp_error(r, 413, "invalid_request_error", "file_too_large", "file",
                          "The file is larger than the limit of %u bytes.", NUAGE_FILES_MAX_BYTES);
        return;
    }
    if (!strcmp(u.purpose, "batch") && u.len == 0) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_file", "file",
                          "A batch input file must contain at least one request line.");
        return;
    }
    nuage_file f;
    int rc = nuage_store_file_create(q->srv->store, q->auth.tenant_id, u.filename, u.purpose, u.data, u.len, &f);
    if (rc) {
        nuage__resp_error(r, rc == NUAGE_E_INVAL ? 400 : 500, rc == NUAGE_E_INVAL ? "invalid_request_error"
                                                                                 : "server_error",
                          NULL, NULL, "Cannot store the file: %s", nuage_store_errmsg(q->srv->store));
        return;
    }
    nuage__resp_json(r, 200, nuage__file_object(&f));
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

static void nuage__files_content(nuage__hreq *q, nuage__hresp *r, const char *id) {
    void *data = NULL;
    size_t len = 0;
    int rc = nuage_store_file_content(q->srv->store, q->auth.tenant_id, id, &data, &len);
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
    r->body = data ? data : malloc(1);
    r->len = len;
    r->content_type = "application/octet-stream";
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
