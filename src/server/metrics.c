/*
 * metrics.c - Prometheus text format for the server's metrics (see
 * metrics.h).
 *
 * Histograms keep one counter per bucket and turn them into Prometheus'
 * cumulative `le` series when rendered; an observation is one atomic add
 * on its bucket plus one on the sum, cheap enough to run on the scheduler
 * thread for every generated token. Buckets are fixed: time to first
 * token from 5 ms to 30 s, inter-token latency from 0.25 ms to 2 s (a
 * small model decodes a token in well under a millisecond).
 *
 * Names follow Prometheus conventions: `_total` for counters, base units
 * (seconds), one HELP and TYPE line per family.
 */
#include "server/metrics.h"

#include <stddef.h>
#include <string.h>

static const double nuage__ttft_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5,
                                            1, 2, 5, 10, 30};
static const double nuage__itl_bounds[] = {0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01,
                                           0.02, 0.05, 0.1, 0.2, 0.5, 1, 2};
static const double nuage__e2e_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                           5, 10, 30, 60, 120, 300};

static void nuage__hist_init(nuage__histogram *h, const double *b, int n) {
    h->bounds = b;
    h->n = n;
    for (int i = 0; i <= NUAGE_METRICS_BUCKETS; i++) atomic_init(&h->counts[i], 0);
    atomic_init(&h->sum_us, 0);
}

void nuage__metrics_init(nuage__metrics *m) {
    for (int i = 0; i < 600; i++) atomic_init(&m->by_status[i], 0);
    atomic_init(&m->requests_started, 0);
    atomic_init(&m->cancelled, 0);
    atomic_init(&m->rate_limited, 0);
    atomic_init(&m->auth_failures, 0);
    atomic_init(&m->usage_failures, 0);
    nuage__hist_init(&m->ttft, nuage__ttft_bounds, (int)(sizeof nuage__ttft_bounds / sizeof(double)));
    nuage__hist_init(&m->itl, nuage__itl_bounds, (int)(sizeof nuage__itl_bounds / sizeof(double)));
    nuage__hist_init(&m->e2e, nuage__e2e_bounds, (int)(sizeof nuage__e2e_bounds / sizeof(double)));
}

void nuage__metrics_request(nuage__metrics *m, int status) {
    if (status >= 100 && status < 600)
        atomic_fetch_add_explicit(&m->by_status[status], 1, memory_order_relaxed);
}

void nuage__hist_observe(nuage__histogram *h, double seconds) {
    if (!(seconds >= 0)) seconds = 0;
    int i = 0;
    while (i < h->n && seconds > h->bounds[i]) i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)(seconds * 1e6 + 0.5), memory_order_relaxed);
}

static void nuage__hist_render(const nuage__histogram *h, const char *name, const char *help,
                               nuage__sb *out) {
    nuage__sb_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i <= h->n; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->n) nuage__sb_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
        else nuage__sb_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    nuage__sb_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
                     (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6, name,
                     (unsigned long long)cum);
}

