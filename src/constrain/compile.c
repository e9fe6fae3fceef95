/*
 * compile.c - ncg_builder_finish: builder expressions to a recursive
 * transition network of per-rule DFAs.
 *
 * Design. Bytes are first grouped into classes (bytes that no byte set of
 * the grammar tells apart share a class), so a DFA row has ncls entries,
 * not 256. Each rule reachable from the start rule becomes a Thompson NFA
 * (bounded repetition is unrolled; a global state budget turns x{1000000}
 * and exponential DAG sharing into NUAGE_E_UNSUPPORTED instead of memory
 * exhaustion), then a DFA by subset construction over three alphabets:
 * byte classes, calls (rule r; the target is the return state) and named
 * tokens. All DFA states share one numbering.
 *
 * Compile time matters (it is the time to the first mask): byte sets are
 * hash-consed by the builder and classes refined by each distinct set of
 * the reachable rules once; the subset construction visits only the
 * classes some edge of the state takes and records each state's distinct
 * byte targets, so the analysis below follows those lists instead of
 * scanning whole table rows.
 *
 * Then the network is analysed:
 *   - liveness: a state is live when some path (through calls of
 *     productive rules) reaches a final state; edges into dead states and
 *     calls of rules that match nothing are dropped, so every
 *     configuration the matcher holds can still be completed (masks are
 *     exact, never "allowed but stuck");
 *   - nullable rules, and E(s): the states of s's own frame reachable
 *     through calls of nullable rules (taken by the matcher as epsilon);
 *   - left recursion: rule A calls B before consuming anything (from
 *     E(start A)); a cycle in that relation cannot be run by a top-down
 *     matcher and is refused naming a rule on the cycle; the longest such
 *     chain is bounded (it is the matcher's recursion depth);
 *   - first classes of each rule (the matcher skips entering a rule that
 *     cannot start with the next byte), calls of rules that can only
 *     match the empty string are dropped (E covers them), and state flags:
 *     FINAL, MOVES (has an edge), TAIL (final, no edge: a return to it
 *     needs no stack frame).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/cg_internal.h"
#include "nuage/nuage.h"

#define MAX_NFA_STATES (1u << 21)     /* per grammar, all rules */
#define MAX_DFA_STATES (1u << 18)
#define MAX_TRANS (1u << 24)          /* DFA states * classes */
#define MAX_EXPR_DEPTH 2000
#define MAX_WORK (1ull << 24)        /* subset construction: edge visits, closure sizes */

enum { L_SET, L_CALL, L_TOK };
typedef struct { int32_t from, to; } eps_e;
typedef struct { int32_t from; int32_t kind; int32_t label, to; } lab_e;

typedef struct cc {
    ncg_builder *b;
    nuage_grammar *g;
    nuage_cg_error *err;
    uint32_t nfa_total;
    /* current rule's NFA */
    uint32_t nn;
    eps_e *eps; uint32_t n_eps, cap_eps;
    lab_e *lab; uint32_t n_lab, cap_lab;
    uint32_t *eps_off, *lab_off;     /* CSR, nn + 1 */
    int32_t *eps_to;
    lab_e *lab_s; uint32_t cap_lab_s;   /* scratch for sorting lab */
    uint32_t cap_nn;
    /* subset construction */
    uint32_t *stamp; uint32_t cur_stamp;
    int32_t *stack, *tmp;
    int32_t *pool; uint32_t n_pool, cap_pool;     /* member lists */
    uint32_t *set_off, *set_len; uint32_t n_sets, cap_sets;
    int32_t *hslot; uint32_t hmask;
    lab_e *gath; uint32_t cap_gath;
    uint8_t rep[256];
    /* global DFA arrays being filled */
    uint32_t cap_states, cap_calls, cap_tedges, n_calls, n_tedges;
    uint32_t cap_toksym;
    uint64_t work;
    int32_t nfa_final;
    uint64_t (*setcls)[4];     /* classes of each builder byte set */
    /* distinct byte-edge targets of each DFA state (CSR, filled by
     * compile_rule), so the analysis need not scan whole table rows */
    uint32_t *bt_off, cap_bt_off;
    int32_t *bt;
    uint32_t n_bt, cap_bt;
    uint8_t *set_used;         /* byte sets of reachable nodes (byte_classes) */
} cc;

static int fail(cc *c, int rc, const char *fmt, const char *arg) {
    if (c->err) {
        snprintf(c->err->msg, sizeof c->err->msg, fmt, arg ? arg : "");
        c->err->pointer[0] = 0;
    }
    return rc;
}

static int grow(void **p, uint32_t *cap, uint32_t need, size_t elt) {
    if (need <= *cap) return 0;
    uint32_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > (1u << 30)) return NUAGE_E_NOMEM;
        nc *= 2;
    }
    void *q = realloc(*p, (size_t)nc * elt);
    if (!q) return NUAGE_E_NOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

/* ---- NFA ---- */

static int nstate(cc *c, int32_t *out) {
    if (c->nfa_total >= MAX_NFA_STATES)
        return fail(c, NUAGE_E_UNSUPPORTED, "grammar too large (over %s automaton states; huge repetition counts?)", "2 million");
    c->nfa_total++;
    *out = (int32_t)c->nn++;
    return 0;
}

static int add_eps(cc *c, int32_t from, int32_t to) {
    if (grow((void **)&c->eps, &c->cap_eps, c->n_eps + 1, sizeof *c->eps)) return NUAGE_E_NOMEM;
    c->eps[c->n_eps++] = (eps_e){from, to};
    return 0;
}

static int add_lab(cc *c, int32_t from, int kind, int32_t label, int32_t to) {
    if (grow((void **)&c->lab, &c->cap_lab, c->n_lab + 1, sizeof *c->lab)) return NUAGE_E_NOMEM;
    c->lab[c->n_lab++] = (lab_e){from, kind, label, to};
    return 0;
}

