/*
 * store_journal.c - a replica's local usage journal (store.h "usage
 * journal"): usage records of a PostgreSQL store go first to a local
 * SQLite file, and a shipper thread moves them to PostgreSQL in batches.
 *
 * Why. Without it a usage record is written straight to PostgreSQL, and
 * one that cannot be written waits in memory: a replica killed during a
 * database outage loses those records, and meanwhile every new metered
 * request is refused. With the journal the durable write is local (an
 * fsync'd SQLite commit, the same write a single server does), so a
 * request is billed the moment it ends whatever the database is doing;
 * PostgreSQL being down only makes the journal grow. Billing still fails
 * closed: when the journal itself cannot be written (disk full, I/O
 * error) the record waits in the store's in-memory queue exactly as on a
 * single server (store_usage.c), and the server answers new metered
 * requests 503 metering_unavailable until the journal accepts writes.
 *
 * Exactly once. Every record has a request id (one is made up for a
 * record without one), and PostgreSQL's usage table has a unique index on
 * it (schema v7); the shipper inserts with ON CONFLICT DO NOTHING in one
 * transaction per batch and deletes a batch from the journal only after
 * PostgreSQL committed it. A batch whose COMMIT met a broken connection
 * (it may or may not have committed) is simply shipped again: the rows
 * that made it are skipped. A replica that dies leaves its journal file;
 * the next start with the same --journal ships what is left.
 *
 * Threads and locks. j->mu guards the journal connection and counters.
 * Writers (nuage_store_usage_add, with s->mu held) take j->mu inside
 * s->mu; the shipper takes j->mu alone and ships on a store handle of its
 * own (its own PostgreSQL connection and mutex), never s->mu, so a slow
 * or dead database never blocks a usage write.
 */
#define _GNU_SOURCE
#include "platform/store_internal.h"
#include "engine/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHIP_BATCH 256
#define SHIP_IDLE_MS 200   /* look at the journal at least this often */
#define SHIP_RETRY_MS 1000 /* after a failed shipment */

struct nuage__journal {
    sqlite3 *db;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    nuage_store *ship; /* own handle on the PostgreSQL database */
    pthread_t thr;
    bool started, stop;
    int64_t queued;   /* rows in the journal */
    int64_t shipped;  /* rows shipped (committed in PostgreSQL) since open */
    int64_t failures; /* failed shipments since open */
    int64_t fail_since_ms;
    char error[160]; /* the last shipment error; "" after a success */
    char path[1024];
};

static const char journal_schema[] =
    "CREATE TABLE IF NOT EXISTS journal("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, tenant_id INTEGER NOT NULL,"
    "  key_id INTEGER NOT NULL, request_id TEXT NOT NULL, deployment TEXT NOT NULL,"
    "  model_version TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL,"
    "  completion_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, status INTEGER NOT NULL,"
    "  latency_ms REAL NOT NULL)";

/* Wait on j->cv (j->mu held) for at most ms milliseconds. */
static void journal_wait(nuage__journal *j, int ms) {
    struct timespec ts = nuage__deadline_in(ms);
    pthread_cond_timedwait(&j->cv, &j->mu, &ts);
}

