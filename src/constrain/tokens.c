/*
 * tokens.c - a vocabulary's token byte strings, arranged for masks.
 *
 * Design. Each token that may be matched by bytes (normal, user-defined
 * and byte tokens with a non-empty piece; control, unknown and unused
 * tokens are reachable only through ncg_token) is inserted into a trie of
 * its bytes. The trie is stored flattened in depth-first preorder: node i
 * has the byte on its incoming edge, its depth, and the index one past
 * its subtree, so a mask walk is a linear scan that jumps to end[i] as
 * soon as the parse dies inside a subtree, and the parse sets of the
 * current path form a stack indexed by depth. Tokens with equal bytes
 * (e.g. SPM's <0x41> and "A") share a node. End-of-generation tokens are
 * listed separately: they are allowed exactly in accepting states.
 */
#include <stdlib.h>
#include <string.h>

#include "constrain/cg_internal.h"
#include "nuage/nuage.h"

static const nuage_cg_tokens *g_sort_t;   /* qsort has no context argument in C17 */
static pthread_mutex_t g_sort_lock = PTHREAD_MUTEX_INITIALIZER;

static int cmp_tok(const void *a, const void *b) {
    const nuage_cg_tokens *t = g_sort_t;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = t->piece_off[x + 1] - t->piece_off[x], ly = t->piece_off[y + 1] - t->piece_off[y];
    int c = memcmp(t->pieces + t->piece_off[x], t->pieces + t->piece_off[y], lx < ly ? lx : ly);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

void nuage_cg_tokens_free(nuage_cg_tokens *t) {
    if (!t) return;
    free(t->byte); free(t->depth); free(t->end); free(t->tok_off); free(t->toks);
    free(t->piece_off); free(t->pieces); free(t->in_trie); free(t->eog);
    free(t->parent); free(t->slice_cum); free(t->frontier); free(t->frontier_k); free(t->frontier_c);
    free(t->skipc);
    free(t);
}

/* Where token bytes come from: a vocabulary or (tests) a list of strings. */
typedef struct src {
    const nuage_vocab *v;
    const char *const *pieces;
    const size_t *lens;
    const uint8_t *kinds;
} src;

static bool src_eog(const src *S, int32_t i) { return S->v ? nuage_vocab_is_eog(S->v, i) : S->kinds[i] == 2; }
static bool src_skip(const src *S, int32_t i) {
    if (!S->v) return S->kinds[i] != 0;
    uint32_t attr = nuage_vocab_token_attr(S->v, i);
    return attr & (NUAGE_TOKEN_ATTR_CONTROL | NUAGE_TOKEN_ATTR_UNKNOWN | NUAGE_TOKEN_ATTR_UNUSED);
}
static int src_piece(const src *S, int32_t i, char *buf, size_t cap) {
    if (S->v) return nuage_token_to_piece(S->v, i, buf, cap, false);
    size_t n = S->lens[i];
    if (n > 65535) return -1;
    if (buf) memcpy(buf, S->pieces[i], n < cap ? n : cap);
    return (int)n;
}

static int build_slice(nuage_cg_tokens *t);

static int build_table(const src *S, int32_t nv, nuage_cg_tokens **out) {
    *out = NULL;
    nuage_cg_tokens *t = calloc(1, sizeof *t);
    if (!t) return NUAGE_E_NOMEM;
    t->v = S->v;
    t->n_vocab = nv;
    int rc = NUAGE_E_NOMEM;
    int32_t *order = NULL;
    uint32_t *path = NULL;
    size_t cap = (size_t)nv * 8, used = 0;
    t->piece_off = malloc(((size_t)nv + 1) * sizeof *t->piece_off);
    t->pieces = malloc(cap);
    t->in_trie = calloc((size_t)nv, 1);
    t->eog = malloc((size_t)nv * sizeof *t->eog);
    order = malloc((size_t)nv * sizeof *order);
    if (!t->piece_off || !t->pieces || !t->in_trie || !t->eog || !order) goto fail;
    uint32_t n_in = 0;
    for (int32_t i = 0; i < nv; i++) {
        t->piece_off[i] = (uint32_t)used;
        if (src_eog(S, i)) t->eog[t->n_eog++] = i;
        if (src_skip(S, i)) continue;
        int k = src_piece(S, i, NULL, 0);
        if (k <= 0 || k > 65535) continue;
        while (used + (size_t)k > cap) {
            uint8_t *q = realloc(t->pieces, cap * 2);
            if (!q) goto fail;
            t->pieces = q;
            cap *= 2;
        }
        if (src_piece(S, i, (char *)t->pieces + used, (size_t)k) != k) continue;
        used += (size_t)k;
        t->in_trie[i] = 1;
        order[n_in++] = i;
    }
    if (used > UINT32_MAX) { rc = NUAGE_E_UNSUPPORTED; goto fail; }
    t->piece_off[nv] = (uint32_t)used;
    pthread_mutex_lock(&g_sort_lock);
    g_sort_t = t;
    qsort(order, n_in, sizeof *order, cmp_tok);
    g_sort_t = NULL;
    pthread_mutex_unlock(&g_sort_lock);
    /* nodes: at most the total piece length */
    size_t maxn = used + 1;
    t->byte = malloc(maxn);
    t->depth = malloc(maxn * sizeof *t->depth);
    t->end = malloc(maxn * sizeof *t->end);
    t->tok_off = malloc((maxn + 1) * sizeof *t->tok_off);
    t->toks = malloc(((size_t)n_in + 1) * sizeof *t->toks);
    t->parent = malloc(maxn * sizeof *t->parent);
    path = malloc(65537 * sizeof *path);
    if (!t->byte || !t->depth || !t->end || !t->tok_off || !t->toks || !t->parent || !path) goto fail;
    uint32_t nn = 0, nt = 0, pd = 0;   /* path[0..pd): nodes of the current path */
    const uint8_t *prev = NULL;
    uint32_t plen = 0;
    for (uint32_t k = 0; k < n_in; k++) {
        int32_t id = order[k];
        const uint8_t *p = t->pieces + t->piece_off[id];
        uint32_t len = t->piece_off[id + 1] - t->piece_off[id];
        uint32_t l = 0;
        while (prev && l < len && l < plen && l < pd && p[l] == prev[l]) l++;
        while (pd > l) t->end[path[--pd]] = nn;
        for (uint32_t d = l; d < len; d++) {
            t->byte[nn] = p[d];
            t->depth[nn] = (uint16_t)(d + 1);
            t->tok_off[nn] = nt;
            t->parent[nn] = pd ? path[pd - 1] : UINT32_MAX;
            path[pd++] = nn++;
        }
        t->toks[nt++] = id;
        if (len > t->max_depth) t->max_depth = len;
        prev = p;
        plen = len;
    }
    while (pd > 0) t->end[path[--pd]] = nn;
    t->tok_off[nn] = nt;
    t->n_nodes = nn;
    if ((rc = build_slice(t))) goto fail;
    rc = NUAGE_E_NOMEM;
    free(order);
    free(path);
    *out = t;
    return 0;
fail:
    free(order);
    free(path);
    nuage_cg_tokens_free(t);
    return rc;
}

bool ncg_slice_ascii(uint8_t b) { return b >= 0x20 && b < 0x7F && b != '"' && b != '\\'; }

/* Range of the first continuation byte after lead byte b (UTF-8 rules:
 * no overlongs, no surrogates, nothing above 10FFFF); its length in *len
 * (0: not a lead byte). */
void ncg_utf8_lead(uint8_t b, int *len, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) *len = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        *len = 3;
        if (b == 0xE0) *lo = 0xA0;
        if (b == 0xED) *hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        *len = 4;
        if (b == 0xF0) *lo = 0x90;
        if (b == 0xF4) *hi = 0x8F;
    } else *len = 0;
}

