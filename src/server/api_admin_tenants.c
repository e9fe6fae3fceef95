/*
 * api_admin_tenants.c - tenants, API keys and live statistics over the
 * admin API (what `nuage admin tenant|key` does on the database, and what
 * /metrics says in Prometheus text, as JSON for the console and scripts).
 *
 *   GET    /admin/tenants          every tenant with its limits and keys
 *                                  (prefix, id, allowed deployments, state;
 *                                  never a secret: only hashes are stored)
 *   POST   /admin/tenants          {"name", "tpm"?, "rpm"?, "weight"?} -> 201
 *   PATCH  /admin/tenants/{name}   {"tpm"?, "rpm"?, "weight"?}: new limits
 *                                  (the ones not given stay)
 *   DELETE /admin/tenants/{name}   remove it and revoke its keys (usage stays)
 *   POST   /admin/keys             {"tenant", "deployments"?, "expires_at"?}
 *                                  -> 201 with "key": the secret, shown once
 *   DELETE /admin/keys/{id}        revoke (numeric id or nk-XXXXXXXX prefix)
 *   GET    /admin/stats            live numbers: per-deployment queue,
 *                                  running sequences, KV blocks, token
 *                                  counters; request counters; time to
 *                                  first token, inter-token latency and
 *                                  request duration as histogram counts
 *                                  with p50 / p90 / p99 estimates
 *
 * Reached only with an admin key (or auth off on loopback; http.c checks
 * before api_admin.c dispatches here). Keys made here are tenant keys:
 * an admin key can be created only with the CLI on the database itself,
 * so that a leaked console session cannot mint lasting admin access.
 * Revocation takes effect on the next request (keys are verified against
 * the store on every request).
 *
 * Percentiles from a histogram are estimates: the rank's bucket is found
 * from the cumulative counts and the value interpolated linearly inside
 * it (the lowest bucket from 0; a rank in the open +Inf bucket reports
 * the last finite bound). They are what Prometheus' histogram_quantile
 * computes over the server's whole lifetime.
 */
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "server/http.h"

/* ---- tenants and keys -------------------------------------------------------- */

static bool nuage__tenants_store(nuage__hreq *q, nuage__hresp *r) {
    if (q->srv->store) return true;
    nuage__resp_error(r, 404, "invalid_request_error", "no_store", NULL,
                      "This server has no store (started without one): no tenants or keys to manage.");
    return false;
}

/* A store failure as an HTTP error: not found 404, exists 409, bad 400. */
static void nuage__store_error(nuage__hreq *q, nuage__hresp *r, int rc, const char *param) {
    const char *m = nuage_store_errmsg(q->srv->store);
    if (rc == NUAGE_E_RANGE) nuage__resp_error(r, 404, "invalid_request_error", "not_found", param, "%s", m);
    else if (rc == NUAGE_E_STATE) nuage__resp_error(r, 409, "invalid_request_error", "conflict", param, "%s", m);
    else if (rc == NUAGE_E_INVAL) nuage__resp_error(r, 400, "invalid_request_error", NULL, param, "%s", m);
    else nuage__resp_error(r, 500, "server_error", NULL, NULL, "store error: %s", m);
}

static json_t *nuage__key_json(const nuage_key *k) {
    return json_pack("{s:s,s:I,s:s,s:s,s:I,s:I,s:b,s:b}", "object", "api_key", "id", (json_int_t)k->id, "prefix",
                     k->prefix, "deployments", k->deployments, "expires_at", (json_int_t)k->expires_ms, "created_at",
                     (json_int_t)k->created_ms, "revoked", k->revoked, "admin", k->admin);
}

static json_t *nuage__tenant_json(const nuage_tenant *t) {
    return json_pack("{s:s,s:I,s:s,s:I,s:I,s:f,s:I}", "object", "tenant", "id", (json_int_t)t->id, "name", t->name,
                     "tpm", (json_int_t)t->tpm, "rpm", (json_int_t)t->rpm, "weight", t->weight, "created_at",
                     (json_int_t)t->created_ms);
}

