/*
 * matcher.c - running a compiled grammar: sets of parse stacks.
 *
 * Design. A configuration is (state, parent): the DFA state of the rule
 * frame on top and a node of a persistent stack below it. Stack nodes live
 * in a per-matcher arena and are hash-consed, so equal stacks are equal
 * indices and a set of configurations deduplicates by comparing pairs
 * (a graph-structured stack). The arena only grows while a step is
 * computed and is truncated back on rollback and after every mask walk
 * (nodes made later are never referenced by earlier sets); the hash table
 * tolerates the stale slots this leaves (an entry is used only when its
 * index is below the arena length and its content matches).
 *
 * Sets are kept closed: with every configuration, the states E(s) of its
 * frame reachable through nullable calls, and, when a state is final, the
 * parent frame's return configuration (pop). A step on one symbol (a byte,
 * or a named token) follows the DFA edge of each configuration and enters
 * called rules top-down (a chain of calls is materialised as stack nodes
 * only when the symbol is actually consumed; calls whose return state is
 * a TAIL state push nothing: tail calls keep right recursion flat).
 * compile.c guarantees there is no left recursion and that every state can
 * still complete, so a non-empty set means "this prefix is viable".
 *
 * Sets have at most NCG_MAX_CFGS configurations: an ambiguous grammar that
 * exceeds it makes the step fail with NUAGE_E_UNSUPPORTED rather than
 * grow without bound. History: every accepted step stores its closed set,
 * so rollback is truncation.
 */
#include <stdlib.h>
#include <string.h>

#include "constrain/cg_internal.h"
#include "constrain/matcher_internal.h"
#include "nuage/nuage.h"

#define MAX_ARENA (1u << 24)

/* ---- arena ---- */

int ncg_arena_init(ncg_arena *a) {
    memset(a, 0, sizeof *a);
    a->cap = 256;
    a->n = malloc(a->cap * sizeof *a->n);
    a->slot = calloc(1024, sizeof *a->slot);
    a->smask = 1023;
    if (!a->n || !a->slot) { ncg_arena_free(a); return NUAGE_E_NOMEM; }
    return 0;
}

void ncg_arena_free(ncg_arena *a) {
    free(a->n);
    free(a->slot);
    memset(a, 0, sizeof *a);
}

static uint32_t hnode(int32_t s, int32_t p) {
    uint64_t x = (uint64_t)(uint32_t)s * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uint32_t)p * 0xC2B2AE3D27D4EB4Full;
    return (uint32_t)(x >> 32 ^ x);
}

static int arena_rehash(ncg_arena *a, uint32_t size) {
    int32_t *s = calloc(size, sizeof *s);
    if (!s) return NUAGE_E_NOMEM;
    free(a->slot);
    a->slot = s;
    a->smask = size - 1;
    for (uint32_t i = 0; i < a->len; i++) {
        uint32_t h = hnode(a->n[i].state, a->n[i].parent) & a->smask;
        for (int k = 0; k < 16 && s[h]; k++) h = (h + 1) & a->smask;
        if (!s[h]) s[h] = (int32_t)i + 1;
    }
    return 0;
}

static int arena_node(ncg_arena *a, int32_t state, int32_t parent, int32_t *out) {
    uint32_t h = hnode(state, parent) & a->smask;
    int32_t ins = -1;
    for (int k = 0; k < 16; k++, h = (h + 1) & a->smask) {
        int32_t v = a->slot[h];
        if (!v) { ins = (int32_t)h; break; }
        uint32_t i = (uint32_t)v - 1;
        if (i >= a->len) { ins = (int32_t)h; break; }
        if (a->n[i].state == state && a->n[i].parent == parent) { *out = (int32_t)i; return 0; }
    }
    if (a->len == a->cap) {
        if (a->cap >= MAX_ARENA) return NUAGE_E_NOMEM;
        ncg_cfg *q = realloc(a->n, a->cap * 2 * sizeof *q);
        if (!q) return NUAGE_E_NOMEM;
        a->n = q;
        a->cap *= 2;
    }
    a->n[a->len] = (ncg_cfg){state, parent};
    if (ins >= 0) a->slot[ins] = (int32_t)a->len + 1;
    *out = (int32_t)a->len++;
    if (a->len * 2 > a->smask + 1) return arena_rehash(a, (a->smask + 1) * 2);
    return 0;
}

/* ---- sets ---- */

int ncg_set_reserve(ncg_set *s, uint32_t n) {
    if (n <= s->cap) return 0;
    uint32_t nc = s->cap ? s->cap : 16;
    while (nc < n) nc *= 2;
    ncg_cfg *q = realloc(s->c, nc * sizeof *q);
    if (!q) return NUAGE_E_NOMEM;
    s->c = q;
    s->cap = nc;
    return 0;
}

