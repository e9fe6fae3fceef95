/*
 * test_train_model.c - the trainer end to end on tiny models.
 *
 *  - the trainer's forward equals the engine's: a random model exported by
 *    the GGUF writer and loaded with nuage_model_load gives the same
 *    logits through nuage_decode as the trainer computes (within 1e-4);
 *  - 50 steps of training on synthetic additions lower the loss on chats
 *    the model was not trained on;
 *  - a run killed after a checkpoint and resumed ends with exactly the
 *    weights of an uninterrupted run;
 *  - the result does not depend on the number of threads.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/gguf.h"
#include "engine/gguf_write.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"
#include "test_util.h"
#include "train/bpe_train.h"
#include "train/train.h"

static char g_dir[256];
static char g_data[300], g_heldout[300], g_tok[300];
static nuage_gguf *g_tg;
static nuage_vocab *g_voc;

/* Write n synthetic chats of a task to path. */
static void write_chats(const char *path, nuage_task t, int digits, int n, uint64_t seed, bool heldout) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    nuage_rng r;
    nuage_rng_seed(&r, seed);
    nuage_synth_opts o = {.digits = digits, .heldout = heldout};
    for (int i = 0; i < n; i++) {
        nuage_synth_item it;
        assert_int_equal(nuage_synth_gen(t, &o, &r, &it), 0);
        char *line = nuage_synth_json(&it, false);
        fprintf(f, "%s\n", line);
        free(line);
    }
    fclose(f);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/nuage_test_train_%ld", (long)getpid());
    mkdir(g_dir, 0755);
    snprintf(g_data, sizeof g_data, "%s/train.jsonl", g_dir);
    snprintf(g_heldout, sizeof g_heldout, "%s/heldout.jsonl", g_dir);
    snprintf(g_tok, sizeof g_tok, "%s/tok.gguf", g_dir);
    write_chats(g_data, NUAGE_TASK_ADD, 1, 400, 1, false);
    write_chats(g_heldout, NUAGE_TASK_ADD, 1, 64, 2, true);
    /* a tokenizer for the data */
    char **texts;
    size_t *lens, n;
    char err[256];
    if (nuage_tdata_render_file(g_data, nuage_bpe_chat_template(), &texts, &lens, &n, err, sizeof err)) return -1;
    nuage_bpe *b;
    if (nuage_bpe_train((const char *const *)texts, lens, n, 320, NULL, &b, err, sizeof err)) return -1;
    nuage_gguf_writer *w = nuage_gguf_writer_new();
    nuage_bpe_write_gguf(b, w);
    nuage_gguf_writer_set_str(w, "general.architecture", "llama");
    if (nuage_gguf_writer_write_file(w, g_tok, err, sizeof err)) return -1;
    nuage_gguf_writer_free(w);
    nuage_bpe_free(b);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(lens);
    if (nuage_gguf_open(g_tok, &g_tg, err, sizeof err)) return -1;
    if (nuage_vocab_from_gguf(g_tg, &g_voc, err, sizeof err)) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    nuage_vocab_free(g_voc);
    nuage_gguf_close(g_tg);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) return -1;
    return 0;
}

static nuage_tcfg tiny_cfg(void) {
    nuage_tcfg c = {.n_vocab = nuage_vocab_n_tokens(g_voc), .dim = 32, .n_layer = 2, .n_head = 4,
                    .n_head_kv = 2, .n_ff = 48, .n_ctx = 48, .norm_eps = 1e-5f, .rope_base = 10000.0f};
    return c;
}

/* ---- trainer forward == engine forward ------------------------------------------------ */

