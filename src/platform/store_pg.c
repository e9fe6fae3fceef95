/*
 * store_pg.c - the PostgreSQL backend of the store (store.h): connecting,
 * schema migrations under an advisory lock, the libpq helpers the other
 * store_pg*.c files share, tenants, key rows and usage. Files, batches,
 * stored responses and replicas are in store_pg_files.c.
 *
 * Why PostgreSQL. Several `nuage serve` replicas must see one set of
 * tenants, keys, usage, files and batches; PostgreSQL is the trusted,
 * shared, transactional place for them (docs/cluster.md). The SQLite
 * backend stays the default for one machine; both answer the same calls.
 *
 * Connections. Two per store, like the SQLite backend: the main one under
 * s->mu for every call, and one under s->rmu only for API key lookups, so
 * authenticating a request never queues behind another request's usage
 * INSERT (a synchronous commit: a round trip and the server's WAL fsync).
 * A connection found broken (the server restarted) is reset before the
 * next statement; the statement that met the break fails (never retried
 * here: an INSERT that may have committed must not run twice -- usage
 * then waits in the pending queue of store_usage.c, as on a full disk;
 * a replica's usage goes through its local journal instead,
 * store_journal.c, and usage INSERTs skip a request id already there).
 * Connections default to a 5 s connect timeout and TCP keepalives (the
 * URL may set its own), so an unreachable server fails calls quickly.
 *
 * Statements are sent with PQexecParams: parameters as text (numbers
 * printed with %lld / %.17g) or binary (bytea: salts, hashes, file
 * chunks), results as text except where a bytea column is read (binary,
 * one column). Every value is a parameter, never spliced into the SQL.
 *
 * Migrations. The schema is the SQLite one (store_sqlite.c: the same
 * version numbers and steps) in PostgreSQL types: BIGINT for every
 * integer, identity columns for the row ids, BYTEA for blobs, a `seq`
 * identity on files and batches to order rows as SQLite's rowid does, and
 * file contents in 1 MiB chunk rows (store_pg_files.c). The version lives
 * in the one-row table nuage_schema. Opening runs the missing steps in one
 * transaction that first takes pg_advisory_xact_lock(NUAGE_PG_LOCK): when
 * several replicas start at once, one migrates and the others wait, then
 * find the schema current. A database whose schema holds other tables but
 * no nuage_schema is refused ("not a nuage database"), one whose version
 * is newer than this program is refused too.
 */
#define _GNU_SOURCE
#include "platform/store_pg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "nuag": the advisory lock key of migrations. */
#define NUAGE_PG_LOCK 0x6e756167

bool nuage__store_is_pg_url(const char *url) {
    return url && (!strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13));
}

void nuage_store_display(const char *path, char *out, size_t cap) {
    if (!cap) return;
    snprintf(out, cap, "%s", path ? path : "");
    if (!nuage__store_is_pg_url(out)) return;
    char *user = strstr(out, "://") + 3;
    char *at = strchr(user, '@'), *slash = strchr(user, '/');
    if (!at || (slash && slash < at)) return;
    char *colon = memchr(user, ':', (size_t)(at - user));
    if (!colon) return;
    char rest[512];
    snprintf(rest, sizeof rest, "%s", at);
    snprintf(colon, cap - (size_t)(colon - out), ":***%s", rest);
}

/* ---- helpers --------------------------------------------------------------------- */

void nuage__pg_i64(nuage__pgargs *a, int64_t v) {
    snprintf(a->buf[a->n], sizeof a->buf[0], "%lld", (long long)v);
    a->v[a->n] = a->buf[a->n];
    a->len[a->n] = 0;
    a->fmt[a->n++] = 0;
}

void nuage__pg_dbl(nuage__pgargs *a, double v) {
    snprintf(a->buf[a->n], sizeof a->buf[0], "%.17g", v);
    a->v[a->n] = a->buf[a->n];
    a->len[a->n] = 0;
    a->fmt[a->n++] = 0;
}

void nuage__pg_txt(nuage__pgargs *a, const char *t) {
    a->v[a->n] = t;
    a->len[a->n] = 0;
    a->fmt[a->n++] = 0;
}

void nuage__pg_field(nuage__pgargs *a, const char *field, size_t cap) {
    size_t n = strnlen(field, cap);
    if (n < cap) {
        nuage__pg_txt(a, field);
        return;
    }
    /* a full fixed-size field without its NUL: sent as bytes of text */
    a->v[a->n] = field;
    a->len[a->n] = (int)n;
    a->fmt[a->n++] = 1;
}