void ncg_set_free(ncg_set *s) {
    free(s->c);
    memset(s, 0, sizeof *s);
}

static int add_one(ncg_set *out, int32_t state, int32_t parent) {
    for (uint32_t i = 0; i < out->n; i++)
        if (out->c[i].state == state && out->c[i].parent == parent) return 0;
    if (out->n >= NCG_MAX_CFGS) return NUAGE_E_UNSUPPORTED;
    if (out->n == out->cap && ncg_set_reserve(out, out->n + 1)) return NUAGE_E_NOMEM;
    out->c[out->n++] = (ncg_cfg){state, parent};
    return 0;
}

static int add_e(const nuage_grammar *g, ncg_set *out, int32_t state, int32_t parent) {
    int rc = add_one(out, state, parent);
    for (uint32_t j = g->eps_off[state]; j < g->eps_off[state + 1] && !rc; j++) rc = add_one(out, g->eps[j], parent);
    return rc;
}

int ncg_add_closed(const nuage_grammar *g, ncg_arena *a, ncg_set *out, int32_t state, int32_t parent) {
    uint32_t i0 = out->n, i = i0;
    int rc = add_e(g, out, state, parent);
    bool tail = false;
    for (; i < out->n && !rc; i++) {
        ncg_cfg c = out->c[i];
        if (!(g->flags[c.state] & NCG_S_FINAL)) continue;
        tail |= (g->flags[c.state] & NCG_S_TAIL) && c.parent != NCG_ROOT;
        if (c.parent >= 0) rc = add_e(g, out, a->n[c.parent].state, a->n[c.parent].parent);
        else if (c.parent == NCG_BOTTOM) out->popped_bottom = true;
    }
    /* A TAIL configuration (final, no edge of any kind) above the root
     * can do nothing more once its return is in the set: dropped, so sets
     * stay small (a string character through a called rule leaves one
     * configuration, not two). On the root it is kept: it accepts. */
    if (tail && !rc) {
        uint32_t w = i0;
        for (uint32_t k = i0; k < out->n; k++)
            if (!((g->flags[out->c[k].state] & NCG_S_TAIL) && out->c[k].parent != NCG_ROOT)) out->c[w++] = out->c[k];
        out->n = w;
    }
    return rc;
}

static inline int32_t delta(const nuage_grammar *g, int32_t s, int sym) {
    if (sym < 256) return g->trans[(size_t)s * g->ncls + g->cls[sym]];
    for (uint32_t j = g->tedge_off[s]; j < g->tedge_off[s + 1]; j++)
        if (g->tedges[j].sym == sym - 256) return g->tedges[j].to;
    return -1;
}

typedef struct walk {
    const nuage_grammar *g;
    ncg_arena *a;
    ncg_set *out;
    int sym;
    int32_t fr[NCG_MAX_CALL_DEPTH + 2];
} walk;

/* Enter rule r above the pending frames w->fr[0..nfr) over parent p. */
static int enter(walk *w, int32_t r, uint32_t nfr, int32_t p) {
    const nuage_grammar *g = w->g;
    if (w->sym < 256) {
        unsigned k = g->cls[w->sym];
        if (!(g->first[r][k >> 6] >> (k & 63) & 1)) return 0;
    } else if (!g->rule_tokfirst[r]) return 0;
    int32_t s0 = g->rule_start[r];
    uint32_t ne = g->eps_off[s0 + 1] - g->eps_off[s0];
    for (uint32_t i = 0; i <= ne; i++) {
        int32_t t = i == 0 ? s0 : g->eps[g->eps_off[s0] + i - 1];
        int32_t to = delta(g, t, w->sym);
        int rc;
        if (to >= 0) {
            int32_t pp = p;
            for (uint32_t k = 0; k < nfr; k++)
                if ((rc = arena_node(w->a, w->fr[k], pp, &pp))) return rc;
            if ((rc = ncg_add_closed(g, w->a, w->out, to, pp))) return rc;
        }
        for (uint32_t j = g->call_off[t]; j < g->call_off[t + 1]; j++) {
            int32_t ret = g->calls[j].ret;
            uint32_t n2 = nfr;
            if (!(g->flags[ret] & NCG_S_TAIL)) w->fr[n2++] = ret;
            if (n2 > NCG_MAX_CALL_DEPTH + 1) return NUAGE_E_UNSUPPORTED;
            if ((rc = enter(w, g->calls[j].rule, n2, p))) return rc;
        }
    }
    return 0;
}

