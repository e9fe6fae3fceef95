/*
 * tok_internal.h - shared internals of the tokenizer (the files of src/tokenizer).
 *
 * The vocabulary keeps every token text in one pool and finds texts with an
 * open-addressing hash table (the hot operation of every tokenizer: "is this
 * byte string a token?"). BPE merge ranks live in a second table keyed by
 * the pair of "string ids" of the two sides; a string id is a token id, or
 * for a merge side that is not itself a token, an id past the vocabulary in
 * a small side table. Nothing here is mutated after nuage_vocab_from_gguf
 * returns, which is what makes a vocabulary safe to share between threads;
 * per-call scratch lives in nuage__buf / caller stacks.
 */
#ifndef NUAGE_TOK_INTERNAL_H
#define NUAGE_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nuage/nuage.h"
#include "nuage/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- growable buffers --------------------------------------------------- */

typedef struct {
    int32_t *v;
    size_t n, cap;
} nuage__ids;

typedef struct {
    char *p;
    size_t n, cap;
} nuage__buf;

/* Append; false on out-of-memory (the buffer is left as it was). */
bool nuage__ids_push(nuage__ids *a, int32_t x);
bool nuage__buf_put(nuage__buf *b, const void *p, size_t n);
bool nuage__buf_reserve(nuage__buf *b, size_t n);

/* ---- string -> id hash table ------------------------------------------- */

/* Open addressing over (hash, id) slots; texts are looked up through a
 * caller-provided accessor so the same table serves tokens and extra
 * strings. */
typedef struct {
    uint32_t *hash;   /* full 32-bit hash per slot */
    int32_t *id;      /* -1 = empty */
    uint32_t mask;    /* capacity - 1 */
} nuage__strtab;

uint32_t nuage__hash(const void *p, size_t n);

/* ---- pre-tokenizer (bpe_pre.c) ----------------------------------------- */

#define NUAGE_PRE_MAX_RE 8

typedef struct {
    int n_re;
    pcre2_code *re[NUAGE_PRE_MAX_RE];
} nuage__pre;

/* Flags a pre-tokenizer name implies (llama.cpp's per-pre-type defaults). */
typedef struct {
    bool clean_spaces;
    bool ignore_merges;
    bool add_bos;        /* force add_bos = true before metadata override */
    bool no_bos;         /* chatglm: no BOS id */
} nuage__pre_flags;

/* Compile the regexes for pre-tokenizer `name` ("" = default). Returns 0,
 * NUAGE_E_UNSUPPORTED (unknown name, message in err) or NUAGE_E_NOMEM.
 * canon receives the canonical name (static string). */
int nuage__pre_init(nuage__pre *p, const char *name, nuage__pre_flags *flags, const char **canon,
                    char *err, size_t errlen);
void nuage__pre_free(nuage__pre *p);

/* Compile one llama.cpp-style regex into a PCRE2 pattern with llama.cpp's
 * semantics (see bpe_pre.c). NULL on error. Exposed for tests. */
pcre2_code *nuage__regex_compile(const char *llama_pattern, char *err, size_t errlen);

/*
 * Split text (len bytes, in the matchable form of
 * nuage__utf8_llama_normalize) with the pre-tokenizer. On success returns 0
 * and sets *ends to a malloc'd array of *n_ends word end offsets
 * (ascending, the last = len; caller frees). NUAGE_E_NOMEM, or
 * NUAGE_E_INVAL when PCRE2 fails.
 */
int nuage__pre_split_ends(const nuage__pre *p, const char *text, size_t len, size_t **ends,
                          size_t *n_ends);

/* ---- UTF-8 helpers (utf8.c) --------------------------------------------- */