static int toksym(cc *c, int32_t tok, int32_t *sym) {
    nuage_grammar *g = c->g;
    for (uint32_t i = 0; i < g->n_toksym; i++)
        if (g->toksym[i] == tok) { *sym = (int32_t)i; return 0; }
    if (tok >= g->t->n_vocab) return fail(c, NUAGE_E_INVAL, "token id out of the vocabulary%s", NULL);
    if (grow((void **)&g->toksym, &c->cap_toksym, g->n_toksym + 1, sizeof *g->toksym)) return NUAGE_E_NOMEM;
    g->toksym[g->n_toksym] = tok;
    *sym = (int32_t)g->n_toksym++;
    return 0;
}

static int build(cc *c, ncg_expr e, int depth, int32_t *s, int32_t *f) {
    if (depth > MAX_EXPR_DEPTH) return fail(c, NUAGE_E_UNSUPPORTED, "grammar expressions nested too deeply%s", NULL);
    const ncg_node *nd = &c->b->nodes[e];
    int rc;
    int32_t xs, xf, cur;
    switch (nd->kind) {
    case NCG_N_EMPTY:
        if ((rc = nstate(c, s))) return rc;
        *f = *s;
        return 0;
    case NCG_N_NOTHING:
        if ((rc = nstate(c, s)) || (rc = nstate(c, f))) return rc;
        return 0;
    case NCG_N_SET:
    case NCG_N_REF:
    case NCG_N_TOK: {
        if ((rc = nstate(c, s)) || (rc = nstate(c, f))) return rc;
        int32_t label = nd->a;
        int kind = nd->kind == NCG_N_SET ? L_SET : nd->kind == NCG_N_REF ? L_CALL : L_TOK;
        if (kind == L_TOK && (rc = toksym(c, nd->a, &label))) return rc;
        return add_lab(c, *s, kind, label, *f);
    }
    case NCG_N_SEQ:
        for (uint32_t i = 0; i < nd->b; i++) {
            if ((rc = build(c, c->b->kids[nd->a + (int32_t)i], depth + 1, &xs, &xf))) return rc;
            if (i == 0) *s = xs;
            else if ((rc = add_eps(c, *f, xs))) return rc;
            *f = xf;
        }
        return 0;
    case NCG_N_ALT:
        if ((rc = nstate(c, s)) || (rc = nstate(c, f))) return rc;
        for (uint32_t i = 0; i < nd->b; i++) {
            if ((rc = build(c, c->b->kids[nd->a + (int32_t)i], depth + 1, &xs, &xf))) return rc;
            if ((rc = add_eps(c, *s, xs)) || (rc = add_eps(c, xf, *f))) return rc;
        }
        return 0;
    case NCG_N_REP:
        if ((rc = nstate(c, s))) return rc;
        cur = *s;
        for (uint32_t i = 0; i < nd->b; i++) {
            if ((rc = build(c, nd->a, depth + 1, &xs, &xf)) || (rc = add_eps(c, cur, xs))) return rc;
            cur = xf;
        }
        if (nd->c == NCG_INF) {
            int32_t q;
            if ((rc = nstate(c, &q)) || (rc = add_eps(c, cur, q))) return rc;
            if ((rc = build(c, nd->a, depth + 1, &xs, &xf))) return rc;
            if ((rc = add_eps(c, q, xs)) || (rc = add_eps(c, xf, q))) return rc;
            *f = q;
            return 0;
        }
        if ((rc = nstate(c, f))) return rc;
        for (uint32_t i = nd->b; i < nd->c; i++) {
            if ((rc = add_eps(c, cur, *f))) return rc;
            if ((rc = build(c, nd->a, depth + 1, &xs, &xf)) || (rc = add_eps(c, cur, xs))) return rc;
            cur = xf;
        }
        return add_eps(c, cur, *f);
    }
    return NUAGE_E_INVAL;
}

static int cmp_lab(const void *a, const void *b) {
    const lab_e *x = a, *y = b;
    if (x->from != y->from) return x->from < y->from ? -1 : 1;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    return x->label < y->label ? -1 : x->label > y->label;
}

/* Edges into CSR form (by source state). */
static int nfa_csr(cc *c) {
    if (c->nn + 1 > c->cap_nn) {
        uint32_t n = c->nn + 1;
        uint32_t *a = realloc(c->eps_off, n * sizeof *a), *b2;
        if (!a) return NUAGE_E_NOMEM;
        c->eps_off = a;
        if (!(b2 = realloc(c->lab_off, n * sizeof *b2))) return NUAGE_E_NOMEM;
        c->lab_off = b2;
        uint32_t *st = realloc(c->stamp, n * sizeof *st);
        if (!st) return NUAGE_E_NOMEM;
        c->stamp = st;
        memset(c->stamp, 0, n * sizeof *st);
        c->cur_stamp = 0;
        int32_t *sk = realloc(c->stack, n * sizeof *sk);
        if (!sk) return NUAGE_E_NOMEM;
        c->stack = sk;
        int32_t *tm = realloc(c->tmp, n * sizeof *tm);
        if (!tm) return NUAGE_E_NOMEM;
        c->tmp = tm;
        c->cap_nn = n;
    }
    memset(c->eps_off, 0, (c->nn + 1) * sizeof *c->eps_off);
    for (uint32_t i = 0; i < c->n_eps; i++) c->eps_off[c->eps[i].from + 1]++;
    for (uint32_t i = 0; i < c->nn; i++) c->eps_off[i + 1] += c->eps_off[i];
    free(c->eps_to);
    c->eps_to = malloc((c->n_eps + 1) * sizeof *c->eps_to);
    uint32_t *pos = malloc((c->nn + 1) * sizeof *pos);
    if (!c->eps_to || !pos) { free(pos); return NUAGE_E_NOMEM; }
    memcpy(pos, c->eps_off, (c->nn + 1) * sizeof *pos);
    for (uint32_t i = 0; i < c->n_eps; i++) c->eps_to[pos[c->eps[i].from]++] = c->eps[i].to;
    free(pos);
    /* labelled edges by (from, kind, label), stable: a counting sort by
     * source (Thompson states have at most one labelled edge, so the
     * insertion sorts below rarely move anything) */
    memset(c->lab_off, 0, (c->nn + 1) * sizeof *c->lab_off);
    for (uint32_t i = 0; i < c->n_lab; i++) c->lab_off[c->lab[i].from + 1]++;
    for (uint32_t i = 0; i < c->nn; i++) c->lab_off[i + 1] += c->lab_off[i];
    if (grow((void **)&c->lab_s, &c->cap_lab_s, c->n_lab + 1, sizeof *c->lab_s)) return NUAGE_E_NOMEM;
    uint32_t *at = malloc((c->nn + 1) * sizeof *at);
    if (!at) return NUAGE_E_NOMEM;
    memcpy(at, c->lab_off, (c->nn + 1) * sizeof *at);
    for (uint32_t i = 0; i < c->n_lab; i++) c->lab_s[at[c->lab[i].from]++] = c->lab[i];
    free(at);
    for (uint32_t x = 0; x < c->nn; x++)
        for (uint32_t i = c->lab_off[x] + 1; i < c->lab_off[x + 1]; i++) {
            lab_e e = c->lab_s[i];
            uint32_t j = i;
            for (; j > c->lab_off[x] && cmp_lab(&c->lab_s[j - 1], &e) > 0; j--) c->lab_s[j] = c->lab_s[j - 1];
            c->lab_s[j] = e;
        }
    lab_e *sw = c->lab;
    uint32_t cw = c->cap_lab;
    c->lab = c->lab_s;
    c->cap_lab = c->cap_lab_s;
    c->lab_s = sw;
    c->cap_lab_s = cw;
    return 0;
}