void nuage__pg_bin(nuage__pgargs *a, const void *p, size_t len) {
    a->v[a->n] = len ? p : "";
    a->len[a->n] = (int)len;
    a->fmt[a->n++] = 1;
}

void nuage__pg_null(nuage__pgargs *a) {
    a->v[a->n] = NULL;
    a->len[a->n] = 0;
    a->fmt[a->n++] = 0;
}

/* The server's message, first line only. */
static const char *pg_msg(PGconn *c, PGresult *r) {
    static _Thread_local char m[400];
    const char *e = r ? PQresultErrorMessage(r) : NULL;
    if (!e || !*e) e = PQerrorMessage(c);
    snprintf(m, sizeof m, "%s", e && *e ? e : "unknown error");
    char *nl = strchr(m, '\n');
    if (nl) *nl = 0;
    return m;
}

int nuage__pg_query_on(PGconn *c, const char *sql, const nuage__pgargs *a, int binary, PGresult **out,
                       const char *what) {
    *out = NULL;
    if (PQstatus(c) == CONNECTION_BAD) PQreset(c);
    if (PQstatus(c) == CONNECTION_BAD)
        return nuage__store_fail(NUAGE_E_IO, "%s: PostgreSQL unreachable: %s", what, pg_msg(c, NULL));
    PGresult *r = PQexecParams(c, sql, a ? a->n : 0, NULL, a ? a->v : NULL, a ? a->len : NULL,
                               a ? a->fmt : NULL, binary);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        *out = r;
        return 0;
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    int rc = state && !strcmp(state, "23505") ? NUAGE_E_STATE : NUAGE_E_IO;
    nuage__store_fail(rc, "%s: %s", what, pg_msg(c, r));
    PQclear(r);
    return rc;
}

int nuage__pg_query(nuage_store *s, const char *sql, const nuage__pgargs *a, PGresult **out, const char *what) {
    return nuage__pg_query_on(s->pg, sql, a, 0, out, what);
}

