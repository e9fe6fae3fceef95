/*
 * bench_constrain.c - speed of the constrained-decoding engine on the
 * JSONSchemaBench cases (../shared/jsonschema/cases/ (one JSON file each)) with a real
 * vocabulary (default: the 102k-token deepseek-llm one), one thread.
 *
 * For each schema: time to first mask = compile (nuage_grammar_from_
 * json_schema) + matcher + the first mask. Then, for each valid instance
 * (compact JSON), the matcher is driven along its tokenization: every
 * step's mask is timed (time between masks) and the sampled token must be
 * allowed; at the end EOS must be allowed. Prints mean / p50 / p99 / max
 * of both, and the number of valid instances refused (which must be 0).
 *
 *   bench_constrain [--vocab F.gguf] [--cases DIR] [--limit N] [--every K] [--compile-only] [--gbnf] [--wall] [--ws N] [-v]
 *
 * --every K takes every K-th case file (in name order) only: a fixed
 * subset for quick comparisons. --compile-only skips the instances.
 *
 * --ws N sets the JSON whitespace bound (nuage_cg_json_opts.max_ws).
 *
 * Times are this thread's CPU time (the numbers stay meaningful on a busy
 * machine); --wall measures wall-clock time instead.
 *
 * --gbnf uses one hand-written JSON GBNF grammar for every instance
 * instead of the schemas (for an engine without the JSON Schema compiler).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/gguf.h"
#include "nuage/constrain.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"

static const char json_gbnf[] =
    "root   ::= value\n"
    "value  ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object ::= \"{\" ( string \":\" value (\",\" string \":\" value)* )? \"}\"\n"
    "array  ::= \"[\" ( value (\",\" value)* )? \"]\"\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}) )* \"\\\"\"\n"
    "number ::= \"-\"? (\"0\" | [1-9] [0-9]*) (\".\" [0-9]+)? ([eE] [-+]? [0-9]+)?\n";

static clockid_t clk = CLOCK_THREAD_CPUTIME_ID;   /* --wall: CLOCK_MONOTONIC */
static double now_us(void) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

typedef struct { double *v; size_t n, cap; } vec;
static void push(vec *a, double x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) { perror("realloc"); exit(1); }
    }
    a->v[a->n++] = x;
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static void report(const char *name, vec *a) {
    if (!a->n) { printf("%-22s no samples\n", name); return; }
    qsort(a->v, a->n, sizeof *a->v, cmpd);
    double s = 0;
    for (size_t i = 0; i < a->n; i++) s += a->v[i];
    printf("%-22s n=%-7zu mean %9.1f us  p50 %8.1f  p90 %8.1f  p99 %9.1f  max %10.1f\n", name, a->n, s / (double)a->n,
           a->v[a->n / 2], a->v[a->n * 9 / 10], a->v[a->n * 99 / 100], a->v[a->n - 1]);
}

