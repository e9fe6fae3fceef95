/*
 * mask.c - token masks: which tokens may come next.
 *
 * Design. A mask is the union, over the configurations (s, parent) of the
 * matcher's closed set, of the tokens each one accepts on its own (a step
 * is a union over configurations). For one configuration, the token trie
 * (tokens.c) is walked depth first: each trie node's set is the step of
 * its parent's set over the node's byte, an empty set skips the subtree,
 * a non-empty set allows the tokens ending there.
 *
 * The per-state cache (the lazy form of XGrammar's context-independent
 * tokens). The walk from (s, BOTTOM), BOTTOM standing for "whatever stack
 * is below", splits the vocabulary three ways: tokens accepted without
 * ever returning from s's frame (accepted whatever the stack: a bit set),
 * tokens refused before any return (refused whatever the stack: nothing
 * stored), and tokens whose walk returned from s's frame at some byte and
 * then died locally: their fate depends on the stack. Those are stored as
 * a short list of trie entries: the subtree roots where the local walk
 * died after a return, plus their ancestors. A mask then costs, per
 * configuration, one OR of the cached bit set and a walk of the listed
 * entries with the real stack. Entries are computed once per (grammar,
 * state), on first use, by whichever matcher needs them, and published
 * under the grammar's mutex (matchers of one grammar may run on different
 * threads; readers load the pointer with acquire semantics). Stack nodes
 * made during walks live above the matcher's arena mark and are truncated
 * as the walk backs up, so a mask leaves the matcher as it was.
 *
 * Two shortcuts make the walks cheap. The string slice (tokens.c): when
 * every plain string character (printable ASCII but '"' and '\\', any
 * well-formed UTF-8) leads s along a chain of plain states (JSON string
 * content, with or without maxLength), the slice tokens of at most that
 * many characters are accepted at once (a precomputed bit set per
 * character count) and only the ~500 frontier subtrees are walked. A
 * state that is not such a chain (string characters through a called
 * rule, a string that must not equal an enum value, a search pattern)
 * gets the same bit set by proof instead: an exploration of its
 * configuration sets over slice characters (slice_bfs, below) finds the K
 * for which every slice string of at most K characters stays viable, and
 * the trie walk skips the subtrees made only of such tokens (tokens.c
 * skipc). Without it, the first visit of each such state walked some
 * 200,000 trie nodes (about 2 ms); JSONSchemaBench's mean time between
 * masks went from 250 us to about 40 us. And a
 * trie level whose parse is one configuration on a state without calls
 * is "fast": one table lookup per trie node, no set, no arena.
 *
 * Named tokens (ncg_token) are tried one by one; end-of-generation tokens
 * are allowed exactly when the set is accepting.
 */
#include <stdlib.h>
#include <string.h>

#include "constrain/cg_internal.h"
#include "constrain/matcher_internal.h"
#include "nuage/nuage.h"

#define DEP_ROOT 0x80000000u   /* walk the whole subtree; else the node only */

struct ncg_cache_entry {
    uint32_t *acc;       /* mask words */
    uint32_t *dep;       /* trie node indices in preorder, | DEP_ROOT for subtree roots */
    uint32_t n_dep;
};

static void entry_free(ncg_cache_entry *e) {
    if (!e) return;
    free(e->acc);
    free(e->dep);
    free(e);
}

void ncg_cache_free(nuage_grammar *g) {
    if (!g->cache) return;
    for (uint32_t s = 0; s < g->n_states; s++) entry_free(g->cache[s]);
}