int ncg_step(const nuage_grammar *g, ncg_arena *a, const ncg_cfg *in, uint32_t n_in, int sym, ncg_set *out) {
    out->n = 0;
    out->popped_bottom = false;
    if (n_in == 1 && sym < 256 && (g->flags[in[0].state] & NCG_S_NOCALL)) {   /* fast path: one DFA edge */
        int32_t to = g->trans[(size_t)in[0].state * g->ncls + g->cls[sym]];
        if (to < 0) return 0;
        if (g->flags[to] & NCG_S_SIMPLE) {
            if (!out->cap && ncg_set_reserve(out, 16)) return NUAGE_E_NOMEM;
            out->c[0] = (ncg_cfg){to, in[0].parent};
            out->n = 1;
            return 0;
        }
        return ncg_add_closed(g, a, out, to, in[0].parent);
    }
    walk w = {.g = g, .a = a, .out = out, .sym = sym};
    int rc = 0;
    for (uint32_t i = 0; i < n_in && !rc; i++) {
        int32_t s = in[i].state, p = in[i].parent;
        int32_t to = delta(g, s, sym);
        if (to >= 0 && (rc = ncg_add_closed(g, a, out, to, p))) break;
        for (uint32_t j = g->call_off[s]; j < g->call_off[s + 1] && !rc; j++) {
            int32_t ret = g->calls[j].ret;
            uint32_t nfr = 0;
            if (!(g->flags[ret] & NCG_S_TAIL)) w.fr[nfr++] = ret;
            rc = enter(&w, g->calls[j].rule, nfr, p);
        }
    }
    return rc;
}

bool ncg_set_accepting(const nuage_grammar *g, const ncg_cfg *c, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (c[i].parent == NCG_ROOT && (g->flags[c[i].state] & NCG_S_FINAL)) return true;
    return false;
}

int32_t ncg_toksym_of(const nuage_grammar *g, int32_t tok) {
    for (uint32_t i = 0; i < g->n_toksym; i++)
        if (g->toksym[i] == tok) return (int32_t)i;
    return -1;
}

/* ---- the matcher ---- */


static int push_step(nuage_matcher *m, const ncg_cfg *c, uint32_t n, bool term) {
    if (m->n_steps == m->cap_steps) {
        uint32_t nc = m->cap_steps ? m->cap_steps * 2 : 64;
        mstep *q = realloc(m->steps, nc * sizeof *q);
        if (!q) return NUAGE_E_NOMEM;
        m->steps = q;
        m->cap_steps = nc;
    }
    uint32_t off = m->n_steps ? m->steps[m->n_steps - 1].off + m->steps[m->n_steps - 1].n : 0;
    if (off + n > m->cap_hist) {
        /* c may point into the history itself (the current step repeated,
         * e.g. after end-of-generation): re-point it after the realloc. */
        bool inside = c && m->hist && c >= m->hist && c < m->hist + m->cap_hist;
        size_t c_at = inside ? (size_t)(c - m->hist) : 0;
        uint32_t nc = m->cap_hist ? m->cap_hist : 256;
        while (nc < off + n) nc *= 2;
        ncg_cfg *q = realloc(m->hist, nc * sizeof *q);
        if (!q) return NUAGE_E_NOMEM;
        m->hist = q;
        m->cap_hist = nc;
        if (inside) c = q + c_at;
    }
    if (n) memmove(m->hist + off, c, n * sizeof *c);
    m->steps[m->n_steps++] = (mstep){off, n, m->a.len, term};
    return 0;
}

