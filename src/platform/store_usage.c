/*
 * store_usage.c - usage records (store.h): one row per completed request
 * (counts only, never text), and totals for billing and the admin CLI.
 *
 * A record is one INSERT in autocommit mode: with WAL + synchronous=FULL
 * the commit fsyncs the log before sqlite3_step returns, so a record whose
 * call returned 0 survives SIGKILL. Totals are plain GROUP BY queries over
 * the (tenant_id, time_ms) index; days are UTC calendar days.
 */
#include "platform/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nuage_store_usage_add(nuage_store *s, const nuage_usage_record *r) {
    if (!s || !r) return NUAGE_E_INVAL;
    if (r->prompt_tokens < 0 || r->cached_tokens < 0 || r->completion_tokens < 0 ||
        r->reasoning_tokens < 0)
        return nuage__store_fail(NUAGE_E_INVAL, "negative token count");
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "INSERT INTO usage(time_ms, tenant_id, key_id, request_id,"
                                  " deployment, model_version, prompt_tokens, cached_tokens,"
                                  " completion_tokens, reasoning_tokens, status, latency_ms)"
                                  " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st);
    if (rc) goto out;
    sqlite3_bind_int64(st, 1, r->time_ms ? r->time_ms : nuage__store_now_ms());
    sqlite3_bind_int64(st, 2, r->tenant_id);
    sqlite3_bind_int64(st, 3, r->key_id);
    nuage__store_bind_field(st, 4, r->request_id, sizeof r->request_id);
    nuage__store_bind_field(st, 5, r->deployment, sizeof r->deployment);
    nuage__store_bind_field(st, 6, r->model_version, sizeof r->model_version);
    sqlite3_bind_int64(st, 7, r->prompt_tokens);
    sqlite3_bind_int64(st, 8, r->cached_tokens);
    sqlite3_bind_int64(st, 9, r->completion_tokens);
    sqlite3_bind_int64(st, 10, r->reasoning_tokens);
    sqlite3_bind_int(st, 11, r->status);
    sqlite3_bind_double(st, 12, r->latency_ms);
    rc = nuage__store_run(s, st, "add usage");
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* One row of the totals query: group, count and the four sums. */
static void total_row(sqlite3_stmt *st, void *elem) {
    nuage_usage_total *t = elem;
    nuage__store_col_text(st, 0, t->group, sizeof t->group);
    t->requests = sqlite3_column_int64(st, 1);
    t->prompt_tokens = sqlite3_column_int64(st, 2);
    t->cached_tokens = sqlite3_column_int64(st, 3);
    t->completion_tokens = sqlite3_column_int64(st, 4);
    t->reasoning_tokens = sqlite3_column_int64(st, 5);
}

int nuage_store_usage_totals(nuage_store *s, int64_t tenant_id, int64_t since_ms, const char *by,
                             nuage_usage_total **out, int *n) {
    if (!s || !out || !n) return NUAGE_E_INVAL;
    *out = NULL;
    *n = 0;
    const char *group, *tail;
    if (!by) {
        group = "'total'";
        tail = "";
    } else if (!strcmp(by, "day")) {
        group = "strftime('%Y-%m-%d', u.time_ms / 1000, 'unixepoch')";
        tail = " GROUP BY 1 ORDER BY 1";
    } else if (!strcmp(by, "deployment")) {
        group = "u.deployment";
        tail = " GROUP BY 1 ORDER BY 1";
    } else if (!strcmp(by, "tenant")) {
        /* A deleted tenant's records stay, shown as "#<id>". */
        group = "COALESCE(t.name, '#' || u.tenant_id)";
        tail = " GROUP BY u.tenant_id ORDER BY 1";
    } else {
        return nuage__store_fail(NUAGE_E_INVAL, "usage totals by '%.32s': expected day, "
                                 "deployment or tenant", by);
    }
    char sql[768];
    snprintf(sql, sizeof sql,
             "SELECT %s, COUNT(*), COALESCE(SUM(u.prompt_tokens), 0),"
             " COALESCE(SUM(u.cached_tokens), 0), COALESCE(SUM(u.completion_tokens), 0),"
             " COALESCE(SUM(u.reasoning_tokens), 0)"
             " FROM usage u LEFT JOIN tenants t ON t.id = u.tenant_id"
             " WHERE (?1 = 0 OR u.tenant_id = ?1) AND u.time_ms >= ?2%s", group, tail);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, sql, &st);
    if (rc) goto out;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, since_ms);
    rc = nuage__store_collect(s, st, sizeof **out, total_row, "usage totals", (void **)out, n);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}
