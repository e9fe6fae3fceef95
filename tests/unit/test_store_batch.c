/*
 * test_store_batch.c - files (CRUD, tenant isolation) and batch jobs
 * (create, status changes, idempotent durable line records, finalize).
 *
 * Line durability: a forked child records lines and SIGKILLs itself right
 * after the last call returns; the parent must find every line and the
 * counters equal to them. Finalize is checked against the JSONL the test
 * itself wrote, recorded out of order.
 *
 * Leases: two or more store handles on one database stand for replicas;
 * times are given explicitly (now_ms), so expiry is tested without
 * sleeping. Contention: six connections claim at one instant (a barrier)
 * and every job must go to exactly one of them.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "test_util.h"
#include "test_store_util.h"

/* ---- files ----------------------------------------------------------------- */

static void test_files_crud_isolation(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    /* Binary content with NUL bytes survives exactly. */
    unsigned char data[3000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 31 + 7);
    nuage_file a, b, e, got;
    assert_int_equal(nuage_store_file_create(s, 1, "in.jsonl", "batch", data, sizeof data, &a), 0);
    assert_memory_equal(a.id, "file-", 5);
    assert_int_equal(a.bytes, sizeof data);
    assert_int_equal(a.tenant_id, 1);
    assert_int_equal(nuage_store_file_create(s, 1, "out.jsonl", "batch_output", "x", 1, &b), 0);
    assert_string_not_equal(a.id, b.id);
    assert_int_equal(nuage_store_file_create(s, 1, "empty", "batch", NULL, 0, &e), 0);
    assert_int_equal(e.bytes, 0);
    assert_int_equal(nuage_store_file_get(s, 1, a.id, &got), 0);
    assert_string_equal(got.filename, "in.jsonl");
    assert_string_equal(got.purpose, "batch");
    void *content;
    size_t len;
    assert_int_equal(nuage_store_file_content(s, 1, a.id, &content, &len), 0);
    assert_int_equal(len, sizeof data);
    assert_memory_equal(content, data, sizeof data);
    free(content);
    assert_int_equal(nuage_store_file_content(s, 1, e.id, &content, &len), 0);
    assert_int_equal(len, 0);
    free(content);
    /* Another tenant sees none of it. */
    assert_int_equal(nuage_store_file_get(s, 2, a.id, &got), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_file_content(s, 2, a.id, &content, &len), NUAGE_E_RANGE);
    assert_null(content);
    assert_int_equal(nuage_store_file_delete(s, 2, a.id), NUAGE_E_RANGE);
    nuage_file *list;
    int n;
    assert_int_equal(nuage_store_file_list(s, 2, NULL, &list, &n), 0);
    assert_int_equal(n, 0);
    free(list);
    /* Lists: by purpose, all. */
    assert_int_equal(nuage_store_file_list(s, 1, "batch", &list, &n), 0);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++) assert_string_equal(list[i].purpose, "batch");
    free(list);
    assert_int_equal(nuage_store_file_list(s, 1, NULL, &list, &n), 0);
    assert_int_equal(n, 3);
    free(list);
    /* Delete. */
    assert_int_equal(nuage_store_file_delete(s, 1, a.id), 0);
    assert_int_equal(nuage_store_file_get(s, 1, a.id, &got), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_file_delete(s, 1, a.id), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_file_get(s, 1, "file-nope", &got), NUAGE_E_RANGE);
    /* Bad arguments. */
    assert_int_equal(nuage_store_file_create(s, 1, "", "batch", "x", 1, NULL), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_file_create(s, 1, "f", "", "x", 1, NULL), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_file_create(s, 1, "f", "batch", NULL, 5, NULL), NUAGE_E_INVAL);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

/* ---- batches ----------------------------------------------------------------- */

