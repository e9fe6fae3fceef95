/*
 * cg_internal.h - the shapes shared by the constrained-decoding engine's
 * files (builder.c, compile.c, tokens.c, matcher.c, mask.c, api.c).
 *
 * The compiled grammar is a recursive transition network: every rule is a
 * DFA over byte classes, with two more kinds of edges: call edges (enter
 * rule R; when R reaches a final state, continue at the return state) and
 * token edges (one named vocabulary token). All DFA states of all rules
 * share one global numbering, so a parse position is a pair (state,
 * parent) where parent is a node (return state, its parent) of a
 * persistent, hash-consed stack held in an arena (ncg_arena).
 */
#ifndef NUAGE_CONSTRAIN_CG_INTERNAL_H
#define NUAGE_CONSTRAIN_CG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "constrain/grammar.h"

/* ---- builder (builder.c) ---- */
enum { NCG_N_EMPTY, NCG_N_NOTHING, NCG_N_SET, NCG_N_SEQ, NCG_N_ALT, NCG_N_REP, NCG_N_REF, NCG_N_TOK };

typedef struct ncg_node {
    uint8_t kind;
    int32_t a;      /* SET: set index; SEQ/ALT: first kid; REP: child; REF: rule; TOK: token */
    uint32_t b, c;  /* SEQ/ALT: b = number of kids; REP: b = min, c = max */
} ncg_node;

typedef struct ncg_rule_def {
    char *name;
    ncg_expr body;  /* -1 until set */
} ncg_rule_def;

struct ncg_builder {
    ncg_node *nodes;
    uint32_t n_nodes, cap_nodes;
    int32_t *kids;
    uint32_t n_kids, cap_kids;
    uint8_t (*sets)[32];
    uint32_t n_sets, cap_sets;
    int32_t single[256];    /* node of the one-byte set of each byte, -1 = none yet */
    int32_t *set_slot;      /* byte sets hash-consed: node + 1 per slot, 0 = empty */
    uint32_t set_nslot;
    ncg_rule_def *rules;
    uint32_t n_rules, cap_rules;
    int err;                /* first allocation failure, sticky */
};

/* ---- token table (tokens.c) ---- */
struct nuage_cg_tokens {
    const nuage_vocab *v;
    int32_t n_vocab;
    /* the trie, nodes in depth-first preorder (the root is implicit) */
    uint32_t n_nodes;
    uint8_t *byte;          /* byte on the edge into node i */
    uint16_t *depth;        /* 1 for children of the root */
    uint32_t *end;          /* one past the last node of i's subtree */
    uint32_t *tok_off;      /* tokens ending at node i: toks[tok_off[i] .. tok_off[i+1]) */
    int32_t *toks;
    uint32_t max_depth;
    /* per token: its bytes (pieces[piece_off[t] .. piece_off[t+1]]) and whether byte matching applies */
    uint32_t *piece_off;
    uint8_t *pieces;
    uint8_t *in_trie;
    uint32_t *parent;       /* parent node of i, UINT32_MAX for depth 1 */
    /* The string slice: tokens made only of printable ASCII other than '"'
     * and '\\' and of well-formed UTF-8 (a final sequence may be cut
     * short). A state that loops on all of these (JSON string content)
     * accepts them all; only the frontier subtrees need walking. */
    uint32_t slice_max;     /* most characters in a slice token */
    uint32_t *slice_cum;    /* (slice_max + 1) masks: slice tokens of at most k characters
                             * (a cut-short final sequence counts as one) */
    uint32_t *frontier;     /* first nodes off the slice, preorder */
    uint8_t *frontier_k;    /* bytes of an unfinished UTF-8 sequence before it */
    uint8_t *frontier_c;    /* complete characters before those */
    uint32_t n_frontier;
    /* skipc[i]: when node i is in the slice and so is its whole subtree,
     * the most characters of a token in that subtree; 255 otherwise. A
     * walk that knows every slice token of at most k characters is
     * accepted skips the subtrees with skipc <= k. */
    uint8_t *skipc;
    int32_t *eog;
    uint32_t n_eog;
};

/* A token table from byte strings (tests, fuzzing): token i is pieces[i]
 * (lens[i] bytes); kinds[i]: 0 normal, 1 control, 2 control and
 * end-of-generation. 0 and *out (nuage_cg_tokens_free), or NUAGE_E_*. */
int ncg_tokens_from_strings(const char *const *pieces, const size_t *lens, const uint8_t *kinds, int32_t n,
                            nuage_cg_tokens **out);

/* tokens.c: bytes of the string slice outside UTF-8 sequences; the
 * length of the sequence a lead byte starts (0: not a lead byte) and the
 * range of the byte after it. */