static int ensure_levels(nuage_matcher *m, uint32_t n) {
    if (m->n_lv >= n) return 0;
    ncg_set *lv = realloc(m->lv, n * sizeof *lv);
    if (!lv) return NUAGE_E_NOMEM;
    memset(lv + m->n_lv, 0, (n - m->n_lv) * sizeof *lv);
    m->lv = lv;
    uint32_t *w = realloc(m->lwm, n * sizeof *w);
    if (!w) return NUAGE_E_NOMEM;
    m->lwm = w;
    int32_t *fs = realloc(m->fst, n * sizeof *fs);
    if (!fs) return NUAGE_E_NOMEM;
    m->fst = fs;
    int32_t *fp = realloc(m->fpar, n * sizeof *fp);
    if (!fp) return NUAGE_E_NOMEM;
    m->fpar = fp;
    uint8_t *ff = realloc(m->ffast, n);
    if (!ff) return NUAGE_E_NOMEM;
    m->ffast = ff;
    for (uint32_t k = m->n_lv; k < n; k++)
        if (ncg_set_reserve(&lv[k], 16)) return NUAGE_E_NOMEM;
    m->n_lv = n;
    return 0;
}

/* One trie step: out = step of in over byte. Inline fast path for one
 * configuration on a state without calls entering a SIMPLE state. */
static inline int lvl_step(nuage_matcher *m, const ncg_set *in, uint8_t byte, ncg_set *out) {
    const nuage_grammar *g = m->g;
    if (in->n == 1) {
        int32_t s = in->c[0].state;
        if (g->flags[s] & NCG_S_NOCALL) {
            int32_t to = g->trans[(size_t)s * g->ncls + g->cls[byte]];
            out->popped_bottom = false;
            if (to < 0) { out->n = 0; return 0; }
            if (g->flags[to] & NCG_S_SIMPLE) {
                out->c[0] = (ncg_cfg){to, in->c[0].parent};
                out->n = 1;
                return 0;
            }
        }
    }
    return ncg_step(g, &m->a, in->c, in->n, byte, out);
}

static void set_bits(uint32_t *mask, const nuage_cg_tokens *t, uint32_t i) {
    for (uint32_t k = t->tok_off[i]; k < t->tok_off[i + 1]; k++) {
        int32_t id = t->toks[k];
        mask[id >> 5] |= 1u << (id & 31);
    }
}

typedef struct dep_list { uint32_t *v; uint32_t n, cap; } dep_list;

static int dep_push(dep_list *d, uint32_t x) {
    if (d->n == d->cap) {
        uint32_t nc = d->cap ? d->cap * 2 : 64;
        uint32_t *q = realloc(d->v, nc * sizeof *q);
        if (!q) return NUAGE_E_NOMEM;
        d->v = q;
        d->cap = nc;
    }
    d->v[d->n++] = x;
    return 0;
}

#define NONE UINT32_MAX
#define TRB(g, x, b) ((g)->trans[(size_t)(x) * (g)->ncls + (g)->cls[(uint8_t)(b)]])

static bool plain(const nuage_grammar *g, int32_t x) {
    return x >= 0 && (g->flags[x] & (NCG_S_SIMPLE | NCG_S_NOCALL)) == (NCG_S_SIMPLE | NCG_S_NOCALL);
}

typedef struct memo { int32_t x[64]; uint8_t r[64], ok[64]; int n; } memo;

/* Every r-byte continuation from x (first byte in [lo, hi], the others
 * 80..BF) passes through plain states and ends in s. */
static bool conts_ok(const nuage_grammar *g, int32_t x, int r, uint8_t lo, uint8_t hi, int32_t s, memo *mm) {
    bool full = lo == 0x80 && hi == 0xBF;
    if (full)
        for (int k = 0; k < mm->n; k++)
            if (mm->x[k] == x && mm->r[k] == r) return mm->ok[k];
    bool ok = true;
    for (unsigned c = lo; c <= hi && ok; c++) {
        if (c > lo && g->cls[c] == g->cls[c - 1]) continue;
        int32_t y = TRB(g, x, c);
        if (r == 1) ok = y == s;
        else ok = plain(g, y) && conts_ok(g, y, r - 1, 0x80, 0xBF, s, mm);
    }
    if (full && mm->n < 64) { mm->x[mm->n] = x; mm->r[mm->n] = (uint8_t)r; mm->ok[mm->n++] = ok; }
    return ok;
}

