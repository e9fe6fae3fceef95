/*
 * test_deploy.c - the deployment registry (src/platform/deploy.c) and the
 * auth helpers (src/platform/auth.c) in-process: configuration parsing and
 * its errors, MemAvailable parsing, the memory check's arithmetic against
 * the real file size and the model's KV bytes per token, replacement while
 * a request holds the old instance (which keeps serving it and is freed
 * once released), unloading, applying a configuration's difference, and
 * the loopback / cache-salt / key-extraction rules. Model parts use test_models.h's
 * model (stories260K with ../shared, else the bundled nuage-fast).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "platform/auth.h"
#include "platform/deploy.h"
#include "test_util.h"
#include "test_store_util.h"
#include "test_models.h"

static json_t *js(const char *s) {
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    if (!j) fail_msg("bad test JSON: %s: %s", s, je.text);
    return j;
}

/* Parse s; expect success (err_sub NULL) or an error containing err_sub. */
static void parse_expect(const char *s, const char *err_sub, nuage_deploy_config *out) {
    json_t *j = js(s);
    nuage_deploy_config c;
    char err[600] = "";
    int rc = nuage_deploy_config_parse(j, "/base", &c, err, sizeof err);
    json_decref(j);
    if (!err_sub) {
        if (rc) fail_msg("unexpected error for %s: %s", s, err);
        if (out) *out = c;
        else nuage_deploy_config_free(&c);
        return;
    }
    assert_int_not_equal(rc, 0);
    if (!strstr(err, err_sub)) fail_msg("error for %s is '%s', expected to contain '%s'", s, err, err_sub);
}

