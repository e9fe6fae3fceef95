/*
 * test_store_usage.c - usage records: durability across SIGKILL and the
 * totals by day / deployment / tenant, with tenant and since filters.
 *
 * Durability: a forked child writes N records and kills itself with
 * SIGKILL the moment the last nuage_store_usage_add returns (no close, no
 * exit handlers); the parent reopens the file and must find all N. Totals
 * are compared with sums computed here from the records the test wrote.
 *
 * Billing fails closed (issue 12, item 4): with the file size limit
 * (RLIMIT_FSIZE, SIGXFSZ ignored) below the database's size every write
 * fails the way a full disk makes it fail; the records wait in memory,
 * the metering check says "unavailable", and once the limit is lifted the
 * next check writes them all, in order, exactly once. (The same failure
 * on a real full tmpfs is tests/integration/test_metering_full_disk.sh.)
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "test_util.h"
#include "test_store_util.h"

#define DAY_MS 86400000LL

static void test_usage_survives_sigkill(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_tenant ten;
    assert_int_equal(nuage_store_tenant_create(s, "acme", 0, 0, 1.0, &ten), 0);
    nuage_store_close(s);
    const int n = 40;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        nuage_store *c = NULL;
        if (nuage_store_open(t.path, &c, NULL, 0)) _exit(3);
        for (int i = 0; i < n; i++) {
            nuage_usage_record r = {.time_ms = test_now_ms(), .tenant_id = ten.id, .key_id = 1,
                                    .prompt_tokens = i + 1, .completion_tokens = 2 * i,
                                    .cached_tokens = i / 2, .reasoning_tokens = i % 3,
                                    .status = 200, .latency_ms = 1.0};
            snprintf(r.request_id, sizeof r.request_id, "req-%d", i);
            snprintf(r.deployment, sizeof r.deployment, "dep");
            if (nuage_store_usage_add(c, &r)) _exit(4);
        }
        kill(getpid(), SIGKILL);
        _exit(5);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    s = tmp_db_open(&t);
    nuage_usage_total *tot;
    int k;
    assert_int_equal(nuage_store_usage_totals(s, ten.id, 0, NULL, &tot, &k), 0);
    assert_int_equal(k, 1);
    int64_t prompt = 0, completion = 0, cached = 0, reasoning = 0;
    for (int i = 0; i < n; i++) {
        prompt += i + 1;
        completion += 2 * i;
        cached += i / 2;
        reasoning += i % 3;
    }
    assert_int_equal(tot[0].requests, n);
    assert_int_equal(tot[0].prompt_tokens, prompt);
    assert_int_equal(tot[0].completion_tokens, completion);
    assert_int_equal(tot[0].cached_tokens, cached);
    assert_int_equal(tot[0].reasoning_tokens, reasoning);
    free(tot);
    /* The request ids are all there, each once. */
    nuage_store_close(s);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(DISTINCT request_id) FROM usage"), n);
    tmp_db_cleanup(&t);
}

/* Test records: tenant, day offset, deployment, counts. */
typedef struct {
    int tenant;      /* 0 or 1: index into ids */
    int day;         /* days after base */
    const char *dep;
    int64_t p, c, comp, r;
} rec;

static const rec recs[] = {
    {0, 0, "small", 10, 2, 5, 0},  {0, 0, "big", 100, 50, 20, 7}, {1, 0, "small", 3, 0, 1, 0},
    {0, 1, "small", 11, 0, 6, 1},  {1, 1, "big", 200, 10, 40, 9}, {0, 2, "big", 7, 7, 7, 7},
    {1, 2, "small", 1, 1, 1, 1},   {0, 2, "small", 5, 0, 0, 0},
};
#define N_RECS ((int)(sizeof recs / sizeof recs[0]))

/* Expected totals over records matching (tenant idx or -1, day >= min_day)
 * with key(rec) == group. */