/* ---- subset construction ---- */


/* Sort ints ascending: quicksort (median of three) above 16, insertion below. */
static void sort_i32(int32_t *v, uint32_t n) {
    while (n > 16) {
        int32_t a = v[0], b = v[n / 2], c = v[n - 1];
        int32_t p = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
        uint32_t i = 0, j = n - 1;
        for (;;) {
            while (v[i] < p) i++;
            while (v[j] > p) j--;
            if (i >= j) break;
            int32_t t = v[i]; v[i] = v[j]; v[j] = t;
            i++; j--;
        }
        /* [0, j] <= p <= [j + 1, n): recurse on the smaller side */
        if (j + 1 < n - j - 1) { sort_i32(v, j + 1); v += j + 1; n -= j + 1; }
        else { sort_i32(v + j + 1, n - j - 1); n = j + 1; }
    }
    for (uint32_t i = 1; i < n; i++) {
        int32_t x = v[i];
        uint32_t j = i;
        for (; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
        v[j] = x;
    }
}

/* Epsilon closure of seeds[0..n) (sorted, into c->tmp); returns its size. */
static uint32_t closure(cc *c, const int32_t *seeds, uint32_t n) {
    if (++c->cur_stamp == 0) {
        memset(c->stamp, 0, c->cap_nn * sizeof *c->stamp);
        c->cur_stamp = 1;
    }
    uint32_t sp = 0, k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (c->stamp[seeds[i]] != c->cur_stamp) { c->stamp[seeds[i]] = c->cur_stamp; c->stack[sp++] = seeds[i]; }
    while (sp) {
        int32_t x = c->stack[--sp];
        /* only "important" states identify a DFA state: those with a
         * labelled edge, and the final state (eps-only states add nothing
         * their successors do not already say) */
        if (c->lab_off[x + 1] > c->lab_off[x] || x == c->nfa_final) c->tmp[k++] = x;
        for (uint32_t j = c->eps_off[x]; j < c->eps_off[x + 1]; j++) {
            int32_t y = c->eps_to[j];
            if (c->stamp[y] != c->cur_stamp) { c->stamp[y] = c->cur_stamp; c->stack[sp++] = y; }
        }
    }
    sort_i32(c->tmp, k);
    return k;
}

static uint32_t hash_set(const int32_t *v, uint32_t n) {
    uint64_t h = 1469598103934665603ull ^ n;
    for (uint32_t i = 0; i < n; i++) h = (h ^ (uint32_t)v[i]) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 29));
}

static int rehash(cc *c, uint32_t size) {
    int32_t *s = malloc(size * sizeof *s);
    if (!s) return NUAGE_E_NOMEM;
    for (uint32_t i = 0; i < size; i++) s[i] = -1;
    for (uint32_t i = 0; i < c->n_sets; i++) {
        uint32_t h = hash_set(c->pool + c->set_off[i], c->set_len[i]) & (size - 1);
        while (s[h] >= 0) h = (h + 1) & (size - 1);
        s[h] = (int32_t)i;
    }
    free(c->hslot);
    c->hslot = s;
    c->hmask = size - 1;
    return 0;
}

/* New global DFA state (row of -1); its id in *id. */
static int new_dfa_state(cc *c, int32_t *id) {
    nuage_grammar *g = c->g;
    if (g->n_states >= MAX_DFA_STATES || (uint64_t)(g->n_states + 1) * g->ncls > MAX_TRANS)
        return fail(c, NUAGE_E_UNSUPPORTED, "grammar too large (over %s automaton states)", "262144");
    if (g->n_states + 2 > c->cap_states) {
        uint32_t nc = c->cap_states ? c->cap_states * 2 : 256;
        int32_t *t = realloc(g->trans, (size_t)nc * g->ncls * sizeof *t);
        if (!t) return NUAGE_E_NOMEM;
        g->trans = t;
        uint8_t *fl = realloc(g->flags, nc);
        if (!fl) return NUAGE_E_NOMEM;
        g->flags = fl;
        uint32_t *co = realloc(g->call_off, (nc + 1) * sizeof *co);
        if (!co) return NUAGE_E_NOMEM;
        g->call_off = co;
        uint32_t *to = realloc(g->tedge_off, (nc + 1) * sizeof *to);
        if (!to) return NUAGE_E_NOMEM;
        g->tedge_off = to;
        c->cap_states = nc;
    }
    /* a row of -1 (all bits set); memset, since a store loop through g->
     * reloads n_states and ncls at every entry (they may alias trans) */
    memset(g->trans + (size_t)g->n_states * g->ncls, 0xff, (size_t)g->ncls * sizeof *g->trans);
    g->flags[g->n_states] = 0;
    *id = (int32_t)g->n_states++;
    return 0;
}