static void nuage__tenants_list(nuage__hreq *q, nuage__hresp *r) {
    nuage_store *st = q->srv->store;
    nuage_tenant *ts = NULL;
    nuage_key *ks = NULL;
    int nt = 0, nk = 0;
    int rc = nuage_store_tenant_list(st, &ts, &nt);
    if (!rc) rc = nuage_store_key_list(st, NULL, &ks, &nk);
    if (rc) {
        free(ts);
        nuage__store_error(q, r, rc, NULL);
        return;
    }
    json_t *data = json_array();
    for (int i = 0; data && i < nt; i++) {
        json_t *t = nuage__tenant_json(&ts[i]);
        json_t *keys = json_array();
        for (int j = 0; keys && j < nk; j++)
            if (ks[j].tenant_id == ts[i].id) json_array_append_new(keys, nuage__key_json(&ks[j]));
        if (t && keys) json_object_set_new(t, "keys", keys);
        else json_decref(keys);
        if (t) json_array_append_new(data, t);
    }
    /* Admin keys without a tenant, listed apart. */
    json_t *admin = json_array();
    for (int j = 0; admin && j < nk; j++)
        if (!ks[j].tenant_id) json_array_append_new(admin, nuage__key_json(&ks[j]));
    free(ts);
    free(ks);
    json_t *o = json_pack("{s:s,s:o,s:o}", "object", "list", "data", data ? data : json_array(), "admin_keys",
                          admin ? admin : json_array());
    nuage__resp_json(r, 200, o);
}

/* An optional non-negative integer member; false with r filled when bad. */
static bool nuage__opt_int(json_t *body, const char *k, int64_t *v, nuage__hresp *r) {
    json_t *x = json_object_get(body, k);
    if (!x || json_is_null(x)) return true;
    if (!json_is_integer(x) || json_integer_value(x) < 0) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, k, "'%s' must be a non-negative integer.", k);
        return false;
    }
    *v = (int64_t)json_integer_value(x);
    return true;
}

static void nuage__tenants_create(nuage__hreq *q, nuage__hresp *r) {
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    const char *name = json_string_value(json_object_get(body, "name"));
    int64_t tpm = 0, rpm = 0;
    double weight = 1.0;
    json_t *w = json_object_get(body, "weight");
    if (!name) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, "name", "'name' (a string) is required.");
        goto out;
    }
    if (!nuage__opt_int(body, "tpm", &tpm, r) || !nuage__opt_int(body, "rpm", &rpm, r)) goto out;
    if (w && !json_is_null(w)) {
        if (!json_is_number(w) || !(json_number_value(w) > 0)) {
            nuage__resp_error(r, 400, "invalid_request_error", NULL, "weight", "'weight' must be a positive number.");
            goto out;
        }
        weight = json_number_value(w);
    }
    nuage_tenant t;
    int rc = nuage_store_tenant_create(q->srv->store, name, tpm, rpm, weight, &t);
    if (rc) nuage__store_error(q, r, rc, "name");
    else nuage__resp_json(r, 201, nuage__tenant_json(&t));
out:
    json_decref(body);
}

static void nuage__tenants_update(nuage__hreq *q, nuage__hresp *r, const char *name) {
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    nuage_tenant t;
    int rc = nuage_store_tenant_get(q->srv->store, name, &t);
    if (rc) {
        nuage__store_error(q, r, rc, NULL);
        goto out;
    }
    json_t *w = json_object_get(body, "weight");
    if (!nuage__opt_int(body, "tpm", &t.tpm, r) || !nuage__opt_int(body, "rpm", &t.rpm, r)) goto out;
    if (w && !json_is_null(w)) {
        if (!json_is_number(w) || !(json_number_value(w) > 0)) {
            nuage__resp_error(r, 400, "invalid_request_error", NULL, "weight", "'weight' must be a positive number.");
            goto out;
        }
        t.weight = json_number_value(w);
    }
    rc = nuage_store_tenant_update(q->srv->store, name, t.tpm, t.rpm, t.weight, &t);
    if (rc) nuage__store_error(q, r, rc, NULL);
    else nuage__resp_json(r, 200, nuage__tenant_json(&t));
out:
    json_decref(body);
}