static void nuage__gauge(nuage__sb *out, const char *name, const char *type, const char *help,
                         unsigned long long v) {
    nuage__sb_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

void nuage__metrics_render(const nuage__metrics *m, const nuage_sched_stats *st, int loading,
                           nuage__sb *out) {
    nuage__sb_puts(out, "# HELP nuage_http_requests_total HTTP requests answered, by status code.\n"
                        "# TYPE nuage_http_requests_total counter\n");
    for (int c = 100; c < 600; c++) {
        uint64_t v = atomic_load_explicit(&m->by_status[c], memory_order_relaxed);
        if (v) nuage__sb_printf(out, "nuage_http_requests_total{code=\"%d\"} %llu\n", c, (unsigned long long)v);
    }
    nuage__gauge(out, "nuage_model_loading", "gauge", "1 while the model is loading.", (unsigned long long)(loading != 0));
    nuage__gauge(out, "nuage_generation_requests_total", "counter",
                 "Generation and embedding requests accepted by the scheduler.",
                 (unsigned long long)atomic_load(&m->requests_started));
    nuage__gauge(out, "nuage_requests_cancelled_total", "counter",
                 "Requests cancelled because the client went away.",
                 (unsigned long long)atomic_load(&m->cancelled));
    nuage__gauge(out, "nuage_rate_limited_total", "counter", "Requests refused by a tenant's rate limit (429).",
                 (unsigned long long)atomic_load(&m->rate_limited));
    nuage__gauge(out, "nuage_auth_failures_total", "counter", "Requests refused for a missing or invalid API key (401).",
                 (unsigned long long)atomic_load(&m->auth_failures));
    nuage__gauge(out, "nuage_usage_write_failures_total", "counter", "Usage records that could not be written to the store.",
                 (unsigned long long)atomic_load(&m->usage_failures));
    if (st) {
        nuage__gauge(out, "nuage_prompt_tokens_total", "counter", "Prompt tokens processed (cached ones included).", st->prompt_tokens);
        nuage__gauge(out, "nuage_cached_tokens_total", "counter", "Prompt tokens served from the prefix cache.", st->cached_tokens);
        nuage__gauge(out, "nuage_generated_tokens_total", "counter", "Tokens generated.", st->generated_tokens);
        nuage__gauge(out, "nuage_scheduler_steps_total", "counter", "Batched decode steps.", st->steps);
        nuage__gauge(out, "nuage_preemptions_total", "counter", "Sequences preempted for lack of KV blocks.", st->preemptions);
        nuage__gauge(out, "nuage_queue_length", "gauge", "Requests waiting for a running slot.", (unsigned long long)(st->queued > 0 ? st->queued : 0));
        nuage__gauge(out, "nuage_running_sequences", "gauge", "Requests decoding.", (unsigned long long)(st->running > 0 ? st->running : 0));
        int used = st->kv_blocks_total - st->kv_blocks_free - st->kv_blocks_cached;
        nuage__gauge(out, "nuage_kv_blocks_total", "gauge", "KV-cache blocks in the pool.", (unsigned long long)st->kv_blocks_total);
        nuage__gauge(out, "nuage_kv_blocks_used", "gauge", "KV-cache blocks held by running sequences.", (unsigned long long)(used > 0 ? used : 0));
        nuage__gauge(out, "nuage_kv_blocks_free", "gauge", "KV-cache blocks free.", (unsigned long long)st->kv_blocks_free);
        nuage__gauge(out, "nuage_kv_blocks_cached", "gauge", "KV-cache blocks held only by the prefix cache (reclaimable).", (unsigned long long)st->kv_blocks_cached);
        nuage__gauge(out, "nuage_context_size", "gauge", "Tokens per sequence.", (unsigned long long)st->n_ctx);
    }
    nuage__hist_render(&m->ttft, "nuage_time_to_first_token_seconds", "Time from request to its first generated token.", out);
    nuage__hist_render(&m->itl, "nuage_inter_token_latency_seconds", "Time between two generated tokens of one choice.", out);
    nuage__hist_render(&m->e2e, "nuage_request_duration_seconds", "Duration of generation requests.", out);
}

/* One labelled family: name{deployment="..."} per deployment. */
static void nuage__family(nuage__sb *out, const char *name, const char *help, const char *const *names,
                          const nuage_sched_stats *st, int n, size_t off, bool is_int) {
    nuage__sb_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    for (int i = 0; i < n; i++) {
        const char *p = (const char *)&st[i] + off;
        unsigned long long v;
        if (is_int) {
            int x;
            memcpy(&x, p, sizeof x);
            v = x > 0 ? (unsigned long long)x : 0;
        } else {
            uint64_t x;
            memcpy(&x, p, sizeof x);
            v = x;
        }
        /* Deployment names are [A-Za-z0-9._:-]: nothing to escape. */
        nuage__sb_printf(out, "%s{deployment=\"%s\"} %llu\n", name, names[i], v);
    }
}

void nuage__metrics_render_deployments(const char *const *names, const nuage_sched_stats *st, int n,
                                       int draining, nuage__sb *out) {
    nuage__gauge(out, "nuage_deployments", "gauge", "Deployments served.", (unsigned long long)(n > 0 ? n : 0));
    nuage__gauge(out, "nuage_deployments_draining", "gauge",
                 "Replaced or removed deployment instances still finishing their requests.",
                 (unsigned long long)(draining > 0 ? draining : 0));
    if (n <= 0) return;
    nuage__family(out, "nuage_deployment_queue_length", "Requests waiting, per deployment.", names, st, n,
                  offsetof(nuage_sched_stats, queued), true);
    nuage__family(out, "nuage_deployment_running_sequences", "Requests decoding, per deployment.", names, st, n,
                  offsetof(nuage_sched_stats, running), true);
    nuage__family(out, "nuage_deployment_kv_blocks_total", "KV-cache blocks in the pool, per deployment.", names,
                  st, n, offsetof(nuage_sched_stats, kv_blocks_total), true);
    nuage__family(out, "nuage_deployment_kv_blocks_free", "KV-cache blocks free, per deployment.", names, st, n,
                  offsetof(nuage_sched_stats, kv_blocks_free), true);
    nuage__family(out, "nuage_deployment_generated_tokens", "Tokens generated, per deployment instance.", names,
                  st, n, offsetof(nuage_sched_stats, generated_tokens), false);
}
