/*
 * api_health.c - GET /health and GET /metrics.
 *
 * /health is what load balancers and `nuage serve` scripts poll: 503
 * {"status": "loading"} until the model is loaded and the scheduler runs,
 * then 200 {"status": "ok"}, and 503 {"status": "stopping"} once shutdown
 * began (so a balancer stops sending work while streams finish).
 *
 * /metrics renders metrics.c's counters and the scheduler's gauges in the
 * Prometheus text format (version 0.0.4).
 */
#include <string.h>

#include "server/http.h"

void nuage__api_health(nuage__hreq *q, nuage__hresp *r) {
    int st = atomic_load(&q->srv->state);
    if (st == NUAGE__STATE_READY) {
        nuage__resp_json(r, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    r->retry_after = st == NUAGE__STATE_LOADING ? 5 : 10;
    nuage__resp_json(r, 503, json_pack("{s:s}", "status", st == NUAGE__STATE_LOADING ? "loading" : "stopping"));
}

void nuage__api_metrics(nuage__hreq *q, nuage__hresp *r) {
    nuage_server *s = q->srv;
    int st = atomic_load(&s->state);
    nuage_sched_stats stats;
    bool have = st != NUAGE__STATE_LOADING && s->sched;
    if (have) nuage_sched_get_stats(s->sched, &stats);
    nuage__sb out = {0};
    nuage__metrics_render(&s->metrics, have ? &stats : NULL, st == NUAGE__STATE_LOADING, &out);
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