static void nuage__tenants_delete(nuage__hreq *q, nuage__hresp *r, const char *name) {
    int rc = nuage_store_tenant_delete(q->srv->store, name);
    if (rc) nuage__store_error(q, r, rc, NULL);
    else nuage__resp_json(r, 200, json_pack("{s:s,s:s,s:b}", "object", "tenant.deleted", "name", name, "deleted", 1));
}

static void nuage__keys_create(nuage__hreq *q, nuage__hresp *r) {
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    const char *tenant = json_string_value(json_object_get(body, "tenant"));
    json_t *dj = json_object_get(body, "deployments");
    const char *deps = "";
    int64_t expires = 0;
    if (!tenant || !*tenant) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, "tenant",
                          "'tenant' (a tenant name) is required: admin keys are created with `nuage admin key create --admin`.");
        goto out;
    }
    if (json_is_true(json_object_get(body, "admin"))) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, "admin",
                          "Admin keys cannot be created over HTTP; use `nuage admin key create --admin`.");
        goto out;
    }
    if (dj && !json_is_null(dj)) {
        if (!json_is_string(dj)) {
            nuage__resp_error(r, 400, "invalid_request_error", NULL, "deployments",
                              "'deployments' must be a comma-separated string (\"\": all).");
            goto out;
        }
        deps = json_string_value(dj);
    }
    if (!nuage__opt_int(body, "expires_at", &expires, r)) goto out;
    char secret[128];
    nuage_key k;
    int rc = nuage_store_key_create(q->srv->store, tenant, deps, expires, false, secret, sizeof secret, &k);
    if (rc) {
        nuage__store_error(q, r, rc, "tenant");
        goto out;
    }
    json_t *o = nuage__key_json(&k);
    if (o) json_object_set_new(o, "key", json_string(secret));
    if (o) json_object_set_new(o, "tenant", json_string(tenant));
    memset(secret, 0, sizeof secret);
    nuage__resp_json(r, 201, o);
out:
    json_decref(body);
}

static void nuage__keys_revoke(nuage__hreq *q, nuage__hresp *r, const char *id) {
    int rc = nuage_store_key_revoke(q->srv->store, id);
    if (rc) nuage__store_error(q, r, rc, NULL);
    else nuage__resp_json(r, 200, json_pack("{s:s,s:s,s:b}", "object", "api_key.revoked", "id", id, "revoked", 1));
}

/* ---- live statistics --------------------------------------------------------- */

/* The q-quantile (0..1) of h, interpolated in its bucket; 0 when empty. */
static double nuage__hist_quantile(const nuage__histogram *h, double qt) {
    uint64_t c[NUAGE_METRICS_BUCKETS + 1], total = 0;
    for (int i = 0; i <= h->n; i++) total += c[i] = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    if (!total) return 0;
    double rank = qt * (double)total, cum = 0;
    for (int i = 0; i < h->n; i++) {
        if (cum + (double)c[i] >= rank && c[i]) {
            double lo = i ? h->bounds[i - 1] : 0, hi = h->bounds[i];
            return lo + (hi - lo) * (rank - cum) / (double)c[i];
        }
        cum += (double)c[i];
    }
    return h->bounds[h->n - 1];
}

static json_t *nuage__hist_json(const nuage__histogram *h) {
    json_t *b = json_array();
    uint64_t total = 0;
    for (int i = 0; i <= h->n; i++) {
        uint64_t v = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        total += v;
        if (b) json_array_append_new(b, json_pack("{s:o,s:I}", "le", i < h->n ? json_real(h->bounds[i]) : json_string("+Inf"),
                                                  "count", (json_int_t)v));
    }
    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:o}", "count", (json_int_t)total, "sum_seconds",
                     (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6, "p50",
                     nuage__hist_quantile(h, 0.50), "p90", nuage__hist_quantile(h, 0.90), "p99",
                     nuage__hist_quantile(h, 0.99), "buckets", b ? b : json_array());
}

