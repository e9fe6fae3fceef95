/*
 * test_batch_runner.c - the Batch API executor (src/platform/batch_runner.h)
 * over a real SQLite store in a temporary file, with a fake `exec` in place
 * of the model: it answers {"echo": body.x, "twice": 2 * body.n} (computed
 * here independently of the runner), 400 for a body with "bad": true, and
 * counts how often each line ran.
 *
 * Checked: one output line per valid input line, in line order, custom_id
 * preserved, bodies as exec answered; malformed lines (bad JSON, missing
 * or duplicate custom_id, wrong method or url, non-object body, blank
 * line) and non-2xx answers in the error file with their line numbers;
 * request counts; every line executed exactly once; busy answers retried;
 * a runner stopped mid-job and a new one on the reopened store (a
 * restart) finishing the job with each line exactly once and no recorded
 * line run again; cancellation; an empty input failing the job; two
 * replicas sharing the store, the lease holder SIGKILLed mid-job and the
 * other taking the job over after the lease.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"
#include "nuage/nuage.h"
#include "platform/batch_runner.h"

#define MAXL 256

typedef struct {
    pthread_mutex_t mu;
    int calls[MAXL + 1];        /* per line */
    int busy_first[MAXL + 1];   /* answer 503 this many times first */
    int block_after;            /* > 0: lines beyond this many successful calls block until `released` */
    int n_ok;
    bool released;
    pthread_cond_t cv;
    int delay_ms;
    int max_in_flight, in_flight;
    int bad_priority;
} fake_exec;

static void fake_init(fake_exec *f) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
}

static void fake_destroy(fake_exec *f) {
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
}

