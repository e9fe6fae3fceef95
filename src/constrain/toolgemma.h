/*
 * toolgemma.h - Gemma 4's tool-call syntax (not JSON), for toolparse.c and
 * toolgrammar.c.
 *
 * Gemma 4 writes <|tool_call>call:NAME{key:value,...}<tool_call|>, where
 * keys are bare, strings are wrapped in <|"|> ... <|"|> with no escaping,
 * and numbers, true, false and lists are as in JSON (the template's
 * format_argument macro; keys sorted).
 */
#ifndef NUAGE_CONSTRAIN_TOOLGEMMA_H
#define NUAGE_CONSTRAIN_TOOLGEMMA_H

#include <stdbool.h>
#include <stddef.h>

#include "constrain/grammar.h"

#define GEMMA_CALL_OPEN "<|tool_call>"
#define GEMMA_CALL_CLOSE "<tool_call|>"
#define GEMMA_QUOTE "<|\"|>"

/* One call at s (which starts with GEMMA_CALL_OPEN): 0 = wait for more,
 * -1 = not a call, 1 = a call: *used bytes, the name at *name (*nl bytes,
 * inside s) and the arguments as compact JSON (*json, malloc'd, *jl). At
 * final a missing or cut closing marker is forgiven. */
int nuage__gemma_call(const char *s, size_t n, bool final, size_t *used, const char **name, size_t *nl,
                      char **json, size_t *jl);

/* A byte Gemma may write in a bare key. */
bool nuage__gemma_key_char(char c);

/* The arguments of a call to a function with JSON Schema `schema` (a
 * json_t *), in Gemma's syntax: the object's members in sorted key order,
 * for the subset the syntax can carry (object with properties, string with
 * enum / const, integer, number, boolean, null, array with items);
 * anything else is NUAGE_E_UNSUPPORTED with err naming the keyword.
 * quote: the expression for <|"|> (a token or bytes). */
int nuage__gemma_args(ncg_builder *b, const void *schema, ncg_expr quote, ncg_expr *out, nuage_cg_error *err);

#endif