static void test_config_parse(void **state) {
    (void)state;
    nuage_deploy_config c;
    parse_expect("{\"name\": \"chat-v1\", \"model\": \"m/x.gguf\", \"version\": \"2024-06\", \"context\": 2048,"
                 " \"kv_memory\": \"64M\", \"threads\": 3, \"parallel\": 4, \"aliases\": [\"chat\"],"
                 " \"sampling\": {\"temperature\": 0.5, \"max_tokens\": 100}, \"log_prompts\": true,"
                 " \"kv_type\": \"f32\", \"prefix_cache\": false}",
                 NULL, &c);
    assert_string_equal(c.name, "chat-v1");
    assert_string_equal(c.model, "/base/m/x.gguf"); /* relative to the config's directory */
    assert_string_equal(c.version, "2024-06");
    assert_int_equal(c.kind, NUAGE_DEPLOY_MODEL);
    assert_int_equal(c.n_ctx, 2048);
    assert_true(c.kv_memory == 64ull << 20);
    assert_int_equal(c.threads, 3);
    assert_int_equal(c.parallel, 4);
    assert_int_equal(c.n_aliases, 1);
    assert_string_equal(c.aliases[0], "chat");
    assert_true(c.log_prompts);
    assert_false(c.prefix_cache);
    assert_int_equal(c.kv_type, NUAGE_KV_F32);
    assert_true(json_is_object(c.sampling));
    assert_true(json_real_value(json_object_get(c.sampling, "temperature")) == 0.5);
    assert_true(json_is_object(c.source));
    nuage_deploy_config_free(&c);

    /* Defaults, absolute path kept. */
    parse_expect("{\"name\": \"a\", \"model\": \"/abs/m.gguf\"}", NULL, &c);
    assert_string_equal(c.model, "/abs/m.gguf");
    assert_true(c.prefix_cache);
    assert_false(c.log_prompts);
    assert_int_equal(c.parallel, 8);
    assert_string_equal(c.version, "");
    nuage_deploy_config_free(&c);

    /* chat_template (relative to the config's directory) and tool_format */
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"chat_template\": \"t/q.jinja\", \"tool_format\": \"hermes\"}",
                 NULL, &c);
    assert_string_equal(c.chat_template, "/base/t/q.jinja");
    assert_string_equal(c.tool_format, "hermes");
    nuage_deploy_config_free(&c);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"tool_format\": \"xml\"}", "\"tool_format\"", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"chat_template\": 3}", "\"chat_template\"", NULL);

    parse_expect("{\"model\": \"x\"}", "\"name\"", NULL);
    parse_expect("{\"name\": \"bad name\", \"model\": \"x\"}", "\"name\"", NULL);
    parse_expect("{\"name\": \"a/b\", \"model\": \"x\"}", "\"name\"", NULL);
    parse_expect("{\"name\": \"a\"}", "\"model\"", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"contxt\": 5}", "unknown field \"contxt\"", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"context\": \"big\"}", "\"context\"", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"context\": 0}", "\"context\"", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"kv_memory\": \"lots\"}", "\"kv_memory\"", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"kv_memory\": 100, \"kv_blocks\": 4}", "not both", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"kind\": \"lambda\"}", "\"kind\"", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"kv_type\": \"q8\"}", "\"kv_type\"", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"log_prompts\": 1}", "\"log_prompts\"", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"sampling\": {\"temperature\": 7}}", "temperature", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"sampling\": {\"stream\": true}}", "\"stream\"", NULL);
    parse_expect("{\"name\": \"a\", \"model\": \"x\", \"router\": {}}", "only for kind", NULL);
    parse_expect("{\"name\": \"r\", \"kind\": \"router\"}", "\"router\" object", NULL);
    parse_expect("{\"name\": \"r\", \"kind\": \"router\", \"model\": \"x\", \"router\": {\"targets\": {\"fast\": \"a\", \"reasoning\": \"b\"}}}",
                 "no \"model\"", NULL);
    /* A router: configuration kept opaque for the router module. */
    parse_expect("{\"name\": \"auto\", \"kind\": \"router\", \"router\": {\"targets\": {\"fast\": \"a\", \"reasoning\": \"b\"}}}",
                 NULL, &c);
    assert_int_equal(c.kind, NUAGE_DEPLOY_ROUTER);
    assert_true(json_is_object(c.router));
    nuage_deploy_config_free(&c);

    /* Whole files. */
    json_t *root = js("{\"deployments\": [{\"name\": \"a\", \"model\": \"x\"}, {\"name\": \"b\", \"model\": \"y\"}],"
                      " \"server\": {\"port\": 9000}}");
    nuage_deploy_config *cs = NULL;
    int n = 0;
    json_t *srv = NULL;
    char err[400];
    assert_int_equal(nuage_deploy_config_parse_file(root, "/d", &cs, &n, &srv, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(cs[1].model, "/d/y");
    assert_int_equal(json_integer_value(json_object_get(srv, "port")), 9000);
    for (int i = 0; i < n; i++) nuage_deploy_config_free(&cs[i]);
    free(cs);
    json_decref(srv);
    json_decref(root);
    root = js("{\"deployments\": [{\"name\": \"a\", \"model\": \"x\"}, {\"name\": \"a\", \"model\": \"y\"}]}");
    assert_int_equal(nuage_deploy_config_parse_file(root, NULL, &cs, &n, NULL, err, sizeof err), NUAGE_E_INVAL);
    assert_non_null(strstr(err, "used twice"));
    json_decref(root);
    root = js("{\"deployment\": []}");
    assert_int_equal(nuage_deploy_config_parse_file(root, NULL, &cs, &n, NULL, err, sizeof err), NUAGE_E_INVAL);
    assert_non_null(strstr(err, "deployment"));
    json_decref(root);
    /* A missing file / broken JSON: NUAGE_E_IO naming the file. */
    assert_int_equal(nuage_deploy_config_load("/nonexistent/nuage.json", &cs, &n, NULL, err, sizeof err), NUAGE_E_IO);
    assert_non_null(strstr(err, "/nonexistent/nuage.json"));
}

static void test_bytes_and_meminfo(void **state) {
    (void)state;
    uint64_t b;
    assert_true(nuage_deploy_parse_bytes("123", &b) && b == 123);
    assert_true(nuage_deploy_parse_bytes("64K", &b) && b == 64 * 1024);
    assert_true(nuage_deploy_parse_bytes("1.5G", &b) && b == 3ull << 29);
    assert_true(nuage_deploy_parse_bytes("2MiB", &b) && b == 2ull << 20);
    assert_true(nuage_deploy_parse_bytes("1T", &b) && b == 1ull << 40);
    assert_false(nuage_deploy_parse_bytes("", &b));
    assert_false(nuage_deploy_parse_bytes("-5", &b));
    assert_false(nuage_deploy_parse_bytes("5X", &b));

    char path[] = "/tmp/nuage-meminfo-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *txt = "MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    8192000 kB\nBuffers: 1 kB\n";
    assert_int_equal(write(fd, txt, strlen(txt)), (ssize_t)strlen(txt));
    close(fd);
    uint64_t avail = 0;
    assert_int_equal(nuage_meminfo_available(path, &avail), 0);
    assert_true(avail == 8192000ull * 1024);
    FILE *f = fopen(path, "w");
    fputs("MemTotal: 5 kB\n", f);
    fclose(f);
    assert_int_equal(nuage_meminfo_available(path, &avail), NUAGE_E_IO);
    unlink(path);
    /* The real one parses on Linux. */
    assert_int_equal(nuage_meminfo_available("/proc/meminfo", &avail), 0);
    assert_true(avail > 0);
}

/* A fake /proc/meminfo with the given MemAvailable in kB. */
static void write_meminfo(const char *path, unsigned long long kb) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "MemTotal: %llu kB\nMemAvailable: %llu kB\n", kb * 2, kb);
    fclose(f);
}

