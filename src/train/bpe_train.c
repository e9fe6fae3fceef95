/*
 * bpe_train.c - byte-level BPE training (see bpe_train.h).
 *
 * The corpus is reduced to its distinct words with counts (a pre-tokenized
 * corpus of synthetic chats has a few thousand distinct words), each word
 * a sequence of symbol ids. Every round counts all adjacent pairs, weighted
 * by word counts, in a hash table, takes the best pair and rewrites the
 * words that contain it, left to right without overlaps. That is exactly
 * what the run-time tokenizer does when it merges the lowest-ranked pair
 * first (leftmost first on ties), since a pair made by a merge always has
 * a higher rank than the merge itself; so a training word tokenizes to the
 * segmentation recorded here (the tests check this).
 *
 * With NUAGE_BPE_SPACE_APART no merge starts with the space byte, so a
 * word is the same token after a space as after a quote (tool arguments
 * copied from the question); the run-time tokenizer needs nothing new,
 * the merge list simply has no pair that could join " " and "Turkey".
 *
 * Cost: rounds x corpus symbols, about 10^7 steps for a 2k vocabulary
 * over a few thousand words: well under a second. Deterministic: ties on
 * the count go to the pair of lower (left, right) ids.
 */
#define _GNU_SOURCE /* memmem */
#include "train/bpe_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf_write.h"
#include "nuage/nuage.h"
#include "tokenizer/tok_internal.h"

const char *const nuage_bpe_specials[NUAGE_BPE_N_SPECIAL] = {
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
};

const char *nuage_bpe_chat_template(void) {
    return "{%- for message in messages -%}\n"
           "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}\n"
           "{%- endfor -%}\n"
           "{%- if add_generation_prompt -%}\n"
           "{{- '<|im_start|>assistant\\n' -}}\n"
           "{%- endif -%}\n";
}

/* ChatML, plus tools: a system turn listing the tools one per line as
 * "name(param, param)" (no descriptions: the models' context is 256
 * tokens and their names and parameters tell them apart), assistant calls
 * as <tool_call>{"name": ..., "arguments": ...}</tool_call> (the
 * Hermes/Qwen markup the server's tool parser detects from this source),
 * results as `tool` turns. Without tools and calls the
 * text is the plain ChatML above. Kept apart from the tokenizer's template
 * so that tokenizers and first-stage models stay as they were; a model
 * trained for tools gets it through `nuage train --tools-template`. */
const char *nuage_bpe_chat_template_tools(void) {
    return "{%- if tools -%}\n"
           "{{- '<|im_start|>system\\nTools:\\n' -}}\n"
           "{%- for tool in tools -%}\n"
           "{%- set f = tool.function if tool.function is defined else tool -%}\n"
           "{%- set ps = f.parameters.properties if f.parameters is defined and f.parameters.properties is defined else {} -%}\n"
           "{{- f.name + '(' + (ps.keys() | join(', ')) + ')' -}}\n"
           "{{- '\\n' -}}\n"
           "{%- endfor -%}\n"
           "{{- '<|im_end|>\\n' -}}\n"
           "{%- endif -%}\n"
           "{%- for message in messages -%}\n"
           "{%- if message.role == 'assistant' and message.tool_calls -%}\n"
           "{{- '<|im_start|>assistant\\n' + (message.content if message.content else '') -}}\n"
           "{%- for tc in message.tool_calls -%}\n"
           "{%- set fn = tc.function if tc.function is defined else tc -%}\n"
           "{{- '<tool_call>{\"name\": \"' + fn.name + '\", \"arguments\": ' -}}\n"
           "{%- if fn.arguments is string -%}{{- fn.arguments -}}{%- else -%}{{- fn.arguments | tojson -}}{%- endif -%}\n"
           "{{- '}</tool_call>' -}}\n"
           "{%- endfor -%}\n"
           "{{- '<|im_end|>\\n' -}}\n"
           "{%- else -%}\n"
           "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}\n"
           "{%- endif -%}\n"
           "{%- endfor -%}\n"
           "{%- if add_generation_prompt -%}\n"
           "{{- '<|im_start|>assistant\\n' -}}\n"
           "{%- endif -%}\n";
}

/* ---- word table: distinct words with counts ---------------------------------- */

typedef struct {
    char **word;
    size_t *len;
    int64_t *count;
    int n, cap;
    int *slot;         /* hash slots: word index or -1 */
    uint32_t mask;
} nuage__words;