/* The state every slice character leads x to (a plain state; UTF-8
 * sequences through plain states), NEXT_END when x takes no slice
 * character at all, NEXT_MIXED when it takes some, or not all alike. */
#define NEXT_END (-2)
#define NEXT_MIXED (-1)
#define R_MIXED (-1)
#define R_INF INT32_MAX

static int32_t slice_next(const nuage_grammar *g, int32_t x, memo *mm) {
    int32_t y = TRB(g, x, 'a');
    bool end = y < 0;
    if (!end && !plain(g, y)) return NEXT_MIXED;
    mm->n = 0;
    for (unsigned b = 0x20; b < 0x7F; b++)
        if (ncg_slice_ascii((uint8_t)b) && TRB(g, x, b) != y) return NEXT_MIXED;
    for (unsigned b = 0xC2; b <= 0xF4; b++) {
        int len;
        uint8_t lo, hi;
        ncg_utf8_lead((uint8_t)b, &len, &lo, &hi);
        int32_t z = TRB(g, x, b);
        if (end) {
            if (z >= 0) return NEXT_MIXED;
        } else if (!plain(g, z) || !conts_ok(g, z, len - 1, lo, hi, y, mm)) return NEXT_MIXED;
    }
    return end ? NEXT_END : y;
}

/* How many more slice characters s takes, all alike (a chain of plain
 * states: JSON string content, bounded by maxLength or not): R_INF for a
 * loop, R_MIXED when s is not such a state. Memoised per state in
 * g->slice_r (relaxed atomics: every thread computes the same values). */
static int32_t slice_chars(nuage_grammar *g, int32_t s) {
    int32_t r = __atomic_load_n(&g->slice_r[s], __ATOMIC_RELAXED);
    if (r != NCG_R_UNKNOWN) return r;
    if (!plain(g, s)) { __atomic_store_n(&g->slice_r[s], R_MIXED, __ATOMIC_RELAXED); return R_MIXED; }
    enum { MAXC = 4096 };
    int32_t *xs = malloc(MAXC * sizeof *xs);
    if (!xs) return R_MIXED;
    memo mm;
    uint32_t n = 0;
    int32_t x = s, tail = R_MIXED;
    for (;;) {
        int32_t known = __atomic_load_n(&g->slice_r[x], __ATOMIC_RELAXED);
        if (known != NCG_R_UNKNOWN) { tail = known == R_MIXED || known == R_INF ? known : known + 1; break; }
        if (n == MAXC) { tail = R_MIXED; break; }
        xs[n++] = x;
        int32_t y = slice_next(g, x, &mm);
        if (y == NEXT_MIXED) { tail = R_MIXED; break; }
        if (y == NEXT_END) { tail = 0; break; }
        bool cyc = false;
        for (uint32_t k = n; k-- > 0 && !cyc && n - k <= 8;) cyc = xs[k] == y;
        if (cyc) { tail = R_INF; break; }
        x = y;
    }
    /* tail is the value of xs[n - 1] when the walk stopped there, else of its successor + 1 */
    for (uint32_t k = n; k-- > 0;) {
        int32_t v = tail;
        __atomic_store_n(&g->slice_r[xs[k]], v, __ATOMIC_RELAXED);
        if (tail != R_MIXED && tail != R_INF) tail++;
    }
    free(xs);
    return __atomic_load_n(&g->slice_r[s], __ATOMIC_RELAXED);
}

typedef struct lw {
    int skip;            /* skip slice-only subtrees of at most this many characters (tokens.c skipc) */
    dep_list dl;
    uint32_t *em;        /* em[d]: node at depth d already in dl (valid for d <= ev) */
    uint32_t ev;
    uint8_t *popped;     /* a return from the bottom frame happened on the path to depth d */
    uint32_t *acc;
    uint32_t *chain;     /* scratch: ancestors by depth */
} lw;

