/*
 * mask.c - token masks: which tokens may come next.
 *
 * Design. The token trie (tokens.c) is walked depth first from the
 * matcher's current set: each trie node's set is the step of its parent's
 * set over the node's byte; an empty set skips the whole subtree; a
 * non-empty set at a node allows the tokens ending there. Stack nodes made
 * during the walk live above the matcher's arena mark and are truncated
 * when the walk backs up, so a mask leaves the matcher as it was. Named
 * tokens (ncg_token) are tried one by one; end-of-generation tokens are
 * allowed exactly when the set is accepting.
 */
#include <stdlib.h>
#include <string.h>

#include "constrain/cg_internal.h"
#include "constrain/matcher_internal.h"
#include "nuage/nuage.h"

void ncg_cache_free(nuage_grammar *g) { (void)g; }

static int ensure_levels(nuage_matcher *m, uint32_t n) {
    if (m->n_lv >= n) return 0;
    ncg_set *lv = realloc(m->lv, n * sizeof *lv);
    if (!lv) return NUAGE_E_NOMEM;
    memset(lv + m->n_lv, 0, (n - m->n_lv) * sizeof *lv);
    m->lv = lv;
    uint32_t *w = realloc(m->lwm, n * sizeof *w);
    if (!w) return NUAGE_E_NOMEM;
    m->lwm = w;
    m->n_lv = n;
    return 0;
}

int nuage_matcher_fill_mask(nuage_matcher *m, uint32_t *mask) {
    if (!m || !mask) return NUAGE_E_INVAL;
    const nuage_grammar *g = m->g;
    const nuage_cg_tokens *t = g->t;
    memset(mask, 0, nuage_cg_mask_words(t) * sizeof *mask);
    uint32_t n0;
    bool term;
    const ncg_cfg *c0 = ncg_matcher_top(m, &n0, &term);
    if (term) return 0;
    int rc = ensure_levels(m, t->max_depth + 1);
    if (rc) return rc;
    uint32_t base = m->a.len;
    m->lwm[0] = base;
    for (uint32_t i = 0; i < t->n_nodes;) {
        uint32_t d = t->depth[i];
        const ncg_cfg *in = d == 1 ? c0 : m->lv[d - 1].c;
        uint32_t nin = d == 1 ? n0 : m->lv[d - 1].n;
        m->a.len = m->lwm[d - 1];
        if ((rc = ncg_step(g, &m->a, in, nin, t->byte[i], &m->lv[d]))) break;
        if (!m->lv[d].n) { i = t->end[i]; continue; }
        m->lwm[d] = m->a.len;
        for (uint32_t k = t->tok_off[i]; k < t->tok_off[i + 1]; k++) {
            int32_t id = t->toks[k];
            mask[id >> 5] |= 1u << (id & 31);
        }
        i++;
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