static uint32_t nuage__fnv(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int nuage__words_grow(nuage__words *w) {
    int cap = w->cap ? w->cap * 2 : 1024;
    char **wd = realloc(w->word, (size_t)cap * sizeof *wd);
    if (!wd) return NUAGE_E_NOMEM;
    w->word = wd;
    size_t *ln = realloc(w->len, (size_t)cap * sizeof *ln);
    if (!ln) return NUAGE_E_NOMEM;
    w->len = ln;
    int64_t *ct = realloc(w->count, (size_t)cap * sizeof *ct);
    if (!ct) return NUAGE_E_NOMEM;
    w->count = ct;
    uint32_t ns = (uint32_t)cap * 4;
    int *slot = malloc(ns * sizeof *slot);
    if (!slot) return NUAGE_E_NOMEM;
    for (uint32_t i = 0; i < ns; i++) slot[i] = -1;
    for (int i = 0; i < w->n; i++) {
        uint32_t h = nuage__fnv(w->word[i], w->len[i]) & (ns - 1);
        while (slot[h] >= 0) h = (h + 1) & (ns - 1);
        slot[h] = i;
    }
    free(w->slot);
    w->slot = slot;
    w->mask = ns - 1;
    w->cap = cap;
    return 0;
}

static int nuage__words_add(nuage__words *w, const char *s, size_t n) {
    if (w->n == w->cap) {
        int rc = nuage__words_grow(w);
        if (rc) return rc;
    }
    uint32_t h = nuage__fnv(s, n) & w->mask;
    while (w->slot[h] >= 0) {
        int i = w->slot[h];
        if (w->len[i] == n && !memcmp(w->word[i], s, n)) {
            w->count[i]++;
            return 0;
        }
        h = (h + 1) & w->mask;
    }
    char *c = malloc(n + 1);
    if (!c) return NUAGE_E_NOMEM;
    memcpy(c, s, n);
    c[n] = 0;
    w->word[w->n] = c;
    w->len[w->n] = n;
    w->count[w->n] = 1;
    w->slot[h] = w->n++;
    return 0;
}

static void nuage__words_free(nuage__words *w) {
    for (int i = 0; i < w->n; i++) free(w->word[i]);
    free(w->word);
    free(w->len);
    free(w->count);
    free(w->slot);
}

/* Cut a text at special tokens; add the words of each piece. */
static int nuage__add_text(nuage__words *w, const nuage__pre *pre, const char *text, size_t len,
                           nuage__buf *norm, nuage__buf *match) {
    size_t i = 0;
    while (i < len) {
        /* earliest special token at or after i (the longest on a tie) */
        size_t next = len, skip = 0;
        for (int k = 0; k < NUAGE_BPE_N_SPECIAL; k++) {
            size_t sl = strlen(nuage_bpe_specials[k]);
            const char *f = memmem(text + i, len - i, nuage_bpe_specials[k], sl);
            if (!f) continue;
            size_t j = (size_t)(f - text);
            if (j < next || (j == next && sl > skip)) { next = j; skip = sl; }
        }
        if (next > i) {
            if (!nuage__utf8_llama_normalize(text + i, next - i, norm, match)) return NUAGE_E_NOMEM;
            size_t *ends = NULL, n_ends = 0;
            int rc = nuage__pre_split_ends(pre, match->p, match->n, &ends, &n_ends);
            if (rc) return rc;
            size_t s = 0;
            for (size_t e = 0; e < n_ends && !rc; e++) {
                rc = nuage__words_add(w, norm->p + s, ends[e] - s);
                s = ends[e];
            }
            free(ends);
            if (rc) return rc;
        }
        i = next + skip;
    }
    return 0;
}

/* ---- pair counting ---------------------------------------------------------------- */

typedef struct {
    uint64_t *key;   /* (l << 32 | r) + 1; 0 = empty */
    int64_t *cnt;
    uint64_t mask;
} nuage__pairs;

static inline uint64_t nuage__mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static void nuage__pairs_add(nuage__pairs *p, uint64_t key, int64_t c) {
    uint64_t h = nuage__mix(key) & p->mask;
    while (p->key[h] && p->key[h] != key) h = (h + 1) & p->mask;
    p->key[h] = key;
    p->cnt[h] += c;
}

/* ---- training ------------------------------------------------------------------------ */

static char *nuage__strcat2(const char *a, const char *sep, const char *b) {
    size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
    char *s = malloc(la + ls + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, sep, ls);
    memcpy(s + la + ls, b, lb + 1);
    return s;
}

void nuage_bpe_free(nuage_bpe *b) {
    if (!b) return;
    for (int i = 0; i < b->n_tokens; i++) free(b->tokens[i]);
    for (int i = 0; i < b->n_merges; i++) free(b->merges[i]);
    for (int i = 0; i < b->n_words; i++) {
        free(b->words[i]);
        free(b->word_ids[i]);
    }
    free(b->tokens);
    free(b->types);
    free(b->merges);
    free(b->words);
    free(b->word_ids);
    free(b->word_len);
    free(b->word_count);
    free(b->pre);
    free(b);
}

int nuage_bpe_train(const char *const *texts, const size_t *lens, size_t n, int vocab_size,
                    const char *pre_name, nuage_bpe **out, char *err, size_t errlen) {
    return nuage_bpe_train_ex(texts, lens, n, vocab_size, pre_name, 0, out, err, errlen);
}

int nuage_bpe_train_ex(const char *const *texts, const size_t *lens, size_t n, int vocab_size,
                       const char *pre_name, unsigned flags, nuage_bpe **out, char *err, size_t errlen) {
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    *out = NULL;
    if (vocab_size < 256 + NUAGE_BPE_N_SPECIAL || vocab_size > 1 << 20) {
        snprintf(err, errlen, "vocabulary size %d out of range %d..%d", vocab_size,
                 256 + NUAGE_BPE_N_SPECIAL, 1 << 20);
        return NUAGE_E_INVAL;
    }
    if (!pre_name) pre_name = "qwen2";
    nuage__pre pre = {0};
    nuage__pre_flags pf;
    const char *canon;
    int rc = nuage__pre_init(&pre, pre_name, &pf, &canon, err, errlen);
    if (rc) return rc;
    nuage__words W = {0};
    nuage__buf norm = {0}, match = {0};
    nuage__pairs P = {0};
    nuage_bpe *b = calloc(1, sizeof *b);
    if (!b) { rc = NUAGE_E_NOMEM; goto fail; }
    for (size_t i = 0; i < n && !rc; i++) rc = nuage__add_text(&W, &pre, texts[i], lens[i], &norm, &match);
    if (rc) {
        snprintf(err, errlen, "cannot pre-tokenize the corpus: %s", nuage_strerror(rc));
        goto fail;
    }

    /* vocabulary: bytes, then merges, then specials */
    int max_tok = vocab_size;
    b->tokens = calloc((size_t)max_tok, sizeof *b->tokens);
    b->types = calloc((size_t)max_tok, sizeof *b->types);
    b->merges = calloc((size_t)max_tok, sizeof *b->merges);
    b->pre = strdup(canon);
    if (!b->tokens || !b->types || !b->merges || !b->pre) { rc = NUAGE_E_NOMEM; goto fail; }
    const nuage__bytechar *enc = nuage__gpt2_byte_enc();
    for (int c = 0; c < 256; c++) {
        b->tokens[c] = malloc(4);
        if (!b->tokens[c]) { rc = NUAGE_E_NOMEM; goto fail; }
        memcpy(b->tokens[c], enc[c].s, enc[c].n);
        b->tokens[c][enc[c].n] = 0;
        b->types[c] = 1;
    }
    b->n_tokens = 256;

    /* words as symbol sequences */
    b->n_words = W.n;
    b->words = calloc((size_t)W.n + 1, sizeof *b->words);
    b->word_ids = calloc((size_t)W.n + 1, sizeof *b->word_ids);
    b->word_len = calloc((size_t)W.n + 1, sizeof *b->word_len);
    b->word_count = calloc((size_t)W.n + 1, sizeof *b->word_count);
    if (!b->words || !b->word_ids || !b->word_len || !b->word_count) { rc = NUAGE_E_NOMEM; goto fail; }
    for (int i = 0; i < W.n; i++) {
        b->words[i] = W.word[i];
        W.word[i] = NULL;
        b->word_count[i] = W.count[i];
        b->word_len[i] = (int)W.len[i];
        b->word_ids[i] = malloc((W.len[i] + 1) * sizeof(int32_t));
        if (!b->word_ids[i]) { rc = NUAGE_E_NOMEM; goto fail; }
        for (size_t j = 0; j < W.len[i]; j++) b->word_ids[i][j] = (unsigned char)b->words[i][j];
    }

    size_t total = 0;
    for (int i = 0; i < W.n; i++) total += W.len[i];
    uint64_t cap = 1024;
    while (cap < 2 * total + 2) cap *= 2;
    P.key = malloc(cap * sizeof *P.key);
    P.cnt = malloc(cap * sizeof *P.cnt);
    P.mask = cap - 1;
    if (!P.key || !P.cnt) { rc = NUAGE_E_NOMEM; goto fail; }

    int n_merge_max = vocab_size - 256 - NUAGE_BPE_N_SPECIAL;
    while (b->n_merges < n_merge_max) {
        memset(P.key, 0, cap * sizeof *P.key);
        memset(P.cnt, 0, cap * sizeof *P.cnt);
        for (int i = 0; i < W.n; i++)
            for (int j = 0; j + 1 < b->word_len[i]; j++) {
                /* SPACE_APART: no pair starts with the space byte (id 32) */
                if ((flags & NUAGE_BPE_SPACE_APART) && b->word_ids[i][j] == ' ') continue;
                nuage__pairs_add(&P, (((uint64_t)(uint32_t)b->word_ids[i][j] << 32) | (uint32_t)b->word_ids[i][j + 1]) + 1,
                                 b->word_count[i]);
            }
        uint64_t best = 0;
        int64_t best_c = 1;
        for (uint64_t h = 0; h <= P.mask; h++)
            if (P.key[h] && (P.cnt[h] > best_c || (P.cnt[h] == best_c && best && P.key[h] < best))) {
                best = P.key[h];
                best_c = P.cnt[h];
            }
        if (!best) break; /* no pair occurs twice */
        int32_t l = (int32_t)((best - 1) >> 32), r = (int32_t)((best - 1) & 0xffffffffu);
        char *text = nuage__strcat2(b->tokens[l], "", b->tokens[r]);
        char *merge = nuage__strcat2(b->tokens[l], " ", b->tokens[r]);
        if (!text || !merge) { free(text); free(merge); rc = NUAGE_E_NOMEM; goto fail; }
        int32_t id = -1;
        for (int t = 256; t < b->n_tokens && id < 0; t++)
            if (!strcmp(b->tokens[t], text)) id = t;
        if (id < 0) {
            id = b->n_tokens++;
            b->tokens[id] = text;
            b->types[id] = 1;
        } else {
            free(text);
        }
        b->merges[b->n_merges++] = merge;
        for (int i = 0; i < W.n; i++) {
            int32_t *s = b->word_ids[i];
            int o = 0, len = b->word_len[i];
            for (int j = 0; j < len; j++) {
                if (j + 1 < len && s[j] == l && s[j + 1] == r) {
                    s[o++] = id;
                    j++;
                } else {
                    s[o++] = s[j];
                }
            }
            b->word_len[i] = o;
        }
    }
    for (int k = 0; k < NUAGE_BPE_N_SPECIAL; k++) {
        b->special[k] = b->n_tokens;
        b->tokens[b->n_tokens] = strdup(nuage_bpe_specials[k]);
        if (!b->tokens[b->n_tokens]) { rc = NUAGE_E_NOMEM; goto fail; }
        /* <think> and </think> are user-defined (rendered as text, as in
         * Qwen3's GGUFs) so that the reasoning shows in the output and a
         * server can split it; the chat markers are control tokens. */
        b->types[b->n_tokens++] = k >= NUAGE_BPE_THINK ? 4 : 3;
    }
    free(P.key);
    free(P.cnt);
    free(norm.p);
    free(match.p);
    nuage__words_free(&W);
    nuage__pre_free(&pre);
    *out = b;
    return 0;

fail:
    if (rc == NUAGE_E_NOMEM) snprintf(err, errlen, "out of memory training the tokenizer");
    free(P.key);
    free(P.cnt);
    free(norm.p);
    free(match.p);
    nuage__words_free(&W);
    nuage__pre_free(&pre);
    nuage_bpe_free(b);
    return rc;
}

int nuage_bpe_write_gguf(const nuage_bpe *b, nuage_gguf_writer *w) {
    int rc;
    if ((rc = nuage_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2")) ||
        (rc = nuage_gguf_writer_set_str(w, "tokenizer.ggml.pre", b->pre)) ||
        (rc = nuage_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)b->tokens,
                                            (size_t)b->n_tokens)) ||
        (rc = nuage_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", NUAGE_GGUF_INT32, b->types,
                                        (size_t)b->n_tokens)) ||
        (rc = nuage_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)b->merges,
                                            (size_t)b->n_merges)) ||
        (rc = nuage_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)b->special[NUAGE_BPE_EOT])) ||
        (rc = nuage_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)b->special[NUAGE_BPE_IM_END])) ||
        (rc = nuage_gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)b->special[NUAGE_BPE_IM_END])) ||
        (rc = nuage_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)b->special[NUAGE_BPE_EOT])) ||
        (rc = nuage_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false)) ||
        (rc = nuage_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false)) ||
        (rc = nuage_gguf_writer_set_str(w, "tokenizer.chat_template", nuage_bpe_chat_template())))
        return rc;
    return 0;
}
