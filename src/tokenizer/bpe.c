/*
 * bpe.c - byte-level BPE ("gpt2" vocabularies), as llama.cpp's
 * llm_tokenizer_bpe does it.
 *
 * Text is normalised the way llama.cpp decodes it (invalid bytes become
 * U+FFFD), cut into words by the pre-tokenizer (bpe_pre.c), and each word's
 * bytes are mapped to GPT-2's printable characters. A word starts as one
 * symbol per character; adjacent pairs listed in `tokenizer.ggml.merges`
 * merge, lowest rank first (leftmost first on ties), until none applies.
 * The final symbols are tokens; a symbol that is not (possible only with
 * inconsistent merges) falls back to single-byte tokens, and bytes without
 * one are dropped, as in llama.cpp. With ignore_merges (Llama 3) a word
 * that is a token as a whole is emitted directly.
 *
 * Merge ranks are found in a hash table keyed by the pair of string ids of
 * the two sides (tok_internal.h); each rank also records the string id of
 * its result, so a merge needs no string hashing. Pending pairs sit in a
 * binary heap; a pair made stale by an earlier merge is recognised by its
 * byte size. Every step is O(log n), so a pathological 1 MB "word" costs
 * O(n log n), not O(n^2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "tok_internal.h"

/* ---- merge table ------------------------------------------------------- */

static inline uint64_t mix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

int32_t nuage__rank(const nuage_vocab *v, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || !v->mkey) return -1;
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    uint64_t i = mix64(key) & v->mmask;
    for (;;) {
        if (v->mrank[i] < 0) return -1;
        if (v->mkey[i] == key) return v->mrank[i];
        i = (i + 1) & v->mmask;
    }
}

/* Split merge string w ("left right", split at the first space after the
 * first byte) into its sides. false when there is no such space. */
static bool split_merge(const nuage_gguf_str *w, size_t *ln, const char **r, size_t *rn) {
    if (w->len < 2) return false;
    const char *sp = memchr(w->ptr + 1, ' ', w->len - 1);
    if (!sp) return false;
    *ln = (size_t)(sp - w->ptr);
    *r = sp + 1;
    *rn = w->len - *ln - 1;
    return true;
}