int nuage__pg_run(nuage_store *s, const char *sql, const nuage__pgargs *a, int64_t *changed, const char *what) {
    PGresult *r;
    int rc = nuage__pg_query(s, sql, a, &r, what);
    if (rc) return rc;
    if (changed) *changed = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

int64_t nuage__pg_int(PGresult *r, int row, int col) { return strtoll(PQgetvalue(r, row, col), NULL, 10); }

void nuage__pg_text(PGresult *r, int row, int col, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

int nuage__pg_collect(PGresult *r, size_t elem_size, void (*row)(PGresult *r, int i, void *elem), void **out,
                      int *n) {
    int k = PQntuples(r);
    char *arr = NULL;
    if (k > 0) {
        arr = calloc((size_t)k, elem_size);
        if (!arr) {
            PQclear(r);
            return nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
        }
        for (int i = 0; i < k; i++) row(r, i, arr + (size_t)i * elem_size);
    }
    PQclear(r);
    *out = arr;
    *n = k;
    return 0;
}

int nuage__pg_exec(nuage_store *s, const char *sql) {
    /* the simple protocol: sql may hold several statements (migrations) */
    if (PQstatus(s->pg) == CONNECTION_BAD) PQreset(s->pg);
    PGresult *r = PQexec(s->pg, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = nuage__store_fail(NUAGE_E_IO, "PostgreSQL: %s", pg_msg(s->pg, r));
    PQclear(r);
    return rc;
}

void nuage__pg_rollback(nuage_store *s) {
    if (PQtransactionStatus(s->pg) == PQTRANS_IDLE) return;
    PQclear(PQexec(s->pg, "ROLLBACK"));
}

/* ---- open and migrations ----------------------------------------------------------- */

static const char *const pg_migrations[] = {
    /* v1 */
    "CREATE TABLE tenants("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    "  tpm BIGINT NOT NULL DEFAULT 0, rpm BIGINT NOT NULL DEFAULT 0,"
    "  weight DOUBLE PRECISION NOT NULL DEFAULT 1.0, created_ms BIGINT NOT NULL);"
    "CREATE TABLE api_keys("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, kid TEXT NOT NULL UNIQUE,"
    "  tenant_id BIGINT NOT NULL DEFAULT 0, salt BYTEA NOT NULL, hash BYTEA NOT NULL,"
    "  deployments TEXT NOT NULL DEFAULT '', expires_ms BIGINT NOT NULL DEFAULT 0,"
    "  created_ms BIGINT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,"
    "  admin INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX api_keys_tenant ON api_keys(tenant_id);"
    "CREATE TABLE usage("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, time_ms BIGINT NOT NULL,"
    "  tenant_id BIGINT NOT NULL, key_id BIGINT NOT NULL, request_id TEXT NOT NULL,"
    "  deployment TEXT NOT NULL, model_version TEXT NOT NULL, prompt_tokens BIGINT NOT NULL,"
    "  cached_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,"
    "  status INTEGER NOT NULL, latency_ms DOUBLE PRECISION NOT NULL);"
    "CREATE INDEX usage_tenant_time ON usage(tenant_id, time_ms);"
    "CREATE INDEX usage_time ON usage(time_ms);",
    /* v2 */
    "ALTER TABLE usage ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;"
    "CREATE TABLE files("
    "  id TEXT PRIMARY KEY, seq BIGINT GENERATED ALWAYS AS IDENTITY, tenant_id BIGINT NOT NULL,"
    "  filename TEXT NOT NULL, purpose TEXT NOT NULL, bytes BIGINT NOT NULL,"
    "  created_ms BIGINT NOT NULL);"
    "CREATE INDEX files_tenant ON files(tenant_id, created_ms);"
    "CREATE TABLE file_chunks("
    "  file_id TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE, n INTEGER NOT NULL,"
    "  data BYTEA NOT NULL, PRIMARY KEY(file_id, n));"
    "CREATE TABLE batches("
    "  id TEXT PRIMARY KEY, seq BIGINT GENERATED ALWAYS AS IDENTITY, tenant_id BIGINT NOT NULL,"
    "  endpoint TEXT NOT NULL, input_file_id TEXT NOT NULL, output_file_id TEXT NOT NULL DEFAULT '',"
    "  error_file_id TEXT NOT NULL DEFAULT '', completion_window TEXT NOT NULL,"
    "  status TEXT NOT NULL, created_ms BIGINT NOT NULL,"
    "  in_progress_ms BIGINT NOT NULL DEFAULT 0, finalizing_ms BIGINT NOT NULL DEFAULT 0,"
    "  completed_ms BIGINT NOT NULL DEFAULT 0, cancelled_ms BIGINT NOT NULL DEFAULT 0,"
    "  failed_ms BIGINT NOT NULL DEFAULT 0, expires_ms BIGINT NOT NULL DEFAULT 0,"
    "  total BIGINT NOT NULL DEFAULT 0, completed BIGINT NOT NULL DEFAULT 0,"
    "  failed BIGINT NOT NULL DEFAULT 0, deployment TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX batches_tenant ON batches(tenant_id, created_ms);"
    "CREATE TABLE batch_lines("
    "  batch_id TEXT NOT NULL, line BIGINT NOT NULL, is_error INTEGER NOT NULL,"
    "  jsonl TEXT NOT NULL, PRIMARY KEY(batch_id, line));",
    /* v3 */
    "ALTER TABLE batches ADD COLUMN metadata TEXT NOT NULL DEFAULT '';",
    /* v4 */
    "CREATE TABLE responses("
    "  id TEXT PRIMARY KEY, tenant_id BIGINT NOT NULL, created_ms BIGINT NOT NULL,"
    "  expires_ms BIGINT NOT NULL, status TEXT NOT NULL, previous_id TEXT NOT NULL DEFAULT '',"
    "  object TEXT NOT NULL, input TEXT NOT NULL);"
    "CREATE INDEX responses_expires ON responses(expires_ms);",
    /* v5 */
    "CREATE TABLE replicas("
    "  id TEXT PRIMARY KEY, address TEXT NOT NULL, deployments TEXT NOT NULL DEFAULT '',"
    "  load DOUBLE PRECISION NOT NULL DEFAULT 0, version TEXT NOT NULL DEFAULT '',"
    "  started_ms BIGINT NOT NULL, heartbeat_ms BIGINT NOT NULL, gone INTEGER NOT NULL DEFAULT 0);",
    /* v6 */
    "ALTER TABLE batches ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE batches ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;",
    /* v7: one row per request id, so shipping a usage journal again
     * (store_journal.c) never counts a request twice */
    "CREATE UNIQUE INDEX usage_request ON usage(request_id) WHERE request_id <> '';",
};
#define N_PG_MIGRATIONS ((int)(sizeof pg_migrations / sizeof pg_migrations[0]))

/* One integer from a query without parameters (mu held or at open). */
static int pg_scalar(nuage_store *s, const char *sql, int64_t *v, bool *null) {
    PGresult *r;
    int rc = nuage__pg_query(s, sql, NULL, &r, "schema");
    if (rc) return rc;
    if (PQntuples(r) < 1 || PQgetisnull(r, 0, 0)) {
        if (null) *null = true;
        *v = 0;
    } else {
        if (null) *null = false;
        *v = nuage__pg_int(r, 0, 0);
    }
    PQclear(r);
    return 0;
}

static int pg_migrate(nuage_store *s, const char *where) {
    int64_t version = 0, n_tables = 0, reg = 0;
    bool none = false;
    char sql[96];
    int rc = nuage__pg_exec(s, "BEGIN");
    if (rc) return rc;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%d)", NUAGE_PG_LOCK);
    if ((rc = nuage__pg_exec(s, sql))) goto fail;
    if ((rc = pg_scalar(s, "SELECT CASE WHEN to_regclass('nuage_schema') IS NULL THEN 0 ELSE 1 END", &reg,
                        NULL)))
        goto fail;
    if (!reg) {
        if ((rc = pg_scalar(s, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()", &n_tables,
                            NULL)))
            goto fail;
        if (n_tables > 0) {
            rc = nuage__store_fail(NUAGE_E_FORMAT, "%s: not a nuage database (it has other tables)", where);
            goto fail;
        }
        if ((rc = nuage__pg_exec(s, "CREATE TABLE nuage_schema(version INTEGER NOT NULL);"
                                    "INSERT INTO nuage_schema VALUES(0)")))
            goto fail;
    }
    if ((rc = pg_scalar(s, "SELECT version FROM nuage_schema", &version, &none))) goto fail;
    if (none) {
        rc = nuage__store_fail(NUAGE_E_FORMAT, "%s: nuage_schema has no row", where);
        goto fail;
    }
    if (version > N_PG_MIGRATIONS) {
        rc = nuage__store_fail(NUAGE_E_UNSUPPORTED,
                               "%s: schema version %lld is newer than this nuage supports (%d); upgrade nuage",
                               where, (long long)version, N_PG_MIGRATIONS);
        goto fail;
    }
    for (int v = (int)version; v < N_PG_MIGRATIONS; v++) {
        if ((rc = nuage__pg_exec(s, pg_migrations[v]))) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", nuage_store_errmsg(s));
            rc = nuage__store_fail(rc, "%s: migration to schema version %d failed: %s", where, v + 1, msg);
            goto fail;
        }
    }
    snprintf(sql, sizeof sql, "UPDATE nuage_schema SET version = %d", N_PG_MIGRATIONS);
    if (version < N_PG_MIGRATIONS && (rc = nuage__pg_exec(s, sql))) goto fail;
    if ((rc = nuage__pg_exec(s, "COMMIT"))) goto fail;
    return 0;
fail:
    nuage__pg_rollback(s);
    return rc;
}

/* Connect to url; *out or an error naming the server (never the password). */
static int pg_connect(const char *url, PGconn **out) {
    /* Defaults first, then the URL (expanded): what the URL sets wins. A
     * dead or partitioned server must fail a call within seconds, not
     * hang a request thread on TCP's own timeouts. */
    static const char *const keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval",
                                       "keepalives_count", "application_name", "dbname", NULL};
    const char *vals[] = {"5", "10", "5", "3", "nuage", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) return nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        int rc = nuage__store_fail(NUAGE_E_IO, "PostgreSQL %s@%s:%s/%s: %s", PQuser(c) ? PQuser(c) : "?",
                                   PQhost(c) ? PQhost(c) : "?", PQport(c) ? PQport(c) : "?",
                                   PQdb(c) ? PQdb(c) : "?", pg_msg(c, NULL));
        PQfinish(c);
        return rc;
    }
    /* Quiet NOTICEs (IF NOT EXISTS and the like) stay off stderr. */
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    *out = c;
    return 0;
}