/* The local DFA state of the closure in c->tmp[0..k), made if new. */
static int intern(cc *c, uint32_t k, uint32_t base, int32_t *out) {
    uint32_t h = hash_set(c->tmp, k) & c->hmask;
    while (c->hslot[h] >= 0) {
        int32_t i = c->hslot[h];
        if (c->set_len[i] == k && (k == 0 || !memcmp(c->pool + c->set_off[i], c->tmp, k * sizeof *c->tmp))) {
            *out = i;
            return 0;
        }
        h = (h + 1) & c->hmask;
    }
    int rc;
    int32_t gid;
    if ((rc = new_dfa_state(c, &gid))) return rc;
    if ((uint32_t)gid - base != c->n_sets) return NUAGE_E_INVAL;
    if (grow((void **)&c->pool, &c->cap_pool, c->n_pool + k, sizeof *c->pool)) return NUAGE_E_NOMEM;
    if (c->n_sets + 1 > c->cap_sets) {
        uint32_t nc = c->cap_sets ? c->cap_sets * 2 : 64;
        uint32_t *a = realloc(c->set_off, nc * sizeof *a);
        if (!a) return NUAGE_E_NOMEM;
        c->set_off = a;
        uint32_t *b = realloc(c->set_len, nc * sizeof *b);
        if (!b) return NUAGE_E_NOMEM;
        c->set_len = b;
        c->cap_sets = nc;
    }
    if (k) memcpy(c->pool + c->n_pool, c->tmp, k * sizeof *c->tmp);   /* the empty set: pool may be NULL */
    c->set_off[c->n_sets] = c->n_pool;
    c->set_len[c->n_sets] = k;
    c->n_pool += k;
    c->hslot[h] = (int32_t)c->n_sets;
    *out = (int32_t)c->n_sets++;
    if (c->n_sets * 2 > c->hmask && (rc = rehash(c, (c->hmask + 1) * 2))) return rc;
    return 0;
}

static int compile_rule(cc *c, uint32_t r, int32_t nfa_final, int32_t nfa_start) {
    nuage_grammar *g = c->g;
    int rc;
    c->n_sets = 0;
    c->n_pool = 0;
    c->nfa_final = nfa_final;
    if ((rc = rehash(c, 64))) return rc;
    uint32_t base = g->n_states;
    int32_t d0;
    uint32_t k = closure(c, &nfa_start, 1);
    if ((rc = intern(c, k, base, &d0))) return rc;
    g->rule_start[r] = (int32_t)base;
    for (uint32_t d = 0; d < c->n_sets; d++) {
        uint32_t gid = base + d;
        if (grow((void **)&c->bt_off, &c->cap_bt_off, gid + 2, sizeof *c->bt_off)) return NUAGE_E_NOMEM;
        c->bt_off[gid] = c->n_bt;
        g->call_off[gid] = c->n_calls;
        g->tedge_off[gid] = c->n_tedges;
        /* gather labelled edges of the members */
        uint32_t ng = 0;
        bool fin = false;
        for (uint32_t i = 0; i < c->set_len[d]; i++) {
            int32_t m = c->pool[c->set_off[d] + i];
            if (m == nfa_final) fin = true;
            uint32_t a = c->lab_off[m], z = c->lab_off[m + 1];
            if (z == a) continue;
            if (grow((void **)&c->gath, &c->cap_gath, ng + (z - a), sizeof *c->gath)) return NUAGE_E_NOMEM;
            memcpy(c->gath + ng, c->lab + a, (z - a) * sizeof *c->lab);
            ng += z - a;
        }
        if (fin) g->flags[gid] |= NCG_S_FINAL;
        c->work += (uint64_t)g->ncls * ng + c->set_len[d];
        if (c->work > MAX_WORK)
            return fail(c, NUAGE_E_UNSUPPORTED, "grammar too large (its automaton grows too fast%s)", "; a rule may need too many states");
        /* byte classes; classes reaching the same edges share one closure
         * (edge subsets as bit masks when there are at most 64 edges) */
        uint64_t usig[256], sigs[256], touched[4] = {0, 0, 0, 0};
        int32_t utgt[256];
        uint32_t nu = 0;
        if (ng <= 64) {   /* class -> subset of edges, from each set's class bitmap */
            memset(sigs, 0, g->ncls * sizeof *sigs);
            for (uint32_t i = 0; i < ng; i++) {
                if (c->gath[i].kind != L_SET) continue;
                const uint64_t *cb = c->setcls[c->gath[i].label];
                for (int w = 0; w < 4; w++) {
                    touched[w] |= cb[w];
                    for (uint64_t bits = cb[w]; bits; bits &= bits - 1) sigs[w * 64 + __builtin_ctzll(bits)] |= 1ull << i;
                }
            }
        } else
            for (uint32_t cl = 0; cl < g->ncls; cl++) touched[cl >> 6] |= 1ull << (cl & 63);
        /* only the classes some edge takes, in increasing order */
        for (uint32_t w = 0, cl = 0; w < 4; w++)
          for (uint64_t tb = touched[w]; tb; tb &= tb - 1) {
            cl = w * 64 + (uint32_t)__builtin_ctzll(tb);
            uint32_t ns = 0;
            uint64_t sig = 0;
            int32_t t = -1;
            if (ng <= 64) {
                sig = sigs[cl];
                if (!sig) continue;
                for (uint32_t u = 0; u < nu; u++)
                    if (usig[u] == sig) { t = utgt[u]; break; }
                if (t < 0)
                    for (uint64_t bits = sig; bits; bits &= bits - 1) c->stack[ns++] = c->gath[__builtin_ctzll(bits)].to;
            } else {
                uint8_t rb = c->rep[cl];
                for (uint32_t i = 0; i < ng; i++) {
                    const lab_e *e = &c->gath[i];
                    if (e->kind == L_SET && (c->b->sets[e->label][rb >> 3] >> (rb & 7) & 1)) c->stack[ns++] = e->to;
                }
                if (!ns) continue;
            }
            bool fresh = t < 0;
            if (fresh) {
                memcpy(c->tmp, c->stack, ns * sizeof *c->tmp);
                k = closure(c, c->tmp, ns);
                if ((rc = intern(c, k, base, &t))) return rc;
                if (ng <= 64) { usig[nu] = sig; utgt[nu++] = t; }
            }
            g->trans[(size_t)gid * g->ncls + cl] = (int32_t)base + t;
            bool dup = !fresh;   /* a known edge subset: its target is listed */
            for (uint32_t q = c->bt_off[gid]; q < c->n_bt && !dup; q++) dup = c->bt[q] == (int32_t)base + t;
            if (!dup) {
                if (grow((void **)&c->bt, &c->cap_bt, c->n_bt + 1, sizeof *c->bt)) return NUAGE_E_NOMEM;
                c->bt[c->n_bt++] = (int32_t)base + t;
            }
          }
        /* calls and tokens, grouped by label where adjacent in (member,
         * kind, label) order (a state with byte edges only needs no sort) */
        bool labelled = false;
        for (uint32_t i = 0; i < ng && !labelled; i++) labelled = c->gath[i].kind != L_SET;
        if (!labelled) ng = 0;
        else if (ng > 64) qsort(c->gath, ng, sizeof *c->gath, cmp_lab);
        else   /* members have distinct sources: no ties, any sort gives this order */
            for (uint32_t i = 1; i < ng; i++) {
                lab_e e = c->gath[i];
                uint32_t j = i;
                for (; j > 0 && cmp_lab(&c->gath[j - 1], &e) > 0; j--) c->gath[j] = c->gath[j - 1];
                c->gath[j] = e;
            }
        for (uint32_t i = 0; i < ng;) {
            const lab_e *e = &c->gath[i];
            uint32_t j = i, ns = 0;
            while (j < ng && c->gath[j].kind == e->kind && c->gath[j].label == e->label) c->stack[ns++] = c->gath[j++].to;
            if (e->kind != L_SET) {
                memcpy(c->tmp, c->stack, ns * sizeof *c->tmp);
                k = closure(c, c->tmp, ns);
                int32_t t;
                if ((rc = intern(c, k, base, &t))) return rc;
                if (e->kind == L_CALL) {
                    if (grow((void **)&g->calls, &c->cap_calls, c->n_calls + 1, sizeof *g->calls)) return NUAGE_E_NOMEM;
                    g->calls[c->n_calls++] = (ncg_call){e->label, (int32_t)base + t};
                } else {
                    if (grow((void **)&g->tedges, &c->cap_tedges, c->n_tedges + 1, sizeof *g->tedges)) return NUAGE_E_NOMEM;
                    g->tedges[c->n_tedges++] = (ncg_tedge){e->label, (int32_t)base + t};
                }
            }
            i = j;
        }
    }
    c->bt_off[g->n_states] = c->n_bt;
    (void)r;
    return 0;
}