static int fake_exec_fn(void *ud, const nuage_batch_exec_req *req, json_t **body) {
    fake_exec *f = ud;
    pthread_mutex_lock(&f->mu);
    if (req->priority != 1) f->bad_priority++;
    int line = (int)req->line;
    if (line >= 1 && line <= MAXL && f->busy_first[line] > 0) {
        f->busy_first[line]--;
        pthread_mutex_unlock(&f->mu);
        return NUAGE_E_BUSY;
    }
    if (f->block_after > 0 && f->n_ok >= f->block_after) {
        /* a "server" that is shutting down: the request gets cancelled */
        while (!f->released) pthread_cond_wait(&f->cv, &f->mu);
        pthread_mutex_unlock(&f->mu);
        return NUAGE_E_STATE;
    }
    f->in_flight++;
    if (f->in_flight > f->max_in_flight) f->max_in_flight = f->in_flight;
    pthread_mutex_unlock(&f->mu);
    if (f->delay_ms) {
        struct timespec ts = {0, (long)f->delay_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    int status;
    if (json_is_true(json_object_get(req->body, "bad"))) {
        *body = json_pack("{s:{s:s, s:s}}", "error", "message", "bad request", "type", "invalid_request_error");
        status = 400;
    } else {
        json_int_t n = json_integer_value(json_object_get(req->body, "n"));
        const char *x = json_string_value(json_object_get(req->body, "x"));
        *body = json_pack("{s:s, s:I, s:s, s:b}", "echo", x ? x : "", "twice", 2 * n, "rid", req->request_id,
                          "streamed", json_object_get(req->body, "stream") != NULL);
        status = 200;
    }
    pthread_mutex_lock(&f->mu);
    f->in_flight--;
    if (line >= 1 && line <= MAXL) f->calls[line]++;
    f->n_ok++;
    pthread_mutex_unlock(&f->mu);
    return status;
}

static char g_dir[256];

static nuage_store *open_store(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/nuage.db", g_dir);
    nuage_store *s = NULL;
    char err[200];
    int rc = nuage_store_open(path, &s, err, sizeof err);
    if (rc) fprintf(stderr, "store: %s\n", err);
    assert_int_equal(rc, 0);
    return s;
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/nuage-test-batch-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Make a fresh database for each test. */
static void reset_db(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -f '%s'/nuage.db*", g_dir);
    assert_int_equal(system(cmd), 0);
}

static void submit(nuage_store *s, int64_t tenant, const char *jsonl, nuage_batch_job *job) {
    nuage_file f;
    assert_int_equal(nuage_store_file_create(s, tenant, "in.jsonl", "batch", jsonl, strlen(jsonl), &f), 0);
    assert_int_equal(nuage_store_batch_create(s, tenant, "/v1/chat/completions", f.id, "24h", "dep", NULL, job), 0);
    assert_string_equal(job->status, "validating");
}

static void wait_status(nuage_store *s, const char *id, const char *want, nuage_batch_job *out) {
    for (int i = 0; i < 3000; i++) {
        assert_int_equal(nuage_store_batch_get(s, -1, id, out), 0);
        if (!strcmp(out->status, want)) return;
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "batch %s: status %s, wanted %s\n", id, out->status, want);
    fail();
}

/* Lines of a file as parsed JSON objects (array). */
static json_t *file_lines(nuage_store *s, int64_t tenant, const char *id) {
    json_t *arr = json_array();
    if (!id[0]) return arr;
    void *data;
    size_t len;
    assert_int_equal(nuage_store_file_content(s, tenant, id, &data, &len), 0);
    const char *t = data;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(t + pos, '\n', len - pos);
        assert_non_null(nl); /* every line ends with a newline */
        json_error_t je;
        json_t *o = json_loadb(t + pos, (size_t)(nl - t) - pos, 0, &je);
        assert_non_null(o);
        json_array_append_new(arr, o);
        pos = (size_t)(nl - t) + 1;
    }
    free(data);
    return arr;
}

/* The input: valid lines carry "x" = "v<line>" and "n" = line. */
static char *valid_line(int line, const char *cid) {
    char *b = malloc(300);
    snprintf(b, 300,
             "{\"custom_id\": \"%s\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\","
             " \"body\": {\"model\": \"dep\", \"x\": \"v%d\", \"n\": %d, \"stream\": true}}",
             cid, line, line);
    return b;
}

/* An input file of n valid lines whose custom ids are printf(fmt, line)
 * (fmt takes one int). Returns a calloc'd string the caller frees. */
static char *valid_input(int n, const char *fmt) {
    char *input = calloc(1, 32 * 1024);
    for (int i = 1; i <= n; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, fmt, i);
        char *l = valid_line(i, cid);
        strcat(input, l);
        strcat(input, "\n");
        free(l);
    }
    return input;
}

static void test_output_correctness(void **state) {
    (void)state;
    reset_db();
    nuage_store *s = open_store();
    /* line kinds: 'v' valid, 'j' bad JSON, 'c' missing custom_id, 'd' duplicate
     * custom_id, 'u' wrong url, 'm' wrong method, 'b' body not an object,
     * 'e' empty line, 'x' valid but exec answers 400 */
    const char *kinds = "vvjvcvdvuvmvbvevxv";
    const int n = (int)strlen(kinds);
    char *input = calloc(1, 64 * 1024);
    for (int i = 0; i < n; i++) {
        int line = i + 1;
        char cid[32];
        snprintf(cid, sizeof cid, "req-%d", line);
        char *l = NULL;
        switch (kinds[i]) {
        case 'v': l = valid_line(line, cid); break;
        case 'j': l = strdup("{\"custom_id\": \"broken\", "); break;
        case 'c': l = strdup("{\"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": {}}"); break;
        case 'd': l = valid_line(line, "req-1"); break;
        case 'u': l = strdup("{\"custom_id\": \"u\", \"method\": \"POST\", \"url\": \"/v1/embeddings\", \"body\": {}}"); break;
        case 'm': l = strdup("{\"custom_id\": \"m\", \"method\": \"GET\", \"url\": \"/v1/chat/completions\", \"body\": {}}"); break;
        case 'b': l = strdup("{\"custom_id\": \"b\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": [1]}"); break;
        case 'e': l = strdup("   "); break;
        case 'x': l = strdup("{\"custom_id\": \"x\", \"method\": \"POST\", \"url\": \"/chat/completions\", \"body\": {\"bad\": true}}"); break;
        }
        strcat(input, l);
        strcat(input, i % 2 ? "\r\n" : "\n"); /* CRLF lines too */
        free(l);
    }
    nuage_batch_job job;
    submit(s, 7, input, &job);
    fake_exec f;
    fake_init(&f);
    nuage_batch_runner_params p = nuage_batch_runner_default_params();
    p.max_concurrent = 3;
    p.poll_ms = 50;
    nuage_batch_runner *r;
    assert_int_equal(nuage_batch_runner_new(s, &p, fake_exec_fn, &f, &r), 0);
    nuage_batch_runner_notify(r);
    wait_status(s, job.id, "completed", &job);
    nuage_batch_runner_stats st;
    nuage_batch_runner_get_stats(r, &st);
    nuage_batch_runner_free(r);

    int n_valid = 0, n_err = 0;
    for (int i = 0; i < n; i++) {
        if (kinds[i] == 'v') n_valid++;
        else n_err++;
    }
    assert_int_equal(job.total, n);
    assert_int_equal(job.completed, n_valid);
    assert_int_equal(job.failed, n_err);
    assert_true(job.in_progress_ms > 0 && job.finalizing_ms >= job.in_progress_ms &&
                job.completed_ms >= job.finalizing_ms);
    assert_int_equal(st.lines_ok, n_valid);
    assert_int_equal(st.lines_invalid, n_err - 1); /* 'x' ran and failed */
    assert_int_equal(st.lines_failed, 1);
    assert_int_equal(f.bad_priority, 0);
    /* each runnable line exactly once */
    for (int i = 0; i < n; i++) assert_int_equal(f.calls[i + 1], kinds[i] == 'v' || kinds[i] == 'x' ? 1 : 0);

    json_t *out = file_lines(s, 7, job.output_file_id);
    json_t *err = file_lines(s, 7, job.error_file_id);
    assert_int_equal(json_array_size(out), n_valid);
    assert_int_equal(json_array_size(err), n_err);
    size_t oi = 0, ei = 0;
    for (int i = 0; i < n; i++) {
        int line = i + 1;
        char want_id[40], want_rid[40];
        nuage_batch_line_ids(job.id, line, want_id, want_rid);
        if (kinds[i] == 'v') {
            json_t *o = json_array_get(out, oi++);
            char cid[32], x[32];
            snprintf(cid, sizeof cid, "req-%d", line);
            snprintf(x, sizeof x, "v%d", line);
            assert_string_equal(json_string_value(json_object_get(o, "custom_id")), cid);
            assert_string_equal(json_string_value(json_object_get(o, "id")), want_id);
            assert_true(json_is_null(json_object_get(o, "error")));
            json_t *resp = json_object_get(o, "response");
            assert_int_equal(json_integer_value(json_object_get(resp, "status_code")), 200);
            assert_string_equal(json_string_value(json_object_get(resp, "request_id")), want_rid);
            json_t *b = json_object_get(resp, "body");
            assert_string_equal(json_string_value(json_object_get(b, "echo")), x);
            assert_int_equal(json_integer_value(json_object_get(b, "twice")), 2 * line);
            assert_string_equal(json_string_value(json_object_get(b, "rid")), want_rid);
            assert_true(json_is_false(json_object_get(b, "streamed"))); /* "stream" removed */
        } else {
            json_t *o = json_array_get(err, ei++);
            assert_string_equal(json_string_value(json_object_get(o, "id")), want_id);
            if (kinds[i] == 'x') {
                json_t *resp = json_object_get(o, "response");
                assert_int_equal(json_integer_value(json_object_get(resp, "status_code")), 400);
                assert_string_equal(json_string_value(json_object_get(o, "custom_id")), "x");
                assert_non_null(json_object_get(json_object_get(resp, "body"), "error"));
                continue;
            }
            assert_true(json_is_null(json_object_get(o, "response")));
            json_t *e = json_object_get(o, "error");
            assert_int_equal(json_integer_value(json_object_get(e, "line")), line);
            char prefix[32];
            snprintf(prefix, sizeof prefix, "Line %d:", line);
            const char *msg = json_string_value(json_object_get(e, "message"));
            assert_non_null(msg);
            assert_memory_equal(msg, prefix, strlen(prefix));
            const char *code = json_string_value(json_object_get(e, "code"));
            const char *want = kinds[i] == 'j' || kinds[i] == 'e' ? "invalid_json_line"
                               : kinds[i] == 'c' ? "missing_required_parameter"
                               : kinds[i] == 'd' ? "duplicate_custom_id"
                               : kinds[i] == 'u' ? "invalid_url"
                               : kinds[i] == 'm' ? "invalid_method" : "invalid_body";
            assert_string_equal(code, want);
            if (kinds[i] == 'd') assert_string_equal(json_string_value(json_object_get(o, "custom_id")), "req-1");
        }
    }
    json_decref(out);
    json_decref(err);
    /* output files belong to the tenant, purpose batch_output */
    nuage_file of;
    assert_int_equal(nuage_store_file_get(s, 7, job.output_file_id, &of), 0);
    assert_string_equal(of.purpose, "batch_output");
    assert_int_equal(nuage_store_file_get(s, 8, job.output_file_id, &of), NUAGE_E_RANGE);
    free(input);
    fake_destroy(&f);
    nuage_store_close(s);
}

/* A runner killed mid-job (its in-flight lines never answered) and a new
 * runner on the reopened store: every line exactly once in the output,
 * no line that was recorded before the restart computed again. */
static void test_resume(void **state) {
    (void)state;
    reset_db();
    enum { N = 40, FIRST = 13 };
    nuage_store *s = open_store();
    char *input = valid_input(N, "c%03d");
    nuage_batch_job job;
    submit(s, 1, input, &job);
    fake_exec f1;
    fake_init(&f1);
    f1.block_after = FIRST;
    nuage_batch_runner_params p = nuage_batch_runner_default_params();
    p.max_concurrent = 4;
    p.poll_ms = 20;
    p.retry_ms = 10;
    nuage_batch_runner *r;
    assert_int_equal(nuage_batch_runner_new(s, &p, fake_exec_fn, &f1, &r), 0);
    /* wait until FIRST lines are recorded and the others are stuck */
    for (int i = 0; i < 3000; i++) {
        assert_int_equal(nuage_store_batch_get(s, -1, job.id, &job), 0);
        if (job.completed >= FIRST) break;
        usleep(10000);
    }
    assert_int_equal(job.completed, FIRST);
    assert_string_equal(job.status, "in_progress");
    /* "kill": stop, the stuck requests are cancelled (negative answers) */
    nuage_batch_runner_stop(r);
    pthread_mutex_lock(&f1.mu);
    f1.released = true;
    pthread_cond_broadcast(&f1.cv);
    pthread_mutex_unlock(&f1.mu);
    nuage_batch_runner_free(r);
    int64_t *done;
    int n_done;
    assert_int_equal(nuage_store_batch_lines_done(s, job.id, &done, &n_done), 0);
    assert_int_equal(n_done, FIRST);
    nuage_store_close(s);

    /* restart */
    s = open_store();
    assert_int_equal(nuage_store_batch_get(s, -1, job.id, &job), 0);
    assert_string_equal(job.status, "in_progress");
    fake_exec f2;
    fake_init(&f2);
    f2.busy_first[N] = 3; /* the last line meets a busy server three times */
    assert_int_equal(nuage_batch_runner_new(s, &p, fake_exec_fn, &f2, &r), 0);
    wait_status(s, job.id, "completed", &job);
    nuage_batch_runner_stats st;
    nuage_batch_runner_get_stats(r, &st);
    assert_true(st.retries >= 3);
    nuage_batch_runner_free(r);
    for (int i = 1; i <= N; i++) {
        bool before = false;
        for (int k = 0; k < n_done; k++) before |= done[k] == i;
        assert_int_equal(f1.calls[i] + f2.calls[i], 1);
        if (before) assert_int_equal(f2.calls[i], 0);
    }
    free(done);
    assert_int_equal(job.completed, N);
    assert_int_equal(job.failed, 0);
    json_t *out = file_lines(s, 1, job.output_file_id);
    assert_int_equal(json_array_size(out), N);
    for (int i = 1; i <= N; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "c%03d", i);
        json_t *o = json_array_get(out, (size_t)i - 1);
        assert_string_equal(json_string_value(json_object_get(o, "custom_id")), cid);
        json_t *b = json_object_get(json_object_get(o, "response"), "body");
        assert_int_equal(json_integer_value(json_object_get(b, "twice")), 2 * i);
    }
    json_decref(out);
    assert_true(job.error_file_id[0] == 0);
    free(input);
    fake_destroy(&f1);
    fake_destroy(&f2);
    nuage_store_close(s);
}

