/*
 * vocab.c - building a vocabulary from GGUF metadata: token texts, scores
 * and types, special token ids, the flags that steer tokenization, and the
 * lookup structures every tokenizer uses.
 *
 * The rules follow llama.cpp's llama_vocab::load closely, because the ids
 * a model sees must be the ones it was trained with and llama.cpp is the
 * reference the GGUF files are made for:
 *  - per tokenizer family defaults (SPM: BOS 1, EOS 2, UNK 0, add BOS, add
 *    a space prefix; WPM: CLS 101 as BOS, SEP 102, UNK 100; BPE: 11/11),
 *    then the pre-tokenizer's own defaults, then metadata overrides;
 *  - a special id out of range is ignored (the default stays);
 *  - end-of-generation tokens are found by their text as well ("<|im_end|>",
 *    "<|eot_id|>", ...) and forced to be control tokens;
 *  - the "special token cache" (control, user-defined and unknown tokens,
 *    longest first) is what nuage_tokenize splits the input by;
 *  - a few per-model token attributes (phi-3's right-strip).
 * Where llama.cpp's result depends on std::unordered_map iteration order
 * (choosing an EOT among several candidate texts), we take the first
 * candidate in its list order.
 *
 * Everything built here is read-only afterwards.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "tok_internal.h"

/* ---- hashing and the string tables ------------------------------------- */

uint32_t nuage__hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0x9e3779b97f4a7c15ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

int nuage__strtab_init(nuage__strtab *t, size_t n_entries) {
    size_t cap = 16;
    while (cap < n_entries * 2) cap *= 2;
    t->hash = malloc(cap * sizeof *t->hash);
    t->id = malloc(cap * sizeof *t->id);
    if (!t->hash || !t->id) {
        nuage__strtab_free(t);
        return NUAGE_E_NOMEM;
    }
    for (size_t i = 0; i < cap; i++) t->id[i] = -1;
    t->mask = (uint32_t)(cap - 1);
    return 0;
}

void nuage__strtab_free(nuage__strtab *t) {
    free(t->hash);
    free(t->id);
    t->hash = NULL;
    t->id = NULL;
}

/* Find s in t, with text(id) giving each stored string. Returns the id or
 * -1; *slot receives the slot where it is or would go. */
static int32_t strtab_find(const nuage__strtab *t, uint32_t h, const char *s, size_t n,
                           const char *pool, const uint32_t *offs, const uint32_t *lens,
                           size_t stride, int32_t id_base, uint32_t *slot) {
    uint32_t i = h & t->mask;
    for (;;) {
        int32_t id = t->id[i];
        if (id < 0) {
            *slot = i;
            return -1;
        }
        if (t->hash[i] == h) {
            size_t k = (size_t)(id - id_base);
            uint32_t off = *(const uint32_t *)((const char *)offs + k * stride);
            uint32_t len = *(const uint32_t *)((const char *)lens + k * stride);
            if (len == n && !memcmp(pool + off, s, n)) {
                *slot = i;
                return id;
            }
        }
        i = (i + 1) & t->mask;
    }
}

int32_t nuage__find(const nuage_vocab *v, const char *s, size_t n) {
    uint32_t slot;
    return strtab_find(&v->tab, nuage__hash(s, n), s, n, v->pool, &v->toks[0].off, &v->toks[0].len,
                       sizeof(nuage__tok), 0, &slot);
}

static int32_t xfind(const nuage_vocab *v, uint32_t h, const char *s, size_t n, uint32_t *slot) {
    return strtab_find(&v->xtab, h, s, n, v->xpool, v->xoff, v->xlen, sizeof(uint32_t), v->n_tokens,
                       slot);
}

int32_t nuage__sid(const nuage_vocab *v, const char *s, size_t n) {
    uint32_t slot;
    uint32_t h = nuage__hash(s, n);
    int32_t id = strtab_find(&v->tab, h, s, n, v->pool, &v->toks[0].off, &v->toks[0].len,
                             sizeof(nuage__tok), 0, &slot);
    if (id >= 0 || !v->n_extra) return id;
    return xfind(v, h, s, n, &slot);
}

/* Intern an extra (non-token) merge-side string; returns its sid or
 * NUAGE_E_NOMEM. Capacity for the arrays is reserved by the caller. */