static nuage_deploy_config model_cfg(const char *name, const char *version, uint64_t kv) {
    nuage_deploy_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    snprintf(c.version, sizeof c.version, "%s", version);
    snprintf(c.model, sizeof c.model, "%s", nuage_test_model_path());
    c.kind = NUAGE_DEPLOY_MODEL;
    c.kv_memory = kv;
    c.n_ctx = 128;
    c.parallel = 2;
    c.threads = 1;
    c.prefix_cache = true;
    c.kv_block_size = 16;
    return c;
}

/* Completion of one scheduler request. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int tokens;
    bool done;
} waiter;

static bool w_token(void *ud, int choice, const nuage_sched_token *t) {
    (void)choice;
    (void)t;
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->tokens++;
    pthread_mutex_unlock(&w->mu);
    return true;
}

static void w_complete(void *ud, const nuage_sched_usage *u) {
    (void)u;
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int run_request(nuage_deployment *d, int max_tokens) {
    waiter w = {.tokens = 0, .done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int32_t prompt[3] = {1, 100, 200};
    nuage_sched_request r;
    memset(&r, 0, sizeof r);
    r.prompt = prompt;
    r.n_prompt = 3;
    r.max_tokens = max_tokens;
    r.n_choices = 1;
    r.sampling = nuage_sampler_default_params();
    r.sampling.temperature = 0;
    r.top_logprobs = -1;
    r.ignore_eos = true;
    r.cb.ud = &w;
    r.cb.on_token = w_token;
    r.cb.on_complete = w_complete;
    uint64_t id;
    assert_int_equal(nuage_sched_submit(d->sched, &r, &id), 0);
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    int n = w.tokens;
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return n;
}

static void wait_draining_at(nuage_registry *r, int want, int line) {
    for (int i = 0; i < 500 && nuage_registry_n_draining(r) != want; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (nuage_registry_n_draining(r) != want) fail_msg("draining %d, want %d (line %d)", nuage_registry_n_draining(r), want, line);
}

#define wait_draining(r, w) wait_draining_at(r, w, __LINE__)

static void test_registry(void **state) {
    (void)state;
    const char *model = nuage_test_model_path();
    struct stat sb;
    assert_int_equal(stat(model, &sb), 0);
    char mi[] = "/tmp/nuage-meminfo-XXXXXX";
    int fd = mkstemp(mi);
    assert_true(fd >= 0);
    close(fd);
    write_meminfo(mi, 64ull << 20); /* 64 GiB */

    nuage_registry_params p = nuage_registry_default_params();
    p.meminfo_path = mi;
    p.memory_margin = 1 << 20;
    nuage_registry *reg = NULL;
    assert_int_equal(nuage_registry_new(&p, &reg), 0);
    char err[600];
    nuage_deploy_config a = model_cfg("a", "v1", 1 << 20);
    snprintf(a.aliases[0], sizeof a.aliases[0], "alias-a");
    a.n_aliases = 1;
    bool replaced = true;
    assert_int_equal(nuage_registry_load(reg, &a, NUAGE_DEPLOY_ORIGIN_API, &replaced, err, sizeof err), 0);
    assert_false(replaced);
    nuage_deployment *d = nuage_registry_acquire(reg, "a");
    assert_non_null(d);
    assert_string_equal(d->name, "a");
    assert_string_equal(d->version, "v1");
    assert_int_equal(d->n_ctx, 128);
    assert_int_equal(d->n_vocab, nuage_model_n_vocab(d->model));
    assert_true(d->weights_bytes == (uint64_t)sb.st_size);
    assert_true(d->kv_bytes == 1 << 20);
    assert_non_null(d->tmpl);
    assert_true(nuage_registry_acquire(reg, NULL) == d);  /* the default */
    nuage_deployment_release(d);
    assert_true(nuage_registry_acquire(reg, "alias-a") == d);
    nuage_deployment_release(d);
    assert_null(nuage_registry_acquire(reg, "b"));
    assert_int_equal(run_request(d, 5), 5);
    nuage_deployment_release(d);

    /* The memory check: weights + KV against MemAvailable - margin. */
    uint64_t kv_huge = 1ull << 40;
    nuage_deploy_config big = model_cfg("big", "", kv_huge);
    assert_int_equal(nuage_registry_load(reg, &big, NUAGE_DEPLOY_ORIGIN_API, NULL, err, sizeof err), NUAGE_E_NOMEM);
    char want[160];
    snprintf(want, sizeof want, "needs %llu bytes", (unsigned long long)((uint64_t)sb.st_size + kv_huge));
    if (!strstr(err, want)) fail_msg("'%s' lacks '%s'", err, want);
    snprintf(want, sizeof want, "only %llu bytes are available", (unsigned long long)((64ull << 30) - (1 << 20)));
    if (!strstr(err, want)) fail_msg("'%s' lacks '%s'", err, want);
    assert_null(nuage_registry_acquire(reg, "big"));
    /* Weights alone too large: refused before the model is opened. */
    write_meminfo(mi, 1024); /* 1 MiB - 1 MiB margin = 0 */
    nuage_deploy_config small = model_cfg("small", "", 4096);
    assert_int_equal(nuage_registry_load(reg, &small, NUAGE_DEPLOY_ORIGIN_API, NULL, err, sizeof err), NUAGE_E_NOMEM);
    assert_non_null(strstr(err, "weights alone need"));
    write_meminfo(mi, 64ull << 20);
    /* A name clash with an alias is refused. */
    nuage_deploy_config clash = model_cfg("alias-a", "", 1 << 20);
    assert_int_equal(nuage_registry_load(reg, &clash, NUAGE_DEPLOY_ORIGIN_API, NULL, err, sizeof err), NUAGE_E_STATE);

    /* Replace while a request holds the old instance. */
    nuage_deployment *old = nuage_registry_acquire(reg, "a");
    nuage_deploy_config a2 = model_cfg("a", "v2", 1 << 20);
    assert_int_equal(nuage_registry_load(reg, &a2, NUAGE_DEPLOY_ORIGIN_API, &replaced, err, sizeof err), 0);
    assert_true(replaced);
    nuage_deployment *cur = nuage_registry_acquire(reg, "a");
    assert_true(cur != old);
    assert_string_equal(cur->version, "v2");
    assert_true(cur->serial > old->serial);
    assert_null(nuage_registry_acquire(reg, "alias-a")); /* v2 has no alias */
    assert_int_equal(nuage_registry_n_draining(reg), 1);
    /* The old instance still serves its holder, the new one new requests. */
    assert_int_equal(run_request(old, 7), 7);
    assert_int_equal(run_request(cur, 3), 3);
    char how[200];
    uint64_t before = nuage_registry_mem_available(reg, how, sizeof how);
    assert_non_null(strstr(how, "MemAvailable"));
    nuage_deployment_release(old);
    wait_draining(reg, 0);
    (void)before;

    /* Unload: gone for new requests, alive for holders until released. */
    assert_int_equal(nuage_registry_unload(reg, "a"), 0);
    assert_int_equal(nuage_registry_unload(reg, "a"), NUAGE_E_RANGE);
    assert_null(nuage_registry_acquire(reg, "a"));
    assert_int_equal(run_request(cur, 2), 2);
    nuage_deployment_release(cur);
    wait_draining(reg, 0);

    /* Apply a configuration: add, keep unchanged, remove, leave API ones. */
    nuage_deploy_config w = model_cfg("w", "", 1 << 20);
    assert_int_equal(nuage_registry_load(reg, &w, NUAGE_DEPLOY_ORIGIN_API, NULL, err, sizeof err), 0);
    json_t *root = js("{\"deployments\": [{\"name\": \"x\", \"model\": \"M\", \"context\": 64, \"kv_memory\": \"1M\"},"
                      " {\"name\": \"y\", \"model\": \"M\", \"context\": 64, \"kv_memory\": \"1M\"}]}");
    /* "M" relative to the model's directory. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model);
    *strrchr(dir, '/') = 0;
    const char *base = strrchr(model, '/') + 1;
    json_string_set(json_object_get(json_array_get(json_object_get(root, "deployments"), 0), "model"), base);
    json_string_set(json_object_get(json_array_get(json_object_get(root, "deployments"), 1), "model"), base);
    nuage_deploy_config *cs;
    int n;
    assert_int_equal(nuage_deploy_config_parse_file(root, dir, &cs, &n, NULL, err, sizeof err), 0);
    char summary[300];
    assert_int_equal(nuage_registry_apply(reg, cs, n, summary, sizeof summary, err, sizeof err), 0);
    assert_non_null(strstr(summary, "added x, y"));
    nuage_deployment *x1 = nuage_registry_acquire(reg, "x");
    assert_non_null(x1);
    uint64_t x_serial = x1->serial;
    nuage_deployment_release(x1);
    /* Second file: x unchanged, y gone, z new. */
    json_t *z = json_deep_copy(json_array_get(json_object_get(root, "deployments"), 1));
    json_object_set_new(z, "name", json_string("z"));
    json_array_remove(json_object_get(root, "deployments"), 1);
    json_array_append_new(json_object_get(root, "deployments"), z);
    for (int i = 0; i < n; i++) nuage_deploy_config_free(&cs[i]);
    free(cs);
    assert_int_equal(nuage_deploy_config_parse_file(root, dir, &cs, &n, NULL, err, sizeof err), 0);
    assert_int_equal(nuage_registry_apply(reg, cs, n, summary, sizeof summary, err, sizeof err), 0);
    assert_non_null(strstr(summary, "added z"));
    assert_non_null(strstr(summary, "removed y"));
    assert_non_null(strstr(summary, "unchanged x"));
    nuage_deployment **all;
    int n_all;
    assert_int_equal(nuage_registry_list(reg, &all, &n_all), 0);
    assert_int_equal(n_all, 3);
    assert_string_equal(all[0]->name, "w"); /* the API's deployment stays */
    assert_string_equal(all[1]->name, "x");
    assert_true(all[1]->serial == x_serial);
    assert_string_equal(all[2]->name, "z");
    for (int i = 0; i < n_all; i++) nuage_deployment_release(all[i]);
    free(all);
    for (int i = 0; i < n; i++) nuage_deploy_config_free(&cs[i]);
    free(cs);
    json_decref(root);

    /* A router deployment needs no model and no memory. */
    nuage_deploy_config rc;
    json_t *rj = js("{\"name\": \"auto\", \"kind\": \"router\", \"router\": {\"targets\": {\"fast\": \"x\", \"reasoning\": \"z\"}}}");
    assert_int_equal(nuage_deploy_config_parse(rj, NULL, &rc, err, sizeof err), 0);
    json_decref(rj);
    assert_int_equal(nuage_registry_load(reg, &rc, NUAGE_DEPLOY_ORIGIN_API, NULL, err, sizeof err), 0);
    nuage_deployment *rd = nuage_registry_acquire(reg, "auto");
    assert_non_null(rd);
    assert_int_equal(rd->kind, NUAGE_DEPLOY_ROUTER);
    assert_null(rd->sched);
    nuage_deployment_release(rd);
    nuage_deploy_config_free(&rc);

    assert_int_equal(nuage_registry_drain(reg, 1000), 0);
    nuage_registry_free(reg);
    unlink(mi);
}