int nuage__pg_open(nuage_store *s, const char *url) {
    int rc;
    if (pthread_mutex_init(&s->mu, NULL) != 0) return nuage__store_fail(NUAGE_E_NOMEM, "mutex");
    if (pthread_mutex_init(&s->rmu, NULL) != 0) {
        rc = nuage__store_fail(NUAGE_E_NOMEM, "mutex");
        goto fail_mu;
    }
    if ((rc = pg_connect(url, &s->pg))) goto fail_rmu;
    char where[200];
    snprintf(where, sizeof where, "postgres://%s@%s:%s/%s", PQuser(s->pg), PQhost(s->pg), PQport(s->pg),
             PQdb(s->pg));
    if ((rc = pg_migrate(s, where))) goto fail_pg;
    if ((rc = pg_connect(url, &s->pgr))) goto fail_pg;
    return 0;
fail_pg:
    PQfinish(s->pg);
    s->pg = NULL;
fail_rmu:
    pthread_mutex_destroy(&s->rmu);
fail_mu:
    pthread_mutex_destroy(&s->mu);
    return rc;
}

void nuage__pg_close(nuage_store *s) {
    PQfinish(s->pgr);
    PQfinish(s->pg);
    s->pg = s->pgr = NULL;
    pthread_mutex_destroy(&s->rmu);
    pthread_mutex_destroy(&s->mu);
}