int32_t nuage__intern_extra(nuage_vocab *v, const char *s, size_t n, size_t *xpool_len) {
    uint32_t slot;
    uint32_t h = nuage__hash(s, n);
    int32_t id = xfind(v, h, s, n, &slot);
    if (id >= 0) return id;
    memcpy(v->xpool + *xpool_len, s, n);
    v->xoff[v->n_extra] = (uint32_t)*xpool_len;
    v->xlen[v->n_extra] = (uint32_t)n;
    *xpool_len += n;
    id = v->n_tokens + v->n_extra++;
    v->xtab.hash[slot] = h;
    v->xtab.id[slot] = id;
    return id;
}

/* ---- metadata helpers --------------------------------------------------- */

static bool get_bool(const nuage_gguf *g, const char *key, bool *out) {
    return nuage_gguf_get_bool(g, key, out);
}

/* Read an optional special-token id: keeps *id when absent or out of range. */
static void get_special(const nuage_gguf *g, const char *key, int32_t n_tokens, int32_t *id) {
    if (*id >= n_tokens) *id = -1;
    uint32_t u;
    if (!nuage_gguf_get_u32(g, key, &u)) {
        int64_t i64;
        if (!nuage_gguf_get_i64(g, key, &i64) || i64 < 0) return;
        u = (uint32_t)(i64 > UINT32_MAX ? UINT32_MAX : i64);
    }
    if (u < (uint32_t)n_tokens) *id = (int32_t)u;
}

/* ---- special tokens ----------------------------------------------------- */

