/*
 * store_usage.c - usage records (store.h): one row per completed request
 * (counts only, never text), and totals for billing and the admin CLI.
 *
 * A record is one INSERT in autocommit mode: with WAL + synchronous=FULL
 * the commit fsyncs the log before sqlite3_step returns, so a record whose
 * call returned 0 survives SIGKILL. Totals are plain GROUP BY queries over
 * the (tenant_id, time_ms) index; days are UTC calendar days.
 *
 * Billing fails closed. A record whose INSERT fails (SQLITE_FULL on a full
 * disk, an I/O error) is not dropped: it waits in s->pending (memory,
 * capped) and every later write first tries to write the waiting ones in
 * one transaction, oldest first. nuage_store_metering_check tells the
 * server whether new metered requests may start (nothing waiting), and
 * retries at most once per NUAGE_STORE_RETRY_MS on its own, so a server
 * that refuses all metered traffic still notices when the disk has room
 * again. Nothing is reported as written before its commit returned.
 */
#include "platform/store_internal.h"
#include "engine/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* INSERT one record (mu held): 0 or the error. */
static int usage_insert_locked(nuage_store *s, const nuage_usage_record *r) {
    if (s->journal) return nuage__journal_insert_locked(s, r, 1);
    if (s->pg) return nuage__pg_usage_insert_locked(s, r);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "INSERT INTO usage(time_ms, tenant_id, key_id, request_id,"
                                  " deployment, model_version, prompt_tokens, cached_tokens,"
                                  " completion_tokens, reasoning_tokens, status, latency_ms)"
                                  " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st);
    if (rc) return rc;
    nuage__store_bind_usage(st, r);
    return nuage__store_run(s, st, "add usage");
}

void nuage__store_bind_usage(sqlite3_stmt *st, const nuage_usage_record *r) {
    sqlite3_bind_int64(st, 1, r->time_ms);
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
}

/* Remember the failure of a write (mu held): this thread's message. */
static void note_failure_locked(nuage_store *s) {
    snprintf(s->last_error, sizeof s->last_error, "%s", nuage_store_errmsg(s));
    s->last_try_ms = nuage__mono_ms();
    if (!s->pending_since_ms) s->pending_since_ms = nuage__store_now_ms();
}

int nuage__store_usage_flush_locked(nuage_store *s) {
    if (!s->n_pending) return 0;
    /* One transaction: all of them or none (a full disk fails it whole). */
    int rc;
    if (s->journal) {
        if ((rc = nuage__journal_insert_locked(s, s->pending, s->n_pending))) {
            note_failure_locked(s);
            return rc;
        }
        goto written;
    }
    rc = nuage__store_begin(s);
    for (int i = 0; !rc && i < s->n_pending; i++) rc = usage_insert_locked(s, &s->pending[i]);
    if (!rc) rc = nuage__store_commit(s);
    if (rc) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s", nuage_store_errmsg(s));
        nuage__store_rollback(s);
        nuage__store_fail(rc, "%s", msg);
        note_failure_locked(s);
        return rc;
    }
written:
    s->n_pending = 0;
    s->pending_since_ms = 0;
    s->last_try_ms = nuage__mono_ms();
    return 0;
}

/* Keep r for a later try (mu held). */
static void keep_pending_locked(nuage_store *s, const nuage_usage_record *r) {
    if (s->n_pending == s->cap_pending) {
        int cap = s->cap_pending ? s->cap_pending * 2 : 64;
        if (cap > NUAGE_STORE_MAX_PENDING) cap = NUAGE_STORE_MAX_PENDING;
        nuage_usage_record *p = s->n_pending < cap ? realloc(s->pending, (size_t)cap * sizeof *p) : NULL;
        if (!p) {
            s->n_lost++;
            return;
        }
        s->pending = p;
        s->cap_pending = cap;
    }
    s->pending[s->n_pending++] = *r;
}

