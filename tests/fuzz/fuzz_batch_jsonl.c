/*
 * fuzz_batch_jsonl.c - libFuzzer harness for the batch JSONL reader.
 *
 * Each input is the content of a batch input file: it is stored as a
 * file, a batch job is created on it (endpoint /v1/chat/completions) and
 * the real batch runner (platform/batch_runner.c) takes it: splits the
 * lines, checks each (JSON, custom_id, method, url, body, duplicates),
 * runs the valid ones through an exec callback that answers 200, 400 or
 * "busy" depending on the body, records every line, and assembles the
 * output and error files. The harness waits for the job to end (10 s,
 * else it is a hang and aborts) and checks that every line was counted.
 * The store lives under /dev/shm (or /tmp) and is recreated every 500
 * inputs so that long runs stay small.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stdatomic.h>

#include "nuage/nuage.h"
#include "platform/batch_runner.h"
#include "platform/store.h"

static nuage_store *g_store;
static nuage_batch_runner *g_runner;
static char g_dir[256];
static int64_t g_tenant;
static unsigned g_uses;

static int exec_line(void *ud, const nuage_batch_exec_req *req, json_t **body) {
    (void)ud;
    static _Atomic unsigned busy;
    json_t *t = json_object_get(req->body, "temperature");
    if (json_is_integer(t) && json_integer_value(t) == 7 && atomic_fetch_add(&busy, 1) % 2 == 0)
        return NUAGE_E_BUSY; /* retried once, then answered */
    if (json_object_get(req->body, "fail")) {
        *body = json_pack("{s:{s:s}}", "error", "message", "bad");
        return 400;
    }
    *body = json_pack("{s:s, s:O}", "object", "chat.completion", "echo", req->body);
    return 200;
}

static void close_all(void) {
    if (g_runner) nuage_batch_runner_free(g_runner);
    if (g_store) nuage_store_close(g_store);
    g_runner = NULL;
    g_store = NULL;
    if (g_dir[0]) {
        char p[512];
        const char *names[] = {"nuage.db", "nuage.db-wal", "nuage.db-shm"};
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s/%s", g_dir, names[i]);
            unlink(p);
        }
        rmdir(g_dir);
    }
}

static void open_all(void) {
    char path[512], err[256];
    snprintf(g_dir, sizeof g_dir, "%s/nuage-fuzz-batch-XXXXXX", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
    if (!mkdtemp(g_dir)) abort();
    snprintf(path, sizeof path, "%s/nuage.db", g_dir);
    if (nuage_store_open(path, &g_store, err, sizeof err)) abort();
    nuage_tenant t;
    if (nuage_store_tenant_create(g_store, "t1", 0, 0, 1.0, &t)) abort();
    g_tenant = t.id;
    nuage_batch_runner_params p = nuage_batch_runner_default_params();
    p.poll_ms = 5;
    p.retry_ms = 1;
    p.max_concurrent = 2;
    if (nuage_batch_runner_new(g_store, &p, exec_line, NULL, &g_runner)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_store || ++g_uses % 500 == 0) {
        close_all();
        open_all();
    }
    nuage_file f;
    if (nuage_store_file_create(g_store, g_tenant, "in.jsonl", "batch", data, size, &f)) return 0;
    nuage_batch_job b;
    if (nuage_store_batch_create(g_store, g_tenant, "/v1/chat/completions", f.id, "24h", "", NULL, &b)) return 0;
    nuage_batch_runner_notify(g_runner);
    struct timespec t0, now, nap = {0, 100000L}; /* 0.1 ms: the job takes about a millisecond */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (nuage_store_batch_get(g_store, g_tenant, b.id, &b)) abort();
        if (!strcmp(b.status, "completed") || !strcmp(b.status, "failed") || !strcmp(b.status, "expired") ||
            !strcmp(b.status, "cancelled"))
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 10) {
            fprintf(stderr, "fuzz_batch_jsonl: batch still '%s' after 10 s\n", b.status);
            abort();
        }
        nanosleep(&nap, NULL);
    }
    /* every line accounted for */
    if (!strcmp(b.status, "completed") && b.completed + b.failed != b.total) {
        fprintf(stderr, "fuzz_batch_jsonl: %lld + %lld != %lld lines\n", (long long)b.completed, (long long)b.failed,
                (long long)b.total);
        abort();
    }
    return 0;
}