/* ---- analysis ---- */

#define TR(g, s, k) ((g)->trans[(size_t)(s) * (g)->ncls + (k)])

/* Liveness by a backward worklist: a state is live when final or when an
 * edge leads to a live state (a call edge only once its rule is
 * productive, i.e. its start state is live). Then edges into dead states
 * and calls of unproductive rules are marked -1 for compact_edges. */
static int prune_dead(cc *c) {
    nuage_grammar *g = c->g;
    uint32_t n = g->n_states, ne = 0;
    const uint32_t *bo = c->bt_off;
    int32_t *bt = c->bt;
    int rc = NUAGE_E_NOMEM;
    uint8_t *live = calloc(n ? n : 1, 1), *prod = calloc(g->n_rules, 1);
    uint32_t *off = calloc((size_t)n + 1, sizeof *off), *pend_off = calloc((size_t)g->n_rules + 1, sizeof *pend_off);
    int32_t *start_rule = malloc((n ? n : 1) * sizeof *start_rule);
    ncg_call *pred = NULL;    /* (gate rule or -1, predecessor) per target */
    int32_t *pend = NULL, *work = NULL;
    if (!live || !prod || !off || !pend_off || !start_rule) goto out;
    for (uint32_t s = 0; s < n; s++) start_rule[s] = -1;
    for (uint32_t r = 0; r < g->n_rules; r++) if (g->rule_start[r] >= 0) start_rule[g->rule_start[r]] = (int32_t)r;
    for (uint32_t s = 0; s < n; s++) {
        for (uint32_t k = bo[s]; k < bo[s + 1]; k++) { off[bt[k] + 1]++; ne++; }
        for (uint32_t j = g->tedge_off[s]; j < g->tedge_off[s + 1]; j++) { off[g->tedges[j].to + 1]++; ne++; }
        for (uint32_t j = g->call_off[s]; j < g->call_off[s + 1]; j++) { off[g->calls[j].ret + 1]++; ne++; }
    }
    for (uint32_t s = 0; s < n; s++) off[s + 1] += off[s];
    pred = malloc((ne ? ne : 1) * sizeof *pred);
    pend = malloc((ne ? ne : 1) * sizeof *pend);
    work = malloc((n ? n : 1) * sizeof *work);
    uint32_t *pos = malloc(((size_t)n + 1) * sizeof *pos);
    if (!pred || !pend || !work || !pos) { free(pos); goto out; }
    memcpy(pos, off, ((size_t)n + 1) * sizeof *pos);
    for (uint32_t s = 0; s < n; s++) {
        for (uint32_t k = bo[s]; k < bo[s + 1]; k++) pred[pos[bt[k]]++] = (ncg_call){-1, (int32_t)s};
        for (uint32_t j = g->tedge_off[s]; j < g->tedge_off[s + 1]; j++) pred[pos[g->tedges[j].to]++] = (ncg_call){-1, (int32_t)s};
        for (uint32_t j = g->call_off[s]; j < g->call_off[s + 1]; j++)
            pred[pos[g->calls[j].ret]++] = (ncg_call){g->calls[j].rule, (int32_t)s};
    }
    free(pos);
    /* pending call edges per rule, as linked lists through pend (next index) */
    int32_t *phead = malloc((g->n_rules ? g->n_rules : 1) * sizeof *phead), *pstate = malloc((ne ? ne : 1) * sizeof *pstate);
    if (!phead || !pstate) { free(phead); free(pstate); goto out; }
    for (uint32_t r = 0; r < g->n_rules; r++) phead[r] = -1;
    uint32_t sp = 0, np = 0;
    for (uint32_t s = 0; s < n; s++) if (g->flags[s] & NCG_S_FINAL) { live[s] = 1; work[sp++] = (int32_t)s; }
    while (sp) {
        int32_t t = work[--sp];
        int32_t r = start_rule[t];
        if (r >= 0 && !prod[r]) {   /* rule r became productive: release its pending callers */
            prod[r] = 1;
            for (int32_t q = phead[r]; q >= 0; q = pend[q])
                if (!live[pstate[q]]) { live[pstate[q]] = 1; work[sp++] = pstate[q]; }
        }
        for (uint32_t j = off[t]; j < off[t + 1]; j++) {
            int32_t sidx = pred[j].ret, gate = pred[j].rule;
            if (live[sidx]) continue;
            if (gate >= 0 && !prod[gate]) { pstate[np] = sidx; pend[np] = phead[gate]; phead[gate] = (int32_t)np++; continue; }
            live[sidx] = 1;
            work[sp++] = sidx;
        }
    }
    free(phead);
    free(pstate);
    uint32_t w = 0;
    for (uint32_t s = 0; s < n; s++) {
        bool dead = false;
        uint32_t a = bo[s], z = bo[s + 1];
        c->bt_off[s] = w;
        for (uint32_t k = a; k < z; k++) {
            if (live[bt[k]]) bt[w++] = bt[k];
            else dead = true;
        }
        for (uint32_t k = 0; k < g->ncls && dead; k++)
            if (TR(g, s, k) >= 0 && !live[TR(g, s, k)]) TR(g, s, k) = -1;
        for (uint32_t j = g->tedge_off[s]; j < g->tedge_off[s + 1]; j++)
            if (!live[g->tedges[j].to]) g->tedges[j].to = -1;
        for (uint32_t j = g->call_off[s]; j < g->call_off[s + 1]; j++)
            if (!prod[g->calls[j].rule] || !live[g->calls[j].ret]) g->calls[j].ret = -1;
    }
    c->bt_off[n] = w;
    rc = 0;
out:
    free(live); free(prod); free(off); free(pend_off); free(start_rule); free(pred); free(pend); free(work);
    return rc;
}

