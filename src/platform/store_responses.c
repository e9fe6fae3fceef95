/*
 * store_responses.c - stored responses of the OpenAI Responses API
 * (POST /v1/responses with "store": true) in the SQLite store (store.h).
 *
 * One row per response: its id ("resp_..."), owning tenant, status, the
 * id of the response it continues (previous_response_id, "" for the
 * first turn), the whole response object as JSON text (what GET
 * /v1/responses/{id} returns) and the input items of its own turn as a
 * JSON array (what GET .../input_items lists, and what a later turn
 * replays). The store keeps the texts opaque: the HTTP layer builds and
 * reads them, so this file needs no JSON library.
 *
 * Tenant scoping: every query filters by tenant, so another tenant's id
 * is "not found" (NUAGE_E_RANGE), never "forbidden" -- as for files and
 * batches. An update (put on an existing id) only touches a row of the
 * same tenant; an id taken by another tenant is NUAGE_E_STATE.
 *
 * Retention: each row carries expires_ms (created + the server's
 * retention period). Reads treat an expired row as absent at once;
 * nuage_store_response_purge deletes them (the server calls it at most
 * once a minute), so the table never grows past what the retention
 * period allows.
 *
 * Chains: previous_response_id links rows into a list; _chain walks it
 * from the newest back to the first (bounded by max, which also guards
 * against a cycle that a corrupted file could hold) and returns the
 * rows oldest first.
 */
#include "platform/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESP_COLS "id, tenant_id, created_ms, expires_ms, status, previous_id, object, input"

void nuage_stored_response_free(nuage_stored_response *r) {
    if (!r) return;
    free(r->object);
    free(r->input);
    r->object = r->input = NULL;
}

static char *col_dup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    char *c = malloc(n + 1);
    if (!c) return NULL;
    if (n) memcpy(c, t, n);
    c[n] = 0;
    return c;
}

/* Fill r from the current row (texts malloc'd); 0 or NUAGE_E_NOMEM. */
static int resp_row(sqlite3_stmt *st, nuage_stored_response *r) {
    memset(r, 0, sizeof *r);
    nuage__store_col_text(st, 0, r->id, sizeof r->id);
    r->tenant_id = sqlite3_column_int64(st, 1);
    r->created_ms = sqlite3_column_int64(st, 2);
    r->expires_ms = sqlite3_column_int64(st, 3);
    nuage__store_col_text(st, 4, r->status, sizeof r->status);
    nuage__store_col_text(st, 5, r->previous_id, sizeof r->previous_id);
    r->object = col_dup(st, 6);
    r->input = col_dup(st, 7);
    if (!r->object || !r->input) {
        nuage_stored_response_free(r);
        return NUAGE_E_NOMEM;
    }
    return 0;
}

int nuage_store_response_put(nuage_store *s, const nuage_stored_response *r) {
    if (!s || !r || !r->id[0] || !r->object || !r->status[0]) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_response_put(s, r);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    /* Insert, or update the row when it is this tenant's (the WHERE of the
     * upsert leaves another tenant's row alone: no change is reported). */
    int rc = nuage__store_prepare(s,
                                  "INSERT INTO responses(" RESP_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                                  " ON CONFLICT(id) DO UPDATE SET status = excluded.status,"
                                  " object = excluded.object, input = excluded.input"
                                  " WHERE responses.tenant_id = excluded.tenant_id",
                                  &st);
    if (rc) goto out;
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, r->tenant_id);
    sqlite3_bind_int64(st, 3, r->created_ms);
    sqlite3_bind_int64(st, 4, r->expires_ms);
    sqlite3_bind_text(st, 5, r->status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, r->previous_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, r->object, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, r->input ? r->input : "[]", -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    if (step != SQLITE_DONE) {
        rc = nuage__store_sqlerr(s, "store response");
    } else if (sqlite3_changes(s->db) == 0) {
        rc = nuage__store_fail(NUAGE_E_STATE, "response id '%.64s' belongs to another tenant", r->id);
    }
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Lock held: the row id of tenant, unexpired at now_ms, into out. */
static int resp_get_locked(nuage_store *s, int64_t tenant_id, const char *id, int64_t now_ms,
                           nuage_stored_response *out) {
    if (s->pg) return nuage__pg_response_get_locked(s, tenant_id, id, now_ms, out);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s,
                                  "SELECT " RESP_COLS " FROM responses"
                                  " WHERE id = ?1 AND tenant_id = ?2 AND expires_ms > ?3",
                                  &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, tenant_id);
    sqlite3_bind_int64(st, 3, now_ms);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) rc = resp_row(st, out);
    else if (step == SQLITE_DONE) rc = nuage__store_fail(NUAGE_E_RANGE, "no response '%.64s'", id);
    else rc = nuage__store_sqlerr(s, "response lookup");
    sqlite3_finalize(st);
    return rc;
}