static void test_memory_limit(void **state) {
    (void)state;
    struct stat sb;
    assert_int_equal(stat(nuage_test_model_path(), &sb), 0);
    nuage_registry_params p = nuage_registry_default_params();
    p.memory_limit = 2 * (uint64_t)sb.st_size + (3u << 20);
    nuage_registry *reg = NULL;
    assert_int_equal(nuage_registry_new(&p, &reg), 0);
    char err[600];
    nuage_deploy_config a = model_cfg("a", "", 2u << 20);
    assert_int_equal(nuage_registry_load(reg, &a, NUAGE_DEPLOY_ORIGIN_API, NULL, err, sizeof err), 0);
    char how[200];
    assert_true(nuage_registry_mem_available(reg, how, sizeof how) == (uint64_t)sb.st_size + (1u << 20));
    assert_non_null(strstr(how, "--memory-limit"));
    nuage_deploy_config b = model_cfg("b", "", 2u << 20);
    assert_int_equal(nuage_registry_load(reg, &b, NUAGE_DEPLOY_ORIGIN_API, NULL, err, sizeof err), NUAGE_E_NOMEM);
    assert_non_null(strstr(err, "--memory-limit"));
    b.kv_memory = 1u << 20;
    assert_int_equal(nuage_registry_load(reg, &b, NUAGE_DEPLOY_ORIGIN_API, NULL, err, sizeof err), 0);
    assert_true(nuage_registry_mem_available(reg, NULL, 0) == 0);
    nuage_registry_free(reg);
}