static void expect(int tenant, int min_day, const char *by, const char *group,
                   const char *const day_names[], const char *const tenant_names[],
                   nuage_usage_total *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < N_RECS; i++) {
        const rec *r = &recs[i];
        if ((tenant >= 0 && r->tenant != tenant) || r->day < min_day) continue;
        const char *g = !by ? "total"
                        : !strcmp(by, "day") ? day_names[r->day]
                        : !strcmp(by, "deployment") ? r->dep
                                                     : tenant_names[r->tenant];
        if (strcmp(g, group)) continue;
        out->requests++;
        out->prompt_tokens += r->p;
        out->cached_tokens += r->c;
        out->completion_tokens += r->comp;
        out->reasoning_tokens += r->r;
    }
}

static void check_totals(nuage_store *s, int64_t tenant_id, int tenant_idx, int64_t since,
                         int min_day, const char *by, const char *const day_names[],
                         const char *const tenant_names[], int want_rows) {
    nuage_usage_total *tot;
    int n;
    assert_int_equal(nuage_store_usage_totals(s, tenant_id, since, by, &tot, &n), 0);
    assert_int_equal(n, want_rows);
    for (int i = 0; i < n; i++) {
        if (i > 0) assert_true(strcmp(tot[i - 1].group, tot[i].group) < 0);  /* ordered */
        nuage_usage_total want;
        expect(tenant_idx, min_day, by, tot[i].group, day_names, tenant_names, &want);
        assert_true(want.requests > 0);
        assert_int_equal(tot[i].requests, want.requests);
        assert_int_equal(tot[i].prompt_tokens, want.prompt_tokens);
        assert_int_equal(tot[i].cached_tokens, want.cached_tokens);
        assert_int_equal(tot[i].completion_tokens, want.completion_tokens);
        assert_int_equal(tot[i].reasoning_tokens, want.reasoning_tokens);
    }
    free(tot);
}

/* PostgreSQL: the database goes away for a while (the server stops) and
 * comes back. Records of requests ending meanwhile wait in memory, new
 * metered requests are refused (fail closed), key lookups fail, and after
 * the restart every record is written once, with nothing lost. */
