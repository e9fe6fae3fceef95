/*
 * api_batches.c - the OpenAI Batch API (/v1/batches) and the bridge that
 * lets the batch runner execute input lines through the endpoint code.
 *
 * Creating a batch checks what can be checked at once -- the input file
 * exists for this tenant with purpose "batch", the endpoint is one we
 * serve, the completion window, the metadata's shape, the deployment (an
 * extension field; absent: each line's body names its model) -- stores
 * the job (status "validating") and wakes the runner, which does the rest
 * (batch_runner.h). Status values, timestamps (seconds; null until
 * reached) and request_counts are the OpenAI API's. Cancelling moves a
 * validating or in-progress job to "cancelling"; the runner ends it as
 * "cancelled" once its running lines are done.
 *
 * Metadata is validated and echoed by the create call; the store has no
 * column for it yet, so later reads return null.
 *
 * Executing a line (nuage_batch_exec_http): a request object is made up
 * exactly as an HTTP request would be -- method, path, body text, the
 * batch's tenant as the authenticated caller, no socket (fd -1: nobody
 * can "go away") -- and handed to the same handler as POST
 * /v1/chat/completions (or completions, embeddings); the handler's answer
 * (status and JSON body) is the line's response. Afterwards the request's
 * generation job and deployment reference are released the way the HTTP
 * layer's completion callback does, so metering and quotas see batch
 * requests like any other. The scheduler priority (1) travels in the
 * request object's `priority` field, which http.h announces with
 * NUAGE__HREQ_HAS_PRIORITY and api_gen.c copies into nuage_sched_request;
 * without it lines run at interactive priority.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "server/api_batch.h"
#include "server/metering.h"

static nuage_batch_runner *nuage__batch_runner_ref;

int nuage_batch_api_register(nuage_server *s, nuage_batch_runner *runner) {
    nuage__batch_runner_ref = runner;
    int rc = nuage_server_add_route(s, "/v1/files", nuage__api_files);
    if (!rc) rc = nuage_server_add_route(s, "/v1/batches", nuage__api_batches);
    return rc;
}

static const char *const nuage__batch_endpoints[] = {"/v1/chat/completions", "/v1/completions",
                                                     "/v1/embeddings", "/v1/responses"};

/* ---- objects --------------------------------------------------------------------------------- */

static json_t *nuage__secs_or_null(int64_t ms) { return ms > 0 ? json_integer(ms / 1000) : json_null(); }

/* The job as an OpenAI batch object. metadata: the request's (create), or
 * NULL to read the stored one. */
static json_t *nuage__batch_object(nuage_store *st, const nuage_batch_job *b, json_t *metadata) {
    json_t *stored = NULL;
    char *text = NULL;
    if (!metadata && st && nuage_store_batch_metadata(st, b->tenant_id, b->id, &text) == 0 &&
        text[0]) {
        stored = json_loads(text, 0, NULL);
        if (json_is_object(stored)) metadata = stored;
    }
    free(text);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(b->id));
    json_object_set_new(o, "object", json_string("batch"));
    json_object_set_new(o, "endpoint", json_string(b->endpoint));
    json_object_set_new(o, "errors", json_null());
    json_object_set_new(o, "input_file_id", json_string(b->input_file_id));
    json_object_set_new(o, "completion_window", json_string(b->completion_window));
    json_object_set_new(o, "status", json_string(b->status));
    json_object_set_new(o, "output_file_id", b->output_file_id[0] ? json_string(b->output_file_id) : json_null());
    json_object_set_new(o, "error_file_id", b->error_file_id[0] ? json_string(b->error_file_id) : json_null());
    json_object_set_new(o, "created_at", json_integer(b->created_ms / 1000));
    json_object_set_new(o, "in_progress_at", nuage__secs_or_null(b->in_progress_ms));
    json_object_set_new(o, "expires_at", nuage__secs_or_null(b->expires_ms));
    json_object_set_new(o, "finalizing_at", nuage__secs_or_null(b->finalizing_ms));
    json_object_set_new(o, "completed_at", nuage__secs_or_null(b->completed_ms));
    json_object_set_new(o, "failed_at", nuage__secs_or_null(b->failed_ms));
    json_object_set_new(o, "expired_at", json_null());
    json_object_set_new(o, "cancelling_at", json_null());
    json_object_set_new(o, "cancelled_at", nuage__secs_or_null(b->cancelled_ms));
    json_object_set_new(o, "request_counts", json_pack("{s:I, s:I, s:I}", "total", (json_int_t)b->total,
                                                       "completed", (json_int_t)b->completed, "failed",
                                                       (json_int_t)b->failed));
    json_object_set_new(o, "metadata", metadata ? json_incref(metadata) : json_null());
    json_decref(stored);
    json_object_set_new(o, "model", b->deployment[0] ? json_string(b->deployment) : json_null());
    return o;
}

