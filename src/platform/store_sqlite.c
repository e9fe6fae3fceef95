/*
 * store_sqlite.c - the SQLite store (store.h): opening, schema migrations,
 * shared helpers and tenants. Keys, usage, files and batches live in
 * store_keys.c, store_usage.c and store_files.c.
 *
 * Durability. The file is in WAL mode with synchronous=FULL: every commit
 * appends to the write-ahead log and fsyncs it before returning, so a
 * usage record or batch line whose call returned 0 survives the process
 * being killed (and power loss). Each public call is one transaction
 * (BEGIN IMMEDIATE ... COMMIT when it writes several rows), so a crash
 * never leaves half an operation. WAL lets readers (the admin CLI listing
 * usage) run while the server writes; busy_timeout makes a writer wait for
 * the other process's write transaction instead of failing at once.
 *
 * Migrations. PRAGMA user_version holds the schema version; `migrations`
 * below lists the SQL that takes version i-1 to i. Opening runs the
 * missing steps in one IMMEDIATE transaction (so two processes opening an
 * old file at once migrate it once), and refuses a file whose version is
 * newer than this program knows, rather than misreading it. PRAGMA
 * application_id marks the file as nuage's, so pointing --db at some other
 * SQLite database fails clearly instead of adding tables to it.
 *   v1: tenants, api_keys, usage (without reasoning tokens)
 *   v2: usage.reasoning_tokens, files, batches, batch_lines
 *   v3: batches.metadata (the Batch API's metadata object, as JSON)
 *   v4: responses (stored Responses API responses)
 *   v5: replicas (the replica registry, store_replicas.c)
 *   v6: batches.lease_owner / lease_until (batch leases, store_files.c)
 *   v7: usage_request index (unique on PostgreSQL: store_journal.c)
 * store_pg.c keeps the same numbered steps in PostgreSQL's dialect.
 *
 * Backend choice: nuage_store_open hands a postgres:// URL to store_pg.c
 * (s->pg set; store_internal.h says how the calls dispatch) and strips a
 * "sqlite:" prefix; anything else is a SQLite file path.
 *
 * Concurrency inside one process: one connection and one mutex (store.h),
 * plus a read-only connection with its own mutex for key verification, so
 * authenticating a request never waits for another's usage fsync.
 * The statements are prepared per call: a few microseconds against a
 * millisecond fsync, and no statement cache to keep consistent.
 */
#define _GNU_SOURCE
#include "platform/store_internal.h"
#include "engine/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NUAGE_STORE_APP_ID 0x6e756167  /* "nuag" */

/* ---- errors and small helpers ------------------------------------------------ */

static _Thread_local char tls_err[512];

int nuage__store_fail(int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_err, sizeof tls_err, fmt, ap);
    va_end(ap);
    return rc;
}

int nuage__store_sqlerr(nuage_store *s, const char *what) {
    return nuage__store_fail(NUAGE_E_IO, "%s: %s", what, sqlite3_errmsg(s->db));
}

const char *nuage_store_errmsg(nuage_store *s) {
    (void)s;
    return tls_err[0] ? tls_err : "no error";
}

int64_t nuage__store_now_ms(void) { return nuage__wall_ms(); }