static const char *const k_eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<end_of_utterance>", NULL};
static const char *const k_eom_texts[] = {"<|eom_id|>", NULL};
static const char *const k_fim_pre_texts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL};
static const char *const k_fim_suf_texts[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>",
    "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL};
static const char *const k_fim_mid_texts[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL};
static const char *const k_fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
static const char *const k_fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                              "<reponame>", NULL};
static const char *const k_fim_sep_texts[] = {"<|file_sep|>", NULL};
static const char *const k_eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~[", NULL};

static int32_t find_str(const nuage_vocab *v, const char *s) { return nuage__find(v, s, strlen(s)); }

/* If *id is unset, take the first text of list present in the vocabulary
 * and make that token a control token. */
static void autodetect(nuage_vocab *v, int32_t *id, const char *const *list) {
    if (*id >= 0) return;
    for (int i = 0; list[i]; i++) {
        int32_t t = find_str(v, list[i]);
        if (t >= 0) {
            *id = t;
            v->toks[t].attr |= NUAGE_TOKEN_ATTR_CONTROL;
            return;
        }
    }
}

static bool eog_add(int32_t *eog, int *n, int32_t id) {
    if (id < 0) return true;
    for (int i = 0; i < *n; i++)
        if (eog[i] == id) return true;
    eog[(*n)++] = id;
    return true;
}

static void eog_remove(int32_t *eog, int *n, int32_t id) {
    for (int i = 0; i < *n; i++)
        if (eog[i] == id) {
            eog[i] = eog[--*n];
            return;
        }
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static const nuage_vocab *g_sort_vocab; /* only used under build_special's qsort */

static int cmp_special(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = g_sort_vocab->toks[x].len, ly = g_sort_vocab->toks[y].len;
    if (lx != ly) return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

/* Special-token cache and its trie. */
static int build_special(nuage_vocab *v) {
    int n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->toks[i].attr & (NUAGE_TOKEN_ATTR_CONTROL | NUAGE_TOKEN_ATTR_USER_DEFINED |
                               NUAGE_TOKEN_ATTR_UNKNOWN))
            n++;
    v->special = malloc((size_t)(n ? n : 1) * sizeof *v->special);
    if (!v->special) return NUAGE_E_NOMEM;
    n = 0;
    size_t total = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->toks[i].attr & (NUAGE_TOKEN_ATTR_CONTROL | NUAGE_TOKEN_ATTR_USER_DEFINED |
                               NUAGE_TOKEN_ATTR_UNKNOWN)) {
            v->special[n++] = i;
            total += v->toks[i].len;
        }
    v->n_special = n;
    /* qsort is not reentrant with a context argument in C17; a vocabulary is
     * built by one thread, but two could load at once, so guard the global. */
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    g_sort_vocab = v;
    qsort(v->special, (size_t)n, sizeof *v->special, cmp_special);
    g_sort_vocab = NULL;
    pthread_mutex_unlock(&mu);

    /* trie over the special texts; node value = index into v->special */
    v->trie = malloc((total + 1) * sizeof *v->trie);
    if (!v->trie) return NUAGE_E_NOMEM;
    for (int c = 0; c < 256; c++) v->trie_root[c] = -1;
    v->n_trie = 0;
    for (int k = 0; k < n; k++) {
        const nuage__tok *t = &v->toks[v->special[k]];
        const unsigned char *s = (const unsigned char *)v->pool + t->off;
        int32_t node = -1;
        for (uint32_t j = 0; j < t->len; j++) {
            int32_t *link = node < 0 ? &v->trie_root[s[j]] : &v->trie[node].child;
            int32_t cur = *link;
            if (node >= 0) {
                while (cur >= 0 && v->trie[cur].c != s[j]) {
                    link = &v->trie[cur].sibling;
                    cur = *link;
                }
            }
            if (cur < 0) {
                cur = v->n_trie++;
                v->trie[cur].child = -1;
                v->trie[cur].sibling = -1;
                v->trie[cur].tok = -1;
                v->trie[cur].c = s[j];
                *link = cur;
            }
            node = cur;
        }
        if (node >= 0 && v->trie[node].tok < 0) v->trie[node].tok = k;
    }
    return 0;
}

/* Decoded piece of every token with special = true (llama.cpp's
 * token-to-piece cache). */
static int build_pieces(nuage_vocab *v) {
    nuage__buf pb = {0};
    v->piece_off = malloc((size_t)v->n_tokens * sizeof *v->piece_off);
    v->piece_len = malloc((size_t)v->n_tokens * sizeof *v->piece_len);
    if (!v->piece_off || !v->piece_len || !nuage__buf_reserve(&pb, v->pool_len + 16)) goto oom;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const nuage__tok *t = &v->toks[i];
        const char *s = v->pool + t->off;
        uint32_t attr = t->attr;
        size_t start = pb.n;
        if (attr & (NUAGE_TOKEN_ATTR_UNKNOWN | NUAGE_TOKEN_ATTR_CONTROL | NUAGE_TOKEN_ATTR_USER_DEFINED)) {
            if (!nuage__buf_put(&pb, s, t->len)) goto oom;
        } else if (attr & NUAGE_TOKEN_ATTR_NORMAL) {
            if (v->type == NUAGE_VOCAB_BPE) {
                /* byte-level: each code point stands for one byte */
                size_t k = 0;
                while (k < t->len) {
                    size_t adv;
                    int32_t cp = nuage__utf8_lax_decode((const unsigned char *)s, t->len, k, &adv);
                    int b = cp >= 0 ? nuage__gpt2_byte_dec((uint32_t)cp) : -1;
                    if (b >= 0) {
                        char c = (char)b;
                        if (!nuage__buf_put(&pb, &c, 1)) goto oom;
                    } else {
                        /* llama.cpp renders "[UNK_BYTE_0x<hex of the char>" + text + "]" */
                        char hex[16];
                        if (!nuage__buf_put(&pb, "[UNK_BYTE_0x", 12)) goto oom;
                        for (size_t q = 0; q < adv; q++) {
                            snprintf(hex, sizeof hex, "%02x", (unsigned char)s[k + q]);
                            if (!nuage__buf_put(&pb, hex, 2)) goto oom;
                        }
                        if (!nuage__buf_put(&pb, s, t->len) || !nuage__buf_put(&pb, "]", 1)) goto oom;
                    }
                    k += adv;
                }
            } else {
                /* SPM / WPM: U+2581 -> ' ' */
                for (uint32_t k = 0; k < t->len;) {
                    if (k + 3 <= t->len && !memcmp(s + k, "\xe2\x96\x81", 3)) {
                        if (!nuage__buf_put(&pb, " ", 1)) goto oom;
                        k += 3;
                    } else {
                        if (!nuage__buf_put(&pb, s + k, 1)) goto oom;
                        k++;
                    }
                }
            }
        } else if (attr & NUAGE_TOKEN_ATTR_BYTE) {
            if (t->len >= 6 && !memcmp(s, "<0x", 3)) {
                char hex[3] = {s[3], s[4], 0};
                char c = (char)strtol(hex, NULL, 16);
                if (!nuage__buf_put(&pb, &c, 1)) goto oom;
            }
        }
        if (pb.n - start > INT32_MAX || pb.n > UINT32_MAX) goto oom;
        v->piece_off[i] = (uint32_t)start;
        v->piece_len[i] = (uint32_t)(pb.n - start);
    }
    v->piece_pool = pb.p;
    return 0;
oom:
    free(pb.p);
    return NUAGE_E_NOMEM;
}