static void nuage__batch_404(nuage__hresp *r, const char *id) {
    nuage__resp_error(r, 404, "invalid_request_error", "not_found", "batch_id", "No such Batch object: %.64s", id);
}

/* ---- create --------------------------------------------------------------------------------- */

static void nuage__batches_create(nuage__hreq *q, nuage__hresp *r) {
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    nuage_store *st = q->srv->store;
    const char *file_id = json_string_value(json_object_get(body, "input_file_id"));
    const char *endpoint = json_string_value(json_object_get(body, "endpoint"));
    json_t *win = json_object_get(body, "completion_window");
    json_t *meta = json_object_get(body, "metadata");
    json_t *dep = json_object_get(body, "deployment");
    if (!dep || json_is_null(dep)) dep = json_object_get(body, "model");
    char dep_name[64] = "";
    nuage_file f;
    bool ok_ep = false;
    if (!file_id) {
        nuage__resp_error(r, 400, "invalid_request_error", "missing_required_parameter", "input_file_id",
                          "Missing required parameter: 'input_file_id' (a string).");
        goto out;
    }
    if (!endpoint) {
        nuage__resp_error(r, 400, "invalid_request_error", "missing_required_parameter", "endpoint",
                          "Missing required parameter: 'endpoint' (a string).");
        goto out;
    }
    for (size_t i = 0; i < sizeof nuage__batch_endpoints / sizeof *nuage__batch_endpoints; i++)
        ok_ep |= !strcmp(endpoint, nuage__batch_endpoints[i]);
    if (!ok_ep) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_value", "endpoint",
                          "Invalid value for 'endpoint': '%.64s' (supported: /v1/chat/completions, "
                          "/v1/completions, /v1/embeddings, /v1/responses).", endpoint);
        goto out;
    }
    if (win && !json_is_null(win) && !json_is_string(win)) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_type", "completion_window",
                          "'completion_window' must be a string such as \"24h\".");
        goto out;
    }
    if (meta && !json_is_null(meta)) {
        bool ok = json_is_object(meta) && json_object_size(meta) <= 16;
        const char *k;
        json_t *v;
        if (ok)
            json_object_foreach(meta, k, v) {
                if (strlen(k) > 64 || !json_is_string(v) || json_string_length(v) > 512) ok = false;
            }
        if (!ok) {
            nuage__resp_error(r, 400, "invalid_request_error", "invalid_value", "metadata",
                              "'metadata' must be an object of at most 16 string values (keys up to 64 "
                              "characters, values up to 512).");
            goto out;
        }
    }
    if (dep && !json_is_null(dep)) {
        if (!json_is_string(dep) || json_string_length(dep) >= sizeof dep_name) {
            nuage__resp_error(r, 400, "invalid_request_error", "invalid_type", "deployment",
                              "'deployment' must be a deployment name.");
            goto out;
        }
        nuage_deployment *d = nuage__find_deployment(q, json_string_value(dep), r);
        if (!d) goto out; /* r: 404 model_not_found */
        nuage_deployment_release(d);
        snprintf(dep_name, sizeof dep_name, "%s", json_string_value(dep));
    }
    int rc = nuage_store_file_get(st, q->auth.tenant_id, file_id, &f);
    if (rc == NUAGE_E_RANGE || (!rc && strcmp(f.purpose, "batch"))) {
        nuage__resp_error(r, rc ? 404 : 400, "invalid_request_error", rc ? "not_found" : "invalid_value",
                          "input_file_id", rc ? "No such File object: %.64s"
                                              : "File %.64s does not have purpose 'batch'.", file_id);
        goto out;
    }
    if (rc) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "%s", nuage_store_errmsg(st));
        goto out;
    }
    nuage_batch_job job;
    char *meta_text = json_is_object(meta) ? json_dumps(meta, JSON_COMPACT) : NULL;
    rc = nuage_store_batch_create(st, q->auth.tenant_id, endpoint, file_id,
                                  json_is_string(win) ? json_string_value(win) : "24h", dep_name,
                                  meta_text, &job);
    free(meta_text);
    if (rc == NUAGE_E_INVAL) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_value", "completion_window", "%s.",
                          nuage_store_errmsg(st));
        goto out;
    }
    if (rc) {
        nuage__resp_error(r, rc == NUAGE_E_RANGE ? 404 : 500, "server_error", NULL, NULL, "%s",
                          nuage_store_errmsg(st));
        goto out;
    }
    nuage_batch_runner_notify(nuage__batch_runner_ref);
    nuage__resp_json(r, 200, nuage__batch_object(st, &job, json_is_object(meta) ? meta : NULL));
