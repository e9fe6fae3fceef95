/*
 * constrain.h - constrained decoding: grammars that decide, at every step of
 * generation, which tokens of the vocabulary may come next.
 *
 * Why our own: no maintained C library in Debian computes token masks for
 * grammars (LLGuidance is Rust, XGrammar C++/Python, llama.cpp's grammar
 * code is C++ inside llama.cpp), so nuage implements it (src/constrain/).
 *
 * Three objects:
 *   nuage_cg_tokens   the byte strings of one vocabulary's tokens, arranged
 *                     for mask computation (a trie). Built once per model,
 *                     immutable, shared by every grammar and thread.
 *   nuage_grammar     a compiled grammar bound to one nuage_cg_tokens. Made
 *                     from a JSON Schema, a regular expression, a choice list,
 *                     a GBNF grammar, or programmatically (src/constrain/
 *                     grammar.h). Shared by the matchers of one request; its
 *                     lazily filled mask cache is guarded by an internal lock,
 *                     so matchers of one grammar may run on different threads.
 *                     Reference counted (nuage_grammar_retain / _free).
 *   nuage_matcher     one generation's position in a grammar. One thread at a
 *                     time. Advanced by every sampled token; can roll back.
 *
 * Masks are bit sets over the vocabulary: bit (tok & 31) of word (tok >> 5)
 * set = tok allowed. End-of-generation tokens (nuage_vocab_is_eog) are
 * allowed exactly when the matcher is in an accepting state. Control tokens
 * are never allowed unless the grammar names them (ncg_token). Tokens whose
 * bytes are empty are never allowed.
 *
 * Return codes: 0 on success, negative NUAGE_E_* (nuage.h) on failure.
 */
#ifndef NUAGE_CONSTRAIN_H
#define NUAGE_CONSTRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nuage/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nuage_cg_tokens nuage_cg_tokens;
typedef struct nuage_grammar nuage_grammar;
typedef struct nuage_matcher nuage_matcher;

/* Why a grammar was refused: a one-line message and, for JSON Schema, the
 * JSON pointer of the offending keyword ("/properties/a/not"; "" = root). */
typedef struct nuage_cg_error {
    char msg[256];
    char pointer[256];
} nuage_cg_error;

/* ---- token table ------------------------------------------------------- */

/* Build the token table of v. 0 and *out (caller owns; _free), or
 * NUAGE_E_NOMEM / NUAGE_E_INVAL. v must outlive the table. */
int nuage_cg_tokens_new(const nuage_vocab *v, nuage_cg_tokens **out);
void nuage_cg_tokens_free(nuage_cg_tokens *t);
int32_t nuage_cg_tokens_n_vocab(const nuage_cg_tokens *t);
/* Words in a mask for this table: (n_vocab + 31) / 32. */
size_t nuage_cg_mask_words(const nuage_cg_tokens *t);

/* ---- compiling grammars ------------------------------------------------- */

/* Options for JSON output (JSON Schema, json_object, tool arguments). */
typedef struct nuage_cg_json_opts {
    /* Most whitespace bytes allowed at any one place between JSON tokens
     * (0 = compact output only). Default (when opts is NULL): 64, enough
     * for json.dumps(indent=2) at nesting depth 30. */
    int max_ws;
    /* Draft-2020 behaviour when a schema says nothing: additional
     * properties allowed unless "additionalProperties": false. When
     * strict is true (OpenAI "strict": true), objects without
     * additionalProperties get no extra properties. Default false. */
    bool strict;
} nuage_cg_json_opts;

/* JSON Schema (draft 4 to 2020-12, the keywords listed in
 * docs/structured-outputs.md). Anything not supported is refused with
 * NUAGE_E_UNSUPPORTED, err->msg naming the keyword and err->pointer where
 * it is; a malformed schema is NUAGE_E_INVAL. The language accepted is
 * exactly the set of instances the schema validates (serialized as JSON
 * with the whitespace opts allow), properties in declared order. */
int nuage_grammar_from_json_schema(const nuage_cg_tokens *t, const char *schema, size_t len,
                                   const nuage_cg_json_opts *opts, nuage_grammar **out,
                                   nuage_cg_error *err);
/* Any JSON object (response_format json_object). */
int nuage_grammar_json_object(const nuage_cg_tokens *t, const nuage_cg_json_opts *opts,
                              nuage_grammar **out, nuage_cg_error *err);
/* A regular expression (ECMAScript syntax, the subset in the docs),
 * matched against the whole output (implicitly anchored at both ends). */
int nuage_grammar_from_regex(const nuage_cg_tokens *t, const char *re, size_t len,
                             nuage_grammar **out, nuage_cg_error *err);
/* Exactly one of n strings. */
int nuage_grammar_from_choices(const nuage_cg_tokens *t, const char *const *choices,
                               const size_t *lens, size_t n, nuage_grammar **out,
                               nuage_cg_error *err);
/* A llama.cpp GBNF grammar; start rule "root". */
int nuage_grammar_from_gbnf(const nuage_cg_tokens *t, const char *gbnf, size_t len,
                            nuage_grammar **out, nuage_cg_error *err);

nuage_grammar *nuage_grammar_retain(nuage_grammar *g);
void nuage_grammar_free(nuage_grammar *g);   /* drops one reference; NULL ok */

/* ---- matching ------------------------------------------------------------ */

/* A matcher at the grammar's start. Retains g. */
int nuage_matcher_new(nuage_grammar *g, nuage_matcher **out);
void nuage_matcher_free(nuage_matcher *m);

/* Write the set of allowed next tokens into mask (nuage_cg_mask_words
 * words). 0, or NUAGE_E_NOMEM. The matcher is not changed. */
int nuage_matcher_fill_mask(nuage_matcher *m, uint32_t *mask);

/* Advance by one token. 0; NUAGE_E_INVAL when tok is not allowed here (the
 * matcher is unchanged); an end-of-generation token is accepted only in an
 * accepting state and leaves the matcher terminated. */
int nuage_matcher_accept_token(nuage_matcher *m, int32_t tok);

/* Advance by raw bytes (e.g. text after a trigger). 0, or NUAGE_E_INVAL if
 * the bytes leave the grammar (the matcher is unchanged). Counts as one
 * step for rollback. */
int nuage_matcher_accept_bytes(nuage_matcher *m, const char *bytes, size_t len);

/* Undo the last n steps (accepted tokens or byte runs). 0, or
 * NUAGE_E_RANGE when fewer than n steps are recorded. */
int nuage_matcher_rollback(nuage_matcher *m, int n);

/* The input so far is a complete sentence of the grammar (EOS allowed). */
bool nuage_matcher_is_accepting(const nuage_matcher *m);
/* Accepting and no further byte can follow: generation must stop. */
bool nuage_matcher_is_terminated(const nuage_matcher *m);

#ifdef __cplusplus
}
#endif

#endif
