/*
 * tokenizer.h - text <-> token ids, built from a GGUF file's
 * `tokenizer.ggml.*` metadata, giving the same ids as llama.cpp.
 *
 * Three tokenizer families are supported, chosen by `tokenizer.ggml.model`:
 *   "llama"  SentencePiece-style (SPM): score-ordered merges, byte fallback
 *            to <0xNN> tokens, optional space prefix, '▁' for spaces.
 *   "gpt2"   byte-level BPE: a pre-tokenizer regex (picked by
 *            `tokenizer.ggml.pre`) splits the text into words, bytes are
 *            mapped to printable code points, merges apply by rank.
 *   "bert"   WordPiece (WPM): lower-casing / accent stripping, split at
 *            whitespace and punctuation, greedy longest match per word.
 *
 * A nuage_vocab is immutable once built: every function here may be called
 * from any number of threads at once on the same vocabulary. A nuage_detok
 * (streaming detokenizer) belongs to one caller at a time.
 */
#ifndef NUAGE_TOKENIZER_H
#define NUAGE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nuage_vocab nuage_vocab;
struct nuage_gguf;

/* Tokenizer family of a vocabulary. */
typedef enum {
    NUAGE_VOCAB_SPM = 1,   /* tokenizer.ggml.model = "llama" */
    NUAGE_VOCAB_BPE = 2,   /* "gpt2" */
    NUAGE_VOCAB_WPM = 3,   /* "bert" */
} nuage_vocab_type;

/* Token attributes (a bit set, as llama.cpp's llama_token_attr). */
enum {
    NUAGE_TOKEN_ATTR_UNDEFINED    = 0,
    NUAGE_TOKEN_ATTR_UNKNOWN      = 1 << 0,
    NUAGE_TOKEN_ATTR_UNUSED       = 1 << 1,
    NUAGE_TOKEN_ATTR_NORMAL       = 1 << 2,
    NUAGE_TOKEN_ATTR_CONTROL      = 1 << 3,
    NUAGE_TOKEN_ATTR_USER_DEFINED = 1 << 4,
    NUAGE_TOKEN_ATTR_BYTE         = 1 << 5,
    NUAGE_TOKEN_ATTR_LSTRIP       = 1 << 7,
    NUAGE_TOKEN_ATTR_RSTRIP       = 1 << 8,
};

/*
 * Build a vocabulary from a GGUF's tokenizer.ggml.* metadata. Returns 0 and
 * sets *out (caller owns it; nuage_vocab_free), or a negative NUAGE_E_* code
 * with a one-line message in err: NUAGE_E_FORMAT (missing/malformed keys,
 * duplicate tokens), NUAGE_E_UNSUPPORTED (unknown tokenizer model or
 * pre-tokenizer), NUAGE_E_NOMEM. The vocabulary does not reference the
 * GGUF handle afterwards: the handle may be closed.
 */
int nuage_vocab_from_gguf(const struct nuage_gguf *g, nuage_vocab **out, char *err, size_t errlen);
void nuage_vocab_free(nuage_vocab *v);

nuage_vocab_type nuage_vocab_type_of(const nuage_vocab *v);
/* The pre-tokenizer name in use ("default", "llama3", ...; SPM/WPM: "default"). */
const char *nuage_vocab_pre_name(const nuage_vocab *v);
int32_t nuage_vocab_n_tokens(const nuage_vocab *v);
/* Longest token text in bytes, as stored. For SPM and BPE vocabularies no
 * token stands for more input bytes than that, so a text of L bytes has at
 * least L / max_token_len tokens (a bound callers use to refuse an
 * over-long text before tokenizing it). */
