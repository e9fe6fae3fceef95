/*
 * synth.h - synthetic, checkable chat data for training nuage's own small
 * models, and the random number generator the whole train component uses.
 *
 * Every generated conversation is one user question and one assistant
 * answer computed by code, so the answer is right by construction and an
 * evaluation can score a model's reply by comparing its final answer (the
 * last word of the reply outside <think>...</think>) with the expected
 * one. Each question has a canonical key (task + operands, e.g.
 * "add:12:34" with the operands sorted, "facts:France:3" = country and
 * phrasing); a hash of the key puts it in the held-out split (1 in 10) or
 * the train split, so the two splits never share a question, whatever
 * seed or phrasing produced them.
 *
 * The reasoning variant writes the work step by step inside
 * <think>...</think> before the answer line: digit-by-digit columns with
 * carries/borrows, partial products, month lengths, spelled-out letters
 * with a running count, selection sort, ... Lines have a regular shape so
 * that a small model can follow them with position-relative attention.
 */
#ifndef NUAGE_TRAIN_SYNTH_H
#define NUAGE_TRAIN_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- random numbers: xoshiro256** seeded by splitmix64 ------------------ */
typedef struct {
    uint64_t s[4];
} nuage_rng;

void nuage_rng_seed(nuage_rng *r, uint64_t seed);
uint64_t nuage_rng_next(nuage_rng *r);
/* Uniform in [0, n) (n > 0), without modulo bias. */
uint64_t nuage_rng_below(nuage_rng *r, uint64_t n);
/* Uniform integer in [lo, hi]. */
int64_t nuage_rng_range(nuage_rng *r, int64_t lo, int64_t hi);
/* Uniform double in [0, 1) (53 random bits). */
double nuage_rng_uniform(nuage_rng *r);
/* Standard normal (Box-Muller; uses two draws every call, no cache, so
 * the state alone determines the sequence). */
double nuage_rng_normal(nuage_rng *r);

/* FNV-1a 64 of a string (stable across platforms: used for the split). */
uint64_t nuage_hash64(const char *s);

/* ---- tasks ------------------------------------------------------------- */
typedef enum {
    NUAGE_TASK_ADD = 0,
    NUAGE_TASK_SUB,
    NUAGE_TASK_MUL,
    NUAGE_TASK_CONVERT,
    NUAGE_TASK_DATE,
    NUAGE_TASK_REVERSE,
    NUAGE_TASK_SORT,
    NUAGE_TASK_COUNT,
    NUAGE_TASK_FACTS,
    NUAGE_TASK_N
} nuage_task;

/* "add", ... ; NULL when out of range. */
const char *nuage_task_name(nuage_task t);
/* Task id of a name, or -1 (also for "mix", which callers handle). */
int nuage_task_from_name(const char *name);

#define NUAGE_SYNTH_Q 256
#define NUAGE_SYNTH_A 96
#define NUAGE_SYNTH_THINK 1536

typedef struct {
    nuage_task task;
    char key[96];                    /* canonical operands */
    char question[NUAGE_SYNTH_Q];    /* user message */
    char answer[NUAGE_SYNTH_A];      /* expected final answer (one word) */
    char reply[NUAGE_SYNTH_A + 64];  /* direct assistant answer line */
    char think[NUAGE_SYNTH_THINK];   /* step-by-step work (no tags) */
} nuage_synth_item;

typedef struct {
    int digits;       /* operand size; <= 0: the task's default */
    bool heldout;     /* generate from the held-out split */
} nuage_synth_opts;

/* Whether a canonical key belongs to the held-out split. */
bool nuage_synth_key_heldout(const char *key);

/*
 * Generate one item of task t from the requested split (questions of the
 * other split are drawn again). Returns 0, or NUAGE_E_INVAL for a task or
 * digit count out of range (digits: add/sub 1..9, mul 1..4, others 1..3),
 * or NUAGE_E_RANGE when the split has no question at all after many
 * draws (tiny question spaces).
 */
int nuage_synth_gen(nuage_task t, const nuage_synth_opts *o, nuage_rng *r, nuage_synth_item *it);

/* The weighted mixture used by `--task mix`: picks a task and a digit
 * count (1..max_digits for add/sub, 1..min(2,max) for mul, ...) and
 * generates. */
int nuage_synth_gen_mix(int max_digits, bool heldout, nuage_rng *r, nuage_synth_item *it);

/*
 * The assistant message of an item: the reply line, preceded by
 * "<think>\n" think "</think>\n" when reasoning. Writes a NUL-terminated
 * string into out (cap bytes); returns its length, or a value >= cap when
 * truncated.
 */
size_t nuage_synth_content(const nuage_synth_item *it, bool reasoning, char *out, size_t cap);

/*
 * One JSONL line (no newline): {"messages":[{"role":"user",...},
 * {"role":"assistant",...}],"task":..,"answer":..}. malloc'd; NULL on
 * out-of-memory.
 */
char *nuage_synth_json(const nuage_synth_item *it, bool reasoning);

/*
 * The final answer of a reply: text after the last </think> (or the whole
 * reply when there is none; an unclosed <think> gives ""), its last
 * whitespace-separated word with trailing . , ! ? ; : and quotes removed.
 * Writes it NUL-terminated into out; returns its length (truncated to
 * cap-1).
 */
size_t nuage_synth_final_answer(const char *reply, char *out, size_t cap);

/* Internal generators (synth.c, synth_text.c); `digits` already resolved.
 * Each fills it->key first, then the rest; returns 0 or NUAGE_E_INVAL. */
int nuage__synth_arith(nuage_task t, int digits, nuage_rng *r, nuage_synth_item *it);
int nuage__synth_convert(int digits, nuage_rng *r, nuage_synth_item *it);
int nuage__synth_date(int digits, nuage_rng *r, nuage_synth_item *it);
int nuage__synth_list(nuage_task t, int digits, nuage_rng *r, nuage_synth_item *it);
int nuage__synth_count(int digits, nuage_rng *r, nuage_synth_item *it);
int nuage__synth_facts(int digits, nuage_rng *r, nuage_synth_item *it);

/* Days in a month of the proleptic Gregorian calendar (month 1..12). */
int nuage__days_in_month(int year, int month);

#endif