int nuage__bpe_load_merges(nuage_vocab *v, const void *merges_value, char *err, size_t errlen) {
    const nuage_gguf_value *mv = merges_value;
    if (mv->type != NUAGE_GGUF_ARRAY || mv->v.arr.type != NUAGE_GGUF_STRING) {
        snprintf(err, errlen, "invalid gguf type for tokenizer.ggml.merges");
        return NUAGE_E_FORMAT;
    }
    if (mv->v.arr.n > (uint64_t)INT32_MAX / 4) {
        snprintf(err, errlen, "tokenizer.ggml.merges: too many merges");
        return NUAGE_E_FORMAT;
    }
    const nuage_gguf_str *m = mv->v.arr.data;
    int32_t nm = (int32_t)mv->v.arr.n;

    /* pass 1: room for sides that are not tokens */
    size_t n_x = 0, x_bytes = 0;
    for (int32_t i = 0; i < nm; i++) {
        size_t ln, rn;
        const char *r;
        if (!split_merge(&m[i], &ln, &r, &rn)) continue;
        if (nuage__find(v, m[i].ptr, ln) < 0) { n_x++; x_bytes += ln; }
        if (nuage__find(v, r, rn) < 0) { n_x++; x_bytes += rn; }
        if (nuage__find(v, m[i].ptr, ln + rn) < 0) { n_x++; x_bytes += ln + rn; }
    }
    if (x_bytes > UINT32_MAX) {
        snprintf(err, errlen, "tokenizer.ggml.merges: too large");
        return NUAGE_E_FORMAT;
    }
    int rc = nuage__strtab_init(&v->xtab, n_x ? n_x : 1);
    if (rc) return rc;
    v->xpool = malloc(x_bytes ? x_bytes : 1);
    v->xoff = malloc((n_x ? n_x : 1) * sizeof *v->xoff);
    v->xlen = malloc((n_x ? n_x : 1) * sizeof *v->xlen);
    size_t cap = 16;
    while (cap < (size_t)nm * 2) cap *= 2;
    v->mkey = malloc(cap * sizeof *v->mkey);
    v->mrank = malloc(cap * sizeof *v->mrank);
    v->mres = malloc((size_t)(nm ? nm : 1) * sizeof *v->mres);
    if (!v->xpool || !v->xoff || !v->xlen || !v->mkey || !v->mrank || !v->mres) return NUAGE_E_NOMEM;
    for (size_t i = 0; i < cap; i++) v->mrank[i] = -1;
    v->mmask = cap - 1;
    v->n_merges = nm;

    /* pass 2: intern sides, insert pairs (the first occurrence of a pair wins) */
    size_t xused = 0;
    for (int32_t i = 0; i < nm; i++) {
        size_t ln, rn;
        const char *r;
        v->mres[i] = -1;
        if (!split_merge(&m[i], &ln, &r, &rn)) continue;
        int32_t sl = nuage__find(v, m[i].ptr, ln);
        if (sl < 0) sl = nuage__intern_extra(v, m[i].ptr, ln, &xused);
        int32_t sr = nuage__find(v, r, rn);
        if (sr < 0) sr = nuage__intern_extra(v, r, rn, &xused);
        uint64_t key = ((uint64_t)(uint32_t)sl << 32) | (uint32_t)sr;
        uint64_t j = mix64(key) & v->mmask;
        while (v->mrank[j] >= 0 && v->mkey[j] != key) j = (j + 1) & v->mmask;
        if (v->mrank[j] < 0) {
            v->mkey[j] = key;
            v->mrank[j] = i;
        }
    }
    /* pass 3: result of each merge (after all sides are interned) */
    {
        nuage__buf cat = {0};
        for (int32_t i = 0; i < nm; i++) {
            size_t ln, rn;
            const char *r;
            if (!split_merge(&m[i], &ln, &r, &rn)) continue;
            cat.n = 0;
            if (!nuage__buf_put(&cat, m[i].ptr, ln) || !nuage__buf_put(&cat, r, rn)) {
                free(cat.p);
                return NUAGE_E_NOMEM;
            }
            int32_t res = nuage__sid(v, cat.p, cat.n);
            if (res < 0) res = nuage__intern_extra(v, cat.p, cat.n, &xused);
            v->mres[i] = res;
        }
        free(cat.p);
    }
    const nuage__bytechar *bc = nuage__gpt2_byte_enc();
    for (int b = 0; b < 256; b++) {
        v->byte_sid[b] = nuage__sid(v, bc[b].s, bc[b].n);
        char c = (char)b;
        v->char_tok[b] = nuage__find(v, &c, 1);
    }
    return 0;
}

/* ---- tokenization ------------------------------------------------------- */

typedef struct {
    int32_t prev, next;
    uint32_t off, n;   /* span in the encoded word */
    int32_t sid;       /* string id of the symbol's text, -1 if none */
} sym;

typedef struct {
    int32_t left, right;
    int32_t rank;
    uint32_t size;
} bigram;

static inline bool lower(const bigram *a, const bigram *b) {
    return a->rank > b->rank || (a->rank == b->rank && a->left > b->left);
}

typedef struct {
    sym *s;
    size_t s_cap;
    bigram *h;
    size_t h_n, h_cap;
    nuage__buf enc;
} scratch;

static bool heap_push(scratch *w, bigram b) {
    if (w->h_n == w->h_cap) {
        size_t nc = w->h_cap ? w->h_cap * 2 : 64;
        bigram *nv = realloc(w->h, nc * sizeof *nv);
        if (!nv) return false;
        w->h = nv;
        w->h_cap = nc;
    }
    size_t i = w->h_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!lower(&w->h[p], &b)) break;
        w->h[i] = w->h[p];
        i = p;
    }
    w->h[i] = b;
    return true;
}

static bigram heap_pop(scratch *w) {
    bigram top = w->h[0];
    bigram last = w->h[--w->h_n];
    size_t i = 0, n = w->h_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && lower(&w->h[c], &w->h[c + 1])) c++;
        if (!lower(&last, &w->h[c])) break;
        w->h[i] = w->h[c];
        i = c;
    }
    if (n) w->h[i] = last;
    return top;
}