static void test_auth_rules(void **state) {
    (void)state;
    assert_true(nuage_auth_is_loopback("127.0.0.1"));
    assert_true(nuage_auth_is_loopback("127.1.2.3"));
    assert_true(nuage_auth_is_loopback("::1"));
    assert_true(nuage_auth_is_loopback("localhost"));
    assert_true(nuage_auth_is_loopback("::ffff:127.0.0.1"));
    assert_false(nuage_auth_is_loopback("0.0.0.0"));
    assert_false(nuage_auth_is_loopback("::"));
    assert_false(nuage_auth_is_loopback("10.0.0.1"));
    assert_false(nuage_auth_is_loopback("example.com"));
    assert_false(nuage_auth_is_loopback(""));

    assert_true(nuage_auth_cache_salt(0) == 0);
    uint64_t s1 = nuage_auth_cache_salt(1), s2 = nuage_auth_cache_salt(2);
    assert_true(s1 != 0 && s2 != 0 && s1 != s2);
    assert_true(nuage_auth_cache_salt(1) == s1);

    /* No store, loopback: open, anonymous, admin allowed. */
    nuage_auth *a;
    nuage_auth_params ap = {.store = NULL, .loopback = true, .insecure = false};
    assert_int_equal(nuage_auth_new(&ap, &a), 0);
    nuage_auth_ctx ctx;
    assert_false(nuage_auth_required(a));
    assert_int_equal(nuage_auth_check(a, "Bearer whatever", NULL, &ctx, NULL, 0), 0);
    assert_false(ctx.auth_on);
    assert_true(ctx.admin);
    assert_true(ctx.tenant_id == 0);
    assert_true(ctx.weight == 1.0);
    assert_true(nuage_auth_allows(&ctx, "anything"));
    nuage_auth_free(a);
    /* Exposed without --insecure and without keys: everyone is refused. */
    ap.loopback = false;
    assert_int_equal(nuage_auth_new(&ap, &a), 0);
    assert_true(nuage_auth_required(a));
    char msg[300];
    assert_int_equal(nuage_auth_check(a, NULL, NULL, &ctx, msg, sizeof msg), NUAGE_E_RANGE);
    assert_non_null(strstr(msg, "API key"));
    assert_int_equal(nuage_auth_check(a, "Basic abc", NULL, &ctx, msg, sizeof msg), NUAGE_E_RANGE);
    assert_int_equal(nuage_auth_check(a, "Bearer nk-x", NULL, &ctx, msg, sizeof msg), NUAGE_E_RANGE);
    nuage_auth_free(a);
    /* --insecure: open, but the admin API stays loopback-only. */
    ap.insecure = true;
    assert_int_equal(nuage_auth_new(&ap, &a), 0);
    assert_int_equal(nuage_auth_check(a, NULL, NULL, &ctx, NULL, 0), 0);
    assert_false(ctx.admin);
    nuage_auth_free(a);
    /* A key's deployment list. */
    memset(&ctx, 0, sizeof ctx);
    ctx.auth_on = true;
    snprintf(ctx.deployments, sizeof ctx.deployments, "alpha,beta");
    assert_true(nuage_auth_allows(&ctx, "alpha"));
    assert_true(nuage_auth_allows(&ctx, "beta"));
    assert_false(nuage_auth_allows(&ctx, "gamma"));
    assert_false(nuage_auth_allows(&ctx, "alph"));
    ctx.deployments[0] = 0;
    assert_true(nuage_auth_allows(&ctx, "gamma"));
}

