/*
 * metrics.h - the server's counters and histograms, rendered in the
 * Prometheus text exposition format for GET /metrics.
 *
 * Writers are the HTTP threads (request counts by status) and the
 * scheduler thread (latency observations from token callbacks); they use
 * relaxed atomic increments only, so recording never blocks and never
 * takes a lock. Gauges that the scheduler already tracks (queue length,
 * running sequences, KV blocks, token totals) are read from
 * nuage_sched_get_stats when the page is rendered.
 */
#ifndef NUAGE_SERVER_METRICS_H
#define NUAGE_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "runtime/sched.h"
#include "runtime/validate.h"

#define NUAGE_METRICS_BUCKETS 14

typedef struct {
    const double *bounds;                        /* (n) upper bounds in seconds */
    int n;
    _Atomic uint64_t counts[NUAGE_METRICS_BUCKETS + 1]; /* per bucket (non-cumulative); last: +Inf */
    _Atomic uint64_t sum_us;                     /* sum of observations, microseconds */
} nuage__histogram;

typedef struct {
    _Atomic uint64_t by_status[600];   /* requests answered, by HTTP status */
    _Atomic uint64_t requests_started; /* generation requests accepted by the scheduler */
    _Atomic uint64_t cancelled;        /* generation requests ended by a gone client */
    _Atomic uint64_t rate_limited;     /* requests refused by the rate limiter (429) */
    _Atomic uint64_t auth_failures;    /* requests refused for a missing or bad key (401) */
    _Atomic uint64_t usage_failures;   /* usage records that could not be written */
    _Atomic uint64_t metering_refused; /* metered requests refused while records wait (503) */
    nuage__histogram ttft;             /* time to first token */
    nuage__histogram itl;              /* time between two tokens of a choice */
    nuage__histogram e2e;              /* request duration (generation endpoints) */
} nuage__metrics;

void nuage__metrics_init(nuage__metrics *m);
/* Record one answered request (status outside 100..599 is ignored). */
void nuage__metrics_request(nuage__metrics *m, int status);
void nuage__hist_observe(nuage__histogram *h, double seconds);
/* Append the whole page to out; st (the sum over deployments) may be NULL
 * while the model loads. */
void nuage__metrics_render(const nuage__metrics *m, const nuage_sched_stats *st, int loading,
                           nuage__sb *out);
/* Append per-deployment gauges: names[i] with stats st[i] (n of them), and
 * the number of retired instances still draining. */
void nuage__metrics_render_deployments(const char *const *names, const nuage_sched_stats *st, int n,
                                       int draining, nuage__sb *out);

#endif