static int journal_exec(nuage__journal *j, const char *sql, const char *what) {
    char *msg = NULL;
    if (sqlite3_exec(j->db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    int rc = nuage__store_fail(NUAGE_E_IO, "usage journal %s: %s: %s", j->path, what,
                               msg ? msg : sqlite3_errmsg(j->db));
    sqlite3_free(msg);
    return rc;
}

int nuage__journal_insert_locked(nuage_store *s, const nuage_usage_record *r, int n) {
    nuage__journal *j = s->journal;
    pthread_mutex_lock(&j->mu);
    sqlite3_stmt *st = NULL;
    int rc = journal_exec(j, "BEGIN IMMEDIATE", "begin");
    if (rc) goto out;
    if (sqlite3_prepare_v2(j->db,
                           "INSERT INTO journal(time_ms, tenant_id, key_id, request_id, deployment, model_version,"
                           " prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, status, latency_ms)"
                           " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        goto fail_sql;
    for (int i = 0; i < n; i++) {
        sqlite3_reset(st);
        nuage__store_bind_usage(st, &r[i]);
        if (sqlite3_step(st) != SQLITE_DONE) goto fail_sql;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = journal_exec(j, "COMMIT", "commit"))) goto fail_rollback;
    j->queued += n;
    pthread_cond_signal(&j->cv);
    goto out;
fail_sql:
    rc = nuage__store_fail(NUAGE_E_IO, "usage journal %s: write: %s", j->path, sqlite3_errmsg(j->db));
    sqlite3_finalize(st);
fail_rollback:
    sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
out:
    pthread_mutex_unlock(&j->mu);
    return rc;
}

/* Read up to SHIP_BATCH of the oldest rows (j->mu held). Returns the
 * count (0 when empty, < 0 on error) with *last the highest seq. */
static int journal_read(nuage__journal *j, nuage_usage_record *out, int64_t *last) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db,
                           "SELECT seq, time_ms, tenant_id, key_id, request_id, deployment, model_version,"
                           " prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, status, latency_ms"
                           " FROM journal ORDER BY seq LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return NUAGE_E_IO;
    sqlite3_bind_int(st, 1, SHIP_BATCH);
    int n = 0, sr;
    while ((sr = sqlite3_step(st)) == SQLITE_ROW && n < SHIP_BATCH) {
        nuage_usage_record *u = &out[n++];
        memset(u, 0, sizeof *u);
        *last = sqlite3_column_int64(st, 0);
        u->time_ms = sqlite3_column_int64(st, 1);
        u->tenant_id = sqlite3_column_int64(st, 2);
        u->key_id = sqlite3_column_int64(st, 3);
        nuage__store_col_text(st, 4, u->request_id, sizeof u->request_id);
        nuage__store_col_text(st, 5, u->deployment, sizeof u->deployment);
        nuage__store_col_text(st, 6, u->model_version, sizeof u->model_version);
        u->prompt_tokens = sqlite3_column_int64(st, 7);
        u->cached_tokens = sqlite3_column_int64(st, 8);
        u->completion_tokens = sqlite3_column_int64(st, 9);
        u->reasoning_tokens = sqlite3_column_int64(st, 10);
        u->status = sqlite3_column_int(st, 11);
        u->latency_ms = sqlite3_column_double(st, 12);
    }
    sqlite3_finalize(st);
    return sr == SQLITE_ROW || sr == SQLITE_DONE ? n : NUAGE_E_IO;
}

/* One shipment: the oldest batch to PostgreSQL, then out of the journal.
 * Returns rows shipped (0: journal empty) or < 0 (error recorded). */
static int journal_ship_once(nuage__journal *j, nuage_usage_record *buf) {
    int64_t last = 0;
    pthread_mutex_lock(&j->mu);
    int n = journal_read(j, buf, &last);
    pthread_mutex_unlock(&j->mu);
    if (n <= 0) return n;
    /* Outside j->mu: writers keep appending while PostgreSQL commits. */
    int rc = nuage__pg_usage_ship(j->ship, buf, n);
    pthread_mutex_lock(&j->mu);
    if (rc) {
        snprintf(j->error, sizeof j->error, "%s", nuage_store_errmsg(j->ship));
        if (!j->fail_since_ms) j->fail_since_ms = nuage__store_now_ms();
        j->failures++;
        pthread_mutex_unlock(&j->mu);
        return rc;
    }
    /* Committed in PostgreSQL: now, and only now, out of the journal. A
     * failure here ships the rows again later (skipped by the index). */
    sqlite3_stmt *st = NULL;
    int dr = SQLITE_ERROR;
    if (sqlite3_prepare_v2(j->db, "DELETE FROM journal WHERE seq <= ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, last);
        dr = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (dr == SQLITE_DONE) j->queued = j->queued > n ? j->queued - n : 0;
    j->shipped += n;
    j->error[0] = 0;
    j->fail_since_ms = 0;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return n;
}

static void *journal_main(void *arg) {
    nuage__journal *j = arg;
    nuage_usage_record *buf = malloc(SHIP_BATCH * sizeof *buf);
    if (!buf) return NULL;
    bool was_failing = false;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        bool stop = j->stop;
        if (!stop && j->queued == 0) journal_wait(j, SHIP_IDLE_MS);
        stop = j->stop;
        pthread_mutex_unlock(&j->mu);
        int n = journal_ship_once(j, buf);
        if (n < 0) {
            if (!was_failing)
                fprintf(stderr, "nuage: usage journal: shipping to PostgreSQL failed (kept in %s, retried): %s\n",
                        j->path, j->error);
            was_failing = true;
            if (stop) break;
            pthread_mutex_lock(&j->mu);
            if (!j->stop) journal_wait(j, SHIP_RETRY_MS);
            pthread_mutex_unlock(&j->mu);
            continue;
        }
        if (was_failing) fprintf(stderr, "nuage: usage journal: shipping to PostgreSQL again\n");
        was_failing = false;
        if (stop && n == 0) break;
    }
    free(buf);
    return NULL;
}

int nuage_store_journal_open(nuage_store *s, const char *url, const char *path, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!s || !url || !path || !*path) return NUAGE_E_INVAL;
    int rc;
    if (!s->pg) {
        rc = nuage__store_fail(NUAGE_E_UNSUPPORTED, "a usage journal is for a PostgreSQL store");
        goto fail_msg;
    }
    if (s->journal) {
        rc = nuage__store_fail(NUAGE_E_STATE, "the store already has a usage journal");
        goto fail_msg;
    }
    nuage__journal *j = calloc(1, sizeof *j);
    if (!j) return NUAGE_E_NOMEM;
    snprintf(j->path, sizeof j->path, "%s", path);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    if (sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        rc = nuage__store_fail(NUAGE_E_IO, "usage journal %s: %s", path,
                               j->db ? sqlite3_errmsg(j->db) : "cannot open");
        goto fail_free;
    }
    sqlite3_busy_timeout(j->db, 5000);
    if ((rc = journal_exec(j, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", "pragmas")) ||
        (rc = journal_exec(j, journal_schema, "schema")))
        goto fail_free;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db, "SELECT count(*) FROM journal", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        j->queued = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if ((rc = nuage_store_open(url, &j->ship, NULL, 0))) goto fail_free;
    if (pthread_create(&j->thr, NULL, journal_main, j)) {
        rc = nuage__store_fail(NUAGE_E_NOMEM, "usage journal: cannot start the shipper thread");
        goto fail_free;
    }
    j->started = true;
    pthread_mutex_lock(&s->mu);
    s->journal = j;
    pthread_mutex_unlock(&s->mu);
    return 0;
fail_free:
    if (err && errlen) snprintf(err, errlen, "%s", nuage_store_errmsg(NULL));
    nuage_store_close(j->ship);
    sqlite3_close_v2(j->db);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
    return rc;
fail_msg:
    if (err && errlen) snprintf(err, errlen, "%s", nuage_store_errmsg(NULL));
    return rc;
}

int nuage_store_journal_drain(nuage_store *s, int timeout_ms) {
    if (!s) return NUAGE_E_INVAL;
    nuage__journal *j = s->journal;
    if (!j) return 0;
    int64_t end = nuage__mono_ms() + timeout_ms;
    pthread_mutex_lock(&j->mu);
    pthread_cond_signal(&j->cv);
    while (j->queued > 0 && nuage__mono_ms() < end) journal_wait(j, 50);
    int rc = j->queued > 0 ? NUAGE_E_BUSY : 0;
    pthread_mutex_unlock(&j->mu);
    return rc;
}

void nuage__journal_status_locked(nuage_store *s, nuage_metering_status *out) {
    nuage__journal *j = s->journal;
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    out->journal = true;
    out->journal_queued = j->queued;
    out->journal_shipped = j->shipped;
    out->journal_ship_failures = j->failures;
    out->journal_failing_since_ms = j->fail_since_ms;
    snprintf(out->journal_error, sizeof out->journal_error, "%s", j->error);
    pthread_mutex_unlock(&j->mu);
}

void nuage__journal_close(nuage__journal *j) {
    if (!j) return;
    if (j->started) {
        pthread_mutex_lock(&j->mu);
        j->stop = true; /* the shipper makes one last attempt, then ends */
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->thr, NULL);
    }
    nuage_store_close(j->ship);
    sqlite3_close_v2(j->db);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}
