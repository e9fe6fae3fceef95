/*
 * metering.c - refuse metered requests while usage records cannot be
 * written (see metering.h).
 *
 * The decision is the store's (nuage_store_metering_check: nothing
 * pending, or a flush that just succeeded); this file only maps it to
 * HTTP. Every refused request and every /health poll may trigger the
 * store's retry, which the store throttles to one attempt per
 * NUAGE_STORE_RETRY_MS, so a refused flood costs no disk traffic and an
 * idle server still notices when the disk has room again (at the next
 * request or health check).
 */
#include "server/metering.h"
#include "platform/quota.h"

#include <string.h>

#include "platform/store.h"

static const char *const nuage__metered[] = {"/v1/chat/completions", "/chat/completions", "/v1/completions",
                                             "/completions", "/v1/embeddings", "/embeddings",
                                             "/v1/responses"};

bool nuage__metered_route(const char *method, const char *url) {
    if (!method || !url || strcmp(method, "POST")) return false;
    for (size_t i = 0; i < sizeof nuage__metered / sizeof *nuage__metered; i++)
        if (!strcmp(url, nuage__metered[i])) return true;
    return false;
}

bool nuage__metering_ok(nuage_server *s) {
    return !s || !s->store || nuage_store_metering_check(s->store, NULL) == 0;
}

bool nuage__metering_admit(nuage_server *s, nuage__hresp *r) {
    int64_t wait_ms = 0;
    if (!s || !s->store || nuage_store_metering_check(s->store, &wait_ms) == 0) return true;
    atomic_fetch_add(&s->metrics.metering_refused, 1);
    if (wait_ms < 1) wait_ms = 1;
    r->retry_after = (int)((wait_ms + 999) / 1000);
    r->retry_after_ms = wait_ms;
    nuage__resp_error(r, 503, "server_error", "metering_unavailable", NULL,
                      "Usage cannot be recorded right now (the server's store does not accept writes), so no "
                      "metered request is started. Retry later.");
    return false;
}

bool nuage__metering_health(nuage_server *s, json_t *obj) {
    if (!s || !s->store || !obj) return true;
    bool ok = nuage_store_metering_check(s->store, NULL) == 0;
    nuage_metering_status ms;
    nuage_store_metering_status(s->store, &ms);
    json_t *m = json_pack("{s:s,s:i,s:I}", "status", ok ? "ok" : "unavailable", "pending_records", ms.pending,
                          "lost_records", (json_int_t)ms.lost);
    if (m && !ok && ms.last_error[0]) json_object_set_new(m, "error", json_string(ms.last_error));
    if (m && ms.pending_since_ms) json_object_set_new(m, "since_ms", json_integer(ms.pending_since_ms));
    if (m && ms.journal) {
        json_t *jo = json_pack("{s:s,s:I,s:I}", "status", ms.journal_failing_since_ms ? "retrying" : "shipping",
                               "queued_records", (json_int_t)ms.journal_queued, "shipped_records",
                               (json_int_t)ms.journal_shipped);
        if (jo && ms.journal_error[0]) json_object_set_new(jo, "error", json_string(ms.journal_error));
        if (jo) json_object_set_new(m, "journal", jo);
    }
    if (m) json_object_set_new(obj, "metering", m);
    return ok;
}

void nuage__metering_metrics(nuage_server *s, nuage__sb *out) {
    nuage_metering_status ms;
    memset(&ms, 0, sizeof ms);
    if (s && s->store) nuage_store_metering_status(s->store, &ms);
    nuage__sb_printf(out,
                     "# HELP nuage_metering_available 1 while usage records are written; 0 while metered requests are refused.\n"
                     "# TYPE nuage_metering_available gauge\nnuage_metering_available %d\n"
                     "# HELP nuage_metering_pending_records Usage records waiting in memory for the store.\n"
                     "# TYPE nuage_metering_pending_records gauge\nnuage_metering_pending_records %d\n"
                     "# HELP nuage_metering_lost_records_total Usage records dropped beyond the in-memory cap.\n"
                     "# TYPE nuage_metering_lost_records_total counter\nnuage_metering_lost_records_total %lld\n"
                     "# HELP nuage_metering_refused_total Metered requests refused (503 metering_unavailable).\n"
                     "# TYPE nuage_metering_refused_total counter\nnuage_metering_refused_total %llu\n",
                     ms.pending == 0, ms.pending, (long long)ms.lost,
                     s ? (unsigned long long)atomic_load(&s->metrics.metering_refused) : 0ULL);
    /* The quota check's time (platform/quota.c), for the cluster's 2-ms goal. */
    if (s && s->quota) {
        nuage_quota_check_timing qs;
        nuage_quota_check_stats(s->quota, &qs);
        nuage__sb_printf(out,
                         "# HELP nuage_quota_check_seconds Time of the rate-limit check (admission) per request.\n"
                         "# TYPE nuage_quota_check_seconds histogram\n");
        uint64_t c = 0;
        for (int i = 0; i < NUAGE_QUOTA_HIST; i++) {
            c += qs.hist[i];
            /* a few bounds only: 0.1, 0.25, 0.5, 1, 2, 5, 10 ms */
            int us = (i + 1) * NUAGE_QUOTA_HIST_US;
            if (us == 100 || us == 250 || us == 500 || us == 1000 || us == 2000 || us == 5000 || us == 10000)
                nuage__sb_printf(out, "nuage_quota_check_seconds_bucket{le=\"%g\"} %llu\n", us / 1e6,
                                 (unsigned long long)c);
        }
        nuage__sb_printf(out,
                         "nuage_quota_check_seconds_bucket{le=\"+Inf\"} %llu\nnuage_quota_check_seconds_count %llu\n"
                         "# HELP nuage_quota_check_p50_seconds Median of nuage_quota_check_seconds (50-us buckets).\n"
                         "# TYPE nuage_quota_check_p50_seconds gauge\nnuage_quota_check_p50_seconds %g\n"
                         "# HELP nuage_quota_check_p99_seconds 99th percentile of nuage_quota_check_seconds.\n"
                         "# TYPE nuage_quota_check_p99_seconds gauge\nnuage_quota_check_p99_seconds %g\n"
                         "# HELP nuage_quota_check_max_seconds Longest rate-limit check.\n"
                         "# TYPE nuage_quota_check_max_seconds gauge\nnuage_quota_check_max_seconds %g\n",
                         (unsigned long long)c, (unsigned long long)qs.checks, qs.p50_us / 1e6, qs.p99_us / 1e6,
                         qs.max_us / 1e6);
    }
    if (ms.journal)
        nuage__sb_printf(out,
                         "# HELP nuage_usage_journal_records Usage records in the local journal, not yet in PostgreSQL.\n"
                         "# TYPE nuage_usage_journal_records gauge\nnuage_usage_journal_records %lld\n"
                         "# HELP nuage_usage_journal_shipped_total Usage records shipped from the journal to PostgreSQL.\n"
                         "# TYPE nuage_usage_journal_shipped_total counter\nnuage_usage_journal_shipped_total %lld\n"
                         "# HELP nuage_usage_journal_ship_failures_total Failed shipments (retried).\n"
                         "# TYPE nuage_usage_journal_ship_failures_total counter\nnuage_usage_journal_ship_failures_total %lld\n",
                         (long long)ms.journal_queued, (long long)ms.journal_shipped,
                         (long long)ms.journal_ship_failures);
}