static void test_usage_database_outage(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    const char *dir = getenv("NUAGE_TEST_PG_DIR"), *tool = getenv("NUAGE_PG_TEMP");
    if (!t.pg || !dir || !tool) {
        print_message("PostgreSQL only (the SQLite equivalent is the full-disk test)\n");
        tmp_db_cleanup(&t);
        skip();
    }
    nuage_store *s = tmp_db_open(&t);
    assert_int_equal(nuage_store_tenant_create(s, "acme", 0, 0, 1.0, NULL), 0);
    char key[80];
    assert_int_equal(nuage_store_key_create(s, "acme", "", 0, false, key, sizeof key, NULL), 0);
    nuage_usage_record r;
    memset(&r, 0, sizeof r);
    r.status = 200;
    r.prompt_tokens = 1;
    snprintf(r.request_id, sizeof r.request_id, "before");
    assert_int_equal(nuage_store_usage_add(s, &r), 0);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "bash %s halt %s", tool, dir);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < 3; i++) {
        r.prompt_tokens = 10 + i;
        snprintf(r.request_id, sizeof r.request_id, "during-%d", i);
        assert_int_equal(nuage_store_usage_add(s, &r), NUAGE_E_IO);
    }
    int64_t retry = 0;
    assert_int_equal(nuage_store_metering_check(s, &retry), NUAGE_E_IO);
    nuage_metering_status ms;
    nuage_store_metering_status(s, &ms);
    assert_int_equal(ms.pending, 3);
    assert_int_equal(ms.lost, 0);
    assert_int_equal(nuage_store_key_verify(s, key, NULL, NULL), NUAGE_E_IO);

    snprintf(cmd, sizeof cmd, "bash %s resume %s", tool, dir);
    assert_int_equal(system(cmd), 0);
    int rc = NUAGE_E_IO;
    for (int i = 0; i < 100 && rc; i++) {
        rc = nuage_store_metering_check(s, NULL);
        if (rc) usleep(100 * 1000);
    }
    if (rc) print_message("still failing: %s\n", nuage_store_errmsg(s));
    assert_int_equal(rc, 0);
    nuage_store_metering_status(s, &ms);
    assert_int_equal(ms.pending, 0);
    assert_int_equal(nuage_store_key_verify(s, key, NULL, NULL), 0);
    r.prompt_tokens = 100;
    snprintf(r.request_id, sizeof r.request_id, "after");
    assert_int_equal(nuage_store_usage_add(s, &r), 0);
    /* every record once: 1 + 10 + 11 + 12 + 100 */
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM usage"), 5);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(DISTINCT request_id) FROM usage"), 5);
    assert_int_equal(raw_int(t.path, "SELECT SUM(prompt_tokens) FROM usage"), 134);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_usage_totals(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_tenant ta, tb;
    assert_int_equal(nuage_store_tenant_create(s, "acme", 0, 0, 1.0, &ta), 0);
    assert_int_equal(nuage_store_tenant_create(s, "bolt", 0, 0, 1.0, &tb), 0);
    int64_t ids[2] = {ta.id, tb.id};
    const char *const tenant_names[2] = {"acme", "bolt"};
    /* 2024-03-09 00:00:00 UTC = 1709942400 s; records at varying hours. */
    const int64_t base = 1709942400000LL;
    const char *const day_names[3] = {"2024-03-09", "2024-03-10", "2024-03-11"};
    for (int i = 0; i < N_RECS; i++) {
        nuage_usage_record r = {.time_ms = base + recs[i].day * DAY_MS + (i * 3 % 24) * 3600000LL,
                                .tenant_id = ids[recs[i].tenant], .prompt_tokens = recs[i].p,
                                .cached_tokens = recs[i].c, .completion_tokens = recs[i].comp,
                                .reasoning_tokens = recs[i].r, .status = 200};
        snprintf(r.deployment, sizeof r.deployment, "%s", recs[i].dep);
        assert_int_equal(nuage_store_usage_add(s, &r), 0);
    }
    /* All tenants, all time. */
    check_totals(s, 0, -1, 0, 0, NULL, day_names, tenant_names, 1);
    check_totals(s, 0, -1, 0, 0, "day", day_names, tenant_names, 3);
    check_totals(s, 0, -1, 0, 0, "deployment", day_names, tenant_names, 2);
    check_totals(s, 0, -1, 0, 0, "tenant", day_names, tenant_names, 2);
    /* One tenant. */
    check_totals(s, ta.id, 0, 0, 0, NULL, day_names, tenant_names, 1);
    check_totals(s, tb.id, 1, 0, 0, "day", day_names, tenant_names, 3);
    check_totals(s, ta.id, 0, 0, 0, "deployment", day_names, tenant_names, 2);
    /* Since the start of the second day. */
    check_totals(s, 0, -1, base + DAY_MS, 1, "day", day_names, tenant_names, 2);
    check_totals(s, tb.id, 1, base + DAY_MS, 1, "deployment", day_names, tenant_names, 2);
    check_totals(s, ta.id, 0, base + 2 * DAY_MS, 2, NULL, day_names, tenant_names, 1);
    /* Nothing matches: one zero "total" row, no grouped rows. */
    nuage_usage_total *tot;
    int n;
    assert_int_equal(nuage_store_usage_totals(s, 0, base + 9 * DAY_MS, NULL, &tot, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(tot[0].group, "total");
    assert_int_equal(tot[0].requests, 0);
    assert_int_equal(tot[0].prompt_tokens, 0);
    free(tot);
    assert_int_equal(nuage_store_usage_totals(s, 0, base + 9 * DAY_MS, "day", &tot, &n), 0);
    assert_int_equal(n, 0);
    free(tot);
    assert_int_equal(nuage_store_usage_totals(s, 0, 0, "week", &tot, &n), NUAGE_E_INVAL);
    /* A range: the days before the end (exclusive) only, the same rows as
     * the open-ended query cut there. */
    nuage_usage_total *all;
    int n_all;
    assert_int_equal(nuage_store_usage_totals(s, 0, 0, "day", &all, &n_all), 0);
    assert_true(n_all >= 2);
    assert_int_equal(nuage_store_usage_totals_range(s, 0, 0, base + DAY_MS, "day", &tot, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(tot[0].group, all[0].group);
    assert_int_equal(tot[0].requests, all[0].requests);
    assert_int_equal(tot[0].completion_tokens, all[0].completion_tokens);
    free(tot);
    assert_int_equal(nuage_store_usage_totals_range(s, 0, base + DAY_MS, base + 2 * DAY_MS, "day", &tot, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(tot[0].group, all[1].group);
    free(tot);
    free(all);
    /* A deleted tenant's records stay, grouped under "#id". */
    assert_int_equal(nuage_store_tenant_delete(s, "bolt"), 0);
    assert_int_equal(nuage_store_usage_totals(s, 0, 0, "tenant", &tot, &n), 0);
    assert_int_equal(n, 2);
    char want[32];
    snprintf(want, sizeof want, "#%lld", (long long)tb.id);
    assert_string_equal(tot[0].group, want);
    free(tot);
    /* Bad records. */
    nuage_usage_record bad = {.prompt_tokens = -1};
    assert_int_equal(nuage_store_usage_add(s, &bad), NUAGE_E_INVAL);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

typedef struct {
    nuage_store *s;
    int base;
} add_job;

static void *add_thread(void *arg) {
    add_job *j = arg;
    for (int i = 0; i < 15; i++) {
        nuage_usage_record r = {.tenant_id = 1, .prompt_tokens = j->base + i, .status = 200};
        if (nuage_store_usage_add(j->s, &r)) return (void *)1;
    }
    return NULL;
}

/* Threads of one process and a second handle (another process's view)
 * writing at once: nothing lost, nothing doubled. */
static void test_usage_concurrent_writers(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_store *s2 = tmp_db_open(&t);
    pthread_t th[4];
    add_job jobs[4];
    int64_t want = 0;
    for (int i = 0; i < 4; i++) {
        jobs[i] = (add_job){i % 2 ? s2 : s, i * 100};
        for (int k = 0; k < 15; k++) want += i * 100 + k;
        assert_int_equal(pthread_create(&th[i], NULL, add_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    nuage_usage_total *tot;
    int n;
    assert_int_equal(nuage_store_usage_totals(s2, 0, 0, NULL, &tot, &n), 0);
    assert_int_equal(tot[0].requests, 60);
    assert_int_equal(tot[0].prompt_tokens, want);
    free(tot);
    nuage_store_close(s2);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

/* "Disk full" for this process: files may not grow past `bytes`. */
static void fsize_limit(rlim_t bytes) {
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = bytes == RLIM_INFINITY ? rl.rlim_max : bytes;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static int64_t count_usage(const char *path) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(prompt_tokens), 0) FROM usage", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0) * 1000000 + sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_usage_full_disk_fails_closed(void **state) {
    (void)state;
    signal(SIGXFSZ, SIG_IGN);
    tmp_db t;
    tmp_db_init(&t);
    SQLITE_ONLY(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_usage_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.deployment, sizeof r.deployment, "chat");
    r.status = 200;
    r.prompt_tokens = 1;
    assert_int_equal(nuage_store_usage_add(s, &r), 0);
    assert_int_equal(nuage_store_metering_check(s, NULL), 0);
    nuage_metering_status ms;
    nuage_store_metering_status(s, &ms);
    assert_int_equal(ms.pending, 0);

    /* The disk is full: three requests that were running end now. */
    fsize_limit(1024);
    for (int i = 0; i < 3; i++) {
        r.prompt_tokens = 10 + i;
        snprintf(r.request_id, sizeof r.request_id, "req-%d", i);
        int rc = nuage_store_usage_add(s, &r);
        assert_int_equal(rc, NUAGE_E_IO);
        assert_non_null(strstr(nuage_store_errmsg(s), "kept in memory"));
    }
    int64_t wait = 0;
    assert_int_equal(nuage_store_metering_check(s, &wait), NUAGE_E_IO);
    assert_true(wait > 0 && wait <= NUAGE_STORE_RETRY_MS);
    nuage_store_metering_status(s, &ms);
    assert_int_equal(ms.pending, 3);
    assert_true(ms.pending_since_ms > 0);
    assert_true(ms.last_error[0] != 0);
    assert_true(ms.lost == 0);
    /* Still full after the retry delay: still refused, nothing written. */
    usleep((NUAGE_STORE_RETRY_MS + 50) * 1000);
    assert_int_equal(nuage_store_metering_check(s, &wait), NUAGE_E_IO);
    assert_true(count_usage(t.path) == 1 * 1000000 + 1);

    /* Room again: the next check (after the delay) writes all three. */
    fsize_limit(RLIM_INFINITY);
    assert_int_equal(nuage_store_metering_check(s, NULL), NUAGE_E_IO); /* retried at most once a second */
    usleep((NUAGE_STORE_RETRY_MS + 50) * 1000);
    assert_int_equal(nuage_store_metering_check(s, NULL), 0);
    nuage_store_metering_status(s, &ms);
    assert_int_equal(ms.pending, 0);
    assert_true(ms.pending_since_ms == 0);
    assert_true(count_usage(t.path) == 4 * 1000000 + 1 + 10 + 11 + 12);
    /* A second check writes nothing twice. */
    assert_int_equal(nuage_store_metering_check(s, NULL), 0);
    assert_true(count_usage(t.path) == 4 * 1000000 + 34);

    /* Records pending at close get a last try; a later write flushes the
     * older ones first, in order. */
    fsize_limit(1024);
    r.prompt_tokens = 100;
    assert_int_equal(nuage_store_usage_add(s, &r), NUAGE_E_IO);
    fsize_limit(RLIM_INFINITY);
    r.prompt_tokens = 200;
    assert_int_equal(nuage_store_usage_add(s, &r), 0);
    assert_int_equal(nuage_store_metering_check(s, NULL), 0);
    assert_true(count_usage(t.path) == 6 * 1000000 + 334);
    fsize_limit(1024);
    r.prompt_tokens = 1000;
    assert_int_equal(nuage_store_usage_add(s, &r), NUAGE_E_IO);
    fsize_limit(RLIM_INFINITY);
    nuage_store_close(s);
    assert_true(count_usage(t.path) == 7 * 1000000 + 1334);
    tmp_db_cleanup(&t);
    signal(SIGXFSZ, SIG_DFL);
}

/* PostgreSQL with a usage journal (store_journal.c): records are billed
 * locally while the database is down (no 503), survive the replica being
 * stopped, arrive after recovery exactly once (a record that had already
 * reached PostgreSQL is not counted again), and the journal refusing
 * writes fails closed as a full disk does. */
static void test_usage_journal(void **state) {
    (void)state;
    signal(SIGXFSZ, SIG_IGN);
    tmp_db t;
    tmp_db_init(&t);
    const char *dir = getenv("NUAGE_TEST_PG_DIR"), *tool = getenv("NUAGE_PG_TEMP");
    nuage_store *s = tmp_db_open(&t);
    char jpath[400], err[300];
    snprintf(jpath, sizeof jpath, "%s/journal-%d.db", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    unlink(jpath);
    if (!t.pg || !dir || !tool) {
        /* SQLite: a single server writes its own file; no journal. */
        assert_int_equal(nuage_store_journal_open(s, t.path, jpath, err, sizeof err), NUAGE_E_UNSUPPORTED);
        assert_non_null(strstr(err, "PostgreSQL"));
        nuage_store_close(s);
        tmp_db_cleanup(&t);
        skip();
    }
    assert_int_equal(nuage_store_schema_version(s), 7);
    assert_int_equal(nuage_store_journal_open(s, t.path, jpath, err, sizeof err), 0);
    assert_int_equal(nuage_store_journal_open(s, t.path, jpath, err, sizeof err), NUAGE_E_STATE);
    nuage_usage_record r;
    memset(&r, 0, sizeof r);
    r.status = 200;
    r.prompt_tokens = 1;
    snprintf(r.request_id, sizeof r.request_id, "j-first");
    assert_int_equal(nuage_store_usage_add(s, &r), 0);
    r.request_id[0] = 0; /* gets one */
    r.prompt_tokens = 2;
    assert_int_equal(nuage_store_usage_add(s, &r), 0);
    assert_int_equal(nuage_store_journal_drain(s, 10000), 0);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM usage"), 2);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM usage WHERE request_id LIKE 'usage-%'"), 1);
    nuage_metering_status ms;
    nuage_store_metering_status(s, &ms);
    assert_true(ms.journal);
    assert_int_equal(ms.journal_queued, 0);
    assert_int_equal(ms.journal_shipped, 2);

    /* The database goes away: requests that end are still billed (to the
     * journal), the metering check still says yes. */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "bash %s halt %s", tool, dir);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < 3; i++) {
        r.prompt_tokens = 10 + i;
        snprintf(r.request_id, sizeof r.request_id, "j-during-%d", i);
        assert_int_equal(nuage_store_usage_add(s, &r), 0);
    }
    assert_int_equal(nuage_store_metering_check(s, NULL), 0);
    assert_int_equal(nuage_store_journal_drain(s, 1500), NUAGE_E_BUSY);
    nuage_store_metering_status(s, &ms);
    assert_int_equal(ms.journal_queued, 3);
    assert_int_equal(ms.pending, 0);
    assert_true(ms.journal_ship_failures > 0);
    assert_true(ms.journal_error[0] != 0);
    /* The replica stops during the outage: the records stay in the file. */
    nuage_store_close(s);

    snprintf(cmd, sizeof cmd, "bash %s resume %s", tool, dir);
    assert_int_equal(system(cmd), 0);
    /* One of them had reached PostgreSQL after all (a COMMIT whose answer
     * was lost): shipping it again must not count it twice. */
    raw_exec(t.path, "INSERT INTO usage(time_ms, tenant_id, key_id, request_id, deployment, model_version,"
                     " prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, status, latency_ms)"
                     " VALUES(1, 0, 0, 'j-during-1', '', '', 11, 0, 0, 0, 200, 0)");
    s = tmp_db_open(&t);
    assert_int_equal(nuage_store_journal_open(s, t.path, jpath, err, sizeof err), 0);
    assert_int_equal(nuage_store_journal_drain(s, 20000), 0);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM usage"), 5);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(DISTINCT request_id) FROM usage"), 5);
    assert_int_equal(raw_int(t.path, "SELECT SUM(prompt_tokens) FROM usage"), 1 + 2 + 10 + 11 + 12);

    /* The journal cannot be written: fail closed (503), as a full disk. */
    fsize_limit(1024);
    r.prompt_tokens = 100;
    snprintf(r.request_id, sizeof r.request_id, "j-full");
    assert_int_equal(nuage_store_usage_add(s, &r), NUAGE_E_IO);
    assert_int_equal(nuage_store_metering_check(s, NULL), NUAGE_E_IO);
    nuage_store_metering_status(s, &ms);
    assert_int_equal(ms.pending, 1);
    fsize_limit(RLIM_INFINITY);
    usleep((NUAGE_STORE_RETRY_MS + 50) * 1000);
    assert_int_equal(nuage_store_metering_check(s, NULL), 0);
    assert_int_equal(nuage_store_journal_drain(s, 10000), 0);
    assert_int_equal(raw_int(t.path, "SELECT SUM(prompt_tokens) FROM usage"), 136);
    assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM usage"), 6);
    nuage_store_close(s);
    unlink(jpath);
    tmp_db_cleanup(&t);
    signal(SIGXFSZ, SIG_DFL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_survives_sigkill),
        cmocka_unit_test(test_usage_totals),
        cmocka_unit_test(test_usage_concurrent_writers),
        cmocka_unit_test(test_usage_full_disk_fails_closed),
        cmocka_unit_test(test_usage_database_outage),
        cmocka_unit_test(test_usage_journal),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