static void test_cancel_and_concurrency(void **state) {
    (void)state;
    reset_db();
    enum { N = 30 };
    nuage_store *s = open_store();
    char *input = valid_input(N, "k%d");
    nuage_batch_job job;
    submit(s, 3, input, &job);
    fake_exec f;
    fake_init(&f);
    f.delay_ms = 20;
    nuage_batch_runner_params p = nuage_batch_runner_default_params();
    p.max_concurrent = 2;
    p.poll_ms = 20;
    nuage_batch_runner *r;
    assert_int_equal(nuage_batch_runner_new(s, &p, fake_exec_fn, &f, &r), 0);
    for (int i = 0; i < 3000; i++) {
        assert_int_equal(nuage_store_batch_get(s, -1, job.id, &job), 0);
        if (job.completed >= 4) break;
        usleep(5000);
    }
    assert_int_equal(nuage_store_batch_set_status(s, job.id, "cancelling", 0), 0);
    nuage_batch_runner_cancel(r, job.id);
    wait_status(s, job.id, "cancelled", &job);
    nuage_batch_runner_free(r);
    assert_true(job.completed >= 4 && job.completed < N);
    assert_true(job.cancelled_ms > 0);
    assert_true(f.max_in_flight <= 2 && f.max_in_flight >= 1);
    json_t *out = file_lines(s, 3, job.output_file_id);
    assert_int_equal((int64_t)json_array_size(out), job.completed);
    int calls = 0;
    for (int i = 1; i <= N; i++) calls += f.calls[i];
    assert_int_equal(calls, job.completed);
    json_decref(out);
    /* an empty input fails the job */
    submit(s, 3, "", &job);
    assert_int_equal(nuage_batch_runner_new(s, &p, fake_exec_fn, &f, &r), 0);
    wait_status(s, job.id, "failed", &job);
    nuage_batch_runner_free(r);
    free(input);
    fake_destroy(&f);
    nuage_store_close(s);
}

