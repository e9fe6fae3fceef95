/*
 * store_pg_quota.c - the cluster's shared rate-limit windows in PostgreSQL
 * (store.h "shared quota windows"; used by quota_shared.c).
 *
 * Why in the database, on every admission. With N replicas each holding
 * its own window, a tenant gets N times its TPM / RPM (the well-known
 * failure of per-worker limiters). The alternatives are a shared counter
 * checked on every request, or slices of the limit leased to replicas
 * (less database traffic, but a replica that holds an unused slice makes
 * the others refuse work that fits, and a lease's size bounds the error).
 * One small statement per request is cheap next to an LLM request (the
 * key check already costs a round trip), so the window is kept exact: the
 * same sliding 60-s log as quota.c, one row per admitted request, in one
 * table every replica reads and writes. The overshoot bound is zero: two
 * admissions of a tenant are serialised by a transaction-scoped advisory
 * lock on the tenant, so no two replicas can both take the last slot. (A
 * request may still end up over its reservation, exactly as on one
 * server: settle counts what it used.)
 *
 * The table is UNLOGGED and the admission commits asynchronously
 * (synchronous_commit off for that transaction): the window is scratch
 * state, valid for 60 s, so it never waits on a WAL fsync. A PostgreSQL
 * crash empties it, which forgets at most one minute of admissions (the
 * limits start over; billing is not affected: usage records are separate
 * and durable). Time is the database server's clock, the one clock every
 * replica shares.
 *
 * Objects (created by nuage_store_quota_prepare under the migrations'
 * advisory lock, idempotently, outside the numbered schema versions since
 * they hold no data that outlives a minute): the table nuage_quota_log
 * (req, tenant, scope, t_ms, tokens), scope '' for the tenant's own window
 * and the deployment's name for a deployment's per-tenant window; the
 * sequence nuage_quota_req (tickets); the function nuage_quota_admit(),
 * which expires, sums, decides and inserts in one round trip.
 *
 * Every call here runs on the store's main connection under s->mu, like
 * every other store call; quota_shared.c opens its own store handles for
 * the limiter, so admissions never queue behind usage writes.
 */
#define _GNU_SOURCE
#include "platform/store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nuage/nuage.h"
#include "platform/store.h"

/* The function takes pg_advisory_xact_lock(0x6e7571 "nuq", tenant): the
 * two-int form, a key space apart from the migrations' one-bigint lock
 * 0x6e756167 (1853186407), which prepare takes. */