/* Record subtree root i (and its ancestors not yet recorded). */
static int emit_root(const nuage_cg_tokens *t, lw *w, uint32_t i) {
    uint32_t d = t->depth[i], *chain = w->chain;
    uint32_t a = t->parent[i];
    for (uint32_t k = d - 1; k >= 1; k--) { chain[k] = a; a = t->parent[a]; }
    int rc;
    for (uint32_t k = 1; k < d; k++) {
        if (k <= w->ev && w->em[k] == chain[k]) continue;
        if ((rc = dep_push(&w->dl, chain[k]))) return rc;
        w->em[k] = chain[k];
        w->ev = k;
    }
    if (w->ev > d - 1) w->ev = d - 1;
    return dep_push(&w->dl, i | DEP_ROOT);
}

/* Walk trie nodes [i, end) below level depth[i] - 1, allowing in acc
 * the tokens of every node whose set is not empty. A level is either a
 * set (m->lv[d]) or, while the parse is one configuration on a state
 * without calls, "fast": just (m->fst[d], m->fpar[d]), stepped by one
 * table lookup, no set and no arena. With w (local walks from BOTTOM), a
 * node whose set dies after a return from the bottom frame is recorded as
 * a stack-dependent subtree root. */
static int walk_nodes(nuage_matcher *m, uint32_t i, uint32_t end, uint32_t *acc, lw *w) {
    const nuage_grammar *g = m->g;
    const nuage_cg_tokens *t = g->t;
    int rc;
    int skip = w ? w->skip : 0;
    while (i < end) {
        if ((int)t->skipc[i] <= skip) { i = t->end[i]; continue; }   /* accepted already (slice_bfs) */
        uint32_t d = t->depth[i];
        if (m->ffast[d - 1]) {
            int32_t to = TRB(g, m->fst[d - 1], t->byte[i]);
            if (to < 0) {
                if (w && w->popped[d - 1] && (rc = emit_root(t, w, i))) return rc;
                i = t->end[i];
                continue;
            }
            uint8_t f = g->flags[to];
            if (f & NCG_S_SIMPLE) {
                if (f & NCG_S_NOCALL) {
                    m->fst[d] = to;
                    m->fpar[d] = m->fpar[d - 1];
                    m->ffast[d] = 1;
                } else {
                    m->lv[d].c[0] = (ncg_cfg){to, m->fpar[d - 1]};
                    m->lv[d].n = 1;
                    m->ffast[d] = 0;
                }
                m->lwm[d] = m->lwm[d - 1];
                if (w) w->popped[d] = w->popped[d - 1];
                set_bits(acc, t, i);
                i++;
                continue;
            }
            m->lv[d - 1].c[0] = (ncg_cfg){m->fst[d - 1], m->fpar[d - 1]};   /* the general step needs the set */
            m->lv[d - 1].n = 1;
        }
        m->a.len = m->lwm[d - 1];
        ncg_set *cur = &m->lv[d];
        if ((rc = ncg_step(g, &m->a, m->lv[d - 1].c, m->lv[d - 1].n, t->byte[i], cur))) return rc;
        bool popped = w && (w->popped[d] = w->popped[d - 1] || cur->popped_bottom);
        if (!cur->n) {
            if (popped && (rc = emit_root(t, w, i))) return rc;
            i = t->end[i];
            continue;
        }
        m->lwm[d] = m->a.len;
        m->ffast[d] = cur->n == 1 && (g->flags[cur->c[0].state] & NCG_S_NOCALL);
        if (m->ffast[d]) { m->fst[d] = cur->c[0].state; m->fpar[d] = cur->c[0].parent; }
        set_bits(acc, t, i);
        i++;
    }
    return 0;
}

/* ---- the slice by exploration (states that are not plain chains) ----
 *
 * A state that is not a chain of plain states (slice_chars < 0) may still
 * take every string of slice characters: the content of a string whose
 * characters go through a called rule, a string that must not equal some
 * enum value (the automaton tracks the value's prefix), a pattern whose
 * search loop takes any character. LLGuidance asks the same question of
 * its lexer states (is the slice's language inside the state's prefix
 * language?); here it is answered by exploring the closed configuration
 * sets reachable from (s, BOTTOM) over slice characters, breadth first by
 * character count, bytes grouped by class (ncg_step sees only classes)
 * and UTF-8 sequences followed byte by byte. Equal sets are explored once
 * (the first time is at the fewest characters, so the first empty set
 * found is at the smallest count). The result K: every slice string of at
 * most K characters keeps a non-empty set without returning from s's
 * frame, so its tokens are accepted whatever the stack; the trie walk then
 * skips the subtrees made only of such tokens. The exploration stops at a
 * budget of sets, keeping the K proven so far. */