/* The string slice (see cg_internal.h), by one preorder pass. */
static int build_slice(nuage_cg_tokens *t) {
    size_t nw = ((size_t)t->n_vocab + 31) / 32;
    uint32_t md = t->max_depth + 2;
    uint8_t *in = malloc(md), *rem = malloc(md), *pos = malloc(md), *lead = malloc(md), *cnt = malloc(md);
    uint8_t *tcnt = calloc((size_t)t->n_vocab, 1);   /* characters of each slice token, 0 = not in the slice */
    uint32_t cap = 1024;
    t->frontier = malloc(cap * sizeof *t->frontier);
    t->frontier_k = malloc(cap);
    t->frontier_c = malloc(cap);
    int rc = NUAGE_E_NOMEM;
    if (!in || !rem || !pos || !lead || !cnt || !tcnt || !t->frontier || !t->frontier_k || !t->frontier_c) goto out;
    t->skipc = malloc(t->n_nodes ? t->n_nodes : 1);
    if (!t->skipc) goto out;
    in[0] = 1; rem[0] = 0; pos[0] = 0; lead[0] = 0; cnt[0] = 0;
    for (uint32_t i = 0; i < t->n_nodes; i++) {
        uint32_t d = t->depth[i];
        uint8_t b = t->byte[i];
        t->skipc[i] = 255;
        if (!in[d - 1]) { in[d] = 0; continue; }
        bool ok;
        if (rem[d - 1] == 0 && cnt[d - 1] == 255) { in[d] = 0; continue; }   /* too long to count: no slice */
        if (rem[d - 1] == 0) {
            int len;
            uint8_t lo, hi;
            ncg_utf8_lead(b, &len, &lo, &hi);
            ok = ncg_slice_ascii(b) || len > 0;
            rem[d] = len > 0 ? (uint8_t)(len - 1) : 0;
            pos[d] = len > 1 ? 1 : 0;
            lead[d] = b;
            cnt[d] = (uint8_t)(cnt[d - 1] + 1);
        } else {
            int len;
            uint8_t lo = 0x80, hi = 0xBF;
            if (pos[d - 1] == 1) ncg_utf8_lead(lead[d - 1], &len, &lo, &hi);
            ok = b >= lo && b <= hi;
            rem[d] = (uint8_t)(rem[d - 1] - 1);
            pos[d] = rem[d] ? (uint8_t)(pos[d - 1] + 1) : 0;
            lead[d] = lead[d - 1];
            cnt[d] = cnt[d - 1];
        }
        in[d] = ok;
        if (ok) {
            t->skipc[i] = cnt[d];
            for (uint32_t k = t->tok_off[i]; k < t->tok_off[i + 1]; k++) tcnt[t->toks[k]] = cnt[d];
            if (cnt[d] > t->slice_max) t->slice_max = cnt[d];
            continue;
        }
        if (t->n_frontier == cap) {
            cap *= 2;
            uint32_t *q = realloc(t->frontier, cap * sizeof *q);
            if (!q) goto out;
            t->frontier = q;
            uint8_t *qk = realloc(t->frontier_k, cap), *qc;
            if (!qk) goto out;
            t->frontier_k = qk;
            if (!(qc = realloc(t->frontier_c, cap))) goto out;
            t->frontier_c = qc;
        }
        t->frontier[t->n_frontier] = i;
        t->frontier_k[t->n_frontier] = pos[d - 1];
        t->frontier_c[t->n_frontier++] = (uint8_t)(cnt[d - 1] - (pos[d - 1] ? 1 : 0));
    }
    /* skipc: children come after their parent in preorder, so a reverse
     * pass sees a node's final value before folding it into its parent */
    for (uint32_t i = t->n_nodes; i-- > 0;) {
        uint32_t p = t->parent[i];
        if (p == UINT32_MAX || t->skipc[p] == 255) continue;
        if (t->skipc[i] == 255 || t->skipc[i] > t->skipc[p]) t->skipc[p] = t->skipc[i];
    }
    t->slice_cum = calloc((t->slice_max + 1) * nw, sizeof *t->slice_cum);
    if (!t->slice_cum) goto out;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (tcnt[id]) t->slice_cum[tcnt[id] * nw + ((uint32_t)id >> 5)] |= 1u << (id & 31);
    for (uint32_t k = 1; k <= t->slice_max; k++)
        for (size_t w = 0; w < nw; w++) t->slice_cum[k * nw + w] |= t->slice_cum[(k - 1) * nw + w];
    rc = 0;
out:
    free(in); free(rem); free(pos); free(lead); free(cnt); free(tcnt);
    return rc;
}

int nuage_cg_tokens_new(const nuage_vocab *v, nuage_cg_tokens **out) {
    if (!v || !out) return NUAGE_E_INVAL;
    int32_t nv = nuage_vocab_n_tokens(v);
    if (nv <= 0) return NUAGE_E_INVAL;
    src S = {.v = v};
    return build_table(&S, nv, out);
}

int ncg_tokens_from_strings(const char *const *pieces, const size_t *lens, const uint8_t *kinds, int32_t n,
                            nuage_cg_tokens **out) {
    if (!pieces || !lens || !kinds || !out || n <= 0) return NUAGE_E_INVAL;
    src S = {.pieces = pieces, .lens = lens, .kinds = kinds};
    return build_table(&S, n, out);
}

int32_t nuage_cg_tokens_n_vocab(const nuage_cg_tokens *t) { return t ? t->n_vocab : 0; }
size_t nuage_cg_mask_words(const nuage_cg_tokens *t) { return t ? ((size_t)t->n_vocab + 31) / 32 : 0; }