static bool add_bigram(const nuage_vocab *v, scratch *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    int32_t rank = nuage__rank(v, w->s[l].sid, w->s[r].sid);
    if (rank < 0) return true;
    return heap_push(w, (bigram){l, r, rank, w->s[l].n + w->s[r].n});
}

/* BPE of one pre-tokenized word (raw bytes word[0..n)). */
static int bpe_word(const nuage_vocab *v, scratch *w, const unsigned char *word, size_t n,
                    nuage__ids *out) {
    const nuage__bytechar *bc = nuage__gpt2_byte_enc();
    w->enc.n = 0;
    if (n > UINT32_MAX / 4) return NUAGE_E_RANGE;
    if (!nuage__buf_reserve(&w->enc, 2 * n + 1)) return NUAGE_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        memcpy(w->enc.p + w->enc.n, bc[word[i]].s, bc[word[i]].n);
        w->enc.n += bc[word[i]].n;
    }
    const char *e = w->enc.p;
    if (v->ignore_merges) {
        int32_t t = nuage__find(v, e, w->enc.n);
        if (t >= 0) return nuage__ids_push(out, t) ? 0 : NUAGE_E_NOMEM;
    }
    if (n > w->s_cap) {
        sym *ns = realloc(w->s, n * sizeof *ns);
        if (!ns) return NUAGE_E_NOMEM;
        w->s = ns;
        w->s_cap = n;
    }
    uint32_t off = 0;
    for (size_t i = 0; i < n; i++) {
        w->s[i] = (sym){(int32_t)i - 1, i + 1 == n ? -1 : (int32_t)i + 1, off, bc[word[i]].n,
                        v->byte_sid[word[i]]};
        off += bc[word[i]].n;
    }
    w->h_n = 0;
    for (size_t i = 1; i < n; i++)
        if (!add_bigram(v, w, (int32_t)i - 1, (int32_t)i)) return NUAGE_E_NOMEM;
    while (w->h_n) {
        bigram b = heap_pop(w);
        sym *L = &w->s[b.left], *R = &w->s[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue;
        L->n += R->n;
        R->n = 0;
        L->sid = v->mres[b.rank];
        L->next = R->next;
        if (R->next >= 0) w->s[R->next].prev = b.left;
        if (!add_bigram(v, w, L->prev, b.left) || !add_bigram(v, w, b.left, L->next))
            return NUAGE_E_NOMEM;
    }
    for (int32_t i = 0; i != -1; i = w->s[i].next) {
        const sym *s = &w->s[i];
        if (s->sid >= 0 && s->sid < v->n_tokens) {
            if (!nuage__ids_push(out, s->sid)) return NUAGE_E_NOMEM;
            continue;
        }
        for (uint32_t k = 0; k < s->n; k++) {
            int32_t t = v->char_tok[(unsigned char)e[s->off + k]];
            if (t >= 0 && !nuage__ids_push(out, t)) return NUAGE_E_NOMEM;
        }
    }
    return 0;
}

int nuage__bpe_tokenize(const nuage_vocab *v, const char *text, size_t len, nuage__ids *out) {
    if (len == 0) return 0;
    nuage__buf norm = {0}, match = {0};
    const char *wtext = text, *mtext = text;
    size_t wlen = len;
    int rc = 0;
    size_t *ends = NULL, n_ends = 0;
    scratch w = {0};
    if (nuage__utf8_valid_prefix((const unsigned char *)text, len) != len) {
        if (!nuage__utf8_llama_normalize(text, len, &norm, &match)) {
            rc = NUAGE_E_NOMEM;
            goto done;
        }
        wtext = norm.p;
        mtext = match.p;
        wlen = norm.n;
    }
    rc = nuage__pre_split_ends(&v->pre, mtext, wlen, &ends, &n_ends);
    if (rc) goto done;
    size_t a = 0;
    for (size_t i = 0; i < n_ends && !rc; i++) {
        rc = bpe_word(v, &w, (const unsigned char *)wtext + a, ends[i] - a, out);
        a = ends[i];
    }
done:
    free(ends);
    free(norm.p);
    free(match.p);
    free(w.s);
    free(w.h);
    free(w.enc.p);
    return rc;
}