#define BFS_MAX_SETS 1024u
#define BFS_MAX_CFGS 16384u
#define BFS_MAX_STEPS 12000u
#define BFS_SLOTS 4096u

typedef struct bfs {
    const nuage_grammar *g;
    ncg_arena *a;
    ncg_cfg *pool;
    uint32_t np, cap, steps;
    /* recorded sets: tag 0 a set after whole characters (to expand), else
     * a set inside a UTF-8 sequence (remaining bytes, range of the next) */
    uint32_t off[BFS_MAX_SETS], len[BFS_MAX_SETS], tag[BFS_MAX_SETS], ns;
    uint16_t slot[BFS_SLOTS];   /* set index + 1, 0 = empty */
    ncg_set sc[5];
} bfs;

enum { BFS_OK = 0, BFS_DEAD = 1, BFS_FULL = 2, BFS_SEEN = 3 };

static void sort_cfgs(ncg_cfg *c, uint32_t n) {
    for (uint32_t i = 1; i < n; i++) {
        ncg_cfg x = c[i];
        uint32_t j = i;
        for (; j > 0 && (c[j - 1].state > x.state || (c[j - 1].state == x.state && c[j - 1].parent > x.parent)); j--)
            c[j] = c[j - 1];
        c[j] = x;
    }
}

/* Record set y with tag (y is sorted in place): BFS_OK when new,
 * BFS_SEEN, BFS_FULL or NUAGE_E_NOMEM. A set seen before was explored
 * from there (at no more characters), so it needs nothing more. */
static int bfs_add(bfs *B, ncg_set *y, uint32_t tag) {
    if (y->n > 32) return BFS_FULL;   /* insertion sort and the budget assume small sets */
    sort_cfgs(y->c, y->n);
    uint64_t h = (1469598103934665603ull ^ y->n ^ (uint64_t)tag << 40) * 1099511628211ull;
    for (uint32_t i = 0; i < y->n; i++)
        h = (h ^ ((uint64_t)(uint32_t)y->c[i].state << 32 | (uint32_t)y->c[i].parent)) * 1099511628211ull;
    uint32_t k = (uint32_t)(h ^ h >> 31) & (BFS_SLOTS - 1);
    for (; B->slot[k]; k = (k + 1) & (BFS_SLOTS - 1)) {
        uint32_t j = B->slot[k] - 1u;
        if (B->tag[j] == tag && B->len[j] == y->n && !memcmp(B->pool + B->off[j], y->c, y->n * sizeof *y->c))
            return BFS_SEEN;
    }
    if (B->ns == BFS_MAX_SETS || B->np + y->n > BFS_MAX_CFGS) return BFS_FULL;
    if (B->np + y->n > B->cap) {
        uint32_t nc = B->cap ? B->cap : 256;
        while (nc < B->np + y->n) nc *= 2;
        ncg_cfg *q = realloc(B->pool, nc * sizeof *q);
        if (!q) return NUAGE_E_NOMEM;
        B->pool = q;
        B->cap = nc;
    }
    if (y->n) memcpy(B->pool + B->np, y->c, y->n * sizeof *y->c);
    B->off[B->ns] = B->np;
    B->len[B->ns] = y->n;
    B->tag[B->ns] = tag;
    B->np += y->n;
    B->slot[k] = (uint16_t)(++B->ns);
    return BFS_OK;
}

/* One step of set `in` over byte b into B->sc[lv]: BFS_OK (not empty),
 * BFS_DEAD, BFS_FULL (too many configurations or steps) or NUAGE_E_NOMEM. */
