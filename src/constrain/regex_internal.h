/*
 * regex_internal.h - what regex.c shares with format.c: code point range
 * sets, the JSON-string spelling of a set, and ncg_regex with its size
 * caps switchable (the built-in format patterns are large but trusted).
 */
#ifndef NUAGE_CONSTRAIN_REGEX_INTERNAL_H
#define NUAGE_CONSTRAIN_REGEX_INTERNAL_H

#include "constrain/grammar.h"

/* A set of code points as n closed ranges v[2i]..v[2i+1] (malloc'd;
 * the owner frees v). Zero-initialise to start empty. */
typedef struct { uint32_t *v; size_t n, cap; } ncg_cset;

int ncg_cset_add(ncg_cset *s, uint32_t lo, uint32_t hi);  /* 0 or NUAGE_E_NOMEM */
void ncg_cset_norm(ncg_cset *s);      /* sort and merge ranges */
int ncg_cset_negate(ncg_cset *s);     /* complement in [0, 10FFFF]; s normalised */

/* Every spelling, inside a JSON string literal, of one code point of the
 * n ranges r: *raw the code point itself where JSON allows it (UTF-8),
 * *esc the escapes (a backslash, then a short escape, \uXXXX in either
 * hex case, or a surrogate pair). Either may be ncg_nothing. Surrogate
 * code points are never produced. 0 or a negative builder error. */
int ncg_json_parts(ncg_builder *b, const uint32_t *r, size_t n, ncg_expr *raw, ncg_expr *esc);

/* ncg_regex; nocap lifts the length and expansion caps; the literal code
 * point NCG_SUBST_BASE + k (k < n_subst; a private-use code point, as
 * UTF-8 in re) stands for the expression subst[k] (which must match only
 * non-empty strings; e.g. a reference to a rule shared by several
 * formats). */
#define NCG_SUBST_BASE 0xF0000u
int ncg_regex_ex(ncg_builder *b, const char *re, size_t len, bool anchored, bool json_string,
                 bool nocap, const ncg_expr *subst, size_t n_subst, ncg_expr *out, nuage_cg_error *err);

#endif
