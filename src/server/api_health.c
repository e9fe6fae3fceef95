/*
 * api_health.c - GET /health and GET /metrics.
 *
 * /health is what load balancers and `nuage serve` scripts poll: 503
 * {"status": "loading"} until the model is loaded and the scheduler runs,
 * then 200 {"status": "ok"}, and 503 {"status": "stopping"} once shutdown
 * began (so a balancer stops sending work while streams finish). With a
 * store it carries "metering" and is 503 {"status": "metering_unavailable"}
 * while usage records cannot be written (server/metering.h).
 *
 * /metrics renders metrics.c's counters and the scheduler's gauges in the
 * Prometheus text format (version 0.0.4).
 */
#include <stdlib.h>
#include <string.h>

#include "platform/router.h"
#include "server/http.h"
#include "server/metering.h"

void nuage__api_health(nuage__hreq *q, nuage__hresp *r) {
    int st = atomic_load(&q->srv->state);
    if (st == NUAGE__STATE_READY) {
        json_t *o = json_pack("{s:s, s:s}", "status", "ok", "version", NUAGE_VERSION);
        if (!nuage__metering_health(q->srv, o)) {
            /* Billing fails closed: metered requests are refused here. */
            json_object_set_new(o, "status", json_string("metering_unavailable"));
            r->retry_after = 1;
            nuage__resp_json(r, 503, o);
            return;
        }
        nuage__resp_json(r, 200, o);
        return;
    }
    r->retry_after = st == NUAGE__STATE_LOADING ? 5 : 10;
    nuage__resp_json(r, 503, json_pack("{s:s, s:s}", "status", st == NUAGE__STATE_LOADING ? "loading" : "stopping",
                                       "version", NUAGE_VERSION));
}

void nuage__api_metrics(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    int st = atomic_load(&s->state);
    nuage_sched_stats total;
    memset(&total, 0, sizeof total);
    nuage_deployment **ds = NULL;
    int n = 0, draining = 0;
    bool have = st != NUAGE__STATE_LOADING && !nuage_registry_list(s->reg, &ds, &n);
    nuage_sched_stats *per = have && n ? calloc((size_t)n, sizeof *per) : NULL;
    const char **names = have && n ? calloc((size_t)n, sizeof *names) : NULL;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!ds[i]->sched || !per || !names) continue;
        nuage_sched_get_stats(ds[i]->sched, &per[k]);
        names[k] = ds[i]->name;
        const nuage_sched_stats *x = &per[k++];
        /* The unlabelled gauges are sums over deployments (the context
         * size: the largest). */
        total.queued += x->queued;
        total.running += x->running;
        total.kv_blocks_total += x->kv_blocks_total;
        total.kv_blocks_free += x->kv_blocks_free;
        total.kv_blocks_cached += x->kv_blocks_cached;
        total.prompt_tokens += x->prompt_tokens;
        total.cached_tokens += x->cached_tokens;
        total.generated_tokens += x->generated_tokens;
        total.steps += x->steps;
        total.preemptions += x->preemptions;
        if (x->n_ctx > total.n_ctx) total.n_ctx = x->n_ctx;
    }
    if (have) draining = nuage_registry_n_draining(s->reg);
    nuage__sb out = {0};
    nuage__metrics_render(&s->metrics, have ? &total : NULL, st == NUAGE__STATE_LOADING, &out);
    if (have) nuage__metrics_render_deployments(names, per, k, draining, &out);
    nuage__metering_metrics(s, &out);
    /* Router decisions (platform/router.c). */
    char small[1];
    size_t need = nuage_router_metrics_text(small, 0);
    if (need > 0) {
        char *buf = malloc(need + 1);
        if (buf) {
            nuage_router_metrics_text(buf, need + 1);
            nuage__sb_puts(&out, buf);
            free(buf);
        }
    }
    for (int i = 0; i < n; i++) nuage_deployment_release(ds[i]);
    free(ds);
    free(per);
    free(names);
    if (out.oom) {
        nuage__sb_free(&out);
        nuage__resp_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    r->status = 200;
    r->body = out.p ? out.p : strdup("");
    r->len = out.n;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
