/*
 * bench_tokenize.c - tokenizer throughput per vocabulary.
 *
 *   bench_tokenize [SHARED_DIR] [MB]
 *
 * For every vocabulary GGUF in SHARED_DIR/vocab (default: $NUAGE_SHARED,
 * ../shared, /work/shared) plus stories260K, builds two texts of about MB
 * megabytes (default 2) by repeating llama.cpp's tokenizer test texts
 * (the .inp files): "english" from the texts that are pure ASCII, "mixed"
 * from all of them (CJK, Cyrillic, emoji, odd whitespace, long digit and
 * punctuation runs). Each text is tokenized in one nuage_tokenize call
 * (raw: no BOS/EOS, no special parsing), best of 3 runs, and the rate is
 * printed in MB/s of input (thread CPU time) with the token count. Also
 * prints the vocabulary load time, since servers load it at start-up.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/gguf.h"
#include "nuage/nuage.h"
#include "nuage/tokenizer.h"

/* CPU time of this thread: the machines these run on are shared, and
 * wall-clock rates of a single-threaded loop under contention mostly
 * measure the neighbours. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->cap - b->n < n + 1) {
        while (b->cap - b->n < n + 1) b->cap = b->cap ? b->cap * 2 : 1 << 16;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* Append the test texts of one .inp file (ASCII-only ones if ascii). */
static void add_texts(buf *b, const char *inp, bool ascii) {
    size_t n;
    char *t = read_file(inp, &n);
    if (!t) return;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char *p = t, *end = t + n;
    while (p < end) {
        char *q = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
        if (!q) break;
        bool ok = true;
        if (ascii)
            for (char *c = p; c < q; c++)
                if ((unsigned char)*c >= 0x80) ok = false;
        if (ok && q > p) {
            put(b, p, (size_t)(q - p));
            put(b, "\n", 1);
        }
        p = q + sizeof sep - 1;
    }
    free(t);
}

static void bench_one(const char *label, const char *path, const buf *en, const buf *mix) {
    char err[256] = {0};
    nuage_gguf *g = NULL;
    double t0 = now();
    if (nuage_gguf_open(path, &g, err, sizeof err)) {
        printf("%-24s open failed: %s\n", label, err);
        return;
    }
    nuage_vocab *v = NULL;
    int rc = nuage_vocab_from_gguf(g, &v, err, sizeof err);
    double tl = now() - t0;
    nuage_gguf_close(g);
    if (rc) {
        printf("%-24s vocab failed: %s\n", label, err);
        return;
    }
    const buf *texts[2] = {en, mix};
    double mbs[2];
    int ntok[2];
    for (int k = 0; k < 2; k++) {
        double best = 1e30;
        for (int r = 0; r < 3; r++) {
            double s = now();
            ntok[k] = nuage_tokenize(v, texts[k]->p, texts[k]->n, NULL, 0, false, false);
            double e = now() - s;
            if (e < best) best = e;
        }
        mbs[k] = texts[k]->n / 1e6 / best;
    }
    printf("%-24s %-5s %-14s load %6.1f ms   english %7.2f MB/s (%8d tok)   mixed %7.2f MB/s (%8d tok)\n",
           label,
           nuage_vocab_type_of(v) == NUAGE_VOCAB_SPM ? "SPM" : nuage_vocab_type_of(v) == NUAGE_VOCAB_BPE ? "BPE" : "WPM",
           nuage_vocab_pre_name(v), tl * 1e3, mbs[0], ntok[0], mbs[1], ntok[1]);
    nuage_vocab_free(v);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : getenv("NUAGE_SHARED");
    struct stat st;
    char probe[4200];
    const char *cands[] = {shared, "../shared", "../../shared", "/work/shared"};
    shared = NULL;
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (!cands[i]) continue;
        snprintf(probe, sizeof probe, "%s/vocab", cands[i]);
        if (stat(probe, &st) == 0) {
            shared = cands[i];
            break;
        }
    }
    if (!shared) {
        fprintf(stderr, "bench_tokenize: shared data not found (give SHARED_DIR)\n");
        return 1;
    }
    double mb = argc > 2 ? atof(argv[2]) : 2.0;
    if (mb <= 0) mb = 2.0;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/vocab", shared);
    buf en1 = {0}, mix1 = {0};
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[8400];
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".inp")) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            add_texts(&en1, path, true);
            add_texts(&mix1, path, false);
        }
    }
    if (d) closedir(d);
    if (!en1.n || !mix1.n) {
        fprintf(stderr, "bench_tokenize: no .inp texts in %s\n", dir);
        return 1;
    }
    buf en = {0}, mix = {0};
    while (en.n < mb * 1e6) put(&en, en1.p, en1.n);
    while (mix.n < mb * 1e6) put(&mix, mix1.p, mix1.n);
    printf("texts: english %.2f MB, mixed %.2f MB (repeated .inp texts); best of 3, thread CPU time\n", en.n / 1e6, mix.n / 1e6);

    d = opendir(dir);
    char **names = NULL;
    int nn = 0;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".gguf")) {
            names = realloc(names, (size_t)(nn + 1) * sizeof *names);
            names[nn++] = strdup(de->d_name);
        }
    }
    if (d) closedir(d);
    for (int i = 0; i < nn; i++)
        for (int j = i + 1; j < nn; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    for (int i = 0; i < nn; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char label[256];
        snprintf(label, sizeof label, "%.*s", (int)(strlen(names[i]) - 5),
                 names[i] + (strncmp(names[i], "ggml-vocab-", 11) ? 0 : 11));
        bench_one(label, path, &en, &mix);
        free(names[i]);
    }
    free(names);
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", shared);
    if (stat(path, &st) == 0) bench_one("stories260K", path, &en, &mix);
    free(en1.p);
    free(mix1.p);
    free(en.p);
    free(mix.p);
    return 0;
}
