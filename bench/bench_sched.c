/*
 * bench_sched.c - in-process throughput of the scheduler, no HTTP.
 *
 *   bench_sched [model.gguf] [streams] [tokens] [threads] [prompt_tokens] [kv_blocks]
 *
 * Submits `streams` greedy requests at once (each a distinct prompt of
 * prompt_tokens tokens, ignore_eos, max_tokens = tokens), waits for all of
 * them and reports aggregate generated tokens per second, scheduler steps
 * and mean tokens per step; then the same for one stream alone, so the
 * batching gain is visible. Defaults: ../shared/models/stories260K.gguf,
 * 16 streams x 64 tokens, 2 threads, 32-token prompts, a KV pool big
 * enough for every stream (give kv_blocks to see preemption at work).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nuage/nuage.h"
#include "runtime/sched.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int left;
    long tokens;
} bench_state;

static bool on_token(void *ud, int choice, const nuage_sched_token *t) {
    bench_state *b = ud;
    pthread_mutex_lock(&b->mu);
    b->tokens++;
    pthread_mutex_unlock(&b->mu);
    return true;
}

static void on_complete(void *ud, const nuage_sched_usage *u) {
    bench_state *b = ud;
    pthread_mutex_lock(&b->mu);
    b->left--;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int run(const nuage_model *m, int streams, int tokens, int threads, int np, int kv_blocks) {
    nuage_sched_params p = nuage_sched_default_params();
    p.n_threads = threads;
    p.max_running = streams;
    p.n_ctx = np + tokens + 16;
    p.max_batch_tokens = 512;
    p.prefix_cache = false;
    p.kv_block_size = 16;
    /* default: enough for every stream (no preemption: measure batching) */
    p.kv_blocks = kv_blocks > 0 ? kv_blocks : streams * ((p.n_ctx + 15) / 16);
    nuage_sched *s;
    char err[256];
    if (nuage_sched_new(m, &p, &s, err, sizeof err)) {
        fprintf(stderr, "bench_sched: %s\n", err);
        return 1;
    }
    bench_state b = {.left = streams};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    int32_t *prompt = malloc((size_t)np * sizeof *prompt);
    int n_vocab = nuage_model_n_vocab(m);
    double t0 = now_s();
    for (int k = 0; k < streams; k++) {
        for (int i = 0; i < np; i++) prompt[i] = 3 + (int32_t)((k * 7919u + i * 104729u) % (unsigned)(n_vocab - 3));
        nuage_sched_request r;
        memset(&r, 0, sizeof r);
        r.prompt = prompt;
        r.n_prompt = np;
        r.max_tokens = tokens;
        r.n_choices = 1;
        r.sampling = nuage_sampler_default_params();
        r.sampling.temperature = 0;
        r.top_logprobs = -1;
        r.ignore_eos = true;
        r.cb.ud = &b;
        r.cb.on_token = on_token;
        r.cb.on_complete = on_complete;
        int rc = nuage_sched_submit(s, &r, NULL);
        if (rc) {
            fprintf(stderr, "bench_sched: submit: %s\n", nuage_strerror(rc));
            return 1;
        }
    }
    pthread_mutex_lock(&b.mu);
    while (b.left > 0) pthread_cond_wait(&b.cv, &b.mu);
    pthread_mutex_unlock(&b.mu);
    double dt = now_s() - t0;
    nuage_sched_stats st;
    nuage_sched_get_stats(s, &st);
    printf("%3d streams x %d tokens (prompt %d): %ld tokens in %.3f s = %.0f tok/s aggregate, "
           "%.0f tok/s per stream, %llu steps (%.1f tokens/step)\n",
           streams, tokens, np, b.tokens, dt, b.tokens / dt, b.tokens / dt / streams,
           (unsigned long long)st.steps, (double)(st.prompt_tokens + st.generated_tokens) / (double)st.steps);
    if (st.preemptions) printf("    %llu preemptions\n", (unsigned long long)st.preemptions);
    nuage_sched_free(s);
    free(prompt);
    return 0;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "../shared/models/stories260K.gguf";
    int streams = argc > 2 ? atoi(argv[2]) : 16;
    int tokens = argc > 3 ? atoi(argv[3]) : 64;
    int threads = argc > 4 ? atoi(argv[4]) : 2;
    int np = argc > 5 ? atoi(argv[5]) : 32;
    int kv_blocks = argc > 6 ? atoi(argv[6]) : 0;
    if (streams < 1 || tokens < 1 || np < 1) {
        fprintf(stderr, "usage: bench_sched [model] [streams] [tokens] [threads] [prompt_tokens] [kv_blocks]\n");
        return 2;
    }
    nuage_model *m;
    char err[256];
    if (nuage_model_load(path, NULL, &m, err, sizeof err)) {
        fprintf(stderr, "bench_sched: %s: %s\n", path, err);
        return 1;
    }
    int rc = run(m, streams, tokens, threads, np, kv_blocks);
    if (!rc && streams > 1) rc = run(m, 1, tokens, threads, np, 0);
    nuage_model_free(m);
    return rc;
}