/* Two replicas (two runners, two connections) on one store: the one that
 * holds the job's lease runs it alone; SIGKILLed, it stops renewing, and
 * after the lease the live one takes the job over and runs exactly the
 * lines that were not recorded. The dead replica is a forked child (its
 * exec blocks after FIRST lines, so the kill lands mid-job). */
static void test_replica_takeover(void **state) {
    (void)state;
    reset_db();
    enum { N = 40, FIRST = 10, LEASE_MS = 600 };
    nuage_store *s = open_store();
    char *input = valid_input(N, "c%03d");
    nuage_batch_job job;
    submit(s, 1, input, &job);
    nuage_batch_runner_params p = nuage_batch_runner_default_params();
    p.max_concurrent = 4;
    p.poll_ms = 20;
    p.retry_ms = 10;
    p.lease_ms = LEASE_MS;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* replica "dead": no cmocka here */
        char path[300], err[200];
        snprintf(path, sizeof path, "%s/nuage.db", g_dir);
        nuage_store *cs = NULL;
        if (nuage_store_open(path, &cs, err, sizeof err)) _exit(3);
        static fake_exec f;
        fake_init(&f);
        f.block_after = FIRST;
        p.owner = "dead";
        nuage_batch_runner *r;
        if (nuage_batch_runner_new(cs, &p, fake_exec_fn, &f, &r)) _exit(4);
        for (;;) pause();
    }
    /* the child has the job and its first FIRST lines */
    char owner[64] = "";
    for (int i = 0; i < 3000; i++) {
        assert_int_equal(nuage_store_batch_get(s, -1, job.id, &job), 0);
        assert_int_equal(nuage_store_batch_lease_get(s, job.id, owner, sizeof owner, NULL), 0);
        if (job.completed >= FIRST && !strcmp(owner, "dead")) break;
        usleep(10000);
    }
    assert_int_equal(job.completed, FIRST);
    assert_string_equal(owner, "dead");
    /* replica "alive" runs alongside, and must not touch the job while the
     * child renews its lease (three lease lengths) */
    fake_exec f2;
    fake_init(&f2);
    p.owner = "alive";
    nuage_batch_runner *r;
    assert_int_equal(nuage_batch_runner_new(s, &p, fake_exec_fn, &f2, &r), 0);
    usleep(3 * LEASE_MS * 1000);
    pthread_mutex_lock(&f2.mu);
    int calls_before = f2.n_ok;
    pthread_mutex_unlock(&f2.mu);
    assert_int_equal(calls_before, 0);
    assert_int_equal(nuage_store_batch_get(s, -1, job.id, &job), 0);
    assert_int_equal(job.completed, FIRST);
    int64_t *done;
    int n_done;
    assert_int_equal(nuage_store_batch_lines_done(s, job.id, &done, &n_done), 0);
    assert_int_equal(n_done, FIRST);
    /* kill -9 the holder: the job moves */
    assert_int_equal(kill(pid, SIGKILL), 0);
    int wst;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFSIGNALED(wst));
    wait_status(s, job.id, "completed", &job);
    nuage_batch_runner_stats st;
    nuage_batch_runner_get_stats(r, &st);
    assert_int_equal(st.leases_lost, 0);
    nuage_batch_runner_free(r);
    for (int i = 1; i <= N; i++) {
        bool before = false;
        for (int k = 0; k < n_done; k++) before |= done[k] == i;
        assert_int_equal(f2.calls[i], before ? 0 : 1);
    }
    free(done);
    assert_int_equal(job.completed, N);
    assert_int_equal(job.failed, 0);
    json_t *out = file_lines(s, 1, job.output_file_id);
    assert_int_equal(json_array_size(out), N);
    for (int i = 1; i <= N; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "c%03d", i);
        json_t *o = json_array_get(out, (size_t)i - 1);
        assert_string_equal(json_string_value(json_object_get(o, "custom_id")), cid);
    }
    json_decref(out);
    /* released at the end */
    assert_int_equal(nuage_store_batch_lease_get(s, job.id, owner, sizeof owner, NULL), 0);
    assert_string_equal(owner, "");
    free(input);
    fake_destroy(&f2);
    nuage_store_close(s);
}

static void test_output_line(void **state) {
    (void)state;
    char a[40], b[40], c[40], d[40];
    nuage_batch_line_ids("batch_abc", 1, a, b);
    nuage_batch_line_ids("batch_abc", 1, c, d);
    assert_string_equal(a, c);
    assert_string_equal(b, d);
    assert_int_equal(strlen(a), strlen("batch_req_") + 24);
    assert_int_equal(strlen(b), strlen("req_") + 24);
    nuage_batch_line_ids("batch_abc", 2, c, d);
    assert_string_not_equal(a, c);
    nuage_batch_line_ids("batch_abd", 1, c, d);
    assert_string_not_equal(a, c);
    json_t *o = nuage_batch_output_line("batch_abc", 5, NULL, -1, NULL, "invalid_json_line", "Line 5: x");
    assert_true(json_is_null(json_object_get(o, "custom_id")));
    assert_true(json_is_null(json_object_get(o, "response")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "error"), "line")), 5);
    json_decref(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_line),
        cmocka_unit_test(test_output_correctness),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_replica_takeover),
        cmocka_unit_test(test_cancel_and_concurrency),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