static const char pg_quota_objects[] =
    "CREATE UNLOGGED TABLE IF NOT EXISTS nuage_quota_log("
    "  req BIGINT NOT NULL, tenant BIGINT NOT NULL, scope TEXT NOT NULL,"
    "  t_ms BIGINT NOT NULL, tokens BIGINT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS nuage_quota_log_window ON nuage_quota_log(tenant, scope, t_ms);"
    "CREATE INDEX IF NOT EXISTS nuage_quota_log_req ON nuage_quota_log(req);"
    "CREATE UNLOGGED SEQUENCE IF NOT EXISTS nuage_quota_req;"
    /* a leased slice (quota_slices.c) is one row of several requests */
    "ALTER TABLE nuage_quota_log ADD COLUMN IF NOT EXISTS requests BIGINT NOT NULL DEFAULT 1;"
    /* ok: 0 admitted, 1 over a limit now (retry_ms > 0), 2 larger than a
     * TPM limit (retry_ms -1). reqN/tokN: the live window N (0 tenant, 1
     * deployment) after admission; rrN/rtN: ms until its newest request /
     * newest request with tokens leaves it. */
    "CREATE OR REPLACE FUNCTION nuage_quota_admit(p_tenant BIGINT, p_dep TEXT, p_tpm BIGINT,"
    "  p_rpm BIGINT, p_dtpm BIGINT, p_drpm BIGINT, p_tokens BIGINT,"
    "  OUT ok INT, OUT ticket BIGINT, OUT retry_ms BIGINT,"
    "  OUT req0 BIGINT, OUT tok0 BIGINT, OUT rr0 BIGINT, OUT rt0 BIGINT,"
    "  OUT req1 BIGINT, OUT tok1 BIGINT, OUT rr1 BIGINT, OUT rt1 BIGINT)"
    " LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  now_ms BIGINT := floor(extract(epoch FROM clock_timestamp()) * 1000);\n"
    "  sc TEXT[] := ARRAY['', p_dep];\n"
    "  lt BIGINT[] := ARRAY[p_tpm, p_dtpm];\n"
    "  lr BIGINT[] := ARRAY[p_rpm, p_drpm];\n"
    "  rq BIGINT[] := ARRAY[0, 0]::BIGINT[];\n"
    "  tk BIGINT[] := ARRAY[0, 0]::BIGINT[];\n"
    "  rr BIGINT[] := ARRAY[0, 0]::BIGINT[];\n"
    "  rt BIGINT[] := ARRAY[0, 0]::BIGINT[];\n"
    "  fr BIGINT; ft BIGINT; w BIGINT; c1 BIGINT; c2 BIGINT; e RECORD;\n"
    "BEGIN\n"
    "  PERFORM set_config('synchronous_commit', 'off', true);\n"
    "  PERFORM pg_advisory_xact_lock(7239025, (p_tenant % 2147483647)::INT);\n"
    "  DELETE FROM nuage_quota_log WHERE tenant = p_tenant AND t_ms <= now_ms - 60000;\n"
    "  ok := 0; retry_ms := 0; ticket := 0;\n"
    "  FOR i IN 1..2 LOOP\n"
    "    CONTINUE WHEN lt[i] = 0 AND lr[i] = 0;\n"
    "    SELECT coalesce(sum(l.requests), 0), coalesce(sum(l.tokens), 0) INTO c1, c2 FROM nuage_quota_log l\n"
    "      WHERE l.tenant = p_tenant AND l.scope = sc[i];\n"
    "    rq[i] := c1; tk[i] := c2;\n"
    "    IF lt[i] > 0 AND p_tokens > lt[i] THEN\n"
    "      ok := 2; retry_ms := -1;\n"
    "    ELSIF (lr[i] > 0 AND rq[i] + 1 > lr[i]) OR (lt[i] > 0 AND tk[i] + p_tokens > lt[i]) THEN\n"
    "      IF ok = 0 THEN ok := 1; END IF;\n"
    "      IF retry_ms >= 0 THEN\n"
    "        fr := 0; ft := 0; w := 60000;\n"
    "        FOR e IN SELECT l.t_ms, l.tokens, l.requests FROM nuage_quota_log l\n"
    "            WHERE l.tenant = p_tenant AND l.scope = sc[i] ORDER BY l.t_ms LOOP\n"
    "          fr := fr + e.requests; ft := ft + e.tokens;\n"
    "          IF (lr[i] = 0 OR rq[i] - fr + 1 <= lr[i]) AND (lt[i] = 0 OR tk[i] - ft + p_tokens <= lt[i]) THEN\n"
    "            w := greatest(e.t_ms + 60000 - now_ms, 1); EXIT;\n"
    "          END IF;\n"
    "        END LOOP;\n"
    "        retry_ms := greatest(retry_ms, w);\n"
    "      END IF;\n"
    "    END IF;\n"
    "  END LOOP;\n"
    "  IF ok = 0 THEN\n"
    "    ticket := nextval('nuage_quota_req');\n"
    "    FOR i IN 1..2 LOOP\n"
    "      CONTINUE WHEN lt[i] = 0 AND lr[i] = 0;\n"
    "      INSERT INTO nuage_quota_log(req, tenant, scope, t_ms, tokens) VALUES (ticket, p_tenant, sc[i], now_ms, p_tokens);\n"
    "      rq[i] := rq[i] + 1; tk[i] := tk[i] + p_tokens;\n"
    "    END LOOP;\n"
    "  END IF;\n"
    "  FOR i IN 1..2 LOOP\n"
    "    CONTINUE WHEN lt[i] = 0 AND lr[i] = 0;\n"
    "    SELECT greatest(coalesce(max(l.t_ms) + 60000 - now_ms, 0), 0),\n"
    "           greatest(coalesce(max(l.t_ms) FILTER (WHERE l.tokens > 0) + 60000 - now_ms, 0), 0)\n"
    "      INTO c1, c2 FROM nuage_quota_log l WHERE l.tenant = p_tenant AND l.scope = sc[i];\n"
    "    rr[i] := c1; rt[i] := c2;\n"
    "  END LOOP;\n"
    "  req0 := rq[1]; tok0 := tk[1]; rr0 := rr[1]; rt0 := rt[1];\n"
    "  req1 := rq[2]; tok1 := tk[2]; rr1 := rr[2]; rt1 := rt[2];\n"
    "END\n"
    "$f$;"
    /* A slice (quota_slices.c): up to p_sreq requests and p_stok tokens of
     * both windows in one row each, as much as fits, at least one request
     * of p_need tokens (else ok 1 and the wait for that one, as admit).
     * g_req / g_tok: what was granted. */
    "CREATE OR REPLACE FUNCTION nuage_quota_lease(p_tenant BIGINT, p_dep TEXT, p_tpm BIGINT,"
    "  p_rpm BIGINT, p_dtpm BIGINT, p_drpm BIGINT, p_need BIGINT, p_sreq BIGINT, p_stok BIGINT,"
    "  OUT ok INT, OUT ticket BIGINT, OUT retry_ms BIGINT, OUT g_req BIGINT, OUT g_tok BIGINT,"
    "  OUT req0 BIGINT, OUT tok0 BIGINT, OUT req1 BIGINT, OUT tok1 BIGINT)"
    " LANGUAGE plpgsql AS $f$\n"
    "DECLARE\n"
    "  now_ms BIGINT := floor(extract(epoch FROM clock_timestamp()) * 1000);\n"
    "  sc TEXT[] := ARRAY['', p_dep];\n"
    "  lt BIGINT[] := ARRAY[p_tpm, p_dtpm];\n"
    "  lr BIGINT[] := ARRAY[p_rpm, p_drpm];\n"
    "  rq BIGINT[] := ARRAY[0, 0]::BIGINT[];\n"
    "  tk BIGINT[] := ARRAY[0, 0]::BIGINT[];\n"
    "  fr BIGINT; ft BIGINT; w BIGINT; c1 BIGINT; c2 BIGINT; e RECORD;\n"
    "BEGIN\n"
    "  PERFORM set_config('synchronous_commit', 'off', true);\n"
    "  PERFORM pg_advisory_xact_lock(7239025, (p_tenant % 2147483647)::INT);\n"
    "  DELETE FROM nuage_quota_log WHERE tenant = p_tenant AND t_ms <= now_ms - 60000;\n"
    "  ok := 0; retry_ms := 0; ticket := 0; g_req := p_sreq; g_tok := greatest(p_stok, p_need);\n"
    "  FOR i IN 1..2 LOOP\n"
    "    CONTINUE WHEN lt[i] = 0 AND lr[i] = 0;\n"
    "    SELECT coalesce(sum(l.requests), 0), coalesce(sum(l.tokens), 0) INTO c1, c2 FROM nuage_quota_log l\n"
    "      WHERE l.tenant = p_tenant AND l.scope = sc[i];\n"
    "    rq[i] := c1; tk[i] := c2;\n"
    "    IF lt[i] > 0 AND p_need > lt[i] THEN\n"
    "      ok := 2; retry_ms := -1;\n"
    "    ELSIF (lr[i] > 0 AND rq[i] + 1 > lr[i]) OR (lt[i] > 0 AND tk[i] + p_need > lt[i]) THEN\n"
    "      IF ok = 0 THEN ok := 1; END IF;\n"
    "      IF retry_ms >= 0 THEN\n"
    "        fr := 0; ft := 0; w := 60000;\n"
    "        FOR e IN SELECT l.t_ms, l.tokens, l.requests FROM nuage_quota_log l\n"
    "            WHERE l.tenant = p_tenant AND l.scope = sc[i] ORDER BY l.t_ms LOOP\n"
    "          fr := fr + e.requests; ft := ft + e.tokens;\n"
    "          IF (lr[i] = 0 OR rq[i] - fr + 1 <= lr[i]) AND (lt[i] = 0 OR tk[i] - ft + p_need <= lt[i]) THEN\n"
    "            w := greatest(e.t_ms + 60000 - now_ms, 1); EXIT;\n"
    "          END IF;\n"
    "        END LOOP;\n"
    "        retry_ms := greatest(retry_ms, w);\n"
    "      END IF;\n"
    "    ELSE\n"
    "      IF lr[i] > 0 THEN g_req := least(g_req, lr[i] - rq[i]); END IF;\n"
    "      IF lt[i] > 0 THEN g_tok := least(g_tok, lt[i] - tk[i]); END IF;\n"
    "    END IF;\n"
    "  END LOOP;\n"
    "  IF ok = 0 THEN\n"
    "    ticket := nextval('nuage_quota_req');\n"
    "    FOR i IN 1..2 LOOP\n"
    "      CONTINUE WHEN lt[i] = 0 AND lr[i] = 0;\n"
    "      INSERT INTO nuage_quota_log(req, tenant, scope, t_ms, tokens, requests)\n"
    "        VALUES (ticket, p_tenant, sc[i], now_ms, g_tok, g_req);\n"
    "      rq[i] := rq[i] + g_req; tk[i] := tk[i] + g_tok;\n"
    "    END LOOP;\n"
    "  ELSE\n"
    "    g_req := 0; g_tok := 0;\n"
    "  END IF;\n"
    "  req0 := rq[1]; tok0 := tk[1]; req1 := rq[2]; tok1 := tk[2];\n"
    "END\n"
    "$f$;";