static int bfs_step(bfs *B, const ncg_cfg *in, uint32_t n, uint8_t b, int lv) {
    if (++B->steps > BFS_MAX_STEPS) return BFS_FULL;
    int rc = ncg_step(B->g, B->a, in, n, b, &B->sc[lv]);
    if (rc) return rc == NUAGE_E_UNSUPPORTED ? BFS_FULL : rc;
    return B->sc[lv].n ? BFS_OK : BFS_DEAD;
}

static uint32_t mid_tag(int rem, uint8_t lo, uint8_t hi) { return (uint32_t)rem << 16 | (uint32_t)lo << 8 | hi; }

/* Record a set after whole characters, or follow the rest of a UTF-8
 * sequence (rem more bytes, the first in [lo, hi], the others 80..BF)
 * from B->sc[lv] unless that was done from an equal set already. */
static int bfs_cont(bfs *B, int lv, int rem, uint8_t lo, uint8_t hi) {
    int rc = bfs_add(B, &B->sc[lv], rem ? mid_tag(rem, lo, hi) : 0);
    if (rc == BFS_SEEN || (rc == BFS_OK && rem == 0)) return BFS_OK;
    if (rc) return rc;
    uint8_t done[256] = {0};
    for (unsigned c = lo; c <= hi; c++) {
        uint8_t k = B->g->cls[c];
        if (done[k]) continue;
        done[k] = 1;
        if ((rc = bfs_step(B, B->sc[lv].c, B->sc[lv].n, (uint8_t)c, lv + 1)) ||
            (rc = bfs_cont(B, lv + 1, rem - 1, 0x80, 0xBF)))
            return rc;
    }
    return BFS_OK;
}

/* Every one-character successor of recorded set j, recorded. */
static int bfs_expand(bfs *B, uint32_t j) {
    const nuage_grammar *g = B->g;
    uint8_t done[256] = {0};
    int rc;
    for (unsigned b = 0x20; b < 0x7F; b++) {
        if (!ncg_slice_ascii((uint8_t)b) || done[g->cls[b]]) continue;
        done[g->cls[b]] = 1;
        if ((rc = bfs_step(B, B->pool + B->off[j], B->len[j], (uint8_t)b, 0)) || (rc = bfs_cont(B, 0, 0, 0, 0)))
            return rc;
    }
    for (unsigned b = 0xC2; b <= 0xF4; b++) {
        int len;
        uint8_t lo, hi;
        ncg_utf8_lead((uint8_t)b, &len, &lo, &hi);
        if ((rc = bfs_step(B, B->pool + B->off[j], B->len[j], (uint8_t)b, 1)) || (rc = bfs_cont(B, 1, len - 1, lo, hi)))
            return rc;
    }
    return BFS_OK;
}

/* *K: every slice string of at most *K characters is viable from (s,
 * BOTTOM) without a return from s's frame (0 when nothing is proven).
 * Leaves stack nodes above the arena mark (the caller truncates). */
static int slice_bfs(nuage_matcher *m, int32_t s, int *K) {
    const nuage_grammar *g = m->g;
    const nuage_cg_tokens *t = g->t;
    *K = 0;
    bfs *B = calloc(1, sizeof *B);
    if (!B) return NUAGE_E_NOMEM;
    B->g = g;
    B->a = &m->a;
    int rc = NUAGE_E_NOMEM;
    for (int i = 0; i < 5; i++)
        if (ncg_set_reserve(&B->sc[i], 16)) goto out;
    if ((rc = ncg_add_closed(g, &m->a, &B->sc[0], s, NCG_BOTTOM))) goto out;
    if (!B->sc[0].n) goto out;   /* nothing to take (a final state without edges): K = 0 */
    if ((rc = bfs_add(B, &B->sc[0], 0)) < 0) goto out;
    uint32_t lo = 0;
    int level = 0;
    for (rc = BFS_OK; level < (int)t->slice_max && rc == BFS_OK; level++) {
        uint32_t hi = B->ns;
        bool any = false;
        for (uint32_t j = lo; j < hi && rc == BFS_OK; j++)
            if (B->tag[j] == 0) { any = true; rc = bfs_expand(B, j); }
        if (!any) { level = (int)t->slice_max; break; }   /* closed: every length is viable */
        lo = hi;
        if (rc != BFS_OK) break;
    }
    if (rc < 0) goto out;
    *K = level;   /* strings of `level` characters were all checked */
    rc = 0;
out:
    for (int i = 0; i < 5; i++) ncg_set_free(&B->sc[i]);
    free(B->pool);
    free(B);
    return rc;
}