static void test_forward_matches_engine(void **state) {
    (void)state;
    nuage_tcfg c = tiny_cfg();
    c.n_layer = 3;
    nuage_tmodel m;
    char err[256];
    assert_int_equal(nuage_tmodel_init(&m, &c, err, sizeof err), 0);
    nuage_tmodel_random(&m, 99);
    for (size_t i = 0; i < m.n; i++) /* weights big enough for logits of a few units */
        m.w[i] = m.w[i] == 1.0f ? 1.0f + 0.01f * (float)(i % 7) : m.w[i] * 12.0f;
    nuage_tmodel_sync(&m);
    char path[320];
    snprintf(path, sizeof path, "%s/rand.gguf", g_dir);
    nuage_gguf_writer *w = nuage_gguf_writer_new();
    assert_int_equal(nuage_tmodel_to_gguf(&m, w, false), 0);
    assert_int_equal(nuage_train_copy_tokenizer(g_tg, w), 0);
    assert_int_equal(nuage_gguf_writer_write_file(w, path, err, sizeof err), 0);
    nuage_gguf_writer_free(w);

    nuage_model *em;
    assert_int_equal(nuage_model_load(path, NULL, &em, err, sizeof err), 0);
    assert_string_equal(nuage_model_arch(em), "llama");
    assert_int_equal(nuage_model_n_vocab(em), c.n_vocab);
    assert_int_equal(nuage_model_n_layer(em), 3);
    nuage_context_params cp = nuage_context_default_params();
    cp.n_threads = 1;
    cp.n_ctx = c.n_ctx;
    cp.n_seq_max = 1;
    cp.n_batch_max = c.n_ctx;
    cp.kv_type = NUAGE_KV_F32; /* the trainer keeps K and V in f32 */
    nuage_context *ctx;
    assert_int_equal(nuage_context_new(em, &cp, &ctx, err, sizeof err), 0);
    enum { T = 40 };
    int32_t tok[T];
    for (int t = 0; t < T; t++) tok[t] = (int32_t)((t * 37 + 5) % c.n_vocab);
    nuage_batch *b = nuage_batch_new(T);
    for (int t = 0; t < T; t++) nuage_batch_add(b, tok[t], t, 0, true);
    assert_int_equal(nuage_decode(ctx, b, err, sizeof err), 0);
    float *mine = malloc((size_t)T * c.n_vocab * sizeof *mine);
    nuage_tws *ws = nuage_tws_new(&m);
    nuage_tmodel_logits(&m, ws, tok, T, mine);
    double worst = 0, spread = 0;
    for (int t = 0; t < T; t++) {
        const float *l = nuage_get_logits(ctx, t);
        assert_non_null(l);
        for (int i = 0; i < c.n_vocab; i++) {
            double d = fabs(l[i] - mine[(size_t)t * c.n_vocab + i]);
            if (d > worst) worst = d;
            if (fabs(l[i]) > spread) spread = fabs(l[i]);
        }
    }
    print_message("max |logit difference| %.3g (logits up to %.3g)\n", worst, spread);
    assert_true(spread > 1.0); /* a meaningful comparison */
    assert_true(worst < 1e-4);
    nuage_tws_free(ws);
    free(mine);
    nuage_batch_free(b);
    nuage_context_free(ctx);
    nuage_model_free(em);
    nuage_tmodel_free(&m);
}

/* ---- training ---------------------------------------------------------------------------- */

static double eval_loss(const nuage_tmodel *m, const nuage_tdata *d) {
    nuage_tws *ws = nuage_tws_new(m);
    double loss = 0;
    long n = 0;
    int32_t tgt[64];
    for (int i = 0; i < d->n; i++) {
        const int32_t *tok = d->tok + d->off[i];
        int T = (int)(d->off[i + 1] - d->off[i]) - 1;
        for (int t = 0; t < T; t++) tgt[t] = t + 1 >= d->n_prompt[i] ? tok[t + 1] : -1;
        int nt;
        loss += nuage_tmodel_seq(m, ws, tok, tgt, T, 1.0f, NULL, &nt);
        n += nt;
    }
    nuage_tws_free(ws);
    return loss / (double)n;
}

static nuage_topts tiny_opts(int steps, int threads) {
    nuage_topts o = nuage_topts_default();
    o.steps = steps;
    o.batch = 8;
    o.warmup = 5;
    o.lr = 3e-3f;
    o.lr_min = 3e-4f;
    o.threads = threads;
    o.seed = 5;
    o.quiet = true;
    return o;
}

static void test_training_lowers_loss(void **state) {
    (void)state;
    nuage_tdata d, h;
    char err[256];
    nuage_tcfg c = tiny_cfg();
    const char *tmpl = nuage_gguf_get_str(g_tg, "tokenizer.chat_template", NULL);
    assert_int_equal(nuage_tdata_load(&d, g_data, g_voc, tmpl, c.n_ctx, err, sizeof err), 0);
    assert_int_equal(nuage_tdata_load(&h, g_heldout, g_voc, tmpl, c.n_ctx, err, sizeof err), 0);
    assert_int_equal(d.n, 400);
    /* the loss mask covers the answer and its end token, not the prompt */
    assert_int_equal(d.tok[d.off[1] - 1], nuage_vocab_eos(g_voc));
    nuage_tmodel m;
    assert_int_equal(nuage_tmodel_init(&m, &c, err, sizeof err), 0);
    nuage_tmodel_random(&m, 1);
    nuage_tstate s;
    assert_int_equal(nuage_tstate_init(&s, &m, 1), 0);
    double before = eval_loss(&m, &h);
    nuage_topts o = tiny_opts(50, 2);
    assert_int_equal(nuage_train_run(&m, &s, &d, &o, NULL, err, sizeof err), 0);
    assert_int_equal(s.step, 50);
    double after = eval_loss(&m, &h);
    print_message("held-out loss %.3f -> %.3f\n", before, after);
    assert_true(before > 4.0);   /* ~ log(vocab) at the start */
    assert_true(after < 0.6 * before);
    nuage_tstate_free(&s);
    nuage_tmodel_free(&m);
    nuage_tdata_free(&d);
    nuage_tdata_free(&h);
}