int nuage_store_quota_prepare(nuage_store *s) {
    if (!s) return NUAGE_E_INVAL;
    if (!s->pg) return nuage__store_fail(NUAGE_E_UNSUPPORTED, "shared quota windows need a PostgreSQL store");
    pthread_mutex_lock(&s->mu);
    int rc = nuage__pg_exec(s, "BEGIN");
    if (rc) goto out;
    /* the migrations' lock: replicas starting together create these once */
    if (!(rc = nuage__pg_exec(s, "SELECT pg_advisory_xact_lock(1853186407)")) &&
        !(rc = nuage__pg_exec(s, pg_quota_objects)))
        rc = nuage__pg_exec(s, "COMMIT");
    if (rc) nuage__pg_rollback(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* The first six arguments of both functions: tenant, deployment, limits. */
static void window_args(nuage__pgargs *a, int64_t tenant, const char *deployment, const int64_t tpm[2],
                        const int64_t rpm[2]) {
    nuage__pg_i64(a, tenant);
    nuage__pg_txt(a, deployment ? deployment : "");
    nuage__pg_i64(a, tpm[0]);
    nuage__pg_i64(a, rpm[0]);
    nuage__pg_i64(a, tpm[1]);
    nuage__pg_i64(a, rpm[1]);
}

/* Run one of the window functions (takes mu): 0 with its one row of
 * nfields in *out (PQclear it), or the error. */
static int window_call(nuage_store *s, const char *sql, const nuage__pgargs *a, int nfields, const char *what,
                       PGresult **out) {
    pthread_mutex_lock(&s->mu);
    int rc = nuage__pg_query(s, sql, a, out, what);
    pthread_mutex_unlock(&s->mu);
    if (rc) return rc;
    if (PQntuples(*out) != 1 || PQnfields(*out) != nfields) {
        PQclear(*out);
        *out = NULL;
        return nuage__store_fail(NUAGE_E_IO, "%s: unexpected answer", what);
    }
    return 0;
}

int nuage_store_quota_admit(nuage_store *s, int64_t tenant, const char *deployment, const int64_t tpm[2],
                            const int64_t rpm[2], int64_t tokens, int64_t *ticket, nuage_store_window w[2],
                            int64_t *retry_after_ms) {
    *ticket = 0;
    *retry_after_ms = 0;
    memset(w, 0, 2 * sizeof *w);
    if (!s || tokens < 0) return NUAGE_E_INVAL;
    if (!s->pg) return nuage__store_fail(NUAGE_E_UNSUPPORTED, "shared quota windows need a PostgreSQL store");
    nuage__pgargs a = {0};
    window_args(&a, tenant, deployment, tpm, rpm);
    nuage__pg_i64(&a, tokens);
    PGresult *r;
    int rc = window_call(s, "SELECT * FROM nuage_quota_admit($1, $2, $3, $4, $5, $6, $7)", &a, 11,
                         "quota admission", &r);
    if (rc) return rc;
    int ok = (int)nuage__pg_int(r, 0, 0);
    *ticket = nuage__pg_int(r, 0, 1);
    *retry_after_ms = nuage__pg_int(r, 0, 2);
    for (int i = 0; i < 2; i++) {
        w[i].requests = nuage__pg_int(r, 0, 3 + 4 * i);
        w[i].tokens = nuage__pg_int(r, 0, 4 + 4 * i);
        w[i].reset_requests_ms = nuage__pg_int(r, 0, 5 + 4 * i);
        w[i].reset_tokens_ms = nuage__pg_int(r, 0, 6 + 4 * i);
    }
    PQclear(r);
    return ok == 0 ? 0 : ok == 1 ? NUAGE_E_BUSY : NUAGE_E_RANGE;
}

/* settle / cancel: one statement on the ticket's rows (both windows). */
static int pg_quota_ticket(nuage_store *s, const char *sql, int64_t ticket, int64_t tokens, int nargs,
                           const char *what) {
    if (!s) return NUAGE_E_INVAL;
    if (!s->pg) return nuage__store_fail(NUAGE_E_UNSUPPORTED, "shared quota windows need a PostgreSQL store");
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, ticket);
    if (nargs > 1) nuage__pg_i64(&a, tokens);
    pthread_mutex_lock(&s->mu);
    int rc = nuage__pg_run(s, sql, &a, NULL, what);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_quota_settle(nuage_store *s, int64_t ticket, int64_t tokens) {
    return pg_quota_ticket(s, "UPDATE nuage_quota_log SET tokens = $2 WHERE req = $1", ticket,
                           tokens < 0 ? 0 : tokens, 2, "quota settle");
}

int nuage_store_quota_cancel(nuage_store *s, int64_t ticket) {
    return pg_quota_ticket(s, "DELETE FROM nuage_quota_log WHERE req = $1", ticket, 0, 1, "quota cancel");
}

int nuage_store_quota_usage(nuage_store *s, int64_t tenant, const char *scope, int64_t *requests,
                            int64_t *tokens) {
    *requests = *tokens = 0;
    if (!s) return NUAGE_E_INVAL;
    if (!s->pg) return nuage__store_fail(NUAGE_E_UNSUPPORTED, "shared quota windows need a PostgreSQL store");
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, tenant);
    nuage__pg_txt(&a, scope ? scope : "");
    pthread_mutex_lock(&s->mu);
    PGresult *r;
    int rc = nuage__pg_query(s,
                             "SELECT coalesce(sum(requests), 0), coalesce(sum(tokens), 0) FROM nuage_quota_log WHERE tenant = $1 "
                             "AND scope = $2 AND t_ms > floor(extract(epoch FROM clock_timestamp()) * 1000) - 60000",
                             &a, &r, "quota usage");
    pthread_mutex_unlock(&s->mu);
    if (rc) return rc;
    *requests = nuage__pg_int(r, 0, 0);
    *tokens = nuage__pg_int(r, 0, 1);
    PQclear(r);
    return 0;
}

int nuage_store_quota_lease(nuage_store *s, int64_t tenant, const char *deployment, const int64_t tpm[2],
                            const int64_t rpm[2], int64_t need, int64_t want_requests, int64_t want_tokens,
                            nuage_store_lease *out) {
    memset(out, 0, sizeof *out);
    if (!s || need < 0 || want_requests < 1 || want_tokens < 0) return NUAGE_E_INVAL;
    if (!s->pg) return nuage__store_fail(NUAGE_E_UNSUPPORTED, "shared quota windows need a PostgreSQL store");
    nuage__pgargs a = {0};
    window_args(&a, tenant, deployment, tpm, rpm);
    nuage__pg_i64(&a, need);
    nuage__pg_i64(&a, want_requests);
    nuage__pg_i64(&a, want_tokens);
    PGresult *r;
    int rc = window_call(s, "SELECT * FROM nuage_quota_lease($1, $2, $3, $4, $5, $6, $7, $8, $9)", &a, 9,
                         "quota lease", &r);
    if (rc) return rc;
    int ok = (int)nuage__pg_int(r, 0, 0);
    out->ticket = nuage__pg_int(r, 0, 1);
    out->retry_after_ms = nuage__pg_int(r, 0, 2);
    out->requests = nuage__pg_int(r, 0, 3);
    out->tokens = nuage__pg_int(r, 0, 4);
    for (int i = 0; i < 2; i++) {
        out->w[i].requests = nuage__pg_int(r, 0, 5 + 2 * i);
        out->w[i].tokens = nuage__pg_int(r, 0, 6 + 2 * i);
    }
    PQclear(r);
    return ok == 0 ? 0 : ok == 1 ? NUAGE_E_BUSY : NUAGE_E_RANGE;
}

int nuage_store_quota_return(nuage_store *s, int64_t ticket, int64_t requests, int64_t tokens) {
    if (!s) return NUAGE_E_INVAL;
    if (!s->pg) return nuage__store_fail(NUAGE_E_UNSUPPORTED, "shared quota windows need a PostgreSQL store");
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, ticket);
    nuage__pg_i64(&a, requests);
    nuage__pg_i64(&a, tokens);
    pthread_mutex_lock(&s->mu);
    int rc = nuage__pg_run(s,
                           "UPDATE nuage_quota_log SET requests = greatest(requests - $2, 0),"
                           " tokens = greatest(tokens - $3, 0) WHERE req = $1",
                           &a, NULL, "quota return");
    pthread_mutex_unlock(&s->mu);
    return rc;
}