int32_t nuage_vocab_max_token_len(const nuage_vocab *v);
int32_t nuage_vocab_bos(const nuage_vocab *v);   /* -1 if none */
int32_t nuage_vocab_eos(const nuage_vocab *v);   /* -1 if none */
int32_t nuage_vocab_eot(const nuage_vocab *v);   /* -1 if none */
int32_t nuage_vocab_eom(const nuage_vocab *v);   /* -1 if none */
int32_t nuage_vocab_unk(const nuage_vocab *v);   /* -1 if none */
int32_t nuage_vocab_sep(const nuage_vocab *v);   /* -1 if none */
int32_t nuage_vocab_pad(const nuage_vocab *v);   /* -1 if none */
int32_t nuage_vocab_nl(const nuage_vocab *v);    /* newline token, -1 if none */
/* eos, eot, eom, <|im_end|>-like end-of-generation tokens. */
bool nuage_vocab_is_eog(const nuage_vocab *v, int32_t tok);
/* Control or unknown token (rendered empty unless asked for). */
bool nuage_vocab_is_control(const nuage_vocab *v, int32_t tok);
/* Attribute bits (NUAGE_TOKEN_ATTR_*) of tok; 0 when out of range. */
uint32_t nuage_vocab_token_attr(const nuage_vocab *v, int32_t tok);
float nuage_vocab_token_score(const nuage_vocab *v, int32_t tok);
bool nuage_vocab_add_bos(const nuage_vocab *v);
bool nuage_vocab_add_eos(const nuage_vocab *v);
/* WPM: whether a SEP token is appended after the text (add_special). */
bool nuage_vocab_add_sep(const nuage_vocab *v);
/* Raw vocabulary string of tok, or NULL when out of range. */
const char *nuage_vocab_token_text(const nuage_vocab *v, int32_t tok);
/* Exact token text -> id, or -1. */
int32_t nuage_vocab_find(const nuage_vocab *v, const char *text);
int32_t nuage_vocab_find_n(const nuage_vocab *v, const char *text, size_t len);

/*
 * Tokenize len bytes of text (any bytes; invalid UTF-8 is handled as
 * llama.cpp does). add_special: add BOS/EOS (WPM: CLS/SEP) as the metadata
 * says. parse_special: control-token text in the input (e.g. "<|im_end|>")
 * becomes that token; otherwise it is tokenized as plain text (user-defined
 * tokens are always matched, as in llama.cpp).
 * Returns the number of tokens n (>= 0) and writes min(n, cap) of them to
 * out (out may be NULL when cap is 0); when n > cap the caller retries with
 * a bigger buffer. Negative NUAGE_E_* on error (NUAGE_E_NOMEM,
 * NUAGE_E_INVAL for a NULL vocabulary, NUAGE_E_RANGE beyond INT32_MAX tokens).
 */
int nuage_tokenize(const nuage_vocab *v, const char *text, size_t len, int32_t *out, size_t cap,
                   bool add_special, bool parse_special);

/*
 * Bytes of token tok's text, decoded: byte tokens -> the byte, SPM/WPM
 * '▁' -> ' ', BPE byte-level code points -> bytes. special=false renders
 * control and unknown tokens as empty. Writes min(len, cap) bytes (no NUL
 * terminator) and returns len, the full length (so len > cap means
 * truncated); NUAGE_E_RANGE for an id out of range.
 */
int nuage_token_to_piece(const nuage_vocab *v, int32_t tok, char *buf, size_t cap, bool special);

/*
 * Whole-sequence detokenization as llama.cpp's llama_detokenize: pieces
 * concatenated; the first piece loses one leading space when the
 * vocabulary adds a space prefix (SPM); remove_special drops a leading
 * BOS / trailing EOS that the vocabulary adds; unparse_special renders
 * control tokens; BPE vocabularies with clean-up enabled get llama.cpp's
 * " ," / " 's" space clean-up. Returns the full length, writes at most cap
 * bytes and a NUL terminator when there is room; negative NUAGE_E_* on error.
 * The result may contain invalid UTF-8 (use nuage_detok for text meant for
 * people).
 */
int nuage_detokenize(const nuage_vocab *v, const int32_t *toks, size_t n, char *buf, size_t cap,
                     bool remove_special, bool unparse_special);

/* Streaming detokenizer: holds back incomplete UTF-8 sequences. */
typedef struct nuage_detok nuage_detok;
/* NULL on out-of-memory. special: render control tokens (see token_to_piece). */
nuage_detok *nuage_detok_new(const nuage_vocab *v, bool special);
/*
 * Append the text of tok; returns a pointer to the newly completed valid
 * UTF-8 bytes (NUL-terminated) and their length in *n; valid until the next
 * call. Bytes that can never become valid UTF-8 are replaced by U+FFFD at
 * once; an incomplete sequence at the end is held back. Returns NULL (and
 * *n = 0) on out-of-memory or an id out of range.
 */
const char *nuage_detok_push(nuage_detok *d, int32_t tok, size_t *n);
/* Same for raw bytes (e.g. a piece produced elsewhere). */
const char *nuage_detok_push_bytes(nuage_detok *d, const char *bytes, size_t len, size_t *n);
/* End of generation: remaining bytes, incomplete/invalid ones replaced by U+FFFD. */
const char *nuage_detok_flush(nuage_detok *d, size_t *n);
/* Forget any held-back bytes (start a new text). */
void nuage_detok_reset(nuage_detok *d);
void nuage_detok_free(nuage_detok *d);

#ifdef __cplusplus
}
#endif
#endif
