/*
 * test_store_util.h - helpers shared by the store tests (test_store*.c):
 * a fresh temporary directory per test, its removal, and a few raw SQLite
 * calls for checking the file independently of the store's code.
 * Include after <cmocka.h>.
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

#include "nuage/nuage.h"
#include "platform/store.h"

typedef struct {
    char dir[256];
    char path[300];   /* dir/nuage.db */
} tmp_db;

/* Make an empty directory; path = dir/nuage.db (not created). */
static inline void tmp_db_init(tmp_db *t) {
    const char *base = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/nuage-store-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/nuage.db", t->dir);
}

/* Remove the directory and every file in it. */
static inline void tmp_db_cleanup(tmp_db *t) {
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