/* Drop edges marked with a -1 target, compacting the CSR arrays. */
static void compact_edges(nuage_grammar *g) {
    uint32_t w = 0, n = g->n_states;
    for (uint32_t s = 0; s < n; s++) {
        uint32_t a = g->call_off[s], z = g->call_off[s + 1];
        g->call_off[s] = w;
        for (uint32_t j = a; j < z; j++) if (g->calls[j].ret >= 0) g->calls[w++] = g->calls[j];
    }
    g->call_off[n] = w;
    w = 0;
    for (uint32_t s = 0; s < n; s++) {
        uint32_t a = g->tedge_off[s], z = g->tedge_off[s + 1];
        g->tedge_off[s] = w;
        for (uint32_t j = a; j < z; j++) if (g->tedges[j].to >= 0) g->tedges[w++] = g->tedges[j];
    }
    g->tedge_off[n] = w;
}

/* E(s) for every state under the nullable set (only for the states with
 * only[s] set when only is not NULL: while computing nullability just the
 * start states matter); returns 0 or NOMEM. mark holds visit stamps,
 * *stamp the last one used (stamps only grow, so marks left by an
 * earlier call never match). */
static int compute_eps(nuage_grammar *g, const uint8_t *nullable, int32_t *work, uint32_t *mark, uint32_t *stamp,
                       const int32_t *only) {
    uint32_t n = g->n_states, cnt = 0, cap = 0;
    int32_t *out = NULL;
    uint32_t *off = malloc((n + 1) * sizeof *off);
    if (!off) return NUAGE_E_NOMEM;
    for (uint32_t s = 0; s < n; s++) {
        off[s] = cnt;
        if (only && only[s] < 0) continue;
        uint32_t sp = 0, st = ++*stamp;
        mark[s] = st;
        work[sp++] = (int32_t)s;
        while (sp) {
            int32_t x = work[--sp];
            for (uint32_t j = g->call_off[x]; j < g->call_off[x + 1]; j++) {
                int32_t y = g->calls[j].ret;
                if (!nullable[g->calls[j].rule] || mark[y] == st) continue;
                mark[y] = st;
                work[sp++] = y;
                if (grow((void **)&out, &cap, cnt + 1, sizeof *out)) { free(off); free(out); return NUAGE_E_NOMEM; }
                out[cnt++] = y;
            }
        }
    }
    off[n] = cnt;
    free(g->eps_off);
    free(g->eps);
    g->eps_off = off;
    g->eps = out;
    return 0;
}

static bool final_in_e(const nuage_grammar *g, int32_t s) {
    if (g->flags[s] & NCG_S_FINAL) return true;
    for (uint32_t j = g->eps_off[s]; j < g->eps_off[s + 1]; j++)
        if (g->flags[g->eps[j]] & NCG_S_FINAL) return true;
    return false;
}

/* Left-recursion check and first sets, by DFS over "calls at the start". */
static int first_dfs(cc *c, uint32_t r, uint8_t *color, uint32_t *depth) {
    nuage_grammar *g = c->g;
    color[r] = 1;
    depth[r] = 1;
    int32_t s0 = g->rule_start[r];
    for (uint32_t i = 0; i <= g->eps_off[s0 + 1] - g->eps_off[s0]; i++) {
        int32_t t = i == 0 ? s0 : g->eps[g->eps_off[s0] + i - 1];
        for (uint32_t k = 0; k < g->ncls; k++)
            if (TR(g, t, k) >= 0) g->first[r][k >> 6] |= 1ull << (k & 63);
        if (g->tedge_off[t + 1] > g->tedge_off[t]) g->rule_tokfirst[r] = 1;
        for (uint32_t j = g->call_off[t]; j < g->call_off[t + 1]; j++) {
            uint32_t q = (uint32_t)g->calls[j].rule;
            if (color[q] == 1)
                return fail(c, NUAGE_E_INVAL, "left recursion through rule '%s' is not supported", ncg_rule_name(c->b, (ncg_rule)q));
            if (color[q] == 0) {
                int rc = first_dfs(c, q, color, depth);
                if (rc) return rc;
            }
            for (int w = 0; w < 4; w++) g->first[r][w] |= g->first[q][w];
            g->rule_tokfirst[r] |= g->rule_tokfirst[q];
            if (depth[q] + 1 > depth[r]) depth[r] = depth[q] + 1;
        }
    }
    if (depth[r] > NCG_MAX_CALL_DEPTH)
        return fail(c, NUAGE_E_UNSUPPORTED, "rules nest too deeply before consuming input (at '%s')", ncg_rule_name(c->b, (ncg_rule)r));
    color[r] = 2;
    return 0;
}

