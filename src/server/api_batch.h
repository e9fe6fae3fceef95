/*
 * api_batch.h - the OpenAI Files and Batch APIs over HTTP (api_files.c,
 * api_batches.c), on the store (platform/store.h) and the batch runner
 * (platform/batch_runner.h).
 *
 * Wiring (done by whoever builds the server, e.g. tools/cmd_serve.c):
 *
 *     nuage_batch_runner *runner;
 *     nuage_batch_runner_new(store, &rp, nuage_batch_exec_http, server, &runner);
 *     nuage_batch_api_register(server, runner);     // before the server is ready
 *     ...
 *     nuage_batch_runner_stop(runner);              // at shutdown, before draining
 *     ... drain the schedulers, stop the server ...
 *     nuage_batch_runner_free(runner);              // before freeing the server
 *
 * Routes: POST/GET /v1/files, GET/DELETE /v1/files/{id}, GET
 * /v1/files/{id}/content, POST/GET /v1/batches, GET /v1/batches/{id},
 * POST /v1/batches/{id}/cancel. Everything is scoped to the caller's
 * tenant (q->auth.tenant_id): another tenant's file or batch is a 404,
 * exactly like one that does not exist. Without a store (`serve -m`
 * without --db) the routes answer 501.
 *
 * One server per process: the runner given to register is kept in a
 * module variable (the route signature has no user pointer).
 */
#ifndef NUAGE_SERVER_API_BATCH_H
#define NUAGE_SERVER_API_BATCH_H

#include <jansson.h>

#include "platform/batch_runner.h"
#include "server/http.h"

/* Size limit of one file uploaded to POST /v1/files (bytes; OpenAI's
 * limit). Uploads are streamed: the server's body limit (for JSON) does not
 * apply to them. */
#define NUAGE_FILES_MAX_BYTES (512u << 20)

/* Register the routes on s (runner may be NULL: batches are stored but
 * nothing runs them). 0 or NUAGE_E_NOMEM (route table full). */
int nuage_batch_api_register(nuage_server *s, nuage_batch_runner *runner);

/*
 * The runner's exec (ud: the nuage_server): runs one input line through
 * the same endpoint code as an HTTP request (chat completions,
 * completions, embeddings) as the batch's tenant, at scheduler priority 1,
 * and returns the status with the response body. A line whose execution
 * overlapped the server's shutdown, or that met a full queue (503) or the
 * tenant's rate limit (429), returns NUAGE_E_BUSY: it is not recorded and
 * runs again later (after a restart, if need be).
 */
int nuage_batch_exec_http(void *ud, const nuage_batch_exec_req *req, json_t **body);

/* Route handlers (sub: the path after the prefix, "" or "/..."). */
void nuage__api_files(nuage__hreq *q, nuage__hresp *r, const char *sub);
void nuage__api_batches(nuage__hreq *q, nuage__hresp *r, const char *sub);

/*
 * Streamed upload of POST /v1/files (api_files.c), driven by http.c:
 * begin at the request head (the body is then not buffered), feed each
 * body chunk (false once the upload failed: stop reading; too_large says
 * whether it was the size limit), and the route handler finishes it from
 * q->upload. free releases it (NULL: nothing).
 */
nuage__fupload *nuage__files_upload_begin(struct MHD_Connection *conn);
bool nuage__files_upload_feed(nuage__fupload *u, const char *data, size_t n);
bool nuage__files_upload_too_large(const nuage__fupload *u);
void nuage__files_upload_free(nuage__fupload *u);

#endif