/* Per-model attributes (llama.cpp sets these by model name). */
static void model_attrs(nuage_vocab *v, const nuage_gguf *g, const char *pre) {
    const char *name = nuage_gguf_get_str(g, "general.name", NULL);
    const char *arch = nuage_gguf_get_str(g, "general.architecture", NULL);
    char lname[256] = {0};
    if (name) {
        size_t i = 0;
        for (; name[i] && i + 1 < sizeof lname; i++) lname[i] = (char)tolower((unsigned char)name[i]);
        lname[i] = 0;
    }
    bool jina = pre && (strstr(pre, "jina-v2-de") || strstr(pre, "jina-v2-es") || strstr(pre, "jina-v2-code"));
    if (arch && (strstr(arch, "nomic-bert-moe") || strstr(arch, "jina-bert-v3"))) jina = true;
    if (jina) {
        int32_t t = find_str(v, "<mask>");
        if (t >= 0) v->toks[t].attr |= NUAGE_TOKEN_ATTR_LSTRIP;
    } else if (strstr(lname, "phi-3") || strstr(lname, "phi3")) {
        for (int k = 0; k < v->n_special; k++) v->toks[v->special[k]].attr |= NUAGE_TOKEN_ATTR_RSTRIP;
        int32_t t = find_str(v, "</s>");
        if (t >= 0) v->toks[t].attr |= NUAGE_TOKEN_ATTR_RSTRIP;
        static const char *const off[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (int k = 0; k < 3; k++) {
            t = find_str(v, off[k]);
            if (t >= 0) v->toks[t].attr &= ~(uint32_t)NUAGE_TOKEN_ATTR_RSTRIP;
        }
    } else if (strstr(lname, "modern-bert")) {
        int32_t t = find_str(v, "[MASK]");
        if (t >= 0) v->toks[t].attr |= NUAGE_TOKEN_ATTR_LSTRIP;
    }
}

/* ---- loading ------------------------------------------------------------ */

static uint32_t attr_of_type(int32_t type) {
    switch (type) {
    case 1: return NUAGE_TOKEN_ATTR_NORMAL;
    case 2: return NUAGE_TOKEN_ATTR_UNKNOWN;
    case 3: return NUAGE_TOKEN_ATTR_CONTROL;
    case 4: return NUAGE_TOKEN_ATTR_USER_DEFINED;
    case 5: return NUAGE_TOKEN_ATTR_UNUSED;
    case 6: return NUAGE_TOKEN_ATTR_BYTE;
    default: return NUAGE_TOKEN_ATTR_UNDEFINED;
    }
}

static int load_tokens(nuage_vocab *v, const nuage_gguf *g, char *err, size_t errlen) {
    const nuage_gguf_value *tv = nuage_gguf_get_arr(g, "tokenizer.ggml.tokens", NUAGE_GGUF_STRING);
    if (!tv) {
        snprintf(err, errlen, "tokenizer.ggml.tokens missing or not a string array");
        return NUAGE_E_FORMAT;
    }
    if (tv->v.arr.n == 0 || tv->v.arr.n > (uint64_t)INT32_MAX / 2) {
        snprintf(err, errlen, "tokenizer.ggml.tokens: bad token count %llu",
                 (unsigned long long)tv->v.arr.n);
        return NUAGE_E_FORMAT;
    }
    int32_t n = (int32_t)tv->v.arr.n;
    const nuage_gguf_str *strs = tv->v.arr.data;

    const nuage_gguf_value *sv = nuage_gguf_get(g, "tokenizer.ggml.scores");
    const float *fscores = NULL;
    const int32_t *iscores = NULL;
    if (sv) {
        if (sv->type != NUAGE_GGUF_ARRAY ||
            (sv->v.arr.type != NUAGE_GGUF_FLOAT32 && sv->v.arr.type != NUAGE_GGUF_INT32)) {
            snprintf(err, errlen, "invalid gguf type for tokenizer.ggml.scores");
            return NUAGE_E_FORMAT;
        }
        if (sv->v.arr.n < (uint64_t)n) {
            snprintf(err, errlen, "tokenizer.ggml.scores has %llu entries for %d tokens",
                     (unsigned long long)sv->v.arr.n, n);
            return NUAGE_E_FORMAT;
        }
        if (sv->v.arr.type == NUAGE_GGUF_FLOAT32) fscores = sv->v.arr.data;
        else iscores = sv->v.arr.data;
    }
    const nuage_gguf_value *ty = nuage_gguf_get(g, "tokenizer.ggml.token_type");
    const int32_t *types = NULL;
    if (ty) {
        if (ty->type != NUAGE_GGUF_ARRAY || ty->v.arr.type != NUAGE_GGUF_INT32) {
            snprintf(err, errlen, "invalid gguf type for tokenizer.ggml.token_type");
            return NUAGE_E_FORMAT;
        }
        if (ty->v.arr.n < (uint64_t)n) {
            snprintf(err, errlen, "tokenizer.ggml.token_type has %llu entries for %d tokens",
                     (unsigned long long)ty->v.arr.n, n);
            return NUAGE_E_FORMAT;
        }
        types = ty->v.arr.data;
    }

    size_t pool = 0;
    for (int32_t i = 0; i < n; i++) {
        uint64_t l = strs[i].len ? strs[i].len : 24; /* "[EMPTY_<i>]" */
        if (l > UINT32_MAX / 4 || pool + l + 1 > UINT32_MAX) {
            snprintf(err, errlen, "tokenizer.ggml.tokens: token texts too large");
            return NUAGE_E_FORMAT;
        }
        pool += l + 1;
    }
    v->n_tokens = n;
    v->toks = calloc((size_t)n, sizeof *v->toks);
    v->pool = malloc(pool ? pool : 1);
    if (!v->toks || !v->pool) return NUAGE_E_NOMEM;
    int rc = nuage__strtab_init(&v->tab, (size_t)n);
    if (rc) return rc;
    size_t used = 0;
    for (int32_t i = 0; i < n; i++) {
        nuage__tok *t = &v->toks[i];
        t->off = (uint32_t)used;
        if (strs[i].len) {
            memcpy(v->pool + used, strs[i].ptr, strs[i].len);
            t->len = (uint32_t)strs[i].len;
        } else {
            t->len = (uint32_t)snprintf(v->pool + used, 24, "[EMPTY_%d]", i);
        }
        v->pool[used + t->len] = 0;
        used += t->len + 1;
        t->score = fscores ? fscores[i] : iscores ? (float)iscores[i] : 0.0f;
        t->attr = types ? attr_of_type(types[i]) : NUAGE_TOKEN_ATTR_NORMAL;
        if ((int)t->len > v->max_token_len) v->max_token_len = (int)t->len;

        uint32_t h = nuage__hash(v->pool + t->off, t->len), slot;
        int32_t dup = strtab_find(&v->tab, h, v->pool + t->off, t->len, v->pool, &v->toks[0].off,
                                  &v->toks[0].len, sizeof(nuage__tok), 0, &slot);
        if (dup >= 0) {
            snprintf(err, errlen, "duplicate token in vocabulary: '%.64s' has ids %d and %d",
                     v->pool + t->off, dup, i);
            return NUAGE_E_FORMAT;
        }
        v->tab.hash[slot] = h;
        v->tab.id[slot] = i;
    }
    v->pool_len = used;
    return 0;
}

int nuage_vocab_from_gguf(const struct nuage_gguf *g, nuage_vocab **out, char *err, size_t errlen) {
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = 0;
    if (!g || !out) {
        snprintf(err, errlen, "nuage_vocab_from_gguf: NULL argument");
        return NUAGE_E_INVAL;
    }
    *out = NULL;
    nuage_vocab *v = calloc(1, sizeof *v);
    if (!v) return NUAGE_E_NOMEM;
    int rc;
    const char *model = nuage_gguf_get_str(g, "tokenizer.ggml.model", NULL);
    const char *pre = nuage_gguf_get_str(g, "tokenizer.ggml.pre", NULL);
    if (!model) {
        snprintf(err, errlen, "tokenizer.ggml.model missing");
        rc = NUAGE_E_FORMAT;
        goto fail;
    }
    v->bos = v->eos = v->eot = v->eom = v->unk = v->sep = v->pad = v->mask = v->nl = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    v->lowercase = true;
    v->pre_name = "default";
    if (!strcmp(model, "llama")) {
        v->type = NUAGE_VOCAB_SPM;
        v->bos = 1; v->eos = 2; v->unk = 0;
        v->add_space_prefix = true;
        v->clean_spaces = false;
        v->add_bos = true;
    } else if (!strcmp(model, "bert")) {
        v->type = NUAGE_VOCAB_WPM;
        v->bos = 101; v->unk = 100; v->sep = 102; v->pad = 0; v->mask = 103;
        v->add_sep = true;
        v->clean_spaces = true;
        v->add_bos = true;
    } else if (!strcmp(model, "gpt2")) {
        v->type = NUAGE_VOCAB_BPE;
        v->bos = 11; v->eos = 11;
        v->clean_spaces = true;
    } else {
        snprintf(err, errlen, "unsupported tokenizer model '%s'", model);
        rc = NUAGE_E_UNSUPPORTED;
        goto fail;
    }

    if ((rc = load_tokens(v, g, err, errlen))) goto fail;

    if (v->type == NUAGE_VOCAB_BPE) {
        nuage__pre_flags pf;
        if ((rc = nuage__pre_init(&v->pre, pre, &pf, &v->pre_name, err, errlen))) goto fail;
        v->clean_spaces = pf.clean_spaces;
        v->ignore_merges = pf.ignore_merges;
        if (pf.add_bos) v->add_bos = true;
        if (pf.no_bos) v->bos = -1;
        const nuage_gguf_value *mv = nuage_gguf_get(g, "tokenizer.ggml.merges");
        if (!mv) {
            snprintf(err, errlen, "cannot find tokenizer merges in model file");
            rc = NUAGE_E_FORMAT;
            goto fail;
        }
        if ((rc = nuage__bpe_load_merges(v, mv, err, errlen))) goto fail;
    }
    get_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    get_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &v->remove_extra_ws);

    /* byte -> token */
    for (int b = 0; b < 256; b++) {
        int32_t t = -1;
        if (v->type == NUAGE_VOCAB_SPM) {
            char hex[8];
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            t = find_str(v, hex);
            if (t < 0) {
                char c = (char)b;
                t = nuage__find(v, &c, 1);
            }
        } else {
            const nuage__bytechar *bc = &nuage__gpt2_byte_enc()[b];
            t = nuage__find(v, bc->s, bc->n);
        }
        v->byte_tok[b] = t;
    }

    /* special ids from metadata */
    {
        static const struct { const char *key; size_t off; } keys[] = {
            {"tokenizer.ggml.bos_token_id", offsetof(nuage_vocab, bos)},
            {"tokenizer.ggml.eos_token_id", offsetof(nuage_vocab, eos)},
            {"tokenizer.ggml.eot_token_id", offsetof(nuage_vocab, eot)},
            {"tokenizer.ggml.eom_token_id", offsetof(nuage_vocab, eom)},
            {"tokenizer.ggml.unknown_token_id", offsetof(nuage_vocab, unk)},
            {"tokenizer.ggml.seperator_token_id", offsetof(nuage_vocab, sep)},
            {"tokenizer.ggml.padding_token_id", offsetof(nuage_vocab, pad)},
            {"tokenizer.ggml.mask_token_id", offsetof(nuage_vocab, mask)},
            {"tokenizer.ggml.fim_pre_token_id", offsetof(nuage_vocab, fim_pre)},
            {"tokenizer.ggml.fim_suf_token_id", offsetof(nuage_vocab, fim_suf)},
            {"tokenizer.ggml.fim_mid_token_id", offsetof(nuage_vocab, fim_mid)},
            {"tokenizer.ggml.fim_pad_token_id", offsetof(nuage_vocab, fim_pad)},
            {"tokenizer.ggml.fim_rep_token_id", offsetof(nuage_vocab, fim_rep)},
            {"tokenizer.ggml.fim_sep_token_id", offsetof(nuage_vocab, fim_sep)},
            {"tokenizer.ggml.prefix_token_id", offsetof(nuage_vocab, fim_pre)},
            {"tokenizer.ggml.suffix_token_id", offsetof(nuage_vocab, fim_suf)},
            {"tokenizer.ggml.middle_token_id", offsetof(nuage_vocab, fim_mid)},
        };
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            get_special(g, keys[k].key, v->n_tokens, (int32_t *)((char *)v + keys[k].off));
    }
    get_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos);
    get_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos);
    get_bool(g, "tokenizer.ggml.add_sep_token", &v->add_sep);
    if ((v->add_bos && v->bos < 0) || (v->add_eos && v->eos < 0) ||
        (v->add_sep && v->sep < 0 && v->type == NUAGE_VOCAB_WPM)) {
        snprintf(err, errlen, "tokenizer adds BOS/EOS/SEP but the token id is not set");
        rc = NUAGE_E_FORMAT;
        goto fail;
    }
    get_bool(g, "tokenizer.ggml.normalizer.lowercase", &v->lowercase);
    v->strip_accents = v->lowercase;
    get_bool(g, "tokenizer.ggml.normalizer.strip_accents", &v->strip_accents);

    /* auto-detected special tokens */
    autodetect(v, &v->eot, k_eot_texts);
    autodetect(v, &v->eom, k_eom_texts);
    autodetect(v, &v->fim_pre, k_fim_pre_texts);
    autodetect(v, &v->fim_suf, k_fim_suf_texts);
    autodetect(v, &v->fim_mid, k_fim_mid_texts);
    autodetect(v, &v->fim_pad, k_fim_pad_texts);
    autodetect(v, &v->fim_rep, k_fim_rep_texts);
    autodetect(v, &v->fim_sep, k_fim_sep_texts);
    for (int32_t i = 0; i < v->n_tokens; i++) {
        nuage__tok *t = &v->toks[i];
        if ((t->attr & NUAGE_TOKEN_ATTR_CONTROL) && strstr(v->pool + t->off, "unused"))
            t->attr |= NUAGE_TOKEN_ATTR_UNUSED;
    }

    /* end-of-generation set */
    {
        int cap = 8 + (int)(sizeof k_eog_texts / sizeof k_eog_texts[0]);
        v->eog = malloc((size_t)cap * sizeof *v->eog);
        if (!v->eog) { rc = NUAGE_E_NOMEM; goto fail; }
        v->n_eog = 0;
        eog_add(v->eog, &v->n_eog, v->fim_pad);
        eog_add(v->eog, &v->n_eog, v->fim_rep);
        eog_add(v->eog, &v->n_eog, v->fim_sep);
        for (int k = 0; k_eog_texts[k]; k++) {
            int32_t t = find_str(v, k_eog_texts[k]);
            if (t < 0) continue;
            eog_add(v->eog, &v->n_eog, t);
            v->toks[t].attr |= NUAGE_TOKEN_ATTR_CONTROL;
        }
        static const char *const ud[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
        for (int k = 0; k < 4; k++) {
            int32_t t = find_str(v, ud[k]);
            if (t >= 0) v->toks[t].attr = NUAGE_TOKEN_ATTR_USER_DEFINED;
        }
        eog_add(v->eog, &v->n_eog, v->eos);
        eog_add(v->eog, &v->n_eog, v->eot);
        eog_add(v->eog, &v->n_eog, v->eom);
        /* o200k_harmony / solar-open: "<|end|>" is not end-of-generation */
        int32_t t_ret = find_str(v, "<|return|>"), t_call = find_str(v, "<|call|>");
        int32_t t_calls = find_str(v, "<|calls|>"), t_flush = find_str(v, "<|flush|>");
        int32_t t_end = find_str(v, "<|end|>");
        bool has_call = t_call >= 0 || t_calls >= 0;
        if (t_end >= 0 && ((t_ret >= 0 && has_call) || (has_call && t_flush >= 0))) {
            eog_remove(v->eog, &v->n_eog, t_end);
            v->toks[t_end].attr = NUAGE_TOKEN_ATTR_USER_DEFINED;
        }
        /* gemma4 / paddleocr: "</s>" is not end-of-generation next to <|tool_response> */
        int32_t t_tr = find_str(v, "<|tool_response>"), t_s = find_str(v, "</s>");
        if (t_tr >= 0 && t_s >= 0) {
            eog_remove(v->eog, &v->n_eog, t_s);
            v->toks[t_s].attr = NUAGE_TOKEN_ATTR_NORMAL;
        }
        qsort(v->eog, (size_t)v->n_eog, sizeof *v->eog, cmp_i32);
    }

    if (v->type == NUAGE_VOCAB_SPM) {
        /* spm.c may cut the text before every U+2581 that follows another
         * character when no token contains such a pair */
        v->spm_split = true;
        for (int32_t i = 0; i < v->n_tokens && v->spm_split; i++) {
            const char *s = v->pool + v->toks[i].off;
            uint32_t n = v->toks[i].len;
            for (uint32_t q = 1; q + 3 <= n; q++)
                if (!memcmp(s + q, "\xe2\x96\x81", 3) && (q < 3 || memcmp(s + q - 3, "\xe2\x96\x81", 3))) {
                    v->spm_split = false;
                    break;
                }
        }
    }
    if ((rc = build_special(v))) goto fail;
    if ((rc = build_pieces(v))) goto fail;
    model_attrs(v, g, pre);
    if (v->type == NUAGE_VOCAB_WPM && (rc = nuage__wpm_init(v, err, errlen))) goto fail;

    /* newline token */
    if (v->type == NUAGE_VOCAB_SPM) {
        v->nl = v->byte_tok['\n'] >= 0 ? v->byte_tok['\n'] : v->pad;
    } else if (v->type == NUAGE_VOCAB_WPM) {
        v->nl = v->pad;
    } else {
        int32_t ids[8];
        int n = nuage_tokenize(v, "\n", 1, ids, 8, false, false);
        v->nl = n > 0 ? ids[0] : v->pad;
    }
    *out = v;
    return 0;
fail:
    if (!err[0]) snprintf(err, errlen, "%s", nuage_strerror(rc));
    nuage_vocab_free(v);
    return rc;
}