static int analyse(cc *c) {
    nuage_grammar *g = c->g;
    uint32_t n = g->n_states;
    int rc = NUAGE_E_NOMEM;
    g->call_off[n] = c->n_calls;
    g->tedge_off[n] = c->n_tedges;
    if ((rc = prune_dead(c))) return rc;
    compact_edges(g);
    rc = NUAGE_E_NOMEM;
    uint8_t *nullable = calloc(g->n_rules, 1), *color = calloc(g->n_rules, 1);
    uint32_t *depth = calloc(g->n_rules, sizeof *depth), *mark = calloc(n + 1, sizeof *mark);
    int32_t *work = malloc((n + 1) * sizeof *work);
    g->first = calloc(g->n_rules, sizeof *g->first);
    g->rule_tokfirst = calloc(g->n_rules, 1);
    if (!nullable || !color || !depth || !mark || !work || !g->first || !g->rule_tokfirst) goto out;
    uint32_t stamp = 0;
    int32_t *is_start = malloc((n + 1) * sizeof *is_start);
    if (!is_start) goto out;
    for (uint32_t s = 0; s < n; s++) is_start[s] = -1;
    for (uint32_t r = 0; r < g->n_rules; r++)
        if (g->rule_start[r] >= 0) is_start[g->rule_start[r]] = (int32_t)r;
    for (bool changed = true; changed;) {
        changed = false;
        if ((rc = compute_eps(g, nullable, work, mark, &stamp, is_start))) { free(is_start); goto out; }
        for (uint32_t r = 0; r < g->n_rules; r++)
            if (g->rule_start[r] >= 0 && !nullable[r] && final_in_e(g, g->rule_start[r])) nullable[r] = 1, changed = true;
    }
    free(is_start);
    if ((rc = compute_eps(g, nullable, work, mark, &stamp, NULL))) goto out;
    for (uint32_t r = 0; r < g->n_rules; r++)
        if (g->rule_start[r] >= 0 && !color[r] && (rc = first_dfs(c, r, color, depth))) goto out;
    /* calls of rules that cannot consume anything are covered by E */
    for (uint32_t s = 0; s < n; s++)
        for (uint32_t j = g->call_off[s]; j < g->call_off[s + 1]; j++) {
            uint32_t q = (uint32_t)g->calls[j].rule;
            bool consumes = g->rule_tokfirst[q] || g->first[q][0] || g->first[q][1] || g->first[q][2] || g->first[q][3];
            if (!consumes) g->calls[j].ret = -1;
        }
    compact_edges(g);
    for (uint32_t s = 0; s < n; s++) {
        bool moves = g->call_off[s + 1] > g->call_off[s] || g->tedge_off[s + 1] > g->tedge_off[s];
        moves = moves || c->bt_off[s + 1] > c->bt_off[s];
        if (moves) g->flags[s] |= NCG_S_MOVES;
        else if (g->flags[s] & NCG_S_FINAL) g->flags[s] |= NCG_S_TAIL;
        if (g->call_off[s + 1] == g->call_off[s]) g->flags[s] |= NCG_S_NOCALL;
        if (!(g->flags[s] & NCG_S_FINAL) && g->eps_off[s + 1] == g->eps_off[s]) g->flags[s] |= NCG_S_SIMPLE;
    }
    rc = 0;
out:
    free(nullable); free(color); free(depth); free(mark); free(work);
    return rc;
}

/* ---- driver ---- */

/* Byte classes from the byte sets that reachable nodes use (seen), each
 * distinct set once (front ends repeat the same sets many times). */
static int byte_classes(cc *c, const uint8_t *seen) {
    nuage_grammar *g = c->g;
    const ncg_builder *b = c->b;
    uint32_t n = 1, nslot = 64;
    while (nslot < 2 * b->n_sets) nslot *= 2;
    int32_t *slot = malloc(nslot * sizeof *slot);
    uint8_t *used = calloc(b->n_sets ? b->n_sets : 1, 1);
    if (!slot || !used) { free(slot); free(used); return NUAGE_E_NOMEM; }
    for (uint32_t i = 0; i < nslot; i++) slot[i] = -1;
    for (uint32_t e = 0; e < b->n_nodes; e++) {
        if (!seen[e] || b->nodes[e].kind != NCG_N_SET) continue;
        uint32_t si = (uint32_t)b->nodes[e].a;
        if (used[si]) continue;
        used[si] = 1;
        uint64_t h = 1469598103934665603ull;
        for (int k = 0; k < 32; k++) h = (h ^ b->sets[si][k]) * 1099511628211ull;
        uint32_t q = (uint32_t)(h ^ h >> 32) & (nslot - 1);
        for (; slot[q] >= 0; q = (q + 1) & (nslot - 1))
            if (!memcmp(b->sets[slot[q]], b->sets[si], 32)) break;
        if (slot[q] < 0) slot[q] = (int32_t)si;
        else used[si] = 2;   /* a repeat: refines nothing new */
    }
    memset(g->cls, 0, sizeof g->cls);
    int16_t map[256][2];
    for (uint32_t s = 0; s < b->n_sets && n < 256; s++) {
        if (used[s] != 1) continue;
        for (uint32_t k = 0; k < n; k++) map[k][0] = map[k][1] = -1;
        uint32_t m = 0;
        for (int x = 0; x < 256; x++) {
            int in = b->sets[s][x >> 3] >> (x & 7) & 1;
            if (map[g->cls[x]][in] < 0) map[g->cls[x]][in] = (int16_t)m++;
            g->cls[x] = (uint8_t)map[g->cls[x]][in];
        }
        n = m;
    }
    g->ncls = n;
    for (int x = 255; x >= 0; x--) c->rep[g->cls[x]] = (uint8_t)x;
    free(slot);
    c->set_used = used;
    return 0;
}

