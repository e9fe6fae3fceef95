/*
 * grammar.h - the grammar builder: the one intermediate form that every
 * front end (JSON Schema, regex, GBNF, choices, tool-call formats) writes
 * and the mask engine (matcher.c, mask.c) reads.
 *
 * A grammar is a set of named rules. Each rule's body is a regular
 * expression whose atoms are bytes, byte sets, UTF-8 code point ranges,
 * references to rules (recursion allowed) and single vocabulary tokens
 * named by id (for special tokens such as <|call|>). So a grammar is a
 * recursive transition network: regular inside a rule, context-free
 * across rules. Front ends should put regular structure inside one rule
 * (the engine turns each rule into a DFA) and use rules for recursion and
 * for sharing.
 *
 * Expressions are handles (ncg_expr >= 0) into the builder; a negative
 * handle is an error (NUAGE_E_*) and every constructor given a negative
 * operand returns that error, so front ends may check once at the end.
 * Handles are immutable and may be used any number of times.
 *
 * Ownership: the builder owns everything; ncg_builder_finish hands the
 * compiled grammar to the caller and the builder may then be freed.
 * Not thread-safe: one builder, one thread.
 */
#ifndef NUAGE_CONSTRAIN_GRAMMAR_H
#define NUAGE_CONSTRAIN_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nuage/constrain.h"

typedef struct ncg_builder ncg_builder;
typedef int32_t ncg_expr;
typedef int32_t ncg_rule;

#define NCG_INF UINT32_MAX   /* unbounded repetition */

/* A new, empty builder, or NULL when out of memory. */
ncg_builder *ncg_builder_new(void);
void ncg_builder_free(ncg_builder *b);

/* ---- atoms ---- */
ncg_expr ncg_empty(ncg_builder *b);                      /* the empty string */
ncg_expr ncg_nothing(ncg_builder *b);                    /* matches nothing */
ncg_expr ncg_bytes(ncg_builder *b, const char *s, size_t n); /* a literal byte string */
ncg_expr ncg_str(ncg_builder *b, const char *s);         /* ncg_bytes of a C string */
/* One byte whose bit is set in set (bit i of set[i >> 3] = byte i). */
ncg_expr ncg_byteset(ncg_builder *b, const uint8_t set[32]);
ncg_expr ncg_byte_range(ncg_builder *b, uint8_t lo, uint8_t hi);
/* One code point, UTF-8 encoded, in the union of n closed ranges
 * [lohi[2i], lohi[2i+1]] (or, negate, in none of them). Surrogates
 * (D800-DFFF) and values above 10FFFF are never produced. */
ncg_expr ncg_char_ranges(ncg_builder *b, const uint32_t *lohi, size_t n, bool negate);
/* Exactly the vocabulary token tok (a special token the output format
 * needs, e.g. <|call|>); matched by that token id only, never by bytes. */
ncg_expr ncg_token(ncg_builder *b, int32_t tok);

/* ---- combinators ---- */
ncg_expr ncg_seq(ncg_builder *b, const ncg_expr *items, size_t n);   /* n = 0: empty */
ncg_expr ncg_seq2(ncg_builder *b, ncg_expr x, ncg_expr y);
ncg_expr ncg_alt(ncg_builder *b, const ncg_expr *items, size_t n);   /* n = 0: nothing */
ncg_expr ncg_alt2(ncg_builder *b, ncg_expr x, ncg_expr y);
/* x repeated min..max times (max = NCG_INF: unbounded). */
ncg_expr ncg_repeat(ncg_builder *b, ncg_expr x, uint32_t min, uint32_t max);
ncg_expr ncg_opt(ncg_builder *b, ncg_expr x);            /* ncg_repeat(x, 0, 1) */

/* ---- rules ---- */
/* Declare a rule (name is for messages and debugging only; copied). The
 * body is set later, so rules may refer to each other in any order. */
ncg_rule ncg_rule_new(ncg_builder *b, const char *name);
int ncg_rule_set(ncg_builder *b, ncg_rule r, ncg_expr body);  /* 0 or NUAGE_E_* */
ncg_expr ncg_ref(ncg_builder *b, ncg_rule r);

/* Compile the grammar starting at rule start against token table t.
 * 0 and *out (caller owns; nuage_grammar_free), or NUAGE_E_INVAL (a rule
 * without a body, a negative handle, left recursion the engine cannot
 * handle) / NUAGE_E_UNSUPPORTED (too large) / NUAGE_E_NOMEM, with err
 * filled. The builder stays valid. */
int ncg_builder_finish(ncg_builder *b, ncg_rule start, const nuage_cg_tokens *t,
                       nuage_grammar **out, nuage_cg_error *err);

/* ---- front ends that write into a builder (so grammars can nest) ---- */

/* regex.c: an ECMAScript regular expression as an expression over bytes.
 * anchored=false gives JSON Schema "pattern" semantics (the match may
 * start and end anywhere in the string: .* around it unless ^/$ anchor
 * it). The expression describes the *decoded* string; json_string=true
 * instead describes the body of a JSON string literal (between the
 * quotes) whose decoded value matches, i.e. with JSON escapes (\" \\ \n
 * \uXXXX ...) where JSON requires or allows them. Refuses lookaround,
 * backreferences and other non-regular features with NUAGE_E_UNSUPPORTED
 * and a message naming them. */
int ncg_regex(ncg_builder *b, const char *re, size_t len, bool anchored, bool json_string,
              ncg_expr *out, nuage_cg_error *err);
/* The body of a JSON string (between the quotes) whose decoded value is a
 * valid instance of JSON Schema format fmt ("date-time", "date", "time",
 * "duration", "email", "hostname", "ipv4", "ipv6", "uri", "uuid");
 * NUAGE_E_UNSUPPORTED for another format. */
int ncg_json_format(ncg_builder *b, const char *fmt, ncg_expr *out, nuage_cg_error *err);

/* json_schema.c: a JSON value valid against schema (a jansson json_t *,
 * passed as void * so this header needs no jansson), with opts' whitespace
 * rules. Refusals as nuage_grammar_from_json_schema. */
int ncg_json_schema(ncg_builder *b, const void *schema, const nuage_cg_json_opts *opts,
                    ncg_expr *out, nuage_cg_error *err);
/* Whitespace allowed between JSON tokens under opts. */
ncg_expr ncg_json_ws(ncg_builder *b, const nuage_cg_json_opts *opts);

/* gbnf.c: a GBNF grammar's rules added to b; *root is its "root" rule. */
int ncg_gbnf(ncg_builder *b, const char *src, size_t len, ncg_rule *root, nuage_cg_error *err);

#endif