bool ncg_slice_ascii(uint8_t b);
void ncg_utf8_lead(uint8_t b, int *len, uint8_t *lo, uint8_t *hi);

/* ---- compiled grammar (compile.c) ---- */
/* FINAL: the rule may end here. TAIL: final without edges. MOVES: has an
 * edge. NOCALL: no call edges. SIMPLE: not final, E(s) empty: entering s
 * over a byte needs no closure (the matcher's fast path). */
enum { NCG_S_FINAL = 1, NCG_S_TAIL = 2, NCG_S_MOVES = 4, NCG_S_NOCALL = 8, NCG_S_SIMPLE = 16 };

typedef struct ncg_call { int32_t rule, ret; } ncg_call;
typedef struct ncg_tedge { int32_t sym, to; } ncg_tedge; /* sym: index into toksym */

typedef struct ncg_cache_entry ncg_cache_entry;

struct nuage_grammar {
    atomic_int refs;
    const nuage_cg_tokens *t;
    uint32_t n_states, ncls;
    uint8_t cls[256];           /* byte -> class */
    int32_t *trans;             /* n_states * ncls, -1 = none */
    uint8_t *flags;             /* NCG_S_* */
    uint32_t *call_off;         /* calls[call_off[s] .. call_off[s+1]) */
    ncg_call *calls;
    uint32_t *tedge_off;
    ncg_tedge *tedges;
    uint32_t *eps_off;          /* E(s) \ {s}: states of s's frame reached through nullable calls */
    int32_t *eps;
    uint32_t n_rules;
    int32_t *rule_start;        /* -1: rule not compiled */
    uint64_t (*first)[4];       /* classes a rule can begin with */
    uint8_t *rule_tokfirst;     /* a rule can begin with a token edge */
    int32_t start;              /* start state of the start rule */
    uint32_t n_toksym;
    int32_t *toksym;            /* token id of each token symbol */
    /* lazily filled per-state mask cache (mask.c), under lock */
    pthread_mutex_t lock;
    ncg_cache_entry **cache;    /* n_states entries, NULL = not computed */
    int32_t *slice_r;           /* string-slice characters a state can still take (mask.c) */
};

/* A parse position: the DFA state on top and the stack below it. */
typedef struct ncg_cfg { int32_t state, parent; } ncg_cfg;
#define NCG_ROOT (-1)     /* below the start rule's frame */
#define NCG_BOTTOM (-2)   /* an unknown stack (context-independent walks) */

/* Hash-consed stack nodes (state = return state, parent). Truncatable. */
typedef struct ncg_arena {
    ncg_cfg *n;
    uint32_t len, cap;
    int32_t *slot;          /* node index + 1, 0 = empty */
    uint32_t smask;
} ncg_arena;

/* A set of configurations under construction. */
typedef struct ncg_set {
    ncg_cfg *c;
    uint32_t n, cap;
    bool popped_bottom;     /* a pop reached NCG_BOTTOM */
} ncg_set;

#define NCG_R_UNKNOWN (-2)  /* slice_r: not computed yet */
#define NCG_MAX_CFGS 2048   /* configurations in one set */
#define NCG_MAX_CALL_DEPTH 200

/* matcher.c */
int ncg_arena_init(ncg_arena *a);
void ncg_arena_free(ncg_arena *a);
int ncg_set_reserve(ncg_set *s, uint32_t n);
void ncg_set_free(ncg_set *s);
/* out = closure of {(state, parent)} (out is not cleared). 0 or NUAGE_E_*. */
int ncg_add_closed(const nuage_grammar *g, ncg_arena *a, ncg_set *out, int32_t state, int32_t parent);
/* out = step of the closed set in over symbol sym (0..255 a byte, 256+k
 * token symbol k); out is cleared first. 0 or NUAGE_E_NOMEM /
 * NUAGE_E_UNSUPPORTED (too many configurations). */
int ncg_step(const nuage_grammar *g, ncg_arena *a, const ncg_cfg *in, uint32_t n_in, int sym,
             ncg_set *out);
bool ncg_set_accepting(const nuage_grammar *g, const ncg_cfg *c, uint32_t n);
int32_t ncg_toksym_of(const nuage_grammar *g, int32_t tok);  /* -1 when the grammar does not name tok */

/* mask.c */
void ncg_cache_free(nuage_grammar *g);

/* gbnf.c: ncg_gbnf with a token table, so <name> token references resolve. */
int ncg_gbnf_for(ncg_builder *b, const char *src, size_t len, const nuage_cg_tokens *t, ncg_rule *root,
                 nuage_cg_error *err);

/* builder helpers */
const char *ncg_rule_name(const ncg_builder *b, ncg_rule r);

#endif