void nuage_vocab_free(nuage_vocab *v) {
    if (!v) return;
    free(v->toks);
    free(v->pool);
    nuage__strtab_free(&v->tab);
    free(v->eog);
    free(v->special);
    free(v->trie);
    nuage__pre_free(&v->pre);
    free(v->xpool);
    free(v->xoff);
    free(v->xlen);
    nuage__strtab_free(&v->xtab);
    free(v->mkey);
    free(v->mrank);
    free(v->mres);
    free(v->piece_pool);
    free(v->piece_off);
    free(v->piece_len);
    if (v->wpm_re) pcre2_code_free(v->wpm_re);
    if (v->wpm_lower_re) pcre2_code_free(v->wpm_lower_re);
    free(v);
}

/* ---- accessors ---------------------------------------------------------- */

nuage_vocab_type nuage_vocab_type_of(const nuage_vocab *v) { return v ? v->type : (nuage_vocab_type)0; }
const char *nuage_vocab_pre_name(const nuage_vocab *v) { return v ? v->pre_name : NULL; }
int32_t nuage_vocab_n_tokens(const nuage_vocab *v) { return v ? v->n_tokens : 0; }
int32_t nuage_vocab_max_token_len(const nuage_vocab *v) { return v ? v->max_token_len : 0; }
int32_t nuage_vocab_bos(const nuage_vocab *v) { return v ? v->bos : -1; }
int32_t nuage_vocab_eos(const nuage_vocab *v) { return v ? v->eos : -1; }
int32_t nuage_vocab_eot(const nuage_vocab *v) { return v ? v->eot : -1; }
int32_t nuage_vocab_eom(const nuage_vocab *v) { return v ? v->eom : -1; }
int32_t nuage_vocab_unk(const nuage_vocab *v) { return v ? v->unk : -1; }
int32_t nuage_vocab_sep(const nuage_vocab *v) { return v ? v->sep : -1; }
int32_t nuage_vocab_pad(const nuage_vocab *v) { return v ? v->pad : -1; }
int32_t nuage_vocab_nl(const nuage_vocab *v) { return v ? v->nl : -1; }
bool nuage_vocab_add_bos(const nuage_vocab *v) { return v && v->add_bos; }
bool nuage_vocab_add_eos(const nuage_vocab *v) { return v && v->add_eos; }
bool nuage_vocab_add_sep(const nuage_vocab *v) { return v && v->add_sep; }