/* Issue 12, item 2: with a store, auth never turns itself off. Revoking
 * (or expiring) the last active key used to open a loopback server: no
 * key, the revoked key and the admin API all passed. */
static void test_auth_store_fails_closed(void **state) {
    (void)state;
    tmp_db t;
    tmp_db_init(&t);
    nuage_store *st = tmp_db_open(&t);
    nuage_auth *a;
    nuage_auth_ctx ctx;
    char msg[300];
    nuage_auth_params ap = {.store = st, .loopback = true};
    assert_int_equal(nuage_auth_new(&ap, &a), 0);
    /* No key in the store yet: closed all the same (401 until one exists). */
    assert_true(nuage_auth_required(a));
    assert_int_equal(nuage_auth_check(a, NULL, NULL, &ctx, msg, sizeof msg), NUAGE_E_RANGE);
    assert_non_null(strstr(nuage_auth_mode(a), "API keys required"));

    char key[80], admin_key[80];
    nuage_key k;
    assert_int_equal(nuage_store_tenant_create(st, "acme", 0, 0, 1.0, NULL), 0);
    assert_int_equal(nuage_store_key_create(st, "acme", NULL, 0, false, key, sizeof key, &k), 0);
    assert_int_equal(nuage_store_key_create(st, NULL, NULL, 0, true, admin_key, sizeof admin_key, NULL), 0);
    char bearer[120], bearer_admin[120];
    snprintf(bearer, sizeof bearer, "Bearer %s", key);
    snprintf(bearer_admin, sizeof bearer_admin, "Bearer %s", admin_key);
    assert_int_equal(nuage_auth_check(a, bearer, NULL, &ctx, msg, sizeof msg), 0);
    assert_true(ctx.authenticated);
    assert_false(ctx.admin);
    /* Revoke every key: the store now has no active key. */
    assert_int_equal(nuage_store_key_revoke(st, k.prefix), 0);
    nuage_key *list = NULL;
    int n = 0;
    assert_int_equal(nuage_store_key_list(st, NULL, &list, &n), 0);
    for (int i = 0; i < n; i++)
        if (!list[i].revoked) assert_int_equal(nuage_store_key_revoke(st, list[i].prefix), 0);
    free(list);
    assert_int_equal(nuage_store_key_count(st), 0);
    assert_true(nuage_auth_required(a));
    assert_int_equal(nuage_auth_check(a, NULL, NULL, &ctx, msg, sizeof msg), NUAGE_E_RANGE);
    assert_int_equal(nuage_auth_check(a, bearer, NULL, &ctx, msg, sizeof msg), NUAGE_E_RANGE);
    assert_int_equal(nuage_auth_check(a, bearer_admin, NULL, &ctx, msg, sizeof msg), NUAGE_E_RANGE);
    assert_false(ctx.admin);
    /* A key that expired is the same as none. */
    assert_int_equal(nuage_store_key_create(st, "acme", NULL, 1, false, key, sizeof key, NULL), 0);
    snprintf(bearer, sizeof bearer, "Bearer %s", key);
    assert_int_equal(nuage_auth_check(a, bearer, NULL, &ctx, msg, sizeof msg), NUAGE_E_RANGE);
    nuage_auth_free(a);

    /* The open mode only when asked for (--no-auth), and only on loopback. */
    ap.no_auth = true;
    assert_int_equal(nuage_auth_new(&ap, &a), 0);
    assert_false(nuage_auth_required(a));
    assert_int_equal(nuage_auth_check(a, NULL, NULL, &ctx, msg, sizeof msg), 0);
    assert_true(ctx.admin);
    assert_non_null(strstr(nuage_auth_mode(a), "--no-auth"));
    nuage_auth_free(a);
    ap.loopback = false;
    assert_int_equal(nuage_auth_new(&ap, &a), 0);
    assert_true(nuage_auth_required(a));
    nuage_auth_free(a);
    nuage_store_close(st);
    tmp_db_cleanup(&t);
}

