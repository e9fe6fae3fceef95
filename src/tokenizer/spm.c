/*
 * spm.c - SentencePiece-style tokenization ("llama" vocabularies), as
 * llama.cpp's llm_tokenizer_spm does it.
 *
 * The text (spaces already replaced by U+2581) starts as one symbol per
 * UTF-8 character, cut by the lead byte's length only (no validation, so a
 * stray byte is a symbol of its own). Every adjacent pair whose
 * concatenation is a token is a candidate merge, ranked by that token's
 * score (highest first, leftmost first on ties). Merges are applied from a
 * priority queue; a queued pair is stale when one side has since grown or
 * vanished, which the stored byte size detects. Symbols that end up not
 * being tokens (single characters missing from the vocabulary) are emitted
 * as byte tokens <0xNN>.
 *
 * Symbols live in an array linked by prev/next indices; the queue is a
 * binary heap. Each merge does O(log n) work, so long inputs stay
 * O(n log n); cutting the text into independent segments (below) keeps
 * the heap small and in cache.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct {
    int32_t prev, next;
    size_t off, n;
} sym;

typedef struct {
    int32_t left, right;
    float score;
    size_t size;
} bigram;

/* true when a should come out of the queue after b */
static inline bool lower(const bigram *a, const bigram *b) {
    return a->score < b->score || (a->score == b->score && a->left > b->left);
}

typedef struct {
    bigram *v;
    size_t n, cap;
} heap;

static bool heap_push(heap *h, bigram b) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        bigram *nv = realloc(h->v, nc * sizeof *nv);
        if (!nv) return false;
        h->v = nv;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!lower(&h->v[p], &b)) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return true;
}

static bigram heap_pop(heap *h) {
    bigram top = h->v[0];
    bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && lower(&h->v[c], &h->v[c + 1])) c++;
        if (!lower(&last, &h->v[c])) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static bool try_add(const nuage_vocab *v, const char *text, const sym *s, int32_t l, int32_t r,
                    heap *h) {
    if (l < 0 || r < 0) return true;
    size_t size = s[l].n + s[r].n;
    int32_t tok = nuage__find(v, text + s[l].off, size);
    if (tok < 0) return true;
    return heap_push(h, (bigram){l, r, v->toks[tok].score, size});
}

int nuage__spm_tokenize(const nuage_vocab *v, const char *text, size_t len, nuage__ids *out) {
    if (len == 0) return 0;
    if (len > INT32_MAX) return NUAGE_E_RANGE;
    sym *s = malloc(len * sizeof *s);
    heap h = {0};
    int rc = 0;
    if (!s) return NUAGE_E_NOMEM;
    int32_t ns = 0;
    for (size_t off = 0; off < len;) {
        size_t n = nuage__utf8_len((unsigned char)text[off]);
        if (n > len - off) n = len - off;
        s[ns] = (sym){ns - 1, off + n == len ? -1 : ns + 1, off, n};
        off += n;
        ns++;
    }
    /* Process segment by segment: with v->spm_split, no token contains a
     * U+2581 preceded by another character, so no merge can ever join a
     * symbol ending in some other character with one starting with U+2581,
     * and cutting there changes nothing (each side's merges are ordered
     * the same way as in one global queue) while keeping the queue small. */
    int32_t seg = 0;
    while (seg < ns) {
        int32_t end = seg + 1;
        if (v->spm_split) {
            while (end < ns) {
                bool ws = s[end].n == 3 && !memcmp(text + s[end].off, "\xe2\x96\x81", 3);
                bool pws = s[end - 1].n == 3 && !memcmp(text + s[end - 1].off, "\xe2\x96\x81", 3);
                if (ws && !pws) break;
                end++;
            }
        } else {
            end = ns;
        }
        s[seg].prev = -1;
        s[end - 1].next = -1;
        h.n = 0;
        for (int32_t i = seg + 1; i < end; i++)
            if (!try_add(v, text, s, i - 1, i, &h)) { rc = NUAGE_E_NOMEM; goto done; }
        while (h.n) {
            bigram b = heap_pop(&h);
            sym *L = &s[b.left], *R = &s[b.right];
            if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue;
            L->n += R->n;
            R->n = 0;
            L->next = R->next;
            if (R->next >= 0) s[R->next].prev = b.left;
            if (!try_add(v, text, s, L->prev, b.left, &h) || !try_add(v, text, s, b.left, L->next, &h)) {
                rc = NUAGE_E_NOMEM;
                goto done;
            }
        }
        for (int32_t i = seg; i != -1; i = s[i].next) {
            int32_t tok = nuage__find(v, text + s[i].off, s[i].n);
            if (tok >= 0) {
                if (!nuage__ids_push(out, tok)) { rc = NUAGE_E_NOMEM; goto done; }
                continue;
            }
            for (size_t k = 0; k < s[i].n; k++) {
                int32_t bt = v->byte_tok[(unsigned char)text[s[i].off + k]];
                if (bt < 0) bt = v->unk; /* llama.cpp fails here; we degrade to <unk> */
                if (bt >= 0 && !nuage__ids_push(out, bt)) { rc = NUAGE_E_NOMEM; goto done; }
            }
        }
        seg = end;
    }
done:
    free(s);
    free(h.v);
    return rc;
}
