/*
 * test_store.c - the SQLite store: opening, schema migrations, tenants and
 * API keys (store.h).
 *
 * The file is checked with raw SQLite calls rather than through the store
 * (journal mode, user_version); the v1 migration test builds a version-1
 * database by hand with the old schema and data, then opens it. Key
 * hashing is checked against an independent SHA-256 (OpenSSL) of salt ||
 * key, and the database files are scanned byte by byte for the secret.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "test_util.h"
#include "test_store_util.h"

#include "platform/store_internal.h"

/* ---- open / migrations ---------------------------------------------------- */

static void test_open_new_file(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    SQLITE_ONLY(&t);
    nuage_store *s = tmp_db_open(&t);
    int v = nuage_store_schema_version(s);
    assert_true(v >= 2);
    /* Checked on the file itself, with a separate connection. */
    assert_int_equal(raw_int(t.path, "PRAGMA user_version"), v);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* Private: only the owner may read key hashes and usage. */
    struct stat sb;
    assert_int_equal(stat(t.path, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);
    char wal[400];
    snprintf(wal, sizeof wal, "%s-wal", t.path);
    assert_int_equal(stat(wal, &sb), 0);  /* WAL mode, while open */
    assert_int_equal(sb.st_mode & 077, 0);
    nuage_store_close(s);
    /* Reopening an up-to-date file changes nothing. */
    s = tmp_db_open(&t);
    assert_int_equal(nuage_store_schema_version(s), v);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

/* The version-1 schema, as shipped (tenants, keys, usage without
 * reasoning tokens), with some data in it. */
static const char v1_schema[] =
    "CREATE TABLE tenants(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
    " tpm INTEGER NOT NULL DEFAULT 0, rpm INTEGER NOT NULL DEFAULT 0,"
    " weight REAL NOT NULL DEFAULT 1.0, created_ms INTEGER NOT NULL);"
    "CREATE TABLE api_keys(id INTEGER PRIMARY KEY AUTOINCREMENT, kid TEXT NOT NULL UNIQUE,"
    " tenant_id INTEGER NOT NULL DEFAULT 0, salt BLOB NOT NULL, hash BLOB NOT NULL,"
    " deployments TEXT NOT NULL DEFAULT '', expires_ms INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,"
    " admin INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX api_keys_tenant ON api_keys(tenant_id);"
    "CREATE TABLE usage(id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL,"
    " tenant_id INTEGER NOT NULL, key_id INTEGER NOT NULL, request_id TEXT NOT NULL,"
    " deployment TEXT NOT NULL, model_version TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,"
    " cached_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,"
    " status INTEGER NOT NULL, latency_ms REAL NOT NULL);"
    "CREATE INDEX usage_tenant_time ON usage(tenant_id, time_ms);"
    "CREATE INDEX usage_time ON usage(time_ms);"
    "INSERT INTO tenants(name, tpm, rpm, weight, created_ms) VALUES('old', 500, 7, 2.5, 1000);"
    "INSERT INTO usage(time_ms, tenant_id, key_id, request_id, deployment, model_version,"
    " prompt_tokens, cached_tokens, completion_tokens, status, latency_ms)"
    " VALUES(86400000, 1, 0, 'r1', 'dep', 'v', 11, 3, 5, 200, 1.5);"
    "PRAGMA application_id = 1853186407;"   /* 0x6e756167, "nuag" */
    "PRAGMA user_version = 1;";

static void test_migrate_from_v1(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    SQLITE_ONLY(&t);
    raw_exec(t.path, v1_schema);
    nuage_store *s = tmp_db_open(&t);
    assert_true(nuage_store_schema_version(s) >= 2);
    assert_int_equal(raw_int(t.path, "PRAGMA user_version"), nuage_store_schema_version(s));
    /* Old data is still there and readable through the new code. */
    nuage_tenant ten;
    assert_int_equal(nuage_store_tenant_get(s, "old", &ten), 0);
    assert_int_equal(ten.tpm, 500);
    assert_int_equal(ten.rpm, 7);
    assert_true(ten.weight == 2.5);
    nuage_usage_total *tot;
    int n;
    assert_int_equal(nuage_store_usage_totals(s, ten.id, 0, NULL, &tot, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(tot[0].requests, 1);
    assert_int_equal(tot[0].prompt_tokens, 11);
    assert_int_equal(tot[0].cached_tokens, 3);
    assert_int_equal(tot[0].completion_tokens, 5);
    assert_int_equal(tot[0].reasoning_tokens, 0);
    free(tot);
    /* And the v2 tables work. */
    nuage_file f;
    assert_int_equal(nuage_store_file_create(s, ten.id, "in.jsonl", "batch", "x\n", 2, &f), 0);
    nuage_usage_record r = {.time_ms = 2 * 86400000LL, .tenant_id = ten.id, .prompt_tokens = 1,
                            .reasoning_tokens = 9, .status = 200};
    assert_int_equal(nuage_store_usage_add(s, &r), 0);
    assert_int_equal(nuage_store_usage_totals(s, ten.id, 0, NULL, &tot, &n), 0);
    assert_int_equal(tot[0].requests, 2);
    assert_int_equal(tot[0].reasoning_tokens, 9);
    free(tot);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_refuse_newer_version(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    int v = nuage_store_schema_version(s);
    nuage_store_close(s);
    char sql[64];
    snprintf(sql, sizeof sql, t.pg ? "UPDATE nuage_schema SET version = %d" : "PRAGMA user_version = %d", v + 1);
    const char *ask = t.pg ? "SELECT version FROM nuage_schema" : "PRAGMA user_version";
    raw_exec(t.path, sql);
    char err[512] = {0};
    s = NULL;
    assert_int_equal(nuage_store_open(t.path, &s, err, sizeof err), NUAGE_E_UNSUPPORTED);
    assert_null(s);
    assert_non_null(strstr(err, "newer"));
    /* The file was left alone. */
    assert_int_equal(raw_int(t.path, ask), v + 1);
    tmp_db_cleanup(&t);
}

static void test_refuse_foreign_files(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = NULL;
    char err[512] = {0};
    /* Some other application's SQLite database. */
    raw_exec(t.path, "CREATE TABLE photos(id INTEGER PRIMARY KEY)");
    assert_int_equal(nuage_store_open(t.path, &s, err, sizeof err), NUAGE_E_FORMAT);
    assert_non_null(strstr(err, "not a nuage database"));
    if (t.pg) {
        /* left alone: no nuage table added */
        assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'"), 1);
        /* a server that does not answer */
        assert_int_equal(nuage_store_open("postgres://nobody@127.0.0.1:1/none", &s, err, sizeof err), NUAGE_E_IO);
        assert_null(s);
        assert_non_null(strstr(err, "127.0.0.1"));
        tmp_db_cleanup(&t);
        return;
    }
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM sqlite_schema"), 1);
    unlink(t.path);
    /* Not a database at all. */
    FILE *f = fopen(t.path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 200; i++) fputs("this is not sqlite ", f);
    fclose(f);
    err[0] = 0;
    assert_true(nuage_store_open(t.path, &s, err, sizeof err) < 0);
    assert_null(s);
    assert_true(strlen(err) > 0);
    /* A directory that does not exist. */
    char bad[400];
    snprintf(bad, sizeof bad, "%s/missing/dir/x.db", t.dir);
    assert_int_equal(nuage_store_open(bad, &s, err, sizeof err), NUAGE_E_IO);
    tmp_db_cleanup(&t);
}

/* Several processes opening one new store at once (replicas starting
 * together): every one succeeds and the schema is made once. */
static void test_concurrent_open_migrates_once(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    enum { N = 6 };
    pid_t kids[N];
    for (int i = 0; i < N; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            nuage_store *c = NULL;
            char err[512];
            if (nuage_store_open(t.path, &c, err, sizeof err)) {
                fprintf(stderr, "child %d: %s\n", i, err);
                _exit(3);
            }
            int v = nuage_store_schema_version(c);
            nuage_store_close(c);
            _exit(v >= 5 ? 0 : 4);
        }
    }
    for (int i = 0; i < N; i++) {
        int st = 0;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    nuage_store *s = tmp_db_open(&t);
    assert_int_equal(raw_int(t.path, t.pg ? "SELECT COUNT(*) FROM nuage_schema" : "SELECT COUNT(*) FROM tenants"),
                     t.pg ? 1 : 0);
    assert_int_equal(nuage_store_tenant_create(s, "after", 0, 0, 1.0, NULL), 0);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_default_path(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    SQLITE_ONLY(&t);
    char *old_db = getenv("NUAGE_DB") ? strdup(getenv("NUAGE_DB")) : NULL;
    char *old_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
    char buf[512], want[512];
    unsetenv("NUAGE_DB");
    setenv("XDG_DATA_HOME", t.dir, 1);
    assert_int_equal(nuage_store_default_path(buf, sizeof buf), 0);
    snprintf(want, sizeof want, "%s/nuage/nuage.db", t.dir);
    assert_string_equal(buf, want);
    struct stat sb;
    snprintf(want, sizeof want, "%s/nuage", t.dir);
    assert_int_equal(stat(want, &sb), 0);  /* directory created */
    assert_true(S_ISDIR(sb.st_mode));
    setenv("NUAGE_DB", "/somewhere/else.db", 1);
    assert_int_equal(nuage_store_default_path(buf, 8), NUAGE_E_RANGE);
    rmdir(want);
    if (old_db) setenv("NUAGE_DB", old_db, 1); else unsetenv("NUAGE_DB");
    if (old_xdg) setenv("XDG_DATA_HOME", old_xdg, 1); else unsetenv("XDG_DATA_HOME");
    free(old_db);
    free(old_xdg);
    tmp_db_cleanup(&t);
}

/* ---- tenants ------------------------------------------------------------------- */

static void test_tenants_crud(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_tenant a, b, got;
    assert_int_equal(nuage_store_tenant_create(s, "zeta", 1000, 10, 1.0, &a), 0);
    assert_int_equal(nuage_store_tenant_create(s, "alpha", 0, 0, 3.0, &b), 0);
    assert_true(a.id > 0 && b.id > 0 && a.id != b.id);
    assert_string_equal(a.name, "zeta");
    assert_int_equal(a.tpm, 1000);
    assert_int_equal(a.rpm, 10);
    assert_true(llabs(a.created_ms - test_now_ms()) < 60000);
    /* Duplicates and bad arguments. */
    assert_int_equal(nuage_store_tenant_create(s, "zeta", 1, 1, 1.0, NULL), NUAGE_E_STATE);
    assert_non_null(strstr(nuage_store_errmsg(s), "exists"));
    assert_int_equal(nuage_store_tenant_create(s, "", 0, 0, 1.0, NULL), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_tenant_create(s, "a b", 0, 0, 1.0, NULL), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_tenant_create(s, "-x", 0, 0, 1.0, NULL), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_tenant_create(s, "ok", -1, 0, 1.0, NULL), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_tenant_create(s, "ok", 0, 0, 0.0, NULL), NUAGE_E_INVAL);
    char long_name[80];
    memset(long_name, 'n', 79);
    long_name[79] = 0;
    assert_int_equal(nuage_store_tenant_create(s, long_name, 0, 0, 1.0, NULL), NUAGE_E_INVAL);
    /* Lookups. */
    assert_int_equal(nuage_store_tenant_get(s, "alpha", &got), 0);
    assert_int_equal(got.id, b.id);
    assert_true(got.weight == 3.0);
    assert_int_equal(nuage_store_tenant_get_id(s, a.id, &got), 0);
    assert_string_equal(got.name, "zeta");
    assert_int_equal(nuage_store_tenant_get(s, "nobody", &got), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_tenant_get_id(s, 9999, &got), NUAGE_E_RANGE);
    /* List is sorted by name. */
    nuage_tenant *list;
    int n;
    assert_int_equal(nuage_store_tenant_list(s, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "alpha");
    assert_string_equal(list[1].name, "zeta");
    free(list);
    /* Delete; the name can be reused but never the id. */
    assert_int_equal(nuage_store_tenant_delete(s, "zeta"), 0);
    assert_int_equal(nuage_store_tenant_get(s, "zeta", &got), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_tenant_delete(s, "zeta"), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_tenant_create(s, "zeta", 0, 0, 1.0, &got), 0);
    assert_true(got.id != a.id && got.id != b.id);
    /* Visible from a second connection (another process in real life). */
    nuage_store *s2 = tmp_db_open(&t);
    assert_int_equal(nuage_store_tenant_get(s2, "zeta", &a), 0);
    assert_int_equal(a.id, got.id);
    nuage_store_close(s2);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

/* ---- keys --------------------------------------------------------------------------- */

static void test_keys_verify_revoke(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_tenant ten, got_t;
    assert_int_equal(nuage_store_tenant_create(s, "acme", 100, 5, 1.0, &ten), 0);
    char key[64], key2[64];
    nuage_key k, got;
    assert_int_equal(nuage_store_key_count(s), 0);
    assert_int_equal(nuage_store_key_create(s, "acme", "", 0, false, key, sizeof key, &k), 0);
    assert_int_equal(strlen(key), 44);
    assert_memory_equal(key, "nk-", 3);
    assert_int_equal(strncmp(key, k.prefix, strlen(k.prefix)), 0);
    assert_int_equal(k.tenant_id, ten.id);
    assert_int_equal(nuage_store_key_count(s), 1);
    /* The right key verifies, with its tenant. */
    assert_int_equal(nuage_store_key_verify(s, key, &got, &got_t), 0);
    assert_int_equal(got.id, k.id);
    assert_string_equal(got_t.name, "acme");
    assert_int_equal(got_t.tpm, 100);
    /* Right id part, wrong secret (each position of the secret). */
    for (size_t i = 12; i < 44; i += 7) {
        char bad[64];
        memcpy(bad, key, 45);
        bad[i] = bad[i] == 'a' ? 'b' : 'a';
        assert_int_equal(nuage_store_key_verify(s, bad, &got, &got_t), NUAGE_E_RANGE);
    }
    /* Malformed keys. */
    assert_int_equal(nuage_store_key_verify(s, "", &got, NULL), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_key_verify(s, "nk-short", &got, NULL), NUAGE_E_RANGE);
    char longer[80];
    snprintf(longer, sizeof longer, "%sX", key);
    assert_int_equal(nuage_store_key_verify(s, longer, &got, NULL), NUAGE_E_RANGE);
    /* A second key; two creates never give the same key. */
    assert_int_equal(nuage_store_key_create(s, "acme", NULL, 0, false, key2, sizeof key2, NULL),
                     0);
    assert_string_not_equal(key, key2);
    assert_int_equal(nuage_store_key_count(s), 2);
    /* Revoke by prefix. */
    assert_int_equal(nuage_store_key_revoke(s, k.prefix), 0);
    assert_int_equal(nuage_store_key_verify(s, key, &got, NULL), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_key_verify(s, key2, &got, NULL), 0);
    assert_int_equal(nuage_store_key_count(s), 1);
    /* Revoke by numeric id. */
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%lld", (long long)got.id);
    assert_int_equal(nuage_store_key_revoke(s, idbuf), 0);
    assert_int_equal(nuage_store_key_verify(s, key2, &got, NULL), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_key_count(s), 0);
    assert_int_equal(nuage_store_key_revoke(s, "nk-ZZZZZZZZ"), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_key_revoke(s, "12345"), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_key_revoke(s, "not a key"), NUAGE_E_INVAL);
    /* Listing shows both, revoked. */
    nuage_key *list;
    int n;
    assert_int_equal(nuage_store_key_list(s, "acme", &list, &n), 0);
    assert_int_equal(n, 2);
    assert_true(list[0].revoked && list[1].revoked);
    free(list);
    assert_int_equal(nuage_store_key_list(s, "nobody", &list, &n), NUAGE_E_RANGE);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_keys_expiry_tenants_admin(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_tenant ten;
    assert_int_equal(nuage_store_tenant_create(s, "acme", 0, 0, 1.0, &ten), 0);
    assert_int_equal(nuage_store_tenant_create(s, "other", 0, 0, 1.0, NULL), 0);
    char past[64], future[64], adm[64], tk[64], ok[64];
    nuage_key k;
    nuage_tenant kt;
    int64_t now = test_now_ms();
    assert_int_equal(nuage_store_key_create(s, "acme", "", now - 1000, false, past, 64, NULL), 0);
    assert_int_equal(nuage_store_key_create(s, "acme", "", now + 3600000, false, future, 64, &k),
                     0);
    assert_int_equal(k.expires_ms, now + 3600000);
    assert_int_equal(nuage_store_key_verify(s, past, &k, NULL), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_key_verify(s, future, &k, NULL), 0);
    assert_int_equal(nuage_store_key_count(s), 1);  /* the expired one does not count */
    /* Tenant rules. */
    assert_int_equal(nuage_store_key_create(s, NULL, "", 0, false, tk, 64, NULL), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_key_create(s, "nobody", "", 0, false, tk, 64, NULL),
                     NUAGE_E_RANGE);
    assert_int_equal(nuage_store_key_create(s, "acme", "", 0, false, tk, 16, NULL), NUAGE_E_INVAL);
    /* An admin key without tenant. */
    assert_int_equal(nuage_store_key_create(s, NULL, "", 0, true, adm, 64, &k), 0);
    assert_true(k.admin);
    memset(&kt, 0x55, sizeof kt);
    assert_int_equal(nuage_store_key_verify(s, adm, &k, &kt), 0);
    assert_true(k.admin);
    assert_int_equal(k.tenant_id, 0);
    assert_int_equal(kt.id, 0);
    /* Deleting a tenant revokes its keys, not the others'. */
    assert_int_equal(nuage_store_key_create(s, "other", "", 0, false, ok, 64, NULL), 0);
    assert_int_equal(nuage_store_tenant_delete(s, "acme"), 0);
    assert_int_equal(nuage_store_key_verify(s, future, &k, NULL), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_key_verify(s, ok, &k, &kt), 0);
    assert_string_equal(kt.name, "other");
    assert_int_equal(nuage_store_key_verify(s, adm, &k, NULL), 0);
    /* A new tenant with the old name does not inherit the old keys. */
    assert_int_equal(nuage_store_tenant_create(s, "acme", 0, 0, 1.0, NULL), 0);
    assert_int_equal(nuage_store_key_verify(s, future, &k, NULL), NUAGE_E_RANGE);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_key_deployments(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    assert_int_equal(nuage_store_tenant_create(s, "acme", 0, 0, 1.0, NULL), 0);
    char key[64];
    nuage_key k;
    assert_int_equal(nuage_store_key_create(s, "acme", "small, big-2", 0, false, key, 64, NULL),
                     0);
    assert_int_equal(nuage_store_key_verify(s, key, &k, NULL), 0);
    assert_true(nuage_key_allows(&k, "small"));
    assert_true(nuage_key_allows(&k, "big-2"));
    assert_false(nuage_key_allows(&k, "big"));
    assert_false(nuage_key_allows(&k, "smal"));
    assert_false(nuage_key_allows(&k, "small, big-2"));
    assert_false(nuage_key_allows(&k, ""));
    assert_false(nuage_key_allows(&k, NULL));
    nuage_key all = {0};
    assert_true(nuage_key_allows(&all, "anything"));
    assert_int_equal(nuage_store_key_create(s, "acme", "a\nb", 0, false, key, 64, NULL),
                     NUAGE_E_INVAL);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

/* Does the byte string needle occur in any file of dir? */
static bool dir_contains(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    bool found = false;
    int files = 0;
    while ((e = readdir(d)) && !found) {
        if (e->d_name[0] == '.') continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        size_t len;
        char *data = nuage_test_read_file(p, &len);
        if (!data) continue;
        files++;
        found = memmem(data, len, needle, strlen(needle)) != NULL;
        free(data);
    }
    closedir(d);
    assert_true(files > 0);
    return found;
}

/* PostgreSQL: keys are stored as on SQLite -- a 16-byte salt and
 * SHA-256(salt || key), checked with the server's own sha256(), so the
 * check does not share code with the store. */
static void test_pg_key_hashed(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    if (!t.pg) {
        tmp_db_cleanup(&t);
        skip();
    }
    nuage_store *s = tmp_db_open(&t);
    assert_int_equal(nuage_store_tenant_create(s, "acme", 0, 0, 1.0, NULL), 0);
    char key[80], sql[400];
    nuage_key k;
    assert_int_equal(nuage_store_key_create(s, "acme", "", 0, false, key, sizeof key, &k), 0);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM api_keys WHERE length(salt) = 16 AND length(hash) = 32 AND"
             " hash = sha256(salt || convert_to('%s', 'UTF8')) AND id = %lld", key, (long long)k.id);
    assert_int_equal(raw_int(t.path, sql), 1);
    /* nowhere in clear: no text column holds the secret part */
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM api_keys WHERE kid || deployments LIKE '%%%s%%'", key + 12);
    assert_int_equal(raw_int(t.path, sql), 0);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_key_never_stored_in_clear(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    SQLITE_ONLY(&t);
    nuage_store *s = tmp_db_open(&t);
    assert_int_equal(nuage_store_tenant_create(s, "acme", 0, 0, 1.0, NULL), 0);
    char key[64];
    nuage_key k;
    assert_int_equal(nuage_store_key_create(s, "acme", "", 0, false, key, 64, &k), 0);
    const char *secret = key + 12;  /* after "nk-XXXXXXXX-" */
    assert_int_equal(strlen(secret), 32);
    /* Sanity of the scan itself: the non-secret id part is in the file. */
    assert_true(dir_contains(t.dir, k.prefix + 3));
    /* While open (database + WAL) and after close (checkpointed). */
    assert_false(dir_contains(t.dir, secret));
    assert_false(dir_contains(t.dir, key));
    nuage_store_close(s);
    assert_false(dir_contains(t.dir, secret));

    /* The stored hash is SHA-256(salt || key) with a 16-byte salt,
     * recomputed here independently. */
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT salt, hash FROM api_keys WHERE id = ?", -1,
                                        &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, k.id);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_bytes(st, 0), 16);
    assert_int_equal(sqlite3_column_bytes(st, 1), 32);
    unsigned char buf[16 + 44], md[32];
    unsigned int mdlen;
    memcpy(buf, sqlite3_column_blob(st, 0), 16);
    memcpy(buf + 16, key, 44);
    assert_int_equal(EVP_Digest(buf, sizeof buf, md, &mdlen, EVP_sha256(), NULL), 1);
    assert_memory_equal(md, sqlite3_column_blob(st, 1), 32);
    /* Unsalted, it would differ. */
    assert_int_equal(EVP_Digest(key, 44, md, &mdlen, EVP_sha256(), NULL), 1);
    assert_memory_not_equal(md, sqlite3_column_blob(st, 1), 32);
    sqlite3_finalize(st);
    sqlite3_close(db);
    tmp_db_cleanup(&t);
}

/* ---- threads -------------------------------------------------------------------------- */

typedef struct {
    nuage_store *s;
    const char *key;
    int ok;
} verify_job;

static void *verify_thread(void *arg) {
    verify_job *j = arg;
    for (int i = 0; i < 200; i++) {
        nuage_key k;
        if (nuage_store_key_verify(j->s, j->key, &k, NULL) == 0) j->ok++;
    }
    return NULL;
}

static void test_threads_share_handle(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    assert_int_equal(nuage_store_tenant_create(s, "acme", 0, 0, 1.0, NULL), 0);
    char key[64];
    assert_int_equal(nuage_store_key_create(s, "acme", "", 0, false, key, 64, NULL), 0);
    pthread_t th[4];
    verify_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (verify_job){s, key, 0};
        assert_int_equal(pthread_create(&th[i], NULL, verify_thread, &jobs[i]), 0);
    }
    /* Writes interleave with the readers. */
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        assert_int_equal(nuage_store_tenant_create(s, name, 0, 0, 1.0, NULL), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].ok, 200);
    }
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

typedef struct {
    nuage_store *s;
    const char *key;
    int rc;
} verify_arg;

static void *verify_once(void *p) {
    verify_arg *a = p;
    nuage_key k;
    a->rc = nuage_store_key_verify(a->s, a->key, &k, NULL);
    return NULL;
}

/* Authentication must not queue behind a writer: with the store's write
 * lock held (as during a usage record's fsync), a key still verifies. */
static void test_verify_does_not_wait_for_writer(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_key k;
    char key[64];
    assert_int_equal(nuage_store_tenant_create(s, "acme", 0, 0, 1.0, NULL), 0);
    assert_int_equal(nuage_store_key_create(s, "acme", "", 0, false, key, sizeof key, &k), 0);
    pthread_mutex_lock(&s->mu);
    verify_arg a = {.s = s, .key = key, .rc = 99};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, verify_once, &a), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    int joined = pthread_timedjoin_np(th, NULL, &until);
    pthread_mutex_unlock(&s->mu);
    if (joined != 0) pthread_join(th, NULL);
    assert_int_equal(joined, 0); /* it finished while the write lock was held */
    assert_int_equal(a.rc, 0);
    /* and a revocation committed on the write connection is seen at once */
    assert_int_equal(nuage_store_key_revoke(s, k.prefix), 0);
    a.rc = 99;
    verify_once(&a);
    assert_int_equal(a.rc, NUAGE_E_RANGE);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_new_file),
        cmocka_unit_test(test_migrate_from_v1),
        cmocka_unit_test(test_refuse_newer_version),
        cmocka_unit_test(test_concurrent_open_migrates_once),
        cmocka_unit_test(test_pg_key_hashed),
        cmocka_unit_test(test_refuse_foreign_files),
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_tenants_crud),
        cmocka_unit_test(test_keys_verify_revoke),
        cmocka_unit_test(test_verify_does_not_wait_for_writer),
        cmocka_unit_test(test_keys_expiry_tenants_admin),
        cmocka_unit_test(test_key_deployments),
        cmocka_unit_test(test_key_never_stored_in_clear),
        cmocka_unit_test(test_threads_share_handle),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