out:
    json_decref(body);
}

/* ---- list / get / cancel -------------------------------------------------------------------- */

static void nuage__batches_list(nuage__hreq *q, nuage__hresp *r) {
    const char *lim = q->conn ? MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "limit") : NULL;
    const char *after = q->conn ? MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "after") : NULL;
    long limit = 20;
    if (lim) {
        char *e;
        limit = strtol(lim, &e, 10);
        if (*e || limit < 1 || limit > 100) {
            nuage__resp_error(r, 400, "invalid_request_error", "invalid_value", "limit",
                              "limit must be an integer between 1 and 100.");
            return;
        }
    }
    nuage_batch_job *jobs = NULL;
    int n = 0;
    if (nuage_store_batch_list(q->srv->store, q->auth.tenant_id, &jobs, &n)) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "%s", nuage_store_errmsg(q->srv->store));
        return;
    }
    json_t *data = json_array();
    bool skipping = after && *after, more = false;
    for (int i = n - 1; i >= 0; i--) { /* newest first */
        if (skipping) {
            if (!strcmp(jobs[i].id, after)) skipping = false;
            continue;
        }
        if ((long)json_array_size(data) >= limit) {
            more = true;
            break;
        }
        json_array_append_new(data, nuage__batch_object(q->srv->store, &jobs[i], NULL));
    }
    free(jobs);
    size_t k = json_array_size(data);
    json_t *o = json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", more);
    json_object_set(o, "first_id", k ? json_object_get(json_array_get(data, 0), "id") : json_null());
    json_object_set(o, "last_id", k ? json_object_get(json_array_get(data, k - 1), "id") : json_null());
    nuage__resp_json(r, 200, o);
}

static void nuage__batches_cancel(nuage__hreq *q, nuage__hresp *r, const char *id) {
    nuage_store *st = q->srv->store;
    nuage_batch_job b;
    int rc = nuage_store_batch_get(st, q->auth.tenant_id, id, &b);
    if (rc == NUAGE_E_RANGE) {
        nuage__batch_404(r, id);
        return;
    }
    if (!rc && (!strcmp(b.status, "validating") || !strcmp(b.status, "in_progress"))) {
        rc = nuage_store_batch_set_status(st, id, "cancelling", 0);
        if (!rc) {
            nuage_batch_runner_cancel(nuage__batch_runner_ref, id);
            rc = nuage_store_batch_get(st, q->auth.tenant_id, id, &b);
        }
    } else if (!rc && strcmp(b.status, "cancelling") && strcmp(b.status, "cancelled")) {
        nuage__resp_error(r, 409, "invalid_request_error", "batch_not_cancellable", NULL,
                          "Cannot cancel a batch with status '%s'.", b.status);
        return;
    }
    if (rc == NUAGE_E_STATE) { /* it ended meanwhile */
        nuage_store_batch_get(st, q->auth.tenant_id, id, &b);
        nuage__resp_error(r, 409, "invalid_request_error", "batch_not_cancellable", NULL,
                          "Cannot cancel a batch with status '%s'.", b.status);
        return;
    }
    if (rc) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "%s", nuage_store_errmsg(st));
        return;
    }
    nuage__resp_json(r, 200, nuage__batch_object(st, &b, NULL));
}

void nuage__api_batches(nuage__hreq *q, nuage__hresp *r, const char *sub) {
    if (!nuage__require_store(q, r)) return;
    bool get = !strcmp(q->method, "GET") || !strcmp(q->method, "HEAD");
    bool post = !strcmp(q->method, "POST");
    if (!*sub || !strcmp(sub, "/")) {
        if (post) nuage__batches_create(q, r);
        else if (get) nuage__batches_list(q, r);
        else
            nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                              "Method %s is not allowed on /v1/batches (use GET or POST).", q->method);
        return;
    }
    char id[64];
    const char *action;
    if (!nuage__split_id(q, r, sub, "cancel", id, sizeof id, &action)) return;
    if (*action) {
        if (!post) {
            nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                              "Method %s is not allowed on %.200s (use POST).", q->method, q->path);
            return;
        }
        nuage__batches_cancel(q, r, id);
        return;
    }
    if (!get) {
        nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                          "Method %s is not allowed on %.200s (use GET).", q->method, q->path);
        return;
    }
    nuage_batch_job b;
    int rc = nuage_store_batch_get(q->srv->store, q->auth.tenant_id, id, &b);
    if (rc == NUAGE_E_RANGE) nuage__batch_404(r, id);
    else if (rc) nuage__resp_error(r, 500, "server_error", NULL, NULL, "%s", nuage_store_errmsg(q->srv->store));
    else nuage__resp_json(r, 200, nuage__batch_object(q->srv->store, &b, NULL));
}

