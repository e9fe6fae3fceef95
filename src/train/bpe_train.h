/*
 * bpe_train.h - training a byte-level BPE tokenizer and writing it as
 * standard GGUF `tokenizer.ggml.*` metadata (model "gpt2").
 *
 * The texts are cut at the special tokens, normalised and pre-tokenized
 * exactly as the project's tokenizer will do at run time (same code, the
 * pre-tokenizer named by `pre`, default "qwen2", which keeps every digit a
 * word of its own: good for arithmetic), each word is mapped byte by byte
 * to GPT-2's printable characters, and merges are learned greedily: the
 * most frequent adjacent pair (ties: the pair of lower ids) becomes a new
 * token, until the vocabulary has the requested size or no pair occurs
 * twice. Token ids: 0..255 the single bytes (id = byte value), then the
 * merged tokens in merge order, then the special tokens.
 */
#ifndef NUAGE_TRAIN_BPE_TRAIN_H
#define NUAGE_TRAIN_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

struct nuage_gguf_writer;

/* The special tokens, in id order after the merged tokens. */
#define NUAGE_BPE_N_SPECIAL 5
extern const char *const nuage_bpe_specials[NUAGE_BPE_N_SPECIAL];
/* Index in nuage_bpe_specials of the end-of-text, im_start, im_end,
 * think, /think tokens. */
enum { NUAGE_BPE_EOT = 0, NUAGE_BPE_IM_START, NUAGE_BPE_IM_END, NUAGE_BPE_THINK, NUAGE_BPE_THINK_END };

typedef struct {
    int n_tokens;
    char **tokens;        /* GPT-2-mapped token texts (owned) */
    int32_t *types;       /* 1 normal, 3 control, 4 user-defined */
    int n_merges;
    char **merges;        /* "left right" */
    int32_t special[NUAGE_BPE_N_SPECIAL]; /* ids of the special tokens */
    /* The training words (raw bytes) and their final segmentation, for
     * checking that merges applied by rank reproduce it. */
    int n_words;
    char **words;
    int32_t **word_ids;
    int *word_len;        /* tokens per word */
    int64_t *word_count;  /* occurrences in the corpus */
    char *pre;            /* pre-tokenizer name */
} nuage_bpe;

/*
 * Train on n texts (any bytes; special-token strings inside them are cut
 * out first). vocab_size counts everything (bytes + merges + specials) and
 * must be at least 256 + NUAGE_BPE_N_SPECIAL. pre: pre-tokenizer name
 * (NULL = "qwen2"). Returns 0 and *out (nuage_bpe_free), or NUAGE_E_INVAL
 * / NUAGE_E_UNSUPPORTED (unknown pre-tokenizer) / NUAGE_E_NOMEM with a
 * message in err.
 */
int nuage_bpe_train(const char *const *texts, const size_t *lens, size_t n, int vocab_size,
                    const char *pre, nuage_bpe **out, char *err, size_t errlen);
/* nuage_bpe_train with flags. NUAGE_BPE_SPACE_APART: never merge a
 * leading space into a word, so " Turkey" is " " + "Turkey" and a word
 * copied from a sentence into a JSON string ("Turkey") is the same token
 * (the file stays an ordinary qwen2 BPE: only the merge list differs). */
#define NUAGE_BPE_SPACE_APART 1u
int nuage_bpe_train_ex(const char *const *texts, const size_t *lens, size_t n, int vocab_size,
                       const char *pre, unsigned flags, nuage_bpe **out, char *err, size_t errlen);
void nuage_bpe_free(nuage_bpe *b);

/* The ChatML chat template written with the tokenizer (static string). */
const char *nuage_bpe_chat_template(void);
/* ChatML plus tools (Hermes-style <tool_call> markup, `tool` turns), for
 * models trained on tool-use chats (static string; see bpe_train.c). */
const char *nuage_bpe_chat_template_tools(void);

/* Write the tokenizer.* metadata (model, pre, tokens, token_type, merges,
 * special ids, add_bos false, chat template) into w. 0 or a NUAGE_E_*. */
int nuage_bpe_write_gguf(const nuage_bpe *b, struct nuage_gguf_writer *w);

#endif
