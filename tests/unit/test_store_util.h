/*
 * test_store_util.h - helpers shared by the store tests (test_store*.c):
 * a fresh temporary directory per test, its removal, and a few raw SQLite
 * calls for checking the file independently of the store's code.
 * Include after <cmocka.h>.
 *
 * Both backends. With $NUAGE_TEST_PG_URL set (a PostgreSQL server's URL,
 * as tests/pg_run.sh sets it from scripts/pg_temp.sh) the same tests run
 * on PostgreSQL: tmp_db_init creates a fresh database per test and path is
 * its URL, tmp_db_cleanup drops it, and raw_exec / raw_int run their SQL
 * through libpq instead of SQLite. A test that checks something only one
 * backend has (a file's mode, PRAGMAs) calls SQLITE_ONLY(t) first, which
 * marks it skipped on PostgreSQL.
 */
#ifndef NUAGE_TEST_STORE_UTIL_H
#define NUAGE_TEST_STORE_UTIL_H

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "nuage/nuage.h"
#include "platform/store.h"

typedef struct {
    char dir[256];
    char path[300];   /* dir/nuage.db, or the test database's postgres:// URL */
    bool pg;          /* on PostgreSQL ($NUAGE_TEST_PG_URL) */
    char pgdb[64];    /* its database name */
} tmp_db;

/* Run sql on the server's URL with its database replaced by db (NULL:
 * as given). Asserts success. */
static inline void pg_admin_exec(const char *db, const char *sql) {
    const char *url = getenv("NUAGE_TEST_PG_URL");
    char u[300];
    snprintf(u, sizeof u, "%s", url);
    char *slash = strrchr(u, '/');
    if (db && slash && slash > u + 12) snprintf(slash + 1, sizeof u - (size_t)(slash + 1 - u), "%s", db);
    PGconn *c = PQconnectdb(u);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) print_message("pg: %s: %s\n", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    assert_true(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
}

static inline bool test_pg_mode(void) {
    const char *url = getenv("NUAGE_TEST_PG_URL");
    return url && *url;
}

#define SQLITE_ONLY(t)                                                        \
    do {                                                                      \
        if ((t)->pg) {                                                        \
            print_message("skipped on PostgreSQL (checks a SQLite file)\n"); \
            tmp_db_cleanup(t);                                                \
            skip();                                                           \
        }                                                                     \
    } while (0)

/* Make an empty directory; path = dir/nuage.db (not created), or on
 * PostgreSQL a new empty database and its URL. */
static inline void tmp_db_init(tmp_db *t) {
    const char *base = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/nuage-store-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/nuage.db", t->dir);
    t->pg = test_pg_mode();
    t->pgdb[0] = 0;
    if (t->pg) {
        static int seq;
        snprintf(t->pgdb, sizeof t->pgdb, "t_%d_%d", (int)getpid(), ++seq);
        char sql[128];
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", t->pgdb);
        pg_admin_exec(NULL, sql);
        snprintf(t->path, sizeof t->path, "%s", getenv("NUAGE_TEST_PG_URL"));
        char *slash = strrchr(t->path, '/');
        snprintf(slash + 1, sizeof t->path - (size_t)(slash + 1 - t->path), "%s", t->pgdb);
    }
}

/* Remove the directory and every file in it (and the test database). */
static inline void tmp_db_cleanup(tmp_db *t) {
    if (t->pg && t->pgdb[0]) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->pgdb);
        pg_admin_exec(NULL, sql);
        t->pgdb[0] = 0;
    }
    DIR *d = opendir(t->dir);
    if (!d) return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(t->dir);
}

static inline nuage_store *tmp_db_open(tmp_db *t) {
    nuage_store *s = NULL;
    char err[512] = {0};
    int rc = nuage_store_open(t->path, &s, err, sizeof err);
    if (rc) print_message("open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

/* Run SQL on the file with a raw connection (not the store's code). */
static inline void raw_exec(const char *path, const char *sql) {
    if (!strncmp(path, "postgres", 8)) {
        PGconn *c = PQconnectdb(path);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) print_message("raw_exec: %s\n", PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        assert_true(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
        return;
    }
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) print_message("raw_exec: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

/* First column of the first row of sql, as an integer. */
static inline int64_t raw_int(const char *path, const char *sql) {
    if (!strncmp(path, "postgres", 8)) {
        PGconn *c = PQconnectdb(path);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) print_message("raw_int: %s\n", PQerrorMessage(c));
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_true(PQntuples(r) >= 1);
        int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        PQfinish(c);
        return v;
    }
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static inline int64_t test_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