int nuage__store_random(void *buf, size_t n) {
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return nuage__store_fail(NUAGE_E_IO, "getrandom: %s", strerror(errno));
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int nuage__store_random_base62(char *out, size_t n) {
    static const char alphabet[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char buf[64];
    size_t k = 0;
    while (k < n) {
        int rc = nuage__store_random(buf, sizeof buf);
        if (rc) return rc;
        /* Rejection sampling: 248 = 4 * 62, so byte % 62 is uniform below it. */
        for (size_t i = 0; i < sizeof buf && k < n; i++)
            if (buf[i] < 248) out[k++] = alphabet[buf[i] % 62];
    }
    out[n] = 0;
    return 0;
}

int nuage__store_prepare(nuage_store *s, const char *sql, sqlite3_stmt **st) {
    *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return nuage__store_sqlerr(s, "prepare");
    return 0;
}

int nuage__store_run(nuage_store *s, sqlite3_stmt *st, const char *what) {
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : nuage__store_sqlerr(s, what);
    sqlite3_finalize(st);
    return rc;
}

int nuage__store_exec(nuage_store *s, const char *sql) {
    if (s->pg) return nuage__pg_exec(s, sql);
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        nuage__store_fail(NUAGE_E_IO, "%s", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return NUAGE_E_IO;
    }
    return 0;
}

int nuage__store_begin(nuage_store *s) { return nuage__store_exec(s, s->pg ? "BEGIN" : "BEGIN IMMEDIATE"); }
int nuage__store_commit(nuage_store *s) { return nuage__store_exec(s, "COMMIT"); }

void nuage__store_rollback(nuage_store *s) {
    if (s->pg) {
        nuage__pg_rollback(s);
        return;
    }
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

void nuage__store_col_text(sqlite3_stmt *st, int i, char *buf, size_t cap) {
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(buf, cap, "%s", t ? (const char *)t : "");
}

int nuage__store_bind_field(sqlite3_stmt *st, int i, const char *field, size_t cap) {
    return sqlite3_bind_text(st, i, field, (int)strnlen(field, cap), SQLITE_TRANSIENT);
}

/* ---- default path ------------------------------------------------------------- */

/* mkdir -p the directory part of path (mode 0700 for new ones). */
static int make_parent_dirs(const char *path) {
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return NUAGE_E_RANGE;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0;
    *slash = 0;
    for (char *p = dir + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(dir, 0700) != 0 && errno != EEXIST)
                return nuage__store_fail(NUAGE_E_IO, "cannot create %s: %s", dir, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    return 0;
}

int nuage_store_default_path(char *buf, size_t cap) {
    const char *env = getenv("NUAGE_DB");
    int len;
    if (env && *env) {
        len = snprintf(buf, cap, "%s", env);
    } else {
        const char *xdg = getenv("XDG_DATA_HOME");
        const char *home = getenv("HOME");
        if (xdg && xdg[0] == '/') len = snprintf(buf, cap, "%s/nuage/nuage.db", xdg);
        else if (home && *home) len = snprintf(buf, cap, "%s/.local/share/nuage/nuage.db", home);
        else return nuage__store_fail(NUAGE_E_INVAL, "no database path: set NUAGE_DB or HOME");
    }
    if (len < 0 || (size_t)len >= cap)
        return nuage__store_fail(NUAGE_E_RANGE, "database path too long");
    if (nuage__store_is_pg_url(buf)) return 0;
    return make_parent_dirs(!strncmp(buf, "sqlite:", 7) ? buf + 7 : buf);
}

/* ---- open and migrations -------------------------------------------------------- */

static const char *const migrations[] = {
    /* v1 */
    "CREATE TABLE tenants("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
    "  tpm INTEGER NOT NULL DEFAULT 0, rpm INTEGER NOT NULL DEFAULT 0,"
    "  weight REAL NOT NULL DEFAULT 1.0, created_ms INTEGER NOT NULL);"
    "CREATE TABLE api_keys("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, kid TEXT NOT NULL UNIQUE,"
    "  tenant_id INTEGER NOT NULL DEFAULT 0, salt BLOB NOT NULL, hash BLOB NOT NULL,"
    "  deployments TEXT NOT NULL DEFAULT '', expires_ms INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,"
    "  admin INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX api_keys_tenant ON api_keys(tenant_id);"
    "CREATE TABLE usage("
    "  id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, tenant_id INTEGER NOT NULL,"
    "  key_id INTEGER NOT NULL, request_id TEXT NOT NULL, deployment TEXT NOT NULL,"
    "  model_version TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,"
    "  cached_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,"
    "  status INTEGER NOT NULL, latency_ms REAL NOT NULL);"
    "CREATE INDEX usage_tenant_time ON usage(tenant_id, time_ms);"
    "CREATE INDEX usage_time ON usage(time_ms);",
    /* v2 */
    "ALTER TABLE usage ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE files("
    "  id TEXT PRIMARY KEY, tenant_id INTEGER NOT NULL, filename TEXT NOT NULL,"
    "  purpose TEXT NOT NULL, bytes INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    "  data BLOB NOT NULL);"
    "CREATE INDEX files_tenant ON files(tenant_id, created_ms);"
    "CREATE TABLE batches("
    "  id TEXT PRIMARY KEY, tenant_id INTEGER NOT NULL, endpoint TEXT NOT NULL,"
    "  input_file_id TEXT NOT NULL, output_file_id TEXT NOT NULL DEFAULT '',"
    "  error_file_id TEXT NOT NULL DEFAULT '', completion_window TEXT NOT NULL,"
    "  status TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    "  in_progress_ms INTEGER NOT NULL DEFAULT 0, finalizing_ms INTEGER NOT NULL DEFAULT 0,"
    "  completed_ms INTEGER NOT NULL DEFAULT 0, cancelled_ms INTEGER NOT NULL DEFAULT 0,"
    "  failed_ms INTEGER NOT NULL DEFAULT 0, expires_ms INTEGER NOT NULL DEFAULT 0,"
    "  total INTEGER NOT NULL DEFAULT 0, completed INTEGER NOT NULL DEFAULT 0,"
    "  failed INTEGER NOT NULL DEFAULT 0, deployment TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX batches_tenant ON batches(tenant_id, created_ms);"
    "CREATE TABLE batch_lines("
    "  batch_id TEXT NOT NULL, line INTEGER NOT NULL, is_error INTEGER NOT NULL,"
    "  jsonl TEXT NOT NULL, PRIMARY KEY(batch_id, line)) WITHOUT ROWID;",
    /* v3 */
    "ALTER TABLE batches ADD COLUMN metadata TEXT NOT NULL DEFAULT '';",
    /* v4: stored responses (Responses API, store_responses.c) */
    "CREATE TABLE responses("
    "  id TEXT PRIMARY KEY, tenant_id INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL, status TEXT NOT NULL, previous_id TEXT NOT NULL DEFAULT '',"
    "  object TEXT NOT NULL, input TEXT NOT NULL);"
    "CREATE INDEX responses_expires ON responses(expires_ms);",
    /* v5: the replica registry (store_replicas.c) */
    "CREATE TABLE replicas("
    "  id TEXT PRIMARY KEY, address TEXT NOT NULL, deployments TEXT NOT NULL DEFAULT '',"
    "  load REAL NOT NULL DEFAULT 0, version TEXT NOT NULL DEFAULT '',"
    "  started_ms INTEGER NOT NULL, heartbeat_ms INTEGER NOT NULL, gone INTEGER NOT NULL DEFAULT 0);",
    /* v6: batch leases (nuage_store_batch_claim: one replica runs a job at a time) */
    "ALTER TABLE batches ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE batches ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;",
    /* v7: usage by request id (PostgreSQL's is unique: the journal ships
     * idempotently; one server never ships, so here it is a plain index) */
    "CREATE INDEX usage_request ON usage(request_id);",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* Read an integer PRAGMA; 0 and *v, or an error. */
static int pragma_int(nuage_store *s, const char *sql, int64_t *v) {
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, sql, &st);
    if (rc) return rc;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = nuage__store_sqlerr(s, sql);
        sqlite3_finalize(st);
        return rc;
    }
    *v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* Bring the schema to N_MIGRATIONS (or refuse a newer one). */
static int migrate(nuage_store *s, const char *path) {
    int64_t version = 0, app = 0;
    int rc = pragma_int(s, "PRAGMA user_version", &version);
    if (rc) {
        return nuage__store_fail(NUAGE_E_FORMAT, "%s: not a usable SQLite database (%s)", path,
                                 sqlite3_errmsg(s->db));
    }
    if (version > N_MIGRATIONS) {
        return nuage__store_fail(NUAGE_E_UNSUPPORTED,
                                 "%s: schema version %lld is newer than this nuage supports "
                                 "(%d); upgrade nuage", path, (long long)version, N_MIGRATIONS);
    }
    if (version == N_MIGRATIONS) goto check_app;
    if ((rc = nuage__store_begin(s))) return rc;
    /* Re-read under the write lock: another process may have migrated. */
    if ((rc = pragma_int(s, "PRAGMA user_version", &version))) goto fail_rollback;
    if (version > 0 && (rc = pragma_int(s, "PRAGMA application_id", &app)) == 0 &&
        app != NUAGE_STORE_APP_ID) {
        rc = nuage__store_fail(NUAGE_E_FORMAT, "%s: not a nuage database", path);
        goto fail_rollback;
    }
    if (rc) goto fail_rollback;
    int64_t n_tables = 0;
    if (version == 0 &&
        (rc = pragma_int(s, "SELECT COUNT(*) FROM sqlite_schema", &n_tables)) == 0 &&
        n_tables > 0) {
        rc = nuage__store_fail(NUAGE_E_FORMAT, "%s: not a nuage database (it has other tables)",
                               path);
        goto fail_rollback;
    }
    if (rc) goto fail_rollback;
    for (int v = (int)version; v < N_MIGRATIONS; v++) {
        if ((rc = nuage__store_exec(s, migrations[v]))) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", nuage_store_errmsg(s));
            rc = nuage__store_fail(rc, "%s: migration to schema version %d failed: %s", path,
                                   v + 1, msg);
            goto fail_rollback;
        }
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if ((rc = nuage__store_exec(s, sql))) goto fail_rollback;
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d", NUAGE_STORE_APP_ID);
    if ((rc = nuage__store_exec(s, sql))) goto fail_rollback;
    if ((rc = nuage__store_commit(s))) goto fail_rollback;
    return 0;

check_app:
    if ((rc = pragma_int(s, "PRAGMA application_id", &app))) return rc;
    if (app != NUAGE_STORE_APP_ID)
        return nuage__store_fail(NUAGE_E_FORMAT, "%s: not a nuage database", path);
    return 0;

fail_rollback:
    nuage__store_rollback(s);
    return rc;
}

int nuage_store_open(const char *path, nuage_store **out, char *err, size_t errlen) {
    int rc;
    if (err && errlen) err[0] = 0;
    if (!out) return NUAGE_E_INVAL;
    *out = NULL;
    if (!path || !*path) {
        rc = nuage__store_fail(NUAGE_E_INVAL, "no database path");
        goto fail;
    }
    if (nuage__store_is_pg_url(path)) {
        nuage_store *p = calloc(1, sizeof *p);
        if (!p) {
            rc = nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
            goto fail;
        }
        if ((rc = nuage__pg_open(p, path))) {
            free(p);
            goto fail;
        }
        *out = p;
        return 0;
    }
    if (!strncmp(path, "sqlite:", 7)) path += 7;
    /* The file holds key hashes and usage: create it private, before SQLite
     * does, so the -wal and -shm files (which copy the database file's
     * mode) are private too. An empty file is an empty database. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
    nuage_store *s = calloc(1, sizeof *s);
    if (!s) {
        rc = nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
        goto fail;
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        rc = nuage__store_fail(NUAGE_E_NOMEM, "mutex");
        goto fail;
    }
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = nuage__store_fail(NUAGE_E_IO, "%s: %s", path,
                               s->db ? sqlite3_errmsg(s->db) : "cannot open");
        goto fail_close;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 10000);
    /* journal_mode answers the mode in force: anything but "wal" means the
     * file system refused it (or it is not a database at all). */
    sqlite3_stmt *st;
    if ((rc = nuage__store_prepare(s, "PRAGMA journal_mode=WAL", &st))) goto fail_close;
    int step = sqlite3_step(st);
    const unsigned char *mode = step == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (!mode || strcmp((const char *)mode, "wal") != 0) {
        rc = nuage__store_fail(step == SQLITE_ROW ? NUAGE_E_IO : NUAGE_E_FORMAT,
                               "%s: cannot use WAL mode (%s)", path,
                               mode ? (const char *)mode : sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        goto fail_close;
    }
    sqlite3_finalize(st);
    if ((rc = nuage__store_exec(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON")))
        goto fail_close;
    if ((rc = migrate(s, path))) goto fail_close;
    /* Uploads (store_blob.c): files_staging, the ids of files not visible
     * yet, and file_chunks, the contents of uploaded files. Tables made
     * outside the numbered migrations, as they only add to the schema. */
    if ((rc = nuage__store_exec(s, "CREATE TABLE IF NOT EXISTS files_staging("
                                   "id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL);"
                                   "CREATE TABLE IF NOT EXISTS file_chunks(file_id TEXT NOT NULL,"
                                   " n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(file_id, n))")))
        goto fail_close;
    if (pthread_mutex_init(&s->rmu, NULL) != 0) {
        rc = nuage__store_fail(NUAGE_E_NOMEM, "mutex");
        goto fail_close;
    }
    if (sqlite3_open_v2(path, &s->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = nuage__store_fail(NUAGE_E_IO, "%s: %s (read connection)", path,
                               s->rdb ? sqlite3_errmsg(s->rdb) : "cannot open");
        goto fail_rdb;
    }
    sqlite3_extended_result_codes(s->rdb, 1);
    sqlite3_busy_timeout(s->rdb, 10000);
    *out = s;
    return 0;

fail_rdb:
    sqlite3_close_v2(s->rdb);
    pthread_mutex_destroy(&s->rmu);
fail_close:
    sqlite3_close_v2(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
fail:
    if (err && errlen) snprintf(err, errlen, "%s", nuage_store_errmsg(NULL));
    return rc;
}

void nuage_store_close(nuage_store *s) {
    if (!s) return;
    /* Usage records still waiting for the disk get a last try. */
    pthread_mutex_lock(&s->mu);
    nuage__store_usage_flush_locked(s);
    /* The journal's shipper makes its last shipment and stops. */
    nuage__journal_close(s->journal);
    s->journal = NULL;
    /* Still waiting (the journal refused them): straight to the store. */
    nuage__store_usage_flush_locked(s);
    free(s->pending);
    pthread_mutex_unlock(&s->mu);
    if (s->pg) {
        nuage__pg_close(s);
        free(s);
        return;
    }
    sqlite3_close_v2(s->rdb);
    pthread_mutex_destroy(&s->rmu);
    sqlite3_close_v2(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int nuage_store_schema_version(nuage_store *s) {
    if (!s) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_schema_version(s);
    pthread_mutex_lock(&s->mu);
    int64_t v = 0;
    int rc = pragma_int(s, "PRAGMA user_version", &v);
    pthread_mutex_unlock(&s->mu);
    return rc ? rc : (int)v;
}

/* ---- tenants ---------------------------------------------------------------------- */

/* Names: 1..63 of [A-Za-z0-9._-], not starting with '-' or '.'. */
static bool valid_name(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= sizeof((nuage_tenant *)0)->name || name[0] == '-' || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

#define TENANT_COLS "id, name, tpm, rpm, weight, created_ms"

static void tenant_row(sqlite3_stmt *st, nuage_tenant *t) {
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    nuage__store_col_text(st, 1, t->name, sizeof t->name);
    t->tpm = sqlite3_column_int64(st, 2);
    t->rpm = sqlite3_column_int64(st, 3);
    t->weight = sqlite3_column_double(st, 4);
    t->created_ms = sqlite3_column_int64(st, 5);
}

static void tenant_row_v(sqlite3_stmt *st, void *elem) { tenant_row(st, elem); }

/* One tenant by a bound parameter: 0, NUAGE_E_RANGE or an error. */
static int tenant_one(nuage_store *s, sqlite3_stmt *st, nuage_tenant *out, const char *what) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (out) tenant_row(st, out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = nuage__store_fail(NUAGE_E_RANGE, "no tenant %s", what);
    } else {
        rc = nuage__store_sqlerr(s, "tenant lookup");
    }
    sqlite3_finalize(st);
    return rc;
}

int nuage__store_tenant_by_name_locked(nuage_store *s, const char *name, nuage_tenant *out) {
    if (s->pg) return nuage__pg_tenant_by_name_locked(s, name, out);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "SELECT " TENANT_COLS " FROM tenants WHERE name = ?", &st);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    char what[96];
    snprintf(what, sizeof what, "'%.64s'", name);
    return tenant_one(s, st, out, what);
}

int nuage__store_tenant_by_id_locked(nuage_store *s, int64_t id, nuage_tenant *out) {
    if (s->pg) return nuage__pg_tenant_by_id_locked(s, id, out);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "SELECT " TENANT_COLS " FROM tenants WHERE id = ?", &st);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    char what[48];
    snprintf(what, sizeof what, "with id %lld", (long long)id);
    return tenant_one(s, st, out, what);
}

int nuage_store_tenant_create(nuage_store *s, const char *name, int64_t tpm, int64_t rpm,
                              double weight, nuage_tenant *out) {
    if (!s) return NUAGE_E_INVAL;
    if (!valid_name(name))
        return nuage__store_fail(NUAGE_E_INVAL, "invalid tenant name '%.64s' (1-63 of "
                                 "A-Z a-z 0-9 . _ -, not starting with - or .)", name ? name : "");
    if (tpm < 0 || rpm < 0)
        return nuage__store_fail(NUAGE_E_INVAL, "tpm and rpm must be >= 0 (0 = unlimited)");
    if (!(weight > 0) || !isfinite(weight))
        return nuage__store_fail(NUAGE_E_INVAL, "weight must be a positive number");
    if (s->pg) return nuage__pg_tenant_create(s, name, tpm, rpm, weight, out);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "INSERT INTO tenants(name, tpm, rpm, weight, created_ms) "
                                  "VALUES(?, ?, ?, ?, ?) RETURNING " TENANT_COLS, &st);
    if (rc) goto out;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, tpm);
    sqlite3_bind_int64(st, 3, rpm);
    sqlite3_bind_double(st, 4, weight);
    sqlite3_bind_int64(st, 5, nuage__store_now_ms());
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        if (out) tenant_row(st, out);
        step = sqlite3_step(st);
    }
    if (step == SQLITE_DONE) {
        rc = 0;
    } else if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE) {
        rc = nuage__store_fail(NUAGE_E_STATE, "tenant '%s' already exists", name);
    } else {
        rc = nuage__store_sqlerr(s, "create tenant");
    }
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_tenant_update(nuage_store *s, const char *name, int64_t tpm, int64_t rpm, double weight,
                              nuage_tenant *out) {
    if (!s || !name) return NUAGE_E_INVAL;
    if (tpm < 0 || rpm < 0)
        return nuage__store_fail(NUAGE_E_INVAL, "tpm and rpm must be >= 0 (0 = unlimited)");
    if (!(weight > 0) || !isfinite(weight))
        return nuage__store_fail(NUAGE_E_INVAL, "weight must be a positive number");
    if (s->pg) return nuage__pg_tenant_update(s, name, tpm, rpm, weight, out);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "UPDATE tenants SET tpm = ?, rpm = ?, weight = ? WHERE name = ? "
                                  "RETURNING " TENANT_COLS, &st);
    if (rc) goto out;
    sqlite3_bind_int64(st, 1, tpm);
    sqlite3_bind_int64(st, 2, rpm);
    sqlite3_bind_double(st, 3, weight);
    sqlite3_bind_text(st, 4, name, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    bool found = step == SQLITE_ROW;
    if (found) {
        if (out) tenant_row(st, out);
        step = sqlite3_step(st);
    }
    if (step != SQLITE_DONE) rc = nuage__store_sqlerr(s, "update tenant");
    else if (!found) rc = nuage__store_fail(NUAGE_E_RANGE, "no tenant '%.64s'", name);
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_tenant_get(nuage_store *s, const char *name, nuage_tenant *out) {
    if (!s || !name) return NUAGE_E_INVAL;
    pthread_mutex_lock(&s->mu);
    int rc = nuage__store_tenant_by_name_locked(s, name, out);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_tenant_get_id(nuage_store *s, int64_t id, nuage_tenant *out) {
    if (!s) return NUAGE_E_INVAL;
    pthread_mutex_lock(&s->mu);
    int rc = nuage__store_tenant_by_id_locked(s, id, out);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage__store_collect(nuage_store *s, sqlite3_stmt *st, size_t elem_size,
                         void (*row)(sqlite3_stmt *st, void *elem), const char *what,
                         void **out, int *n) {
    char *arr = NULL;
    int k = 0, cap = 0, rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == cap) {
            cap = cap ? cap * 2 : 16;
            char *bigger = realloc(arr, (size_t)cap * elem_size);
            if (!bigger) {
                rc = nuage__store_fail(NUAGE_E_NOMEM, "out of memory");
                goto fail;
            }
            arr = bigger;
        }
        memset(arr + (size_t)k * elem_size, 0, elem_size);
        row(st, arr + (size_t)k++ * elem_size);
    }
    if (step != SQLITE_DONE) {
        rc = nuage__store_sqlerr(s, what);
        goto fail;
    }
    sqlite3_finalize(st);
    *out = arr;
    *n = k;
    return 0;

fail:
    sqlite3_finalize(st);
    free(arr);
    return rc;
}

int nuage_store_tenant_list(nuage_store *s, nuage_tenant **out, int *n) {
    if (!s || !out || !n) return NUAGE_E_INVAL;
    *out = NULL;
    *n = 0;
    if (s->pg) return nuage__pg_tenant_list(s, out, n);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "SELECT " TENANT_COLS " FROM tenants ORDER BY name", &st);
    if (rc) goto out;
    rc = nuage__store_collect(s, st, sizeof(**out), tenant_row_v, "list tenants", (void **)out, n);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_tenant_delete(nuage_store *s, const char *name) {
    if (!s || !name) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_tenant_delete(s, name);
    pthread_mutex_lock(&s->mu);
    nuage_tenant t;
    sqlite3_stmt *st = NULL;
    int rc = nuage__store_begin(s);
    if (rc) goto out;
    if ((rc = nuage__store_tenant_by_name_locked(s, name, &t))) goto fail_rollback;
    if ((rc = nuage__store_prepare(s, "UPDATE api_keys SET revoked = 1 WHERE tenant_id = ?",
                                   &st)))
        goto fail_rollback;
    sqlite3_bind_int64(st, 1, t.id);
    rc = nuage__store_run(s, st, "revoke tenant keys");
    st = NULL;
    if (rc) goto fail_rollback;
    if ((rc = nuage__store_prepare(s, "DELETE FROM tenants WHERE id = ?", &st)))
        goto fail_rollback;
    sqlite3_bind_int64(st, 1, t.id);
    rc = nuage__store_run(s, st, "delete tenant");
    st = NULL;
    if (rc) goto fail_rollback;
    rc = nuage__store_commit(s);
    if (rc) goto fail_rollback;
    goto out;

fail_rollback:
    sqlite3_finalize(st);
    nuage__store_rollback(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}