int nuage__pg_schema_version(nuage_store *s) {
    pthread_mutex_lock(&s->mu);
    int64_t v = 0;
    int rc = pg_scalar(s, "SELECT version FROM nuage_schema", &v, NULL);
    pthread_mutex_unlock(&s->mu);
    return rc ? rc : (int)v;
}

/* ---- tenants ------------------------------------------------------------------------- */

#define PG_TENANT_COLS "id, name, tpm, rpm, weight, created_ms"

static void pg_tenant_row(PGresult *r, int i, void *elem) {
    nuage_tenant *t = elem;
    memset(t, 0, sizeof *t);
    t->id = nuage__pg_int(r, i, 0);
    nuage__pg_text(r, i, 1, t->name, sizeof t->name);
    t->tpm = nuage__pg_int(r, i, 2);
    t->rpm = nuage__pg_int(r, i, 3);
    t->weight = strtod(PQgetvalue(r, i, 4), NULL);
    t->created_ms = nuage__pg_int(r, i, 5);
}

static int pg_tenant_one(nuage_store *s, const char *sql, nuage__pgargs *a, nuage_tenant *out,
                         const char *what) {
    PGresult *r;
    int rc = nuage__pg_query(s, sql, a, &r, "tenant lookup");
    if (rc) return rc;
    if (PQntuples(r) < 1) rc = nuage__store_fail(NUAGE_E_RANGE, "no tenant %s", what);
    else if (out) pg_tenant_row(r, 0, out);
    PQclear(r);
    return rc;
}

int nuage__pg_tenant_by_name_locked(nuage_store *s, const char *name, nuage_tenant *out) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, name);
    char what[96];
    snprintf(what, sizeof what, "'%.64s'", name);
    return pg_tenant_one(s, "SELECT " PG_TENANT_COLS " FROM tenants WHERE name = $1", &a, out, what);
}

int nuage__pg_tenant_by_id_locked(nuage_store *s, int64_t id, nuage_tenant *out) {
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, id);
    char what[48];
    snprintf(what, sizeof what, "with id %lld", (long long)id);
    return pg_tenant_one(s, "SELECT " PG_TENANT_COLS " FROM tenants WHERE id = $1", &a, out, what);
}