int nuage_store_response_get(nuage_store *s, int64_t tenant_id, const char *id, int64_t now_ms,
                             nuage_stored_response *out) {
    if (!s || !id || !out) return NUAGE_E_INVAL;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    int rc = resp_get_locked(s, tenant_id, id, now_ms, out);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_response_delete(nuage_store *s, int64_t tenant_id, const char *id) {
    if (!s || !id) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_response_delete(s, tenant_id, id);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "DELETE FROM responses WHERE id = ?1 AND tenant_id = ?2", &st);
    if (!rc) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, tenant_id);
        if (sqlite3_step(st) != SQLITE_DONE) rc = nuage__store_sqlerr(s, "delete response");
        else if (sqlite3_changes(s->db) == 0) rc = nuage__store_fail(NUAGE_E_RANGE, "no response '%.64s'", id);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_response_chain(nuage_store *s, int64_t tenant_id, const char *id, int64_t now_ms, int max,
                               nuage_stored_response **out, int *n) {
    if (!s || !id || !out || !n || max < 1) return NUAGE_E_INVAL;
    *out = NULL;
    *n = 0;
    nuage_stored_response *a = calloc((size_t)max, sizeof *a);
    if (!a) return NUAGE_E_NOMEM;
    int k = 0, rc = 0;
    char cur[64];
    snprintf(cur, sizeof cur, "%s", id);
    pthread_mutex_lock(&s->mu);
    while (cur[0]) {
        if (k == max) {
            rc = nuage__store_fail(NUAGE_E_RANGE, "the conversation of '%.64s' is longer than %d responses", id, max);
            break;
        }
        if ((rc = resp_get_locked(s, tenant_id, cur, now_ms, &a[k]))) break;
        snprintf(cur, sizeof cur, "%s", a[k].previous_id);
        k++;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        for (int i = 0; i < k; i++) nuage_stored_response_free(&a[i]);
        free(a);
        return rc;
    }
    /* newest first -> oldest first */
    for (int i = 0; i < k / 2; i++) {
        nuage_stored_response t = a[i];
        a[i] = a[k - 1 - i];
        a[k - 1 - i] = t;
    }
    *out = a;
    *n = k;
    return 0;
}

void nuage_stored_responses_free(nuage_stored_response *a, int n) {
    for (int i = 0; a && i < n; i++) nuage_stored_response_free(&a[i]);
    free(a);
}

int nuage_store_response_purge(nuage_store *s, int64_t now_ms, int64_t *n_deleted) {
    if (!s) return NUAGE_E_INVAL;
    if (n_deleted) *n_deleted = 0;
    if (s->pg) return nuage__pg_response_purge(s, now_ms, n_deleted);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "DELETE FROM responses WHERE expires_ms <= ?1", &st);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        if (sqlite3_step(st) != SQLITE_DONE) rc = nuage__store_sqlerr(s, "purge responses");
        else if (n_deleted) *n_deleted = sqlite3_changes(s->db);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}
