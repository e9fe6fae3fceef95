/*
 * api_admin.c - the admin API of `nuage serve` and the tenants' own usage.
 *
 *   GET    /admin/deployments          every deployment, with configuration,
 *                                      memory charged and scheduler state
 *   GET    /admin/deployments/{name}   one of them
 *   POST   /admin/deployments          body: one deployment object (the
 *                                      configuration file's schema) -> load it,
 *                                      or replace the deployment of that name
 *   DELETE /admin/deployments/{name}   unload it (requests in flight finish)
 *   POST   /admin/reload               re-read the configuration file (as SIGHUP)
 *   GET    /admin/usage?tenant=&since=&until=&by=   usage totals (any tenant)
 *   GET    /v1/usage?since=&until=&by= the caller's own totals (nuage extension)
 *   /admin/tenants, /admin/keys, /admin/stats: api_admin_tenants.c
 *
 * The admin routes are reached only with an admin key or, when auth is off,
 * on a loopback address (checked in http.c before dispatching here). A
 * model path in POST /admin/deployments must resolve inside --models-dir
 * and never to the store's files (platform/model_path.h).
 *
 * Loading runs on the connection's thread and answers when the new
 * instance serves (201 created, 200 replaced); the memory check's refusal
 * is a 507 naming the bytes needed and available. Nothing else is touched
 * by a failed load.
 *
 * Usage: `since` is milliseconds since the epoch (a number below 10^11 is
 * taken as seconds) or a UTC date YYYY-MM-DD; `until` (optional) the same,
 * exclusive, a date meaning the end of that day; `by` is "day" or "deployment"
 * (and, for the admin, "tenant"; absent: one "total" row). A tenant sees only its own usage: asking for
 * another tenant's (?tenant=other) answers 404 like an unknown tenant.
 */
#define _GNU_SOURCE /* timegm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "platform/model_path.h"
#include "server/http.h"

/* ---- deployments -------------------------------------------------------------- */

static void nuage__admin_list(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    nuage_deployment **ds = NULL;
    int n = 0;
    if (nuage_registry_list(s->reg, &ds, &n)) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    json_t *data = json_array();
    for (int i = 0; i < n; i++) {
        if (data) json_array_append_new(data, nuage__deployment_object(ds[i], true));
        nuage_deployment_release(ds[i]);
    }
    free(ds);
    char how[200];
    uint64_t avail = nuage_registry_mem_available(s->reg, how, sizeof how);
    json_t *mem = json_pack("{s:s}", "rule", how);
    if (mem && avail != UINT64_MAX) json_object_set_new(mem, "available_bytes", json_integer((json_int_t)avail));
    nuage__resp_json(r, 200, json_pack("{s:s,s:o,s:i,s:o}", "object", "list", "data", data ? data : json_array(),
                                       "draining", nuage_registry_n_draining(s->reg), "memory",
                                       mem ? mem : json_object()));
}

static void nuage__admin_get(nuage__hreq *q, nuage__hresp *r, const char *name) {
    nuage_deployment *d = nuage_registry_acquire(q->srv->reg, name);
    if (!d || strcmp(d->name, name)) {
        nuage_deployment_release(d);
        nuage__resp_error(r, 404, "invalid_request_error", "deployment_not_found", NULL,
                          "No deployment named '%.200s'.", name);
        return;
    }
    nuage__resp_json(r, 200, nuage__deployment_object(d, true));
    nuage_deployment_release(d);
}

static void nuage__admin_load(nuage__hreq *q, nuage__hresp *r) {
    json_t *body = nuage__hreq_json(q, r);
    if (!body) return;
    /* {"deployment": {...}} is accepted as well as the bare object. */
    json_t *obj = json_object_get(body, "deployment");
    if (!json_is_object(obj)) obj = body;
    nuage_deploy_config c;
    char err[600];
    /* The path as the client gave it: resolved against --models-dir and
     * confined to it below (model_path.h). */
    json_t *mj = json_object_get(obj, "model");
    char given[1024];
    snprintf(given, sizeof given, "%s", json_is_string(mj) ? json_string_value(mj) : "");
    int rc = nuage_deploy_config_parse(obj, NULL, &c, err, sizeof err);
    json_decref(body);
    if (rc) {
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_deployment", NULL, "%s", err);
        return;
    }
    if (c.kind == NUAGE_DEPLOY_MODEL &&
        nuage_model_path_confine(q->srv->pf.models_dir, q->srv->pf.store_path, given, c.model, sizeof c.model,
                                 err, sizeof err)) {
        nuage_deploy_config_free(&c);
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_deployment", "model", "%s", err);
        return;
    }
    bool replaced = false;
    rc = nuage_registry_load(q->srv->reg, &c, NUAGE_DEPLOY_ORIGIN_API, &replaced, err, sizeof err);
    char name[64];
    snprintf(name, sizeof name, "%s", c.name);
    nuage_deploy_config_free(&c);
    switch (rc) {
    case 0: break;
    case NUAGE_E_NOMEM:
        nuage__resp_error(r, 507, "server_error", "insufficient_memory", NULL, "%s", err);
        return;
    case NUAGE_E_STATE:
        nuage__resp_error(r, 409, "invalid_request_error", "name_conflict", NULL, "%s", err);
        return;
    case NUAGE_E_INVAL:
        nuage__resp_error(r, 400, "invalid_request_error", "invalid_deployment", NULL, "%s", err);
        return;
    default:
        nuage__resp_error(r, 400, "invalid_request_error", "model_load_failed", NULL, "%s", err);
        return;
    }
    nuage_deployment *d = nuage_registry_acquire(q->srv->reg, name);
    if (!d) { /* removed again in between */
        nuage__resp_json(r, replaced ? 200 : 201, json_pack("{s:s}", "id", name));
        return;
    }
    json_t *o = nuage__deployment_object(d, true);
    if (o) json_object_set_new(o, "replaced", json_boolean(replaced));
    nuage__resp_json(r, replaced ? 200 : 201, o);
    nuage_deployment_release(d);
}