int nuage_store_usage_add(nuage_store *s, const nuage_usage_record *r) {
    if (!s || !r) return NUAGE_E_INVAL;
    if (r->prompt_tokens < 0 || r->cached_tokens < 0 || r->completion_tokens < 0 ||
        r->reasoning_tokens < 0)
        return nuage__store_fail(NUAGE_E_INVAL, "negative token count");
    nuage_usage_record rec = *r;
    if (!rec.time_ms) rec.time_ms = nuage__store_now_ms();
    pthread_mutex_lock(&s->mu);
    /* Shipping is idempotent by request id: every journaled record has one. */
    if (s->journal && !rec.request_id[0]) {
        memcpy(rec.request_id, "usage-", 6);
        nuage__store_random_base62(rec.request_id + 6, 24);
    }
    /* Older records first; if they still cannot be written, this one
     * joins them (the order of the rows stays the order of the requests). */
    int rc = nuage__store_usage_flush_locked(s);
    if (!rc) rc = usage_insert_locked(s, &rec);
    if (rc) {
        if (rc != NUAGE_E_INVAL) {
            keep_pending_locked(s, &rec);
            note_failure_locked(s);
        }
        char msg[200];
        snprintf(msg, sizeof msg, "%s", s->last_error);
        pthread_mutex_unlock(&s->mu);
        return nuage__store_fail(rc, "%s (kept in memory: retried until the disk accepts it)", msg);
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int nuage_store_metering_check(nuage_store *s, int64_t *retry_after_ms) {
    if (retry_after_ms) *retry_after_ms = 0;
    if (!s) return NUAGE_E_INVAL;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (s->n_pending) {
        int64_t wait = s->last_try_ms + NUAGE_STORE_RETRY_MS - nuage__mono_ms();
        if (wait <= 0) {
            rc = nuage__store_usage_flush_locked(s);
            wait = NUAGE_STORE_RETRY_MS;
        } else {
            rc = NUAGE_E_IO;
        }
        if (rc && retry_after_ms) *retry_after_ms = wait;
    }
    pthread_mutex_unlock(&s->mu);
    return rc ? NUAGE_E_IO : 0;
}

void nuage_store_metering_status(nuage_store *s, nuage_metering_status *out) {
    memset(out, 0, sizeof *out);
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    out->pending = s->n_pending;
    out->pending_since_ms = s->pending_since_ms;
    out->lost = s->n_lost;
    snprintf(out->last_error, sizeof out->last_error, "%s", s->last_error);
    nuage__journal_status_locked(s, out);
    pthread_mutex_unlock(&s->mu);
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
    return nuage_store_usage_totals_range(s, tenant_id, since_ms, 0, by, out, n);
}

int nuage_store_usage_totals_range(nuage_store *s, int64_t tenant_id, int64_t since_ms, int64_t until_ms,
                                   const char *by, nuage_usage_total **out, int *n) {
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
    if (s->pg) return nuage__pg_usage_totals(s, tenant_id, since_ms, until_ms, by, out, n);
    char sql[768];
    snprintf(sql, sizeof sql,
             "SELECT %s, COUNT(*), COALESCE(SUM(u.prompt_tokens), 0),"
             " COALESCE(SUM(u.cached_tokens), 0), COALESCE(SUM(u.completion_tokens), 0),"
             " COALESCE(SUM(u.reasoning_tokens), 0)"
             " FROM usage u LEFT JOIN tenants t ON t.id = u.tenant_id"
             " WHERE (?1 = 0 OR u.tenant_id = ?1) AND u.time_ms >= ?2 AND (?3 = 0 OR u.time_ms < ?3)%s",
             group, tail);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, sql, &st);
    if (rc) goto out;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, since_ms);
    sqlite3_bind_int64(st, 3, until_ms);
    rc = nuage__store_collect(s, st, sizeof **out, total_row, "usage totals", (void **)out, n);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}