/* The entry of state s: walk the trie from the closure of (s, BOTTOM). */
static int build_entry(nuage_matcher *m, int32_t s, ncg_cache_entry **out) {
    nuage_grammar *g = m->g;
    const nuage_cg_tokens *t = g->t;
    size_t nw = nuage_cg_mask_words(t);
    ncg_cache_entry *e = calloc(1, sizeof *e);
    lw w = {.acc = calloc(nw, sizeof *w.acc), .popped = malloc(t->max_depth + 1),
            .em = malloc((t->max_depth + 1) * sizeof *w.em), .chain = malloc((t->max_depth + 1) * sizeof *w.chain)};
    int rc = NUAGE_E_NOMEM;
    uint32_t base = m->a.len;
    if (!e || !w.acc || !w.popped || !w.em || !w.chain) goto fail;
    int32_t R = slice_chars(g, s);
    if (R >= 0) {
        uint32_t cmax = R == R_INF || (uint32_t)R > t->slice_max ? t->slice_max : (uint32_t)R;
        memcpy(w.acc, t->slice_cum + (size_t)cmax * nw, nw * sizeof *w.acc);
        for (uint32_t f = 0; f < t->n_frontier; f++) {
            uint32_t i = t->frontier[f], d = t->depth[i], k = t->frontier_k[f], c = t->frontier_c[f];
            if (R != R_INF && c > (uint32_t)R) continue;
            uint32_t anc[4], a = t->parent[i];
            for (uint32_t j = 0; j < k; j++) { anc[j] = a; a = t->parent[a]; }
            int32_t x = s;
            for (uint32_t j = 0; j < c && x >= 0; j++) x = TRB(g, x, 'a');
            for (uint32_t j = k; j-- > 0 && x >= 0;) x = TRB(g, x, t->byte[anc[j]]);
            if (x < 0) continue;
            m->fst[d - 1] = x;
            m->fpar[d - 1] = NCG_BOTTOM;
            m->ffast[d - 1] = 1;
            m->lwm[d - 1] = base;
            w.popped[d - 1] = 0;
            if ((rc = walk_nodes(m, i, t->end[i], w.acc, &w))) goto fail;
        }
    } else {
        int K = 0;
        if ((rc = slice_bfs(m, s, &K))) goto fail;
        m->a.len = base;
        if (K > 0) {
            memcpy(w.acc, t->slice_cum + (size_t)K * nw, nw * sizeof *w.acc);
            w.skip = K;
        }
        ncg_set *l0 = &m->lv[0];
        l0->n = 0;
        l0->popped_bottom = false;
        if ((rc = ncg_add_closed(g, &m->a, l0, s, NCG_BOTTOM))) goto fail;
        w.popped[0] = 0;   /* a return before any byte is another configuration's business */
        m->lwm[0] = m->a.len;
        m->ffast[0] = 0;
        if ((rc = walk_nodes(m, 0, t->n_nodes, w.acc, &w))) goto fail;
    }
    m->a.len = base;
    free(w.popped);
    free(w.em);
    free(w.chain);
    e->acc = w.acc;
    e->dep = w.dl.v;
    e->n_dep = w.dl.n;
    *out = e;
    return 0;
fail:
    m->a.len = base;
    free(w.popped);
    free(w.em);
    free(w.chain);
    free(w.acc);
    free(w.dl.v);
    free(e);
    return rc;
}