static void nuage__admin_delete(nuage__hreq *q, nuage__hresp *r, const char *name) {
    if (nuage_registry_unload(q->srv->reg, name)) {
        nuage__resp_error(r, 404, "invalid_request_error", "deployment_not_found", NULL,
                          "No deployment named '%.200s'.", name);
        return;
    }
    nuage__resp_json(r, 200, json_pack("{s:s,s:s,s:b}", "id", name, "object", "deployment", "deleted", 1));
}

static void nuage__admin_reload(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    if (!s->pf.reload) {
        nuage__resp_error(r, 404, "invalid_request_error", "not_found", NULL,
                          "This server was not started with --config: there is nothing to reload.");
        return;
    }
    char summary[1000] = "", err[600] = "";
    int rc = s->pf.reload(s->pf.reload_ud, summary, sizeof summary, err, sizeof err);
    if (rc) {
        nuage__resp_error(r, rc == NUAGE_E_NOMEM ? 507 : 400, "invalid_request_error", "reload_failed", NULL,
                          "%s%s%s%s", err, summary[0] ? " (applied: " : "", summary[0] ? summary : "",
                          summary[0] ? ")" : "");
        return;
    }
    nuage__resp_json(r, 200, json_pack("{s:s,s:s}", "object", "reload", "summary", summary));
}

/* ---- usage ------------------------------------------------------------------------ */

/* since: ms since the epoch, seconds (< 1e11), or YYYY-MM-DD (UTC). */
static bool nuage__parse_since(const char *v, int64_t *out) {
    if (!v || !*v) {
        *out = 0;
        return true;
    }
    int y, mo, d;
    char tail;
    if (sscanf(v, "%4d-%2d-%2d%c", &y, &mo, &d, &tail) == 3) {
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || y < 1970) return false;
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        *out = (int64_t)timegm(&tm) * 1000;
        return true;
    }
    char *end;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || x < 0) return false;
    *out = x < 100000000000LL ? x * 1000 : x;
    return true;
}

static void nuage__usage_answer(nuage__hreq *q, nuage__hresp *r, int64_t tenant_id, const char *tenant,
                                bool admin) {
    nuage_server *s = q->srv;
    const char *since_s = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "since");
    const char *by = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "by");
    const char *until_s = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "until");
    int64_t since = 0, until = 0;
    if (!nuage__parse_since(since_s, &since)) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, "since",
                          "Invalid 'since': expected milliseconds since the epoch or a date YYYY-MM-DD.");
        return;
    }
    if (!nuage__parse_since(until_s, &until)) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, "until",
                          "Invalid 'until': expected milliseconds since the epoch or a date YYYY-MM-DD.");
        return;
    }
    /* A date is inclusive: up to the end of that day. */
    if (until_s && strchr(until_s, '-')) until += 86400000;
    if (by && !*by) by = NULL;
    if (by && strcmp(by, "day") && strcmp(by, "deployment") && (!admin || strcmp(by, "tenant"))) {
        nuage__resp_error(r, 400, "invalid_request_error", NULL, "by",
                          admin ? "Invalid 'by': expected 'day', 'deployment' or 'tenant'."
                                : "Invalid 'by': expected 'day' or 'deployment'.");
        return;
    }
    nuage_usage_total *t = NULL;
    int n = 0;
    if (nuage_store_usage_totals_range(s->store, tenant_id, since, until, by, &t, &n)) {
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "usage query failed: %s", nuage_store_errmsg(s->store));
        return;
    }
    json_t *data = json_array();
    for (int i = 0; data && i < n; i++)
        json_array_append_new(data, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "group", t[i].group, "requests",
                                              (json_int_t)t[i].requests, "prompt_tokens", (json_int_t)t[i].prompt_tokens,
                                              "cached_tokens", (json_int_t)t[i].cached_tokens, "completion_tokens",
                                              (json_int_t)t[i].completion_tokens, "reasoning_tokens",
                                              (json_int_t)t[i].reasoning_tokens, "total_tokens",
                                              (json_int_t)(t[i].prompt_tokens + t[i].completion_tokens)));
    free(t);
    json_t *o = json_pack("{s:s,s:o,s:I,s:o}", "object", "usage", "tenant", tenant ? json_string(tenant) : json_null(),
                          "since", (json_int_t)since, "data", data ? data : json_array());
    if (o) json_object_set_new(o, "by", by ? json_string(by) : json_null());
    if (o) json_object_set_new(o, "until", until ? json_integer((json_int_t)until) : json_null());
    nuage__resp_json(r, 200, o);
}

