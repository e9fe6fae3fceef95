/*
 * bench_constrained.c - end-to-end cost of grammar-constrained decoding in
 * the scheduler: `streams` streams each constrained by a JSON Schema
 * against the same streams unconstrained, aggregate tokens per second.
 *
 *   bench_constrained [model.gguf] [streams] [tokens] [threads] [schema.json]
 *
 * Closed loop: `streams` requests are always in flight; a request that
 * ends (a constrained output may complete early) is replaced at once by a
 * new one, until every stream has generated `tokens` tokens. Unconstrained
 * requests use ignore_eos and run the whole budget. Both runs sample at
 * temperature 1 with the same seeds, prompts of 16 tokens, a KV pool big
 * enough for every stream, prefix cache off. The grammar is compiled once
 * and shared by every request (as the server shares one per request's
 * choices); its mask cache warms up during the run, as it would in a
 * server. Reports tokens/s of both and their ratio (goal: >= 95 %), by
 * the wall clock and by CPU time (the latter is what to compare on a
 * machine shared with other work).
 * Default schema: an object with an unbounded array of strings (long
 * outputs, the per-token mask work of real JSON answers).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "nuage/constrain.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"
#include "runtime/sched.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long tokens;
    int ended;            /* requests completed, not yet replaced */
} bench_state;

typedef struct {
    bench_state *b;
    int stream;
    long *stream_tokens;
} bench_req;

static bool on_token(void *ud, int choice, const nuage_sched_token *t) {
    bench_req *q = ud;
    pthread_mutex_lock(&q->b->mu);
    q->b->tokens++;
    q->stream_tokens[q->stream]++;
    pthread_mutex_unlock(&q->b->mu);
    return true;
}

static void on_complete(void *ud, const nuage_sched_usage *u) {
    bench_req *q = ud;
    pthread_mutex_lock(&q->b->mu);
    q->b->ended++;
    q->stream = -1 - q->stream; /* mark: this slot ended */
    pthread_cond_broadcast(&q->b->cv);
    pthread_mutex_unlock(&q->b->mu);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process (every thread). */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
}

