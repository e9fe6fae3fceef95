/*
 * sched_think.c - finding the reasoning markers of a model's vocabulary
 * for the scheduler's thinking budget (sched.h: think_start, think_end).
 *
 * Reasoning models (Qwen3, DeepSeek-R1 distills, ...) have "<think>" and
 * "</think>" as single tokens in their vocabulary; the budget forces
 * "</think>" followed by the newline token, which is what these models
 * write themselves before the answer. A model without both markers
 * cannot have a budget (NUAGE_E_RANGE): the caller then serves the
 * request without one.
 */
#include "runtime/sched.h"

#include "nuage/tokenizer.h"

int nuage_sched_think_markers(const struct nuage_vocab *v, nuage_sched_request *r) {
    if (!v || !r) return NUAGE_E_INVAL;
    int32_t open = nuage_vocab_find(v, "<think>");
    int32_t close = nuage_vocab_find(v, "</think>");
    if (open < 0 || close < 0) return NUAGE_E_RANGE;
    r->think_start = open;
    r->think_end[0] = close;
    r->n_think_end = 1;
    int32_t nl = nuage_vocab_nl(v);
    if (nl >= 0) r->think_end[r->n_think_end++] = nl;
    return 0;
}