static bool nuage__need_store(nuage_server *s, nuage__hresp *r) {
    if (s->store) return true;
    nuage__resp_error(r, 404, "invalid_request_error", "metering_off", NULL,
                      "Usage is not recorded: this server runs without a store (start it with --db).");
    return false;
}

static void nuage__admin_usage(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    if (!nuage__need_store(s, r)) return;
    const char *tn = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "tenant");
    int64_t id = 0;
    if (tn && *tn) {
        nuage_tenant t;
        int rc = nuage_store_tenant_get(s->store, tn, &t);
        if (rc == NUAGE_E_RANGE) {
            nuage__resp_error(r, 404, "invalid_request_error", "tenant_not_found", "tenant",
                              "No tenant named '%.64s'.", tn);
            return;
        }
        if (rc) {
            nuage__resp_error(r, 500, "server_error", NULL, NULL, "%s", nuage_store_errmsg(s->store));
            return;
        }
        id = t.id;
    }
    nuage__usage_answer(q, r, id, tn && *tn ? tn : NULL, true);
}

void nuage__api_usage(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    if (!nuage__require_ready(s, r)) return;
    if (!nuage__need_store(s, r)) return;
    const char *tn = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "tenant");
    /* Only one's own usage: any other tenant is "not found". */
    if (tn && *tn && strcmp(tn, q->auth.tenant)) {
        nuage__resp_error(r, 404, "invalid_request_error", "tenant_not_found", "tenant",
                          "No tenant named '%.64s'.", tn);
        return;
    }
    if (q->auth.auth_on && !q->auth.tenant_id) {
        /* An admin key without a tenant has no usage of its own. */
        nuage__resp_error(r, 404, "invalid_request_error", "tenant_not_found", NULL,
                          "This key belongs to no tenant; use GET /admin/usage.");
        return;
    }
    nuage__usage_answer(q, r, q->auth.tenant_id, q->auth.tenant[0] ? q->auth.tenant : NULL, false);
}

/* ---- dispatch ------------------------------------------------------------------------ */

void nuage__api_admin(nuage__hreq *q, nuage__hresp *r, const char *sub) {
    nuage_server *s = q->srv;
    if (!nuage__require_ready(s, r)) return;
    bool get = !strcmp(q->method, "GET") || !strcmp(q->method, "HEAD");
    bool post = !strcmp(q->method, "POST");
    bool del = !strcmp(q->method, "DELETE");
    if (!strcmp(sub, "/deployments")) {
        if (get) nuage__admin_list(q, r);
        else if (post) nuage__admin_load(q, r);
        else nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Method %s is not allowed on /admin/deployments (use GET or POST).", q->method);
        return;
    }
    if (!strncmp(sub, "/deployments/", 13) && sub[13]) {
        const char *name = sub + 13;
        if (get) nuage__admin_get(q, r, name);
        else if (del) nuage__admin_delete(q, r, name);
        else nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Method %s is not allowed on a deployment (use GET or DELETE).", q->method);
        return;
    }
    if (!strcmp(sub, "/reload")) {
        if (post) nuage__admin_reload(q, r);
        else nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL,
                               "Use POST /admin/reload.");
        return;
    }
    if (!strcmp(sub, "/usage")) {
        if (get) nuage__admin_usage(q, r);
        else nuage__resp_error(r, 405, "invalid_request_error", "method_not_allowed", NULL, "Use GET /admin/usage.");
        return;
    }
    if (nuage__api_admin_tenants(q, r, sub)) return; /* tenants, keys, stats */
    nuage__resp_error(r, 404, "invalid_request_error", "not_found", NULL, "Invalid URL (%s /admin%.200s)",
                      q->method, sub);
}