int nuage_matcher_new(nuage_grammar *g, nuage_matcher **out) {
    if (!g || !out) return NUAGE_E_INVAL;
    *out = NULL;
    nuage_matcher *m = calloc(1, sizeof *m);
    if (!m) return NUAGE_E_NOMEM;
    int rc = ncg_arena_init(&m->a);
    if (rc) { free(m); return rc; }
    m->g = nuage_grammar_retain(g);
    if ((rc = ncg_add_closed(g, &m->a, &m->tmp[0], g->start, NCG_ROOT)) ||
        (rc = push_step(m, m->tmp[0].c, m->tmp[0].n, false))) {
        nuage_matcher_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void nuage_matcher_free(nuage_matcher *m) {
    if (!m) return;
    ncg_arena_free(&m->a);
    for (int i = 0; i < 3; i++) ncg_set_free(&m->tmp[i]);
    for (uint32_t i = 0; i < m->n_lv; i++) ncg_set_free(&m->lv[i]);
    free(m->lv);
    free(m->lwm);
    free(m->fst);
    free(m->fpar);
    free(m->ffast);
    free(m->hist);
    free(m->steps);
    nuage_grammar_free(m->g);
    free(m);
}

const ncg_cfg *ncg_matcher_top(const nuage_matcher *m, uint32_t *n, bool *term) {
    const mstep *s = &m->steps[m->n_steps - 1];
    *n = s->n;
    if (term) *term = s->term;
    return m->hist + s->off;
}

/* Run bytes from the top set; the result is in *res (one of m->tmp[0..1]). */
static int run_bytes(nuage_matcher *m, const uint8_t *bytes, size_t len, ncg_set **res) {
    uint32_t n;
    const ncg_cfg *cur = ncg_matcher_top(m, &n, NULL);
    int k = 0;
    ncg_set *dst = NULL;
    for (size_t i = 0; i < len; i++) {
        dst = &m->tmp[k];
        int rc = ncg_step(m->g, &m->a, cur, n, bytes[i], dst);
        if (rc) return rc;
        if (!dst->n) break;
        cur = dst->c;
        n = dst->n;
        k ^= 1;
    }
    *res = dst;
    return 0;
}

static int fail_step(nuage_matcher *m, int rc) {
    m->a.len = m->steps[m->n_steps - 1].wm;
    return rc;
}

int nuage_matcher_accept_bytes(nuage_matcher *m, const char *bytes, size_t len) {
    if (!m || (len && !bytes)) return NUAGE_E_INVAL;
    uint32_t n;
    bool term;
    const ncg_cfg *cur = ncg_matcher_top(m, &n, &term);
    if (term) return NUAGE_E_INVAL;
    if (len == 0) return push_step(m, cur, n, false);
    ncg_set *res;
    int rc = run_bytes(m, (const uint8_t *)bytes, len, &res);
    if (rc) return fail_step(m, rc);
    if (!res->n) return fail_step(m, NUAGE_E_INVAL);
    rc = push_step(m, res->c, res->n, false);
    return rc ? fail_step(m, rc) : 0;
}

int nuage_matcher_accept_token(nuage_matcher *m, int32_t tok) {
    if (!m) return NUAGE_E_INVAL;
    const nuage_cg_tokens *t = m->g->t;
    if (tok < 0 || tok >= t->n_vocab) return NUAGE_E_INVAL;
    uint32_t n;
    bool term;
    const ncg_cfg *cur = ncg_matcher_top(m, &n, &term);
    if (term) return NUAGE_E_INVAL;
    ncg_set *res = NULL;
    int rc = 0;
    if (t->in_trie[tok]) {
        uint32_t a = t->piece_off[tok], z = t->piece_off[tok + 1];
        if ((rc = run_bytes(m, t->pieces + a, z - a, &res))) return fail_step(m, rc);
    }
    int32_t sym = ncg_toksym_of(m->g, tok);
    if (sym >= 0) {
        ncg_set *ts = &m->tmp[2];
        if ((rc = ncg_step(m->g, &m->a, cur, n, 256 + sym, ts))) return fail_step(m, rc);
        if (res && res->n) {
            for (uint32_t i = 0; i < ts->n && !rc; i++) rc = ncg_add_closed(m->g, &m->a, res, ts->c[i].state, ts->c[i].parent);
            if (rc) return fail_step(m, rc);
        } else res = ts;
    }
    if (res && res->n) {
        rc = push_step(m, res->c, res->n, false);
        return rc ? fail_step(m, rc) : 0;
    }
    for (uint32_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == tok && ncg_set_accepting(m->g, cur, n)) {
            rc = push_step(m, cur, n, true);
            return rc ? fail_step(m, rc) : 0;
        }
    return fail_step(m, NUAGE_E_INVAL);
}

int nuage_matcher_rollback(nuage_matcher *m, int n) {
    if (!m || n < 0) return NUAGE_E_INVAL;
    if ((uint32_t)n >= m->n_steps) return NUAGE_E_RANGE;
    m->n_steps -= (uint32_t)n;
    m->a.len = m->steps[m->n_steps - 1].wm;
    return 0;
}

bool nuage_matcher_is_accepting(const nuage_matcher *m) {
    if (!m) return false;
    uint32_t n;
    bool term;
    const ncg_cfg *c = ncg_matcher_top(m, &n, &term);
    return term || ncg_set_accepting(m->g, c, n);
}

bool nuage_matcher_is_terminated(const nuage_matcher *m) {
    if (!m) return false;
    uint32_t n;
    bool term;
    const ncg_cfg *c = ncg_matcher_top(m, &n, &term);
    if (term) return true;
    if (!ncg_set_accepting(m->g, c, n)) return false;
    for (uint32_t i = 0; i < n; i++)
        if (m->g->flags[c[i].state] & NCG_S_MOVES) return false;
    return true;
}