/* ---- executing a line ---------------------------------------------------------------------------- */

int nuage_batch_exec_http(void *ud, const nuage_batch_exec_req *req, json_t **out) {
    nuage_server *s = ud;
    *out = NULL;
    if (atomic_load(&s->state) != NUAGE__STATE_READY) return NUAGE_E_BUSY;
    /* Billing fails closed: the runner retries the line later. */
    if (!nuage__metering_ok(s)) return NUAGE_E_BUSY;
    void (*handler)(nuage__hreq *, nuage__hresp *) = NULL;
    const char *ep = req->endpoint;
    if (!strcmp(ep, "/v1/chat/completions")) handler = nuage__api_chat;
    else if (!strcmp(ep, "/v1/completions")) handler = nuage__api_completions;
    else if (!strcmp(ep, "/v1/embeddings")) handler = nuage__api_embeddings;
    else if (!strcmp(ep, "/v1/responses")) handler = nuage__api_responses_create;
    if (!handler) {
        *out = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", "unsupported endpoint", "type",
                         "invalid_request_error", "param", "code");
        return 400;
    }
    if (req->deployment && *req->deployment)
        json_object_set_new(req->body, "model", json_string(req->deployment));
    nuage__hreq *q = calloc(1, sizeof *q);
    if (!q) return NUAGE_E_BUSY;
    q->srv = s;
    q->fd = -1;
    snprintf(q->method, sizeof q->method, "POST");
    snprintf(q->path, sizeof q->path, "%s", ep);
    q->t0 = nuage__now();
#ifdef NUAGE__HREQ_HAS_PRIORITY
    /* http.h's request carries the scheduler priority its generation uses */
    q->priority = req->priority;
#endif
    q->body = json_dumps(req->body, JSON_COMPACT);
    if (!q->body) {
        free(q);
        return NUAGE_E_BUSY;
    }
    q->len = q->cap = strlen(q->body);
    /* the caller: the batch's tenant, as authenticated */
    q->auth.authenticated = true;
    q->auth.tenant_id = req->tenant_id;
    q->auth.weight = 1.0;
    nuage_tenant t;
    if (s->store && req->tenant_id > 0 && nuage_store_tenant_get_id(s->store, req->tenant_id, &t) == 0) {
        snprintf(q->auth.tenant, sizeof q->auth.tenant, "%s", t.name);
        q->auth.weight = t.weight > 0 ? t.weight : 1.0;
        q->auth.tpm = t.tpm;
        q->auth.rpm = t.rpm;
    }
    nuage__hresp r;
    memset(&r, 0, sizeof r);
    handler(q, &r);
    int status = r.status;
    if (r.streaming) { /* never asked for; do not leak it */
        if (r.stream.close) r.stream.close(r.stream.self);
        status = 500;
    } else if (r.body) {
        json_error_t je;
        *out = json_loadb(r.body, r.len, 0, &je);
    }
    free(r.body);
    /* release what the request holds, as the HTTP completion callback does */
    if (q->gen) {
        nuage__gen *g = q->gen;
        bool done, finalized;
        pthread_mutex_lock(&g->mu);
        done = g->n_complete >= g->n_jobs;
        finalized = g->finalized;
        pthread_mutex_unlock(&g->mu);
        if (!done) nuage__gen_cancel(g);
        if (!finalized) {
            nuage__gen_wait_done(g, 10000);
            nuage__gen_finish(g, status > 0 && status < 400 ? nuage__gen_status(g) : status);
        }
    }
    nuage__gen_unref(q->gen);
    nuage_deployment_release(q->dep);
    free(q->body);
    free(q);
    bool stopping = atomic_load(&s->state) != NUAGE__STATE_READY;
    if (stopping || status == 503 || status == 429 || !*out) {
        json_decref(*out);
        *out = NULL;
        return NUAGE_E_BUSY;
    }
    return status;
}