/* Issue 12, item 7: "ROUTER:hint" model names reach the router (they
 * answered 404 model_not_found). Router deployments load no model file. */
static void test_router_hint_names(void **state) {
    (void)state;
    nuage_registry_params rp = nuage_registry_default_params();
    nuage_registry *reg = NULL;
    assert_int_equal(nuage_registry_new(&rp, &reg), 0);
    nuage_deploy_config c;
    parse_expect("{\"name\": \"nuage\", \"kind\": \"router\", \"router\": {\"targets\": {\"fast\": \"f\","
                 " \"reasoning\": \"t\"}}}", NULL, &c);
    char err[600] = "";
    int rc = nuage_registry_load(reg, &c, NUAGE_DEPLOY_ORIGIN_CONFIG, NULL, err, sizeof err);
    if (rc) fail_msg("load: %s", err);
    nuage_deploy_config_free(&c);
    static const char *const routed[] = {"nuage", "nuage:fast", "nuage:thinking", "nuage:brainy"};
    for (size_t i = 0; i < sizeof routed / sizeof *routed; i++) {
        nuage_deployment *d = nuage_registry_acquire(reg, routed[i]);
        if (!d) fail_msg("'%s' did not reach the router", routed[i]);
        assert_string_equal(d->name, "nuage");
        assert_int_equal(d->kind, NUAGE_DEPLOY_ROUTER);
        nuage_deployment_release(d);
    }
    static const char *const unknown[] = {"nuag:fast", "nuagex:fast", "other:fast", ":fast", "fast"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        nuage_deployment *d = nuage_registry_acquire(reg, unknown[i]);
        if (d) fail_msg("'%s' should name no deployment", unknown[i]);
    }
    nuage_registry_free(reg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_bytes_and_meminfo),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_auth_rules),
        cmocka_unit_test(test_auth_store_fails_closed),
        cmocka_unit_test(test_router_hint_names),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