static void make_batch(nuage_store *s, int64_t tenant, nuage_batch_job *b) {
    nuage_file in;
    const char *text = "{\"custom_id\":\"a\"}\n{\"custom_id\":\"b\"}\n";
    assert_int_equal(nuage_store_file_create(s, tenant, "in.jsonl", "batch", text, strlen(text),
                                             &in), 0);
    assert_int_equal(nuage_store_batch_create(s, tenant, "/v1/chat/completions", in.id, "24h",
                                              "small", "{\"job\":\"t\"}", b), 0);
}

/* Issue 12: an upload copied from a descriptor in chunks (store_blob.c /
 * store_pg_files.c) reads back whole and piecewise, byte for byte, across
 * chunk boundaries; an inline file reads piecewise too; a file is read by
 * its tenant only, and not at all once deleted. */
static void test_files_fd_and_piecewise_read(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    size_t n = (2u << 20) + 12345; /* several chunks of either backend, the last one short */
    unsigned char *data = malloc(n), *back = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (unsigned char)(i * 131 + (i >> 12));
    char path[] = "/tmp/nuage-fd-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    nuage_file up, in, got;
    assert_int_equal(nuage_store_file_create_fd(s, 1, "big.bin", "batch", fd, n, &up), 0);
    close(fd);
    assert_int_equal(up.bytes, (int64_t)n);
    assert_int_equal(up.tenant_id, 1);
    assert_int_equal(nuage_store_file_get(s, 1, up.id, &got), 0);
    assert_int_equal(got.bytes, (int64_t)n);
    void *whole = NULL;
    size_t len = 0;
    assert_int_equal(nuage_store_file_content(s, 1, up.id, &whole, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(whole, data, n);
    free(whole);
    /* piecewise with an odd block size: pieces never cross the end */
    uint64_t size = 0;
    size_t k = 0;
    for (size_t off = 0; off < n; off += k) {
        assert_int_equal(nuage_store_file_read(s, 1, up.id, off, back + off, 100003, &k, &size), 0);
        assert_int_equal(size, n);
        assert_true(k > 0 && k <= 100003 && off + k <= n);
    }
    assert_memory_equal(back, data, n);
    assert_int_equal(nuage_store_file_read(s, 1, up.id, n, back, 10, &k, NULL), 0);
    assert_int_equal(k, 0);
    /* an inline file piecewise */
    assert_int_equal(nuage_store_file_create(s, 1, "in.jsonl", "batch", data, 5000, &in), 0);
    for (size_t off = 0; off < 5000; off += k) {
        assert_int_equal(nuage_store_file_read(s, 1, in.id, off, back + off, 777, &k, &size), 0);
        assert_int_equal(size, 5000);
        assert_true(k > 0);
    }
    assert_memory_equal(back, data, 5000);
    /* another tenant, an unknown id, a deleted file */
    assert_int_equal(nuage_store_file_read(s, 2, up.id, 0, back, 10, &k, NULL), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_file_read(s, 1, "file-nope", 0, back, 10, &k, NULL), NUAGE_E_RANGE);
    nuage_file *list = NULL;
    int nl = 0;
    assert_int_equal(nuage_store_file_list(s, 1, NULL, &list, &nl), 0);
    assert_int_equal(nl, 2);
    free(list);
    assert_int_equal(nuage_store_file_delete(s, 1, up.id), 0);
    assert_int_equal(nuage_store_file_read(s, 1, up.id, 0, back, 10, &k, NULL), NUAGE_E_RANGE);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM file_chunks WHERE file_id = '%s'", up.id);
    assert_int_equal(raw_int(t.path, sql), 0);
    free(data);
    free(back);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_batch_create_status(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_batch_job b, got;
    make_batch(s, 7, &b);
    assert_memory_equal(b.id, "batch_", 6);
    assert_string_equal(b.status, "validating");
    assert_string_equal(b.endpoint, "/v1/chat/completions");
    assert_string_equal(b.deployment, "small");
    assert_string_equal(b.completion_window, "24h");
    assert_int_equal(b.expires_ms - b.created_ms, 24LL * 3600 * 1000);
    assert_true(llabs(b.created_ms - test_now_ms()) < 60000);
    assert_int_equal(b.output_file_id[0], 0);
    /* Input file rules: must exist and be the tenant's. */
    nuage_file other;
    assert_int_equal(nuage_store_file_create(s, 8, "x.jsonl", "batch", "{}\n", 3, &other), 0);
    assert_int_equal(nuage_store_batch_create(s, 7, "/v1/chat/completions", other.id, "24h", "",
                                              NULL, NULL), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_batch_create(s, 7, "/v1/chat/completions", "file-x", "24h", "",
                                              NULL, NULL), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_batch_create(s, 8, "/v1/chat/completions", other.id, "soon", "",
                                              NULL, NULL), NUAGE_E_INVAL);
    /* Metadata is kept as given, for the owner only. */
    char *meta = NULL;
    assert_int_equal(nuage_store_batch_metadata(s, 7, b.id, &meta), 0);
    assert_string_equal(meta, "{\"job\":\"t\"}");
    free(meta);
    assert_int_equal(nuage_store_batch_metadata(s, 8, b.id, &meta), NUAGE_E_RANGE);
    assert_null(meta);
    /* Visibility. */
    assert_int_equal(nuage_store_batch_get(s, 7, b.id, &got), 0);
    assert_int_equal(nuage_store_batch_get(s, 8, b.id, &got), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_batch_get(s, -1, b.id, &got), 0);
    nuage_batch_job b2, *list;
    int n;
    make_batch(s, 8, &b2);
    assert_int_equal(nuage_store_batch_list(s, 7, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, b.id);
    free(list);
    assert_int_equal(nuage_store_batch_list(s, -1, &list, &n), 0);
    assert_int_equal(n, 2);
    free(list);
    /* Status changes stamp their time once; total is set when > 0. */
    assert_int_equal(nuage_store_batch_set_status(s, b.id, "in_progress", 2), 0);
    assert_int_equal(nuage_store_batch_get(s, 7, b.id, &got), 0);
    assert_string_equal(got.status, "in_progress");
    assert_int_equal(got.total, 2);
    assert_true(got.in_progress_ms >= b.created_ms);
    int64_t first = got.in_progress_ms;
    assert_int_equal(nuage_store_batch_set_status(s, b.id, "in_progress", 0), 0);
    assert_int_equal(nuage_store_batch_get(s, 7, b.id, &got), 0);
    assert_int_equal(got.in_progress_ms, first);
    assert_int_equal(got.total, 2);
    assert_int_equal(nuage_store_batch_set_status(s, b.id, "done", 0), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_batch_set_status(s, "batch_nope", "failed", 0), NUAGE_E_RANGE);
    assert_int_equal(nuage_store_batch_set_status(s, b.id, "finalizing", 0), 0);
    assert_int_equal(nuage_store_batch_set_status(s, b.id, "completed", 0), 0);
    assert_int_equal(nuage_store_batch_get(s, 7, b.id, &got), 0);
    assert_true(got.finalizing_ms > 0 && got.completed_ms >= got.finalizing_ms);
    /* Terminal: no further change. */
    assert_int_equal(nuage_store_batch_set_status(s, b.id, "cancelling", 0), NUAGE_E_STATE);
    assert_int_equal(nuage_store_batch_set_status(s, b2.id, "cancelled", 0), 0);
    assert_int_equal(nuage_store_batch_get(s, 8, b2.id, &got), 0);
    assert_true(got.cancelled_ms > 0);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_batch_lines_idempotent(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_batch_job b, got;
    make_batch(s, 1, &b);
    assert_int_equal(nuage_store_batch_set_status(s, b.id, "in_progress", 5), 0);
    assert_int_equal(nuage_store_batch_line_done(s, b.id, 3, false, "{\"l\":3}"), 0);
    assert_int_equal(nuage_store_batch_line_done(s, b.id, 1, true, "{\"l\":1}"), 0);
    /* The same line again: refused, the first record and counts stay. */
    assert_int_equal(nuage_store_batch_line_done(s, b.id, 3, true, "{\"other\":1}"),
                     NUAGE_E_STATE);
    assert_int_equal(nuage_store_batch_line_done(s, b.id, 1, true, "{\"l\":1}"), NUAGE_E_STATE);
    assert_int_equal(nuage_store_batch_get(s, 1, b.id, &got), 0);
    assert_int_equal(got.completed, 1);
    assert_int_equal(got.failed, 1);
    /* Out of range. */
    assert_int_equal(nuage_store_batch_line_done(s, b.id, 0, false, "{}"), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_batch_line_done(s, b.id, 6, false, "{}"), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_batch_line_done(s, "batch_x", 1, false, "{}"), NUAGE_E_RANGE);
    int64_t *lines;
    int n;
    assert_int_equal(nuage_store_batch_lines_done(s, b.id, &lines, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(lines[0], 1);
    assert_int_equal(lines[1], 3);
    free(lines);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_batch_lines_survive_sigkill(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_batch_job b, got;
    make_batch(s, 1, &b);
    const int total = 30;
    assert_int_equal(nuage_store_batch_set_status(s, b.id, "in_progress", total), 0);
    nuage_store_close(s);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        nuage_store *c = NULL;
        if (nuage_store_open(t.path, &c, NULL, 0)) _exit(3);
        /* Even lines first, then odd ones, every 5th an error. */
        for (int pass = 0; pass < 2; pass++)
            for (int line = 1 + (pass == 0); line <= total; line += 2) {
                char text[64];
                snprintf(text, sizeof text, "{\"line\":%d}", line);
                if (nuage_store_batch_line_done(c, b.id, line, line % 5 == 0, text)) _exit(4);
            }
        kill(getpid(), SIGKILL);
        _exit(5);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    s = tmp_db_open(&t);
    int64_t *lines;
    int n;
    assert_int_equal(nuage_store_batch_lines_done(s, b.id, &lines, &n), 0);
    assert_int_equal(n, total);
    for (int i = 0; i < n; i++) assert_int_equal(lines[i], i + 1);
    free(lines);
    assert_int_equal(nuage_store_batch_get(s, 1, b.id, &got), 0);
    assert_int_equal(got.failed, total / 5);
    assert_int_equal(got.completed, total - total / 5);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

static void test_batch_finalize_order(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_batch_job b, got;
    make_batch(s, 4, &b);
    assert_int_equal(nuage_store_batch_set_status(s, b.id, "in_progress", 6), 0);
    /* Recorded out of order; line 5 with a trailing newline; 2 and 6 errors. */
    const char *text[7] = {NULL,           "{\"id\":\"r1\"}", "{\"err\":\"e2\"}", "{\"id\":\"r3\"}",
                           "{\"id\":\"r4\"}", "{\"id\":\"r5\"}\n", "{\"err\":\"e6\"}"};
    const int order[6] = {4, 6, 1, 5, 3, 2};
    for (int i = 0; i < 6; i++) {
        int l = order[i];
        assert_int_equal(nuage_store_batch_line_done(s, b.id, l, l == 2 || l == 6, text[l]), 0);
    }
    assert_int_equal(nuage_store_batch_finalize(s, b.id), 0);
    assert_int_equal(nuage_store_batch_get(s, 4, b.id, &got), 0);
    assert_true(got.output_file_id[0] && got.error_file_id[0]);
    void *data;
    size_t len;
    const char *want_out = "{\"id\":\"r1\"}\n{\"id\":\"r3\"}\n{\"id\":\"r4\"}\n{\"id\":\"r5\"}\n";
    const char *want_err = "{\"err\":\"e2\"}\n{\"err\":\"e6\"}\n";
    assert_int_equal(nuage_store_file_content(s, 4, got.output_file_id, &data, &len), 0);
    assert_int_equal(len, strlen(want_out));
    assert_memory_equal(data, want_out, len);
    free(data);
    assert_int_equal(nuage_store_file_content(s, 4, got.error_file_id, &data, &len), 0);
    assert_int_equal(len, strlen(want_err));
    assert_memory_equal(data, want_err, len);
    free(data);
    nuage_file f;
    assert_int_equal(nuage_store_file_get(s, 4, got.output_file_id, &f), 0);
    assert_string_equal(f.purpose, "batch_output");
    assert_int_equal(f.bytes, strlen(want_out));
    /* The tenant's files only. */
    assert_int_equal(nuage_store_file_get(s, 5, got.output_file_id, &f), NUAGE_E_RANGE);
    /* Finalizing again keeps the same files. */
    assert_int_equal(nuage_store_batch_finalize(s, b.id), 0);
    nuage_batch_job again;
    assert_int_equal(nuage_store_batch_get(s, 4, b.id, &again), 0);
    assert_string_equal(again.output_file_id, got.output_file_id);
    assert_string_equal(again.error_file_id, got.error_file_id);
    nuage_file *list;
    int n;
    assert_int_equal(nuage_store_file_list(s, 4, "batch_output", &list, &n), 0);
    assert_int_equal(n, 2);
    free(list);
    /* A batch without errors gets no error file. */
    nuage_batch_job c;
    make_batch(s, 4, &c);
    assert_int_equal(nuage_store_batch_line_done(s, c.id, 1, false, "{\"ok\":1}"), 0);
    assert_int_equal(nuage_store_batch_finalize(s, c.id), 0);
    assert_int_equal(nuage_store_batch_get(s, 4, c.id, &got), 0);
    assert_true(got.output_file_id[0]);
    assert_int_equal(got.error_file_id[0], 0);
    assert_int_equal(nuage_store_batch_finalize(s, "batch_none"), NUAGE_E_RANGE);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

/* Large contents, from memory and from a descriptor: several of the
 * PostgreSQL backend's 1 MiB chunks plus a partial one (and one large
 * SQLite blob), read back byte for byte; another tenant cannot read them;
 * a short descriptor leaves no file behind. */
static void test_files_large_chunked(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    size_t len = (5u << 19) + 12345; /* 2.5 MiB + a bit */
    unsigned char *data = malloc(len);
    assert_non_null(data);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5; /* xorshift: no repeating 1 MiB pattern */
        data[i] = (unsigned char)x;
    }
    nuage_file f1, f2;
    assert_int_equal(nuage_store_file_create(s, 7, "big.bin", "batch", data, len, &f1), 0);
    assert_int_equal(f1.bytes, (int64_t)len);
    char path[400];
    snprintf(path, sizeof path, "%s/upload", t.dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(nuage_store_file_create_fd(s, 7, "big2.bin", "batch", fd, len, &f2), 0);
    assert_int_equal(f2.bytes, (int64_t)len);
    for (int k = 0; k < 2; k++) {
        void *back = NULL;
        size_t n = 0;
        assert_int_equal(nuage_store_file_content(s, 7, k ? f2.id : f1.id, &back, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(back, data, len);
        free(back);
    }
    void *none = NULL;
    size_t nn = 0;
    assert_int_equal(nuage_store_file_content(s, 8, f1.id, &none, &nn), NUAGE_E_RANGE);
    /* The descriptor holds less than announced: refused, nothing kept. */
    nuage_file *list = NULL;
    int n_list = 0;
    assert_int_equal(nuage_store_file_create_fd(s, 7, "short.bin", "batch", fd, len + 100, NULL), NUAGE_E_IO);
    assert_int_equal(nuage_store_file_list(s, 7, NULL, &list, &n_list), 0);
    assert_int_equal(n_list, 2);
    free(list);
    close(fd);
    if (t.pg) /* 3 chunks per file */
        assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM file_chunks"), 6);
    assert_int_equal(nuage_store_file_delete(s, 7, f1.id), 0);
    if (t.pg) /* the chunks go with the file */
        assert_int_equal(raw_int(t.path, "SELECT COUNT(*) FROM file_chunks"), 3);
    free(data);
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

/* ---- batch leases (two replicas = two store handles on one database) ------------ */

static void lease_owner(nuage_store *s, const char *id, char *owner, int64_t *until) {
    assert_int_equal(nuage_store_batch_lease_get(s, id, owner, 64, until), 0);
}

static void test_batch_lease_handover(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s1 = tmp_db_open(&t), *s2 = tmp_db_open(&t);
    nuage_batch_job b1, b2, got;
    char owner[64];
    int64_t until, now = test_now_ms();
    make_batch(s1, 1, &b1);
    make_batch(s1, 1, &b2);
    lease_owner(s1, b1.id, owner, &until);
    assert_string_equal(owner, "");
    assert_int_equal(until, 0);
    /* r1 takes the oldest job, r2 the next one, r3 finds nothing free. */
    assert_int_equal(nuage_store_batch_claim(s1, "r1", now, 3000, &got), 0);
    assert_string_equal(got.id, b1.id);
    assert_int_equal(nuage_store_batch_claim(s2, "r2", now, 3000, &got), 0);
    assert_string_equal(got.id, b2.id);
    assert_int_equal(nuage_store_batch_claim(s2, "r3", now + 2999, 3000, &got), NUAGE_E_RANGE);
    /* Claiming again returns one's own job. */
    assert_int_equal(nuage_store_batch_claim(s1, "r1", now + 10, 3000, &got), 0);
    assert_string_equal(got.id, b1.id);
    lease_owner(s2, b1.id, owner, &until);
    assert_string_equal(owner, "r1");
    assert_int_equal(until, now + 3010);
    /* r1 renews (heartbeat) at +1000: the lease now runs to +4000. */
    assert_int_equal(nuage_store_batch_renew(s1, b1.id, "r1", now + 1000, 3000), 0);
    assert_int_equal(nuage_store_batch_claim(s2, "r3", now + 3500, 3000, &got), 0);
    assert_string_equal(got.id, b2.id); /* r2's lease expired at +3000, r1's holds */
    /* r1 dies: at +4000 its lease has expired and r2 takes b1 over. */
    assert_int_equal(nuage_store_batch_claim(s2, "r2", now + 4000, 3000, &got), 0);
    assert_string_equal(got.id, b1.id);
    lease_owner(s1, b1.id, owner, &until);
    assert_string_equal(owner, "r2");
    assert_int_equal(until, now + 7000);
    /* The stale owner's heartbeat fails, and so does its release. */
    assert_int_equal(nuage_store_batch_renew(s1, b1.id, "r1", now + 4001, 3000), NUAGE_E_STATE);
    assert_int_equal(nuage_store_batch_release(s1, b1.id, "r1"), 0);
    lease_owner(s2, b1.id, owner, NULL);
    assert_string_equal(owner, "r2");
    assert_int_equal(nuage_store_batch_renew(s2, b1.id, "r2", now + 4001, 3000), 0);
    /* A late write from the stale owner cannot duplicate or overwrite a line. */
    assert_int_equal(nuage_store_batch_set_status(s2, b1.id, "in_progress", 2), 0);
    assert_int_equal(nuage_store_batch_line_done(s2, b1.id, 1, false, "{\"by\":\"r2\"}"), 0);
    assert_int_equal(nuage_store_batch_line_done(s1, b1.id, 1, true, "{\"by\":\"r1\"}"), NUAGE_E_STATE);
    assert_int_equal(nuage_store_batch_get(s1, 1, b1.id, &got), 0);
    assert_int_equal(got.completed, 1);
    assert_int_equal(got.failed, 0);
    /* Released: free at once for anyone; released by nobody else. */
    assert_int_equal(nuage_store_batch_release(s2, b1.id, "r2"), 0);
    lease_owner(s1, b1.id, owner, &until);
    assert_string_equal(owner, "");
    assert_int_equal(nuage_store_batch_renew(s2, b1.id, "r2", now + 4002, 3000), NUAGE_E_STATE);
    assert_int_equal(nuage_store_batch_claim(s1, "r1", now + 4002, 3000, &got), 0);
    assert_string_equal(got.id, b1.id);
    /* Finished jobs are never claimed. */
    assert_int_equal(nuage_store_batch_set_status(s1, b1.id, "completed", 0), 0);
    assert_int_equal(nuage_store_batch_set_status(s1, b2.id, "cancelled", 0), 0);
    assert_int_equal(nuage_store_batch_claim(s2, "r9", now + 100000, 3000, &got), NUAGE_E_RANGE);
    /* Bad arguments. */
    assert_int_equal(nuage_store_batch_claim(s2, "", now, 3000, &got), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_batch_claim(s2, "r1", now, 0, &got), NUAGE_E_INVAL);
    assert_int_equal(nuage_store_batch_lease_get(s2, "batch_nope", owner, 64, NULL), NUAGE_E_RANGE);
    nuage_store_close(s1);
    nuage_store_close(s2);
    tmp_db_cleanup(&t);
}

/* Many replicas claim at the same instant, each on its own connection:
 * every job goes to exactly one of them. */
#define LEASE_THREADS 6
#define LEASE_JOBS 3
typedef struct {
    tmp_db *t;
    nuage_store *s;
    int64_t now;
    int idx;
    pthread_barrier_t *go;
    int rc;
    char id[40];
} lease_arg;

static void *lease_claimer(void *p) {
    lease_arg *a = p;
    char owner[16];
    snprintf(owner, sizeof owner, "r%d", a->idx);
    nuage_batch_job got;
    pthread_barrier_wait(a->go);
    a->rc = nuage_store_batch_claim(a->s, owner, a->now, 30000, &got);
    if (!a->rc) snprintf(a->id, sizeof a->id, "%s", got.id);
    return NULL;
}

static void test_batch_lease_contention(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *s = tmp_db_open(&t);
    nuage_batch_job b[LEASE_JOBS];
    for (int i = 0; i < LEASE_JOBS; i++) make_batch(s, 1, &b[i]);
    for (int round = 0; round < 3; round++) {
        lease_arg a[LEASE_THREADS];
        pthread_t th[LEASE_THREADS];
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, LEASE_THREADS);
        /* each round starts after the previous round's leases expired */
        int64_t now = test_now_ms() + (int64_t)round * 60000;
        for (int i = 0; i < LEASE_THREADS; i++) {
            a[i] = (lease_arg){.t = &t, .s = tmp_db_open(&t), .now = now, .idx = i + 10 * round, .go = &go};
            assert_int_equal(pthread_create(&th[i], NULL, lease_claimer, &a[i]), 0);
        }
        int won = 0;
        for (int i = 0; i < LEASE_THREADS; i++) {
            pthread_join(th[i], NULL);
            nuage_store_close(a[i].s);
        }
        pthread_barrier_destroy(&go);
        for (int i = 0; i < LEASE_THREADS; i++) {
            if (a[i].rc == NUAGE_E_RANGE) continue;
            assert_int_equal(a[i].rc, 0);
            won++;
            for (int j = 0; j < i; j++)
                if (!a[j].rc) assert_string_not_equal(a[i].id, a[j].id);
            char owner[64], want[16];
            snprintf(want, sizeof want, "r%d", a[i].idx);
            lease_owner(s, a[i].id, owner, NULL);
            assert_string_equal(owner, want);
        }
        assert_int_equal(won, LEASE_JOBS);
    }
    nuage_store_close(s);
    tmp_db_cleanup(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_crud_isolation),
        cmocka_unit_test(test_files_large_chunked),
        cmocka_unit_test(test_batch_create_status),
        cmocka_unit_test(test_batch_lines_idempotent),
        cmocka_unit_test(test_batch_lines_survive_sigkill),
        cmocka_unit_test(test_files_fd_and_piecewise_read),
        cmocka_unit_test(test_batch_finalize_order),
        cmocka_unit_test(test_batch_lease_handover),
        cmocka_unit_test(test_batch_lease_contention),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