/* llama.cpp's length of a UTF-8 sequence from its lead byte (1..4). */
static inline size_t nuage__utf8_len(unsigned char c) {
    static const unsigned char lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

/*
 * llama.cpp's lenient UTF-8 decoding of one code point at s[i..n): returns
 * the code point and sets *adv; invalid sequences return -1 with *adv = 1
 * (llama.cpp turns them into U+FFFD).
 */
int32_t nuage__utf8_lax_decode(const unsigned char *s, size_t n, size_t i, size_t *adv);
/* Encode cp (< 0x110000) as UTF-8 into out (4 bytes room); returns length. */
size_t nuage__utf8_encode(uint32_t cp, char *out);
/* Length of the longest prefix of s that is strictly valid UTF-8. */
size_t nuage__utf8_valid_prefix(const unsigned char *s, size_t n);

/*
 * Re-encode text the way llama.cpp's unicode_cpts_from_utf8 + re-encoding
 * does (each invalid byte -> U+FFFD), into out; matchable (if non-NULL)
 * receives the same bytes with surrogate code points replaced by U+FFFF
 * (same length) so that PCRE2 accepts it. Returns false on out-of-memory.
 */
bool nuage__utf8_llama_normalize(const char *text, size_t len, nuage__buf *out, nuage__buf *matchable);

/* GPT-2 byte-level mapping: byte -> UTF-8 of its printable code point. */
typedef struct {
    char s[3];
    unsigned char n;
} nuage__bytechar;
extern const nuage__bytechar *nuage__gpt2_byte_enc(void);
/* Inverse: code point -> byte, or -1 when cp is not a mapped character. */
int nuage__gpt2_byte_dec(uint32_t cp);

/* ---- the vocabulary ----------------------------------------------------- */

typedef struct {
    uint32_t off;     /* text offset in pool */
    uint32_t len;     /* text length */
    float score;
    uint32_t attr;    /* NUAGE_TOKEN_ATTR_* */
} nuage__tok;

/* A node of the special-token trie (used to find which special tokens
 * occur in a text in one pass). */
typedef struct {
    int32_t child;    /* first child, -1 none */
    int32_t sibling;  /* next sibling, -1 none */
    int32_t tok;      /* special token ending here, -1 none */
    unsigned char c;
} nuage__trie_node;

struct nuage_vocab {
    nuage_vocab_type type;
    int32_t n_tokens;
    nuage__tok *toks;
    char *pool;                 /* token texts, each NUL-terminated */
    size_t pool_len;
    nuage__strtab tab;          /* token text -> id */
    int max_token_len;

    /* special ids (-1 = none) */
    int32_t bos, eos, eot, eom, unk, sep, pad, mask, nl;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    int32_t *eog;               /* sorted */
    int n_eog;

    bool add_bos, add_eos, add_sep;
    bool add_space_prefix, clean_spaces, ignore_merges;
    bool remove_extra_ws;
    bool lowercase, strip_accents;   /* WPM normalizer */
    bool spm_split;             /* SPM: no token has "x\u2581" inside (see spm.c) */

    /* special-token cache: CONTROL|USER_DEFINED|UNKNOWN ids, longest first */
    int32_t *special;
    int n_special;
    nuage__trie_node *trie;     /* node 0 = root */
    int32_t trie_root[256];     /* root's children by byte */
    int n_trie;

    /* byte -> token (SPM: <0xNN> or the byte itself; BPE: GPT-2 char) */
    int32_t byte_tok[256];

    /* BPE */
    nuage__pre pre;
    const char *pre_name;
    char *xpool;                /* extra merge-side strings (not tokens) */
    uint32_t *xoff, *xlen;
    int32_t n_extra;
    nuage__strtab xtab;         /* extra string -> n_tokens + index */
    uint64_t *mkey;             /* merge table: (sid_l << 32 | sid_r) */
    int32_t *mrank;             /* rank; mkey slot empty when mrank < 0 */
    uint64_t mmask;
    int32_t *mres;              /* rank -> sid of the merged string (-1 none) */
    int32_t n_merges;
    int32_t byte_sid[256];      /* sid of the GPT-2 character of each byte */
    int32_t char_tok[256];      /* token whose text is that single byte, -1 */

    /* decoded pieces (special = true rendering) */
    char *piece_pool;
    uint32_t *piece_off, *piece_len;

    /* WPM character classifier */
    pcre2_code *wpm_re;
    pcre2_code *wpm_lower_re;   /* "(?s).+" for \L lower-casing */
};

/* Token text -> id, or -1. */
int32_t nuage__find(const nuage_vocab *v, const char *s, size_t n);
/* String id for a merge side: token id, n_tokens + extra index, or -1. */
int32_t nuage__sid(const nuage_vocab *v, const char *s, size_t n);
/* Intern a merge-side string that is not a token (load time only; room is
 * reserved by nuage__bpe_load_merges). Returns its string id. */
int32_t nuage__intern_extra(nuage_vocab *v, const char *s, size_t n, size_t *xpool_len);
/* Merge rank of the pair (sid_l, sid_r), or -1. */
int32_t nuage__rank(const nuage_vocab *v, int32_t l, int32_t r);

/* Tokenizer back-ends: append the ids of one raw fragment to out. Return 0
 * or a negative NUAGE_E_*. */
int nuage__spm_tokenize(const nuage_vocab *v, const char *text, size_t len, nuage__ids *out);
int nuage__bpe_tokenize(const nuage_vocab *v, const char *text, size_t len, nuage__ids *out);
int nuage__wpm_tokenize(const nuage_vocab *v, const char *text, size_t len, nuage__ids *out);

/* Load-time parts of bpe.c / wpm.c. */
int nuage__bpe_load_merges(nuage_vocab *v, const void *merges_value, char *err, size_t errlen);
int nuage__wpm_init(nuage_vocab *v, char *err, size_t errlen);

/* WPM normalisation helper (wpm_nfd.c): first code point of the NFD
 * decomposition of cp (cp itself when it has none). */
uint32_t nuage__nfd_first(uint32_t cp);

/* String-table primitives (vocab.c). */
int nuage__strtab_init(nuage__strtab *t, size_t n_entries);
void nuage__strtab_free(nuage__strtab *t);

#endif
