/*
 * store_replicas.c - the replica registry (store.h): every `nuage serve`
 * sharing a store announces itself (id, address, deployments, load,
 * version) and heartbeats; `nuage admin cluster status` lists the rows.
 *
 * The registry is informational: the balancer's health checks decide
 * where traffic goes (docs/cluster.md). A row is never deleted: a replica
 * that stops cleanly marks itself gone, one that dies is marked gone by
 * the next listing once its last heartbeat is older than the caller's
 * limit, and a replica that comes back with the same id is up again (its
 * started_ms restarts). One upsert per heartbeat (every few seconds) is
 * negligible next to usage writes. The SQLite code is here; PostgreSQL's
 * is in store_pg_files.c.
 */
#include "platform/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool replica_valid(const nuage_replica *r) {
    return r && r->id[0] && strnlen(r->id, sizeof r->id) < sizeof r->id &&
           strnlen(r->address, sizeof r->address) < sizeof r->address &&
           strnlen(r->deployments, sizeof r->deployments) < sizeof r->deployments &&
           strnlen(r->version, sizeof r->version) < sizeof r->version;
}

int nuage_store_replica_heartbeat(nuage_store *s, const nuage_replica *r, int64_t now_ms) {
    if (!s || !replica_valid(r)) return nuage__store_fail(NUAGE_E_INVAL, "invalid replica (id 1-63 bytes)");
    if (s->pg) return nuage__pg_replica_heartbeat(s, r, now_ms);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "INSERT INTO replicas(id, address, deployments, load, version, started_ms,"
                                  " heartbeat_ms, gone) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, 0) ON CONFLICT(id) DO"
                                  " UPDATE SET address = excluded.address, deployments = excluded.deployments,"
                                  " load = excluded.load, version = excluded.version,"
                                  " heartbeat_ms = excluded.heartbeat_ms, started_ms = CASE WHEN"
                                  " replicas.gone = 0 THEN replicas.started_ms ELSE excluded.started_ms END,"
                                  " gone = 0", &st);
    if (!rc) {
        sqlite3_bind_text(st, 1, r->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, r->address, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, r->deployments, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(st, 4, r->load);
        sqlite3_bind_text(st, 5, r->version, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 6, now_ms);
        rc = nuage__store_run(s, st, "replica heartbeat");
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int nuage_store_replica_leave(nuage_store *s, const char *id, int64_t now_ms) {
    if (!s || !id || !*id) return NUAGE_E_INVAL;
    if (s->pg) return nuage__pg_replica_leave(s, id, now_ms);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "UPDATE replicas SET gone = 1, heartbeat_ms = MAX(heartbeat_ms, ?2)"
                                  " WHERE id = ?1", &st);
    if (!rc) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, now_ms);
        if (!(rc = nuage__store_run(s, st, "replica leave")) && sqlite3_changes(s->db) == 0)
            rc = nuage__store_fail(NUAGE_E_RANGE, "no replica '%.64s'", id);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void replica_row(sqlite3_stmt *st, void *elem) {
    nuage_replica *r = elem;
    nuage__store_col_text(st, 0, r->id, sizeof r->id);
    nuage__store_col_text(st, 1, r->address, sizeof r->address);
    nuage__store_col_text(st, 2, r->deployments, sizeof r->deployments);
    r->load = sqlite3_column_double(st, 3);
    nuage__store_col_text(st, 4, r->version, sizeof r->version);
    r->started_ms = sqlite3_column_int64(st, 5);
    r->heartbeat_ms = sqlite3_column_int64(st, 6);
    r->gone = sqlite3_column_int(st, 7) != 0;
}

int nuage_store_replica_list(nuage_store *s, int64_t now_ms, int64_t gone_after_ms, nuage_replica **out,
                             int *n) {
    if (!s || !out || !n || gone_after_ms < 0) return NUAGE_E_INVAL;
    *out = NULL;
    *n = 0;
    if (s->pg) return nuage__pg_replica_list(s, now_ms, gone_after_ms, out, n);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = nuage__store_prepare(s, "UPDATE replicas SET gone = 1 WHERE gone = 0 AND heartbeat_ms < ?1", &st);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms - gone_after_ms);
        rc = nuage__store_run(s, st, "mark replicas gone");
    }
    if (!rc)
        rc = nuage__store_prepare(s, "SELECT id, address, deployments, load, version, started_ms, heartbeat_ms,"
                                  " gone FROM replicas ORDER BY id", &st);
    if (!rc) rc = nuage__store_collect(s, st, sizeof **out, replica_row, "list replicas", (void **)out, n);
    pthread_mutex_unlock(&s->mu);
    return rc;
}
