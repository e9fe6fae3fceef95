/*
 * test_store_responses.c - stored responses of the Responses API
 * (store_responses.c): round trip, tenant isolation (another tenant's id
 * is "not found" for get, delete, chains and updates), retention (an
 * expired row is invisible at once and purged, checked with a raw SQLite
 * count), chains (oldest first, a broken or too long chain refused), and
 * persistence across reopening.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"
#include "test_store_util.h"

static void put(nuage_store *s, const char *id, int64_t tenant, int64_t created, int64_t expires, const char *prev,
                const char *status, const char *object, const char *input) {
    nuage_stored_response r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    r.tenant_id = tenant;
    r.created_ms = created;
    r.expires_ms = expires;
    snprintf(r.previous_id, sizeof r.previous_id, "%s", prev ? prev : "");
    snprintf(r.status, sizeof r.status, "%s", status);
    r.object = (char *)object;
    r.input = (char *)input;
    assert_int_equal(nuage_store_response_put(s, &r), 0);
}

static void test_roundtrip_and_update(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    put(s, "resp_a", 1, 1000, 5000, NULL, "queued", "{\"status\":\"queued\"}", "[{\"id\":\"msg_1\"}]");
    nuage_stored_response g;
    assert_int_equal(nuage_store_response_get(s, 1, "resp_a", 2000, &g), 0);
    assert_string_equal(g.id, "resp_a");
    assert_int_equal(g.tenant_id, 1);
    assert_int_equal(g.created_ms, 1000);
    assert_int_equal(g.expires_ms, 5000);
    assert_string_equal(g.status, "queued");
    assert_string_equal(g.previous_id, "");
    assert_string_equal(g.object, "{\"status\":\"queued\"}");
    assert_string_equal(g.input, "[{\"id\":\"msg_1\"}]");
    nuage_stored_response_free(&g);
    /* the background job's final write updates the same row */
    put(s, "resp_a", 1, 1000, 5000, NULL, "completed", "{\"status\":\"completed\"}", "[]");
    assert_int_equal(nuage_store_response_get(s, 1, "resp_a", 2000, &g), 0);
    assert_string_equal(g.status, "completed");
    assert_string_equal(g.object, "{\"status\":\"completed\"}");
    nuage_stored_response_free(&g);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM responses"), 1);
    /* survives reopening */
    nuage_store_close(s);
    s = tmp_db_open(&t);
    assert_int_equal(nuage_store_response_get(s, 1, "resp_a", 2000, &g), 0);
    assert_string_equal(g.status, "completed");
    nuage_stored_response_free(&g);
    assert_int_equal(nuage_store_response_delete(s, 1, "resp_a"), 0);
    assert_int_equal(nuage_store_response_get(s, 1, "resp_a", 2000, &g), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_response_delete(s, 1, "resp_a"), NUAGE_E_RANGE);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_tenant_isolation(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    put(s, "resp_1", 1, 1000, 9000, NULL, "completed", "{\"t\":1}", "[]");
    put(s, "resp_2", 1, 1000, 9000, "resp_1", "completed", "{\"t\":1}", "[]");
    nuage_stored_response g;
    /* tenant 2 sees nothing of tenant 1's */
    assert_int_equal(nuage_store_response_get(s, 2, "resp_1", 2000, &g), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_response_delete(s, 2, "resp_1"), NUAGE_E_RANGE);
    nuage_stored_response *rows;
    int n;
    assert_int_equal(nuage_store_response_chain(s, 2, "resp_2", 2000, 10, &rows, &n), NUAGE_E_RANGE);
    /* and cannot overwrite it */
    nuage_stored_response r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "resp_1");
    r.tenant_id = 2;
    r.created_ms = 1000;
    r.expires_ms = 9000;
    snprintf(r.status, sizeof r.status, "completed");
    r.object = "{\"t\":2}";
    r.input = "[]";
    assert_int_equal(nuage_store_response_put(s, &r), NUAGE_E_STATE);
    assert_int_equal(nuage_store_response_get(s, 1, "resp_1", 2000, &g), 0);
    assert_string_equal(g.object, "{\"t\":1}");
    nuage_stored_response_free(&g);
    /* a chain that crosses tenants is broken for both */
    put(s, "resp_3", 2, 1000, 9000, "resp_2", "completed", "{\"t\":2}", "[]");
    assert_int_equal(nuage_store_response_chain(s, 2, "resp_3", 2000, 10, &rows, &n), NUAGE_E_RANGE);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_retention_purge(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    put(s, "resp_old", 1, 1000, 2000, NULL, "completed", "{}", "[]");
    put(s, "resp_mid", 1, 1000, 3000, NULL, "completed", "{}", "[]");
    put(s, "resp_new", 1, 1000, 9000, NULL, "completed", "{}", "[]");
    nuage_stored_response g;
    /* expired: invisible at once, before any purge */
    assert_int_equal(nuage_store_response_get(s, 1, "resp_old", 1999, &g), 0);
    nuage_stored_response_free(&g);
    assert_int_equal(nuage_store_response_get(s, 1, "resp_old", 2000, &g), NUAGE_E_RANGE);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM responses"), 3);
    int64_t gone = -1;
    assert_int_equal(nuage_store_response_purge(s, 2500, &gone), 0);
    assert_int_equal(gone, 1);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM responses"), 2);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM responses WHERE id = 'resp_old'"), 0);
    assert_int_equal(nuage_store_response_purge(s, 5000, &gone), 0);
    assert_int_equal(gone, 1);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM responses"), 1);
    assert_int_equal(nuage_store_response_get(s, 1, "resp_new", 5000, &g), 0);
    nuage_stored_response_free(&g);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_chains(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    put(s, "resp_t1", 7, 1000, 9000, NULL, "completed", "{\"n\":1}", "[\"in1\"]");
    put(s, "resp_t2", 7, 1100, 9000, "resp_t1", "completed", "{\"n\":2}", "[\"in2\"]");
    put(s, "resp_t3", 7, 1200, 9000, "resp_t2", "completed", "{\"n\":3}", "[\"in3\"]");
    /* a branch from turn 1 */
    put(s, "resp_b2", 7, 1300, 9000, "resp_t1", "completed", "{\"n\":22}", "[\"inb\"]");
    nuage_stored_response *rows;
    int n;
    assert_int_equal(nuage_store_response_chain(s, 7, "resp_t3", 2000, 10, &rows, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].id, "resp_t1");
    assert_string_equal(rows[1].id, "resp_t2");
    assert_string_equal(rows[2].id, "resp_t3");
    assert_string_equal(rows[0].input, "[\"in1\"]");
    assert_string_equal(rows[2].object, "{\"n\":3}");
    nuage_stored_responses_free(rows, n);
    assert_int_equal(nuage_store_response_chain(s, 7, "resp_b2", 2000, 10, &rows, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].id, "resp_t1");
    assert_string_equal(rows[1].id, "resp_b2");
    nuage_stored_responses_free(rows, n);
    /* too long for max */
    assert_int_equal(nuage_store_response_chain(s, 7, "resp_t3", 2000, 2, &rows, &n), NUAGE_E_RANGE);
    /* a link expired or deleted breaks the chain */
    assert_int_equal(nuage_store_response_delete(s, 7, "resp_t2"), 0);
    assert_int_equal(nuage_store_response_chain(s, 7, "resp_t3", 2000, 10, &rows, &n), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_response_chain(s, 7, "resp_b2", 9000, 10, &rows, &n), NUAGE_E_RANGE);
    /* a cycle (only a corrupted file could hold one) ends at max */
    raw_exec(t.path, "UPDATE responses SET previous_id = 'resp_b2' WHERE id = 'resp_t1'");
    assert_int_equal(nuage_store_response_chain(s, 7, "resp_b2", 2000, 50, &rows, &n), NUAGE_E_RANGE);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_update),
        cmocka_unit_test(test_tenant_isolation),
        cmocka_unit_test(test_retention_purge),
        cmocka_unit_test(test_chains),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