static int cmps(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    const char *vocab_path = "../shared/vocab/ggml-vocab-deepseek-llm.gguf", *dir = "../shared/jsonschema/cases";
    long limit = -1, every = 1;
    nuage_cg_json_opts jo = {64, false}, *jop = NULL;   /* --ws N: max_ws (default: the library's) */
    bool use_gbnf = false, verbose = false, no_instances = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--vocab") && i + 1 < argc) vocab_path = argv[++i];
        else if (!strcmp(argv[i], "--cases") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--limit") && i + 1 < argc) limit = atol(argv[++i]);
        else if (!strcmp(argv[i], "--every") && i + 1 < argc) every = atol(argv[++i]);
        else if (!strcmp(argv[i], "--compile-only")) no_instances = true;
        else if (!strcmp(argv[i], "--gbnf")) use_gbnf = true;
        else if (!strcmp(argv[i], "-v")) verbose = true;
        else if (!strcmp(argv[i], "--wall")) clk = CLOCK_MONOTONIC;
        else if (!strcmp(argv[i], "--ws") && i + 1 < argc) { jo.max_ws = atoi(argv[++i]); jop = &jo; }
        else { fprintf(stderr, "usage: %s [--vocab F] [--cases DIR] [--limit N] [--every K] [--compile-only] [--gbnf] [--wall] [--ws N] [-v]\n", argv[0]); return 2; }
    }
    if (every < 1) { fprintf(stderr, "--every: K >= 1\n"); return 2; }
    char err[256];
    nuage_gguf *gg = NULL;
    nuage_vocab *v = NULL;
    if (nuage_gguf_open(vocab_path, &gg, err, sizeof err) || nuage_vocab_from_gguf(gg, &v, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", vocab_path, err);
        return 1;
    }
    nuage_gguf_close(gg);
    double t0 = now_us();
    nuage_cg_tokens *t = NULL;
    if (nuage_cg_tokens_new(v, &t)) { fprintf(stderr, "token table failed\n"); return 1; }
    printf("token table: %d tokens, %.1f ms\n", nuage_cg_tokens_n_vocab(t), (now_us() - t0) / 1e3);
    size_t nw = nuage_cg_mask_words(t);
    uint32_t *mask = malloc(nw * sizeof *mask);
    int32_t eos = nuage_vocab_eos(v);

    DIR *d = opendir(dir);
    if (!d) { perror(dir); return 1; }
    char **names = NULL;
    size_t n_names = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json")) continue;
        if (n_names == cap) names = realloc(names, (cap = cap ? cap * 2 : 4096) * sizeof *names);
        names[n_names++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n_names, sizeof *names, cmps);

    vec compile = {0}, compile_only = {0}, masks = {0};
    size_t n_schemas = 0, n_compiled = 0, n_inst = 0, n_refused = 0;
    nuage_grammar *shared_g = NULL;
    if (use_gbnf) {
        nuage_cg_error ce;
        if (nuage_grammar_from_gbnf(t, json_gbnf, sizeof json_gbnf - 1, &shared_g, &ce)) {
            fprintf(stderr, "gbnf: %s\n", ce.msg);
            return 1;
        }
    }
    int32_t *ids = malloc(1 << 20);
    for (size_t k = 0; k < n_names && (limit < 0 || (long)n_schemas < limit); k++) {
        if (k % (size_t)every) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        json_error_t je;
        json_t *cs = json_load_file(path, 0, &je);
        if (!cs) continue;
        n_schemas++;
        nuage_grammar *g = NULL;
        nuage_matcher *m = NULL;
        double c0 = now_us();
        if (use_gbnf) g = nuage_grammar_retain(shared_g);
        else {
            char *schema = json_dumps(json_object_get(cs, "schema"), JSON_COMPACT | JSON_ENCODE_ANY);
            nuage_cg_error ce;
            int rc = schema ? nuage_grammar_from_json_schema(t, schema, strlen(schema), jop, &g, &ce) : -1;
            free(schema);
            if (rc) {
                if (verbose) printf("refused %s: %s %s\n", names[k], ce.msg, ce.pointer);
                json_decref(cs);
                continue;
            }
        }
        push(&compile_only, now_us() - c0);
        if (nuage_matcher_new(g, &m) || nuage_matcher_fill_mask(m, mask)) { fprintf(stderr, "matcher failed\n"); return 1; }
        double ct = now_us() - c0;
        push(&compile, ct);
        if (verbose && ct > 5000) printf("slow compile %.0f us: %s\n", ct, names[k]);
        nuage_matcher_free(m);
        n_compiled++;
        json_t *tests = json_object_get(cs, "tests"), *tc;
        size_t ti;
        json_array_foreach(tests, ti, tc) {
            if (no_instances || !json_is_true(json_object_get(tc, "valid"))) continue;
            char *text = json_dumps(json_object_get(tc, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
            if (!text) continue;
            int n = nuage_tokenize(v, text, strlen(text), ids, (1 << 20) / sizeof *ids, false, false);
            n_inst++;
            bool ok = n > 0 && nuage_matcher_new(g, &m) == 0;
            for (int i = 0; ok && i <= n; i++) {
                double a = now_us();
                if (nuage_matcher_fill_mask(m, mask)) { ok = false; break; }
                double dt = now_us() - a;
                push(&masks, dt);
                if (verbose && dt > 1000) printf("slow mask %.0f us: %s token %d/%d\n", dt, names[k], i, n);
                int32_t tok = i < n ? ids[i] : eos;
                if (!(mask[tok >> 5] >> (tok & 31) & 1) || nuage_matcher_accept_token(m, tok)) {
                    if (verbose) printf("refused valid instance of %s at token %d/%d: %s\n", names[k], i, n, text);
                    ok = false;
                }
            }
            if (!ok) n_refused++;
            nuage_matcher_free(m);
            free(text);
        }
        nuage_grammar_free(g);
        json_decref(cs);
    }
    printf("schemas %zu, compiled %zu (%.1f %%), valid instances %zu, refused %zu\n", n_schemas, n_compiled,
           n_schemas ? 100.0 * (double)n_compiled / (double)n_schemas : 0.0, n_inst, n_refused);
    report("time to first mask", &compile);
    report("  of which compile", &compile_only);
    report("time between masks", &masks);
    nuage_grammar_free(shared_g);
    for (size_t k = 0; k < n_names; k++) free(names[k]);
    free(names);
    free(ids);
    free(mask);
    free(compile.v);
    free(compile_only.v);
    free(masks.v);
    nuage_cg_tokens_free(t);
    nuage_vocab_free(v);
    return 0;
}