int nuage__pg_tenant_create(nuage_store *s, const char *name, int64_t tpm, int64_t rpm, double weight,
                            nuage_tenant *out) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, name);
    nuage__pg_i64(&a, tpm);
    nuage__pg_i64(&a, rpm);
    nuage__pg_dbl(&a, weight);
    nuage__pg_i64(&a, nuage__store_now_ms());
    pthread_mutex_lock(&s->mu);
    PGresult *r;
    int rc = nuage__pg_query(s, "INSERT INTO tenants(name, tpm, rpm, weight, created_ms) VALUES($1, $2, $3, $4, $5)"
                             " RETURNING " PG_TENANT_COLS, &a, &r, "create tenant");
    if (rc == NUAGE_E_STATE) rc = nuage__store_fail(NUAGE_E_STATE, "tenant '%s' already exists", name);
    if (!rc) {
        if (out) pg_tenant_row(r, 0, out);
        PQclear(r);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Caller (nuage_store_tenant_update) checked the values. */
int nuage__pg_tenant_update(nuage_store *s, const char *name, int64_t tpm, int64_t rpm, double weight,
                            nuage_tenant *out) {
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, tpm);
    nuage__pg_i64(&a, rpm);
    nuage__pg_dbl(&a, weight);
    nuage__pg_txt(&a, name);
    pthread_mutex_lock(&s->mu);
    PGresult *r;
    int rc = nuage__pg_query(s, "UPDATE tenants SET tpm = $1, rpm = $2, weight = $3 WHERE name = $4"
                             " RETURNING " PG_TENANT_COLS, &a, &r, "update tenant");
    if (!rc) {
        if (PQntuples(r) < 1) rc = nuage__store_fail(NUAGE_E_RANGE, "no tenant '%.64s'", name);
        else if (out) pg_tenant_row(r, 0, out);
        PQclear(r);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_tenant_list(nuage_store *s, nuage_tenant **out, int *n) {
    pthread_mutex_lock(&s->mu);
    PGresult *r;
    int rc = nuage__pg_query(s, "SELECT " PG_TENANT_COLS " FROM tenants ORDER BY name", NULL, &r, "list tenants");
    if (!rc) rc = nuage__pg_collect(r, sizeof **out, pg_tenant_row, (void **)out, n);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_tenant_delete(nuage_store *s, const char *name) {
    pthread_mutex_lock(&s->mu);
    nuage_tenant t;
    nuage__pgargs a = {0};
    int rc = nuage__pg_exec(s, "BEGIN");
    if (rc) goto out;
    if ((rc = nuage__pg_tenant_by_name_locked(s, name, &t))) goto fail;
    nuage__pg_i64(&a, t.id);
    if ((rc = nuage__pg_run(s, "UPDATE api_keys SET revoked = 1 WHERE tenant_id = $1", &a, NULL,
                            "revoke tenant keys")))
        goto fail;
    if ((rc = nuage__pg_run(s, "DELETE FROM tenants WHERE id = $1", &a, NULL, "delete tenant"))) goto fail;
    if ((rc = nuage__pg_exec(s, "COMMIT"))) goto fail;
    goto out;
fail:
    nuage__pg_rollback(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- API key rows ------------------------------------------------------------------------ */

#define PG_KEY_COLS "k.id, k.kid, k.tenant_id, k.deployments, k.expires_ms, k.created_ms, k.revoked, k.admin"

static void pg_key_row(PGresult *r, int i, void *elem) {
    nuage_key *k = elem;
    memset(k, 0, sizeof *k);
    k->id = nuage__pg_int(r, i, 0);
    char kid[16];
    nuage__pg_text(r, i, 1, kid, sizeof kid);
    snprintf(k->prefix, sizeof k->prefix, "nk-%.8s", kid);
    k->tenant_id = nuage__pg_int(r, i, 2);
    nuage__pg_text(r, i, 3, k->deployments, sizeof k->deployments);
    k->expires_ms = nuage__pg_int(r, i, 4);
    k->created_ms = nuage__pg_int(r, i, 5);
    k->revoked = nuage__pg_int(r, i, 6) != 0;
    k->admin = nuage__pg_int(r, i, 7) != 0;
}

int nuage__pg_key_insert(nuage_store *s, const char *tenant, const char *kid, const unsigned char *salt,
                         size_t salt_len, const unsigned char *hash, size_t hash_len, const char *deployments,
                         int64_t expires_ms, bool admin, nuage_key *out) {
    pthread_mutex_lock(&s->mu);
    nuage_tenant t = {0};
    int rc = 0;
    if (tenant && (rc = nuage__pg_tenant_by_name_locked(s, tenant, &t))) goto out;
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, kid);
    nuage__pg_i64(&a, t.id);
    nuage__pg_bin(&a, salt, salt_len);
    nuage__pg_bin(&a, hash, hash_len);
    nuage__pg_txt(&a, deployments);
    nuage__pg_i64(&a, expires_ms);
    nuage__pg_i64(&a, nuage__store_now_ms());
    nuage__pg_i64(&a, admin ? 1 : 0);
    PGresult *r;
    /* A clash of two random 8-character ids (1 in 2e14) fails here too. */
    rc = nuage__pg_query(s, "INSERT INTO api_keys AS k(kid, tenant_id, salt, hash, deployments, expires_ms,"
                         " created_ms, admin) VALUES($1, $2, $3, $4, $5, $6, $7, $8) RETURNING " PG_KEY_COLS,
                         &a, &r, "create key");
    if (!rc) {
        if (out) pg_key_row(r, 0, out);
        PQclear(r);
    }
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_key_lookup(nuage_store *s, const char *kid, nuage_key *k, unsigned char *salt, size_t salt_len,
                         unsigned char *hash, size_t hash_len, nuage_tenant *t) {
    nuage__pgargs a = {0};
    nuage__pg_txt(&a, kid);
    /* One round trip: the key row, its salt and hash (hex) and its tenant. */
    pthread_mutex_lock(&s->rmu);
    PGresult *r;
    int rc = nuage__pg_query_on(s->pgr,
                                "SELECT " PG_KEY_COLS ", encode(k.salt, 'hex'), encode(k.hash, 'hex'),"
                                " t.id, t.name, t.tpm, t.rpm, t.weight, t.created_ms"
                                " FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id WHERE k.kid = $1",
                                &a, 0, &r, "verify key");
    pthread_mutex_unlock(&s->rmu);
    if (rc) return rc;
    if (PQntuples(r) < 1) {
        PQclear(r);
        return nuage__store_fail(NUAGE_E_RANGE, "invalid API key");
    }
    pg_key_row(r, 0, k);
    memset(t, 0, sizeof *t);
    if (k->tenant_id != 0) {
        if (PQgetisnull(r, 0, 10)) {
            PQclear(r);
            return nuage__store_fail(NUAGE_E_RANGE, "invalid API key");
        }
        t->id = nuage__pg_int(r, 0, 10);
        nuage__pg_text(r, 0, 11, t->name, sizeof t->name);
        t->tpm = nuage__pg_int(r, 0, 12);
        t->rpm = nuage__pg_int(r, 0, 13);
        t->weight = strtod(PQgetvalue(r, 0, 14), NULL);
        t->created_ms = nuage__pg_int(r, 0, 15);
    }
    const char *hx[2] = {PQgetvalue(r, 0, 8), PQgetvalue(r, 0, 9)};
    unsigned char *dst[2] = {salt, hash};
    size_t want[2] = {salt_len, hash_len};
    for (int j = 0; j < 2; j++) {
        if (strlen(hx[j]) != 2 * want[j]) {
            PQclear(r);
            return nuage__store_fail(NUAGE_E_FORMAT, "corrupt key row %lld", (long long)k->id);
        }
        for (size_t b = 0; b < want[j]; b++) {
            unsigned v = 0;
            sscanf(hx[j] + 2 * b, "%2x", &v);
            dst[j][b] = (unsigned char)v;
        }
    }
    PQclear(r);
    return 0;
}

int nuage__pg_key_list(nuage_store *s, const char *tenant, nuage_key **out, int *n) {
    pthread_mutex_lock(&s->mu);
    nuage_tenant t;
    nuage__pgargs a = {0};
    PGresult *r;
    int rc = 0;
    if (tenant) {
        if ((rc = nuage__pg_tenant_by_name_locked(s, tenant, &t))) goto out;
        nuage__pg_i64(&a, t.id);
        rc = nuage__pg_query(s, "SELECT " PG_KEY_COLS " FROM api_keys k WHERE tenant_id = $1 ORDER BY id", &a, &r,
                             "list keys");
    } else {
        rc = nuage__pg_query(s, "SELECT " PG_KEY_COLS " FROM api_keys k ORDER BY id", NULL, &r, "list keys");
    }
    if (!rc) rc = nuage__pg_collect(r, sizeof **out, pg_key_row, (void **)out, n);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__pg_key_revoke_where(nuage_store *s, bool by_row, const char *value, int *changed) {
    nuage__pgargs a = {0};
    char kid[16];
    if (by_row) {
        nuage__pg_i64(&a, strtoll(value, NULL, 10));
    } else {
        snprintf(kid, sizeof kid, "%.8s", value);
        nuage__pg_txt(&a, kid);
    }
    int64_t k = 0;
    int rc = nuage__pg_run(s, by_row ? "UPDATE api_keys SET revoked = 1 WHERE id = $1"
                                     : "UPDATE api_keys SET revoked = 1 WHERE kid = $1",
                           &a, &k, "revoke key");
    if (!rc) *changed = (int)k;
    return rc;
}

int nuage__pg_key_count(nuage_store *s) {
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, nuage__store_now_ms());
    pthread_mutex_lock(&s->mu);
    PGresult *r;
    int rc = nuage__pg_query(s, "SELECT COUNT(*) FROM api_keys WHERE revoked = 0 AND"
                             " (expires_ms = 0 OR expires_ms > $1)", &a, &r, "count keys");
    if (!rc) {
        rc = (int)nuage__pg_int(r, 0, 0);
        PQclear(r);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- usage ------------------------------------------------------------------------------------ */

int nuage__pg_usage_insert_locked(nuage_store *s, const nuage_usage_record *u) {
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, u->time_ms);
    nuage__pg_i64(&a, u->tenant_id);
    nuage__pg_i64(&a, u->key_id);
    nuage__pg_field(&a, u->request_id, sizeof u->request_id);
    nuage__pg_field(&a, u->deployment, sizeof u->deployment);
    nuage__pg_field(&a, u->model_version, sizeof u->model_version);
    nuage__pg_i64(&a, u->prompt_tokens);
    nuage__pg_i64(&a, u->cached_tokens);
    nuage__pg_i64(&a, u->completion_tokens);
    nuage__pg_i64(&a, u->reasoning_tokens);
    nuage__pg_i64(&a, u->status);
    nuage__pg_dbl(&a, isfinite(u->latency_ms) ? u->latency_ms : 0);
    return nuage__pg_run(s, "INSERT INTO usage(time_ms, tenant_id, key_id, request_id, deployment, model_version,"
                         " prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, status, latency_ms)"
                         " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                         " ON CONFLICT (request_id) WHERE request_id <> '' DO NOTHING", &a, NULL, "add usage");
}

int nuage__pg_usage_ship(nuage_store *s, const nuage_usage_record *r, int n) {
    pthread_mutex_lock(&s->mu);
    int rc = nuage__pg_exec(s, "BEGIN");
    for (int i = 0; !rc && i < n; i++) rc = nuage__pg_usage_insert_locked(s, &r[i]);
    if (!rc) rc = nuage__pg_exec(s, "COMMIT");
    if (rc) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s", nuage_store_errmsg(s));
        nuage__pg_rollback(s);
        nuage__store_fail(rc, "%s", msg);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void pg_total_row(PGresult *r, int i, void *elem) {
    nuage_usage_total *t = elem;
    nuage__pg_text(r, i, 0, t->group, sizeof t->group);
    t->requests = nuage__pg_int(r, i, 1);
    t->prompt_tokens = nuage__pg_int(r, i, 2);
    t->cached_tokens = nuage__pg_int(r, i, 3);
    t->completion_tokens = nuage__pg_int(r, i, 4);
    t->reasoning_tokens = nuage__pg_int(r, i, 5);
}

int nuage__pg_usage_totals(nuage_store *s, int64_t tenant_id, int64_t since_ms, int64_t until_ms,
                           const char *by, nuage_usage_total **out, int *n) {
    const char *group, *tail;
    if (!by) {
        group = "'total'";
        tail = "";
    } else if (!strcmp(by, "day")) {
        group = "to_char(to_timestamp(u.time_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')";
        tail = " GROUP BY 1 ORDER BY 1";
    } else if (!strcmp(by, "deployment")) {
        group = "u.deployment";
        tail = " GROUP BY 1 ORDER BY 1";
    } else {
        /* by "tenant" (checked by the caller); a deleted tenant as "#<id>" */
        group = "COALESCE(MIN(t.name), '#' || u.tenant_id)";
        tail = " GROUP BY u.tenant_id ORDER BY 1";
    }
    char sql[768];
    snprintf(sql, sizeof sql,
             "SELECT %s, COUNT(*), COALESCE(SUM(u.prompt_tokens), 0), COALESCE(SUM(u.cached_tokens), 0),"
             " COALESCE(SUM(u.completion_tokens), 0), COALESCE(SUM(u.reasoning_tokens), 0)"
             " FROM usage u LEFT JOIN tenants t ON t.id = u.tenant_id"
             " WHERE ($1::bigint = 0 OR u.tenant_id = $1::bigint) AND u.time_ms >= $2::bigint"
             " AND ($3::bigint = 0 OR u.time_ms < $3::bigint)%s",
             group, tail);
    nuage__pgargs a = {0};
    nuage__pg_i64(&a, tenant_id);
    nuage__pg_i64(&a, since_ms);
    nuage__pg_i64(&a, until_ms);
    pthread_mutex_lock(&s->mu);
    PGresult *r;
    int rc = nuage__pg_query(s, sql, &a, &r, "usage totals");
    if (!rc) rc = nuage__pg_collect(r, sizeof **out, pg_total_row, (void **)out, n);
    pthread_mutex_unlock(&s->mu);
    return rc;
}
