/*
 * matcher_internal.h - the matcher's fields, shared by matcher.c (steps,
 * history, rollback) and mask.c (mask computation).
 */
#ifndef NUAGE_CONSTRAIN_MATCHER_INTERNAL_H
#define NUAGE_CONSTRAIN_MATCHER_INTERNAL_H

#include "constrain/cg_internal.h"

typedef struct mstep { uint32_t off, n, wm; uint8_t term; } mstep;

struct nuage_matcher {
    nuage_grammar *g;          /* retained */
    ncg_arena a;               /* stack nodes */
    ncg_cfg *hist;             /* closed sets of all steps, back to back */
    uint32_t cap_hist;
    mstep *steps;              /* steps[0]: the start; last: the current set */
    uint32_t n_steps, cap_steps;
    ncg_set tmp[3];            /* scratch for steps */
    ncg_set *lv;               /* mask walk: one set per trie depth */
    uint32_t *lwm;             /* mask walk: arena length per depth */
    uint32_t n_lv;
    int32_t *fst, *fpar;       /* mask walk, fast levels: the one configuration (state, parent) */
    uint8_t *ffast;            /* level d is fast (fst/fpar) rather than the set lv[d] */
};

/* The current closed set (n configurations); *term: EOG accepted. */
const ncg_cfg *ncg_matcher_top(const nuage_matcher *m, uint32_t *n, bool *term);

#endif
