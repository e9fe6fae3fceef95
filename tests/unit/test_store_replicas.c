/*
 * test_store_replicas.c - the replica registry (store.h,
 * nuage_store_replica_*) on SQLite, and on PostgreSQL when run by
 * tests/pg_run.sh: announce, heartbeat, list, leave, gone after silence,
 * coming back; and two stores on one database seeing each other's rows
 * (two replicas sharing the control plane).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_store_util.h"

static nuage_replica replica(const char *id, const char *addr, double load) {
    nuage_replica r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.address, sizeof r.address, "%s", addr);
    snprintf(r.deployments, sizeof r.deployments, "chat,embed");
    snprintf(r.version, sizeof r.version, "test-1");
    r.load = load;
    return r;
}

static void test_heartbeat_list_gone(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *a = tmp_db_open(&t);
    nuage_store *b = tmp_db_open(&t); /* a second replica on the same store */
    int64_t t0 = 1700000000000LL;
    nuage_replica ra = replica("r-a", "10.0.0.1:8080", 3), rb = replica("r-b", "10.0.0.2:8080", 0.5);
    assert_int_equal(nuage_store_replica_heartbeat(a, &ra, t0), 0);
    assert_int_equal(nuage_store_replica_heartbeat(b, &rb, t0 + 100), 0);

    /* Each sees both, sorted by id, with what was announced. */
    nuage_replica *l = NULL;
    int n = 0;
    assert_int_equal(nuage_store_replica_list(b, t0 + 1000, 10000, &l, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].id, "r-a");
    assert_string_equal(l[0].address, "10.0.0.1:8080");
    assert_string_equal(l[0].deployments, "chat,embed");
    assert_string_equal(l[0].version, "test-1");
    assert_true(l[0].load == 3);
    assert_int_equal(l[0].started_ms, t0);
    assert_int_equal(l[0].heartbeat_ms, t0);
    assert_false(l[0].gone);
    assert_string_equal(l[1].id, "r-b");
    assert_true(l[1].load == 0.5);
    free(l);

    /* a keeps beating, b falls silent: 10 s later b is gone, a is not. */
    ra.load = 7;
    assert_int_equal(nuage_store_replica_heartbeat(a, &ra, t0 + 9000), 0);
    assert_int_equal(nuage_store_replica_list(a, t0 + 12000, 10000, &l, &n), 0);
    assert_int_equal(n, 2);
    assert_false(l[0].gone);
    assert_int_equal(l[0].started_ms, t0); /* kept across heartbeats */
    assert_int_equal(l[0].heartbeat_ms, t0 + 9000);
    assert_true(l[0].load == 7);
    assert_true(l[1].gone);
    free(l);
    /* Marked in the store itself, not only in the listing. */
    assert_int_equal(raw_int(t.path, "SELECT gone FROM replicas WHERE id = 'r-b'"), 1);

    /* b comes back: up again, started anew. */
    assert_int_equal(nuage_store_replica_heartbeat(b, &rb, t0 + 20000), 0);
    assert_int_equal(nuage_store_replica_list(a, t0 + 20001, 10000, &l, &n), 0);
    assert_false(l[1].gone);
    assert_int_equal(l[1].started_ms, t0 + 20000);
    free(l);

    /* a stops cleanly. */
    assert_int_equal(nuage_store_replica_leave(a, "r-a", t0 + 20002), 0);
    assert_int_equal(nuage_store_replica_list(b, t0 + 20003, 10000, &l, &n), 0);
    assert_true(l[0].gone);
    assert_false(l[1].gone);
    free(l);
    assert_int_equal(nuage_store_replica_leave(a, "nobody", t0), NUAGE_E_RANGE);

    /* Bad input is refused, not stored. */
    nuage_replica bad = replica("", "x:1", 0);
    assert_int_equal(nuage_store_replica_heartbeat(a, &bad, t0), NUAGE_E_INVAL);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM replicas"), 2);

    nuage_store_close(a);
    nuage_store_close(b);
    tmp_db_cleanup(&t);
}

/* Keys and revocation across two stores on one database: what one
 * replica (or the CLI) revokes, the other refuses on the next lookup. */
static void test_revocation_seen_by_other_store(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *a = tmp_db_open(&t);
    nuage_store *b = tmp_db_open(&t);
    assert_int_equal(nuage_store_tenant_create(a, "acme", 100, 10, 1.0, NULL), 0);
    char key[80];
    nuage_key k;
    assert_int_equal(nuage_store_key_create(a, "acme", "", 0, false, key, sizeof key, &k), 0);
    nuage_key got;
    nuage_tenant ten;
    assert_int_equal(nuage_store_key_verify(b, key, &got, &ten), 0);
    assert_int_equal(got.id, k.id);
    assert_string_equal(ten.name, "acme");
    assert_int_equal(ten.tpm, 100);
    assert_int_equal(nuage_store_key_revoke(a, k.prefix), 0);
    assert_int_equal(nuage_store_key_verify(b, key, &got, &ten), NUAGE_E_RANGE);
    nuage_store_close(a);
    nuage_store_close(b);
    tmp_db_cleanup(&t);
}

/* Logs never show a PostgreSQL password. */
static void test_display_hides_password(void **state) {
    (void)state;
    char out[200];
    nuage_store_display("postgres://app:s3cret@db.example:5432/nuage", out, sizeof out);
    assert_string_equal(out, "postgres://app:***@db.example:5432/nuage");
    nuage_store_display("postgresql://app@db/nuage", out, sizeof out);
    assert_string_equal(out, "postgresql://app@db/nuage");
    nuage_store_display("/var/lib/nuage/a:b@c.db", out, sizeof out);
    assert_string_equal(out, "/var/lib/nuage/a:b@c.db");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeat_list_gone),
        cmocka_unit_test(test_revocation_seen_by_other_store),
        cmocka_unit_test(test_display_hides_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