static double run(const nuage_model *m, nuage_grammar *g, int streams, int tokens, int threads, long *total,
                  long *requests, double *cpu) {
    enum { NP = 16 };
    nuage_sched_params p = nuage_sched_default_params();
    p.n_threads = threads;
    p.max_running = streams;
    p.n_ctx = NP + tokens + 16;
    p.max_batch_tokens = 512;
    p.prefix_cache = false;
    p.kv_blocks = streams * ((p.n_ctx + 15) / 16);
    nuage_sched *s;
    char err[256];
    if (nuage_sched_new(m, &p, &s, err, sizeof err)) {
        fprintf(stderr, "bench_constrained: %s\n", err);
        exit(1);
    }
    bench_state b = {0};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    long *st = calloc((size_t)streams, sizeof *st);
    bench_req *slots = calloc((size_t)streams, sizeof *slots);
    int n_vocab = nuage_model_n_vocab(m);
    int32_t prompt[NP];
    long submitted = 0;
    double t0 = now_s(), c0 = cpu_s();
    pthread_mutex_lock(&b.mu);
    for (int k = 0; k < streams; k++) slots[k].stream = -1 - k;
    for (;;) {
        /* (re)fill every ended slot whose stream still has budget */
        int active = 0;
        for (int k = 0; k < streams; k++) {
            bench_req *q = &slots[k];
            if (q->stream >= 0) {
                active++;
                continue;
            }
            int sk = -1 - q->stream;
            long left = tokens - st[sk];
            if (left <= 0) continue;
            for (int i = 0; i < NP; i++)
                prompt[i] = 3 + (int32_t)((sk * 7919u + (unsigned)submitted * 31u + i * 104729u) % (unsigned)(n_vocab - 3));
            q->b = &b;
            q->stream = sk;
            q->stream_tokens = st;
            nuage_sched_request r;
            memset(&r, 0, sizeof r);
            r.prompt = prompt;
            r.n_prompt = NP;
            r.max_tokens = (int)left;
            r.n_choices = 1;
            r.sampling = nuage_sampler_default_params();
            r.sampling.seed = (uint64_t)(sk * 1000 + submitted);
            r.top_logprobs = -1;
            r.ignore_eos = g == NULL;
            r.grammar = g;
            r.cb.ud = q;
            r.cb.on_token = on_token;
            r.cb.on_complete = on_complete;
            pthread_mutex_unlock(&b.mu);
            int rc = nuage_sched_submit(s, &r, NULL);
            pthread_mutex_lock(&b.mu);
            if (rc) {
                fprintf(stderr, "bench_constrained: submit: %s\n", nuage_strerror(rc));
                exit(1);
            }
            submitted++;
            active++;
        }
        if (active == 0) break;
        pthread_cond_wait(&b.cv, &b.mu);
    }
    pthread_mutex_unlock(&b.mu);
    double dt = now_s() - t0;
    *cpu = cpu_s() - c0;
    nuage_sched_free(s);
    *total = b.tokens;
    *requests = submitted;
    free(st);
    free(slots);
    return dt;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (buf) buf[n] = 0;
    fclose(f);
    return buf;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "../shared/models/stories260K.gguf";
    int streams = argc > 2 ? atoi(argv[2]) : 16;
    int tokens = argc > 3 ? atoi(argv[3]) : 256;
    int threads = argc > 4 ? atoi(argv[4]) : 2;
    const char *schema_path = argc > 5 ? argv[5] : NULL;
    if (streams < 1 || tokens < 1) {
        fprintf(stderr, "usage: bench_constrained [model] [streams] [tokens] [threads] [schema.json]\n");
        return 2;
    }
    nuage_model *m;
    char err[256];
    if (nuage_model_load(path, NULL, &m, err, sizeof err)) {
        fprintf(stderr, "bench_constrained: %s: %s\n", path, err);
        return 1;
    }
    char *schema = schema_path ? slurp(schema_path)
                               : strdup("{\"type\":\"object\",\"properties\":{\"log\":{\"type\":\"array\","
                                        "\"items\":{\"type\":\"string\",\"maxLength\":40}}},\"required\":[\"log\"]}");
    nuage_cg_tokens *t = NULL;
    nuage_grammar *g = NULL;
    nuage_cg_error ce;
    nuage_cg_json_opts opts = {.max_ws = 16, .strict = false};
    double tc = now_s();
    if (!schema || nuage_cg_tokens_new(nuage_model_vocab(m), &t) ||
        nuage_grammar_from_json_schema(t, schema, strlen(schema), &opts, &g, &ce)) {
        fprintf(stderr, "bench_constrained: cannot compile the schema: %s\n", ce.msg);
        return 1;
    }
    tc = now_s() - tc;
    long tok_u, tok_c, req_u, req_c;
    double cu, cc;
    /* warm-up (threads, caches), then the measured runs */
    run(m, NULL, streams, 32, threads, &tok_u, &req_u, &cu);
    double du = run(m, NULL, streams, tokens, threads, &tok_u, &req_u, &cu);
    double dc = run(m, g, streams, tokens, threads, &tok_c, &req_c, &cc);
    double ru = tok_u / du, rcn = tok_c / dc;
    printf("model %s, %d streams x %d tokens, %d threads (token table + schema compile %.1f ms)\n", path, streams,
           tokens, threads, tc * 1e3);
    printf("  unconstrained: %ld tokens in %.3f s = %.0f tok/s, %.0f tok per CPU-s (%ld requests)\n", tok_u, du, ru,
           tok_u / cu, req_u);
    printf("  JSON schema:   %ld tokens in %.3f s = %.0f tok/s, %.0f tok per CPU-s (%ld requests)\n", tok_c, dc, rcn,
           tok_c / cc, req_c);
    printf("  constrained / unconstrained: %.1f %% (wall), %.1f %% (CPU)\n", 100.0 * rcn / ru,
           100.0 * (tok_c / cc) / (tok_u / cu));
    nuage_grammar_free(g);
    nuage_cg_tokens_free(t);
    free(schema);
    nuage_model_free(m);
    return 0;
}