static int set_classes(cc *c) {
    c->setcls = calloc(c->b->n_sets ? c->b->n_sets : 1, sizeof *c->setcls);
    if (!c->setcls) return NUAGE_E_NOMEM;
    for (uint32_t s = 0; s < c->b->n_sets; s++)
        for (uint32_t k = 0; k < c->g->ncls && c->set_used[s]; k++) {
            uint8_t rb = c->rep[k];
            if (c->b->sets[s][rb >> 3] >> (rb & 7) & 1) c->setcls[s][k >> 6] |= 1ull << (k & 63);
        }
    return 0;
}

/* Rules reachable from start (through references); marks in reach. */
static int reachable(cc *c, ncg_rule start, uint8_t *reach, uint8_t **seen_out) {
    ncg_builder *b = c->b;
    uint8_t *seen = calloc(b->n_nodes ? b->n_nodes : 1, 1);
    /* a shared node can be pushed once per parent edge before it is seen */
    int32_t *st = malloc(((size_t)b->n_nodes + b->n_kids + b->n_rules + 1) * sizeof *st);
    if (!seen || !st) { free(seen); free(st); return NUAGE_E_NOMEM; }
    int rc = 0;
    uint32_t sp = 0;
    reach[start] = 1;
    if (b->rules[start].body < 0) { rc = fail(c, NUAGE_E_INVAL, "rule '%s' has no body", b->rules[start].name); goto out; }
#define PUSH(e) do { if (!seen[e]) { seen[e] = 1; st[sp++] = (e); } } while (0)
    PUSH(b->rules[start].body);
    while (sp) {
        int32_t e = st[--sp];
        const ncg_node *nd = &b->nodes[e];
        if (nd->kind == NCG_N_SEQ || nd->kind == NCG_N_ALT)
            for (uint32_t i = 0; i < nd->b; i++) PUSH(b->kids[nd->a + (int32_t)i]);
        else if (nd->kind == NCG_N_REP) PUSH(nd->a);
        else if (nd->kind == NCG_N_REF && !reach[nd->a]) {
            reach[nd->a] = 1;
            if (b->rules[nd->a].body < 0) { rc = fail(c, NUAGE_E_INVAL, "rule '%s' has no body", b->rules[nd->a].name); goto out; }
            PUSH(b->rules[nd->a].body);
        }
    }
#undef PUSH
out:
    if (rc == 0) *seen_out = seen;
    else free(seen);
    free(st);
    return rc;
}

static void free_cc(cc *c) {
    free(c->eps); free(c->lab); free(c->lab_s); free(c->eps_off); free(c->lab_off); free(c->eps_to);
    free(c->stamp); free(c->stack); free(c->tmp); free(c->pool); free(c->set_off); free(c->set_len);
    free(c->hslot); free(c->gath); free(c->setcls); free(c->bt_off); free(c->bt); free(c->set_used);
}

void ncg_grammar_destroy(nuage_grammar *g);

int ncg_builder_finish(ncg_builder *b, ncg_rule start, const nuage_cg_tokens *t, nuage_grammar **out,
                       nuage_cg_error *err) {
    if (err) err->msg[0] = err->pointer[0] = 0;
    if (!b || !t || !out) return NUAGE_E_INVAL;
    *out = NULL;
    cc c = {.b = b, .err = err};
    if (b->err) return fail(&c, b->err, "out of memory while building the grammar%s", NULL);
    if (start < 0 || (uint32_t)start >= b->n_rules) return fail(&c, NUAGE_E_INVAL, "no start rule%s", NULL);
    nuage_grammar *g = calloc(1, sizeof *g);
    if (!g) return NUAGE_E_NOMEM;
    atomic_init(&g->refs, 1);
    g->t = t;
    pthread_mutex_init(&g->lock, NULL);
    c.g = g;
    int rc = NUAGE_E_NOMEM;
    uint8_t *reach = calloc(b->n_rules, 1), *seen = NULL;
    if (!reach) goto fail;
    if ((rc = reachable(&c, start, reach, &seen))) goto fail;
    rc = byte_classes(&c, seen);
    free(seen);
    if (rc) goto fail;
    rc = NUAGE_E_NOMEM;
    g->n_rules = b->n_rules;
    g->rule_start = malloc(g->n_rules * sizeof *g->rule_start);
    if (!g->rule_start) goto fail;
    for (uint32_t r = 0; r < g->n_rules; r++) g->rule_start[r] = -1;
    if ((rc = set_classes(&c))) goto fail;
    for (uint32_t r = 0; r < g->n_rules; r++) {
        if (!reach[r]) continue;
        c.nn = c.n_eps = c.n_lab = 0;
        int32_t s, f;
        if ((rc = build(&c, b->rules[r].body, 0, &s, &f))) goto fail;
        if ((rc = nfa_csr(&c))) goto fail;
        if ((rc = compile_rule(&c, r, f, s))) goto fail;
    }
    if ((rc = analyse(&c))) goto fail;
    g->start = g->rule_start[start];
    g->cache = calloc(g->n_states ? g->n_states : 1, sizeof *g->cache);
    g->slice_r = malloc((g->n_states ? g->n_states : 1) * sizeof *g->slice_r);
    if (!g->cache || !g->slice_r) { rc = NUAGE_E_NOMEM; goto fail; }
    for (uint32_t s = 0; s < g->n_states; s++) g->slice_r[s] = NCG_R_UNKNOWN;
    free(reach);
    free_cc(&c);
    *out = g;
    return 0;
fail:
    if (rc == NUAGE_E_NOMEM && err && !err->msg[0]) snprintf(err->msg, sizeof err->msg, "out of memory");
    free(reach);
    free_cc(&c);
    ncg_grammar_destroy(g);
    return rc;
}

void ncg_grammar_destroy(nuage_grammar *g) {
    if (!g) return;
    ncg_cache_free(g);
    free(g->cache);
    free(g->slice_r);
    free(g->trans); free(g->flags); free(g->call_off); free(g->calls); free(g->tedge_off); free(g->tedges);
    free(g->eps_off); free(g->eps); free(g->rule_start); free(g->first); free(g->rule_tokfirst); free(g->toksym);
    pthread_mutex_destroy(&g->lock);
    free(g);
}