/* Train `steps` steps from scratch; returns the model (caller frees). */
static void train_fresh(nuage_tmodel *m, const nuage_tdata *d, int steps, int threads) {
    char err[256];
    nuage_tcfg c = tiny_cfg();
    assert_int_equal(nuage_tmodel_init(m, &c, err, sizeof err), 0);
    nuage_tmodel_random(m, 3);
    nuage_tstate s;
    assert_int_equal(nuage_tstate_init(&s, m, 3), 0);
    nuage_topts o = tiny_opts(steps, threads);
    assert_int_equal(nuage_train_run(m, &s, d, &o, NULL, err, sizeof err), 0);
    nuage_tstate_free(&s);
}

static void test_resume_and_threads(void **state) {
    (void)state;
    char err[256], ckpt[320];
    nuage_tdata d;
    const char *tmpl = nuage_gguf_get_str(g_tg, "tokenizer.chat_template", NULL);
    assert_int_equal(nuage_tdata_load(&d, g_data, g_voc, tmpl, 48, err, sizeof err), 0);
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", g_dir);

    /* uninterrupted, 2 threads */
    nuage_tmodel a;
    train_fresh(&a, &d, 24, 2);

    /* same with 1 and 3 threads: bit-identical */
    nuage_tmodel a1, a3;
    train_fresh(&a1, &d, 24, 1);
    train_fresh(&a3, &d, 24, 3);
    assert_memory_equal(a.w, a1.w, a.n * sizeof(float));
    assert_memory_equal(a.w, a3.w, a.n * sizeof(float));

    /* "killed" after 17 steps, checkpoints every 10 */
    nuage_tcfg c = tiny_cfg();
    nuage_tmodel b;
    assert_int_equal(nuage_tmodel_init(&b, &c, err, sizeof err), 0);
    nuage_tmodel_random(&b, 3);
    nuage_tstate s;
    assert_int_equal(nuage_tstate_init(&s, &b, 3), 0);
    nuage_topts o = tiny_opts(24, 2);
    o.ckpt_every = 10;
    o.ckpt_path = ckpt;
    o.stop_after = 17;
    assert_int_equal(nuage_train_run(&b, &s, &d, &o, g_tg, err, sizeof err), 0);
    assert_int_equal(s.step, 17);
    nuage_tstate_free(&s);
    nuage_tmodel_free(&b);

    /* resume from the step-10 checkpoint, options taken from it */
    nuage_topts r = nuage_topts_default();
    r.quiet = true;
    r.threads = 2;
    assert_int_equal(nuage_train_load_ckpt(ckpt, &b, &s, &r, err, sizeof err), 0);
    assert_int_equal(s.step, 10);
    assert_int_equal(r.steps, 24);
    assert_int_equal(r.batch, 8);
    assert_true(fabsf(r.lr - 3e-3f) < 1e-9f);
    assert_int_equal(nuage_train_run(&b, &s, &d, &r, NULL, err, sizeof err), 0);
    assert_int_equal(s.step, 24);
    assert_memory_equal(a.w, b.w, a.n * sizeof(float));
    /* the checkpoint is itself a loadable model */
    nuage_model *em;
    assert_int_equal(nuage_model_load(ckpt, NULL, &em, err, sizeof err), 0);
    nuage_model_free(em);

    nuage_tstate_free(&s);
    nuage_tmodel_free(&b);
    nuage_tmodel_free(&a);
    nuage_tmodel_free(&a1);
    nuage_tmodel_free(&a3);
    nuage_tdata_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_engine),
        cmocka_unit_test(test_training_lowers_loss),
        cmocka_unit_test(test_resume_and_threads),
    };
    return nuage_test_exit(cmocka_run_group_tests(tests, setup, teardown));
}