static int get_entry(nuage_matcher *m, int32_t s, const ncg_cache_entry **out) {
    nuage_grammar *g = m->g;
    ncg_cache_entry *e = __atomic_load_n(&g->cache[s], __ATOMIC_ACQUIRE);
    if (e) { *out = e; return 0; }
    int rc = build_entry(m, s, &e);
    if (rc) return rc;
    pthread_mutex_lock(&g->lock);
    ncg_cache_entry *old = g->cache[s];
    if (!old) __atomic_store_n(&g->cache[s], e, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g->lock);
    if (old) { entry_free(e); e = old; }
    *out = e;
    return 0;
}

/* The stack-dependent tokens of entry e from configuration c. */
static int walk_dep(nuage_matcher *m, const ncg_cache_entry *e, ncg_cfg c, uint32_t *mask) {
    const nuage_grammar *g = m->g;
    const nuage_cg_tokens *t = g->t;
    ncg_set *l0 = &m->lv[0];
    if (!l0->cap && ncg_set_reserve(l0, 16)) return NUAGE_E_NOMEM;
    l0->c[0] = c;   /* c alone: its returns at depth 0 are configurations of their own */
    l0->n = 1;
    m->lwm[0] = m->a.len;
    memset(m->ffast, 0, m->n_lv);   /* walk_dep's own levels are sets */
    int rc;
    for (uint32_t k = 0; k < e->n_dep; k++) {
        uint32_t i = e->dep[k] & ~DEP_ROOT, d = t->depth[i];
        if (!m->lv[d - 1].n) { m->lv[d].n = 0; m->ffast[d] = 0; continue; }
        if (e->dep[k] & DEP_ROOT) {
            if ((rc = walk_nodes(m, i, t->end[i], mask, NULL))) return rc;
            continue;
        }
        m->a.len = m->lwm[d - 1];
        if ((rc = lvl_step(m, &m->lv[d - 1], t->byte[i], &m->lv[d]))) return rc;
        m->lwm[d] = m->a.len;
        m->ffast[d] = 0;
        if (m->lv[d].n) set_bits(mask, t, i);
    }
    return 0;
}

int nuage_matcher_fill_mask(nuage_matcher *m, uint32_t *mask) {
    if (!m || !mask) return NUAGE_E_INVAL;
    const nuage_grammar *g = m->g;
    const nuage_cg_tokens *t = g->t;
    size_t nw = nuage_cg_mask_words(t);
    memset(mask, 0, nw * sizeof *mask);
    uint32_t n0;
    bool term;
    const ncg_cfg *c0 = ncg_matcher_top(m, &n0, &term);
    if (term) return 0;
    int rc = ensure_levels(m, t->max_depth + 1);
    if (rc) return rc;
    uint32_t base = m->a.len;
    for (uint32_t k = 0; k < n0 && !rc; k++) {
        const ncg_cache_entry *e;
        if ((rc = get_entry(m, c0[k].state, &e))) break;
        bool seen = false;
        for (uint32_t j = 0; j < k && !seen; j++) seen = c0[j].state == c0[k].state;
        if (!seen)
            for (size_t w = 0; w < nw; w++) mask[w] |= e->acc[w];
        if (e->n_dep) rc = walk_dep(m, e, c0[k], mask);
        m->a.len = base;
    }
    for (uint32_t k = 0; k < g->n_toksym && !rc; k++) {
        m->a.len = base;
        if ((rc = ncg_step(g, &m->a, c0, n0, 256 + (int)k, &m->tmp[2]))) break;
        if (m->tmp[2].n) mask[g->toksym[k] >> 5] |= 1u << (g->toksym[k] & 31);
    }
    m->a.len = base;
    if (rc) return rc == NUAGE_E_UNSUPPORTED ? NUAGE_E_NOMEM : rc;
    if (ncg_set_accepting(g, c0, n0))
        for (uint32_t k = 0; k < t->n_eog; k++) mask[t->eog[k] >> 5] |= 1u << (t->eog[k] & 31);
    return 0;
}