static void nuage__stats(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    nuage_deployment **ds = NULL;
    int n = 0;
    if (nuage_registry_list(s->reg, &ds, &n)) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    json_t *deps = json_array();
    for (int i = 0; i < n; i++) {
        const nuage_deployment *d = ds[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "name", d->name, "kind",
                              d->kind == NUAGE_DEPLOY_MODEL ? "model" : "router", "version", d->version, "loaded_at",
                              (json_int_t)d->loaded_ms);
        if (o && d->kind == NUAGE_DEPLOY_MODEL) {
            json_object_set_new(o, "model", json_string(d->cfg.model));
            json_object_set_new(o, "n_ctx", json_integer(d->n_ctx));
        }
        if (o && d->sched) {
            nuage_sched_stats st;
            nuage_sched_get_stats(d->sched, &st);
            json_object_set_new(o, "stats",
                                json_pack("{s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:I}", "queued", st.queued, "running",
                                          st.running, "kv_blocks_total", st.kv_blocks_total, "kv_blocks_free",
                                          st.kv_blocks_free, "kv_blocks_cached", st.kv_blocks_cached, "prompt_tokens",
                                          (json_int_t)st.prompt_tokens, "cached_tokens", (json_int_t)st.cached_tokens,
                                          "generated_tokens", (json_int_t)st.generated_tokens, "preemptions",
                                          (json_int_t)st.preemptions));
        }
        if (o && deps) json_array_append_new(deps, o);
        else json_decref(o);
        nuage_deployment_release(ds[i]);
    }
    free(ds);
    const nuage__metrics *m = &s->metrics;
    uint64_t answered = 0;
    for (int c = 100; c < 600; c++) answered += atomic_load_explicit(&m->by_status[c], memory_order_relaxed);
    json_t *o = json_pack("{s:s,s:I,s:o,s:{s:I,s:I,s:I,s:I,s:I},s:o,s:o,s:o,s:i}", "object", "stats", "time",
                          (json_int_t)nuage__wall_ms(), "deployments", deps ? deps : json_array(), "requests",
                          "answered", (json_int_t)answered, "generation", (json_int_t)atomic_load(&m->requests_started),
                          "cancelled", (json_int_t)atomic_load(&m->cancelled), "rate_limited",
                          (json_int_t)atomic_load(&m->rate_limited), "auth_failures",
                          (json_int_t)atomic_load(&m->auth_failures), "time_to_first_token", nuage__hist_json(&m->ttft),
                          "inter_token_latency", nuage__hist_json(&m->itl), "request_duration",
                          nuage__hist_json(&m->e2e), "draining", nuage_registry_n_draining(s->reg));
    nuage__resp_json(r, 200, o);
}

/* ---- dispatch ---------------------------------------------------------------- */

bool nuage__api_admin_tenants(nuage__hreq *q, nuage__hresp *r, const char *sub) {
    bool get = !strcmp(q->method, "GET") || !strcmp(q->method, "HEAD");
    bool post = !strcmp(q->method, "POST");
    bool del = !strcmp(q->method, "DELETE");
    if (!strcmp(sub, "/stats")) {
        if (get) nuage__stats(q, r);
        else nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL, "Use GET /admin/stats.");
        return true;
    }
    if (!strcmp(sub, "/tenants")) {
        if (!nuage__tenants_store(q, r)) return true;
        if (get) nuage__tenants_list(q, r);
        else if (post) nuage__tenants_create(q, r);
        else nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Method %s is not allowed on /admin/tenants (use GET or POST).", q->method);
        return true;
    }
    if (!strncmp(sub, "/tenants/", 9) && sub[9] && !strchr(sub + 9, '/')) {
        if (!nuage__tenants_store(q, r)) return true;
        if (del) nuage__tenants_delete(q, r, sub + 9);
        else if (!strcmp(q->method, "PATCH")) nuage__tenants_update(q, r, sub + 9);
        else nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Method %s is not allowed on a tenant (use PATCH or DELETE).", q->method);
        return true;
    }
    if (!strcmp(sub, "/keys")) {
        if (!nuage__tenants_store(q, r)) return true;
        if (post) nuage__keys_create(q, r);
        else nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Method %s is not allowed on /admin/keys (use POST; GET /admin/tenants lists keys).",
                               q->method);
        return true;
    }
    if (!strncmp(sub, "/keys/", 6) && sub[6] && !strchr(sub + 6, '/')) {
        if (!nuage__tenants_store(q, r)) return true;
        if (del) nuage__keys_revoke(q, r, sub + 6);
        else nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Method %s is not allowed on a key (use DELETE to revoke it).", q->method);
        return true;
    }
    return false;
}