bool nuage_vocab_is_eog(const nuage_vocab *v, int32_t tok) {
    if (!v || tok < 0) return false;
    return bsearch(&tok, v->eog, (size_t)v->n_eog, sizeof *v->eog, cmp_i32) != NULL;
}

bool nuage_vocab_is_control(const nuage_vocab *v, int32_t tok) {
    if (!v || tok < 0 || tok >= v->n_tokens) return false;
    return (v->toks[tok].attr & (NUAGE_TOKEN_ATTR_CONTROL | NUAGE_TOKEN_ATTR_UNKNOWN)) != 0;
}

uint32_t nuage_vocab_token_attr(const nuage_vocab *v, int32_t tok) {
    if (!v || tok < 0 || tok >= v->n_tokens) return 0;
    return v->toks[tok].attr;
}

float nuage_vocab_token_score(const nuage_vocab *v, int32_t tok) {
    if (!v || tok < 0 || tok >= v->n_tokens) return 0.0f;
    return v->toks[tok].score;
}

const char *nuage_vocab_token_text(const nuage_vocab *v, int32_t tok) {
    if (!v || tok < 0 || tok >= v->n_tokens) return NULL;
    return v->pool + v->toks[tok].off;
}

int32_t nuage_vocab_find(const nuage_vocab *v, const char *text) {
    if (!v || !text) return -1;
    return nuage__find(v, text, strlen(text));
}

int32_t nuage_vocab_find_n(const nuage_vocab *v, const char *text, size_t len) {
    if (!v || (!text && len)) return -1;
    return nuage__find(v, text ? text : "", len);
}

int nuage_token_to_piece(const nuage_vocab *v, int32_t tok, char *buf, size_t cap, bool special) {
    if (!v) return NUAGE_E_INVAL;
    if (tok < 0 || tok >= v->n_tokens) return NUAGE_E_RANGE;
    if (!special && (v->toks[tok].attr & (NUAGE_TOKEN_ATTR_CONTROL | NUAGE_TOKEN_ATTR_UNKNOWN))) return 0;
    uint32_t n = v->piece_len[tok];
    if (buf && cap) memcpy(buf, v->piece_pool + v->piece_off[tok], n < cap ? n : cap);
    return (int)n;
}
