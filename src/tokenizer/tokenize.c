/*
 * tokenize.c - nuage_tokenize: special-token partition, then one of the
 * three tokenizers on each stretch of plain text.
 *
 * llama.cpp first cuts the input at special tokens (tokenizer_st_partition):
 * it takes the special tokens longest first and, for each, splits every
 * remaining plain-text fragment at all of its occurrences. Control and
 * unknown tokens take part only when parse_special is set; user-defined
 * tokens always do (Hugging Face tokenizers treat added tokens that way).
 * Tokens with the LSTRIP / RSTRIP attribute swallow adjacent ASCII spaces.
 * The order matters when special texts overlap ("<a><b>" vs "a><b"), so we
 * keep it; but instead of searching the whole text once per special token
 * (a vocabulary can have thousands), one pass over a trie of all special
 * texts first finds which of them occur at all, and only those are split
 * by.
 *
 * The plain fragments then go to SPM (with the space prefix before the
 * first fragment and after every special token), BPE or WordPiece, and
 * BOS/EOS (WPM: CLS/SEP) are added around when add_special asks for it.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct {
    int32_t tok;      /* >= 0: a special token; -1: raw text */
    size_t off, len;  /* raw text span */
} frag;

typedef struct {
    frag *v;
    size_t n, cap;
} frags;

static bool frag_push(frags *f, int32_t tok, size_t off, size_t len) {
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 16;
        frag *nv = realloc(f->v, nc * sizeof *nv);
        if (!nv) return false;
        f->v = nv;
        f->cap = nc;
    }
    f->v[f->n++] = (frag){tok, off, len};
    return true;
}

static bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static bool candidate(const nuage_vocab *v, int k, bool parse_special) {
    uint32_t attr = v->toks[v->special[k]].attr;
    return parse_special || !(attr & (NUAGE_TOKEN_ATTR_CONTROL | NUAGE_TOKEN_ATTR_UNKNOWN));
}

/* Mark in present[] (indexed like v->special) which candidate special
 * tokens occur in text. Returns how many do. */
static int scan_present(const nuage_vocab *v, const char *text, size_t len, bool parse_special,
                        unsigned char *present) {
    const unsigned char *s = (const unsigned char *)text;
    int found = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t node = v->trie_root[s[i]];
        size_t j = i;
        while (node >= 0) {
            const nuage__trie_node *nd = &v->trie[node];
            if (nd->tok >= 0 && !present[nd->tok] && candidate(v, nd->tok, parse_special)) {
                present[nd->tok] = 1;
                found++;
            }
            if (++j >= len) break;
            int32_t c = nd->child;
            while (c >= 0 && v->trie[c].c != s[j]) c = v->trie[c].sibling;
            node = c;
        }
    }
    return found;
}

static const char *find_mem(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn == 0 || nn > hn) return NULL;
    return memmem(h, hn, n, nn);
}

/* Split the raw fragments of *in by special token k into *out. */
static bool split_by(const nuage_vocab *v, const char *text, int k, const frags *in, frags *out) {
    int32_t id = v->special[k];
    const nuage__tok *t = &v->toks[id];
    const char *tt = v->pool + t->off;
    for (size_t i = 0; i < in->n; i++) {
        frag f = in->v[i];
        if (f.tok >= 0) {
            if (!frag_push(out, f.tok, 0, 0)) return false;
            continue;
        }
        size_t pos = f.off, end = f.off + f.len;
        for (;;) {
            const char *m = find_mem(text + pos, end - pos, tt, t->len);
            if (!m) {
                if (end > pos && !frag_push(out, -1, pos, end - pos)) return false;
                break;
            }
            size_t mo = (size_t)(m - text);
            size_t ll = mo - pos;
            if (t->attr & NUAGE_TOKEN_ATTR_LSTRIP)
                while (ll > 0 && is_space((unsigned char)text[pos + ll - 1])) ll--;
            if (ll > 0 && !frag_push(out, -1, pos, ll)) return false;
            if (!frag_push(out, id, 0, 0)) return false;
            pos = mo + t->len;
            if (t->attr & NUAGE_TOKEN_ATTR_RSTRIP)
                while (pos < end && is_space((unsigned char)text[pos])) pos++;
            if (pos >= end) break;
        }
    }
    return true;
}

/* Cut text at special tokens (see the file comment). */
static int partition(const nuage_vocab *v, const char *text, size_t len, bool parse_special,
                     frags *out) {
    out->n = 0;
    if (len == 0) return 0;
    if (!frag_push(out, -1, 0, len)) return NUAGE_E_NOMEM;
    if (v->n_special == 0) return 0;
    unsigned char *present = calloc((size_t)v->n_special, 1);
    if (!present) return NUAGE_E_NOMEM;
    int rc = 0;
    if (scan_present(v, text, len, parse_special, present) > 0) {
        frags tmp = {0};
        for (int k = 0; k < v->n_special; k++) {
            if (!present[k]) continue;
            tmp.n = 0;
            if (!split_by(v, text, k, out, &tmp)) {
                rc = NUAGE_E_NOMEM;
                break;
            }
            frags sw = *out;
            *out = tmp;
            tmp = sw;
        }
        free(tmp.v);
    }
    free(present);
    return rc;
}

static int tokenize_ids(const nuage_vocab *v, const char *text, size_t len, bool add_special,
                        bool parse_special, nuage__ids *ids) {
    frags fr = {0};
    int rc = partition(v, text, len, parse_special, &fr);
    if (rc) goto done;
    switch (v->type) {
    case NUAGE_VOCAB_SPM: {
        bool prev_special = true; /* the first fragment gets the space prefix */
        nuage__buf tmp = {0};
        if (add_special && v->add_bos && !nuage__ids_push(ids, v->bos)) rc = NUAGE_E_NOMEM;
        for (size_t i = 0; i < fr.n && !rc; i++) {
            if (fr.v[i].tok >= 0) {
                if (!nuage__ids_push(ids, fr.v[i].tok)) rc = NUAGE_E_NOMEM;
                prev_special = true;
                continue;
            }
            /* ' ' -> U+2581, with the optional leading space */
            tmp.n = 0;
            const char *s = text + fr.v[i].off;
            size_t n = fr.v[i].len;
            if (!nuage__buf_reserve(&tmp, 3 * n + 4)) { rc = NUAGE_E_NOMEM; break; }
            if (v->add_space_prefix && prev_special) {
                memcpy(tmp.p + tmp.n, "\xe2\x96\x81", 3);
                tmp.n += 3;
            }
            for (size_t k = 0; k < n; k++) {
                if (s[k] == ' ') {
                    memcpy(tmp.p + tmp.n, "\xe2\x96\x81", 3);
                    tmp.n += 3;
                } else {
                    tmp.p[tmp.n++] = s[k];
                }
            }
            rc = nuage__spm_tokenize(v, tmp.p, tmp.n, ids);
            prev_special = false;
        }
        free(tmp.p);
        if (!rc && add_special && v->add_eos && !nuage__ids_push(ids, v->eos)) rc = NUAGE_E_NOMEM;
        break;
    }
    case NUAGE_VOCAB_BPE:
        if (add_special && v->add_bos && !nuage__ids_push(ids, v->bos)) rc = NUAGE_E_NOMEM;
        for (size_t i = 0; i < fr.n && !rc; i++) {
            if (fr.v[i].tok >= 0) {
                if (!nuage__ids_push(ids, fr.v[i].tok)) rc = NUAGE_E_NOMEM;
                continue;
            }
            rc = nuage__bpe_tokenize(v, text + fr.v[i].off, fr.v[i].len, ids);
        }
        if (!rc && add_special && v->add_eos && !nuage__ids_push(ids, v->eos)) rc = NUAGE_E_NOMEM;
        break;
    case NUAGE_VOCAB_WPM:
        if (add_special && v->bos >= 0 && !nuage__ids_push(ids, v->bos)) rc = NUAGE_E_NOMEM;
        for (size_t i = 0; i < fr.n && !rc; i++) {
            if (fr.v[i].tok >= 0) {
                if (!nuage__ids_push(ids, fr.v[i].tok)) rc = NUAGE_E_NOMEM;
                continue;
            }
            rc = nuage__wpm_tokenize(v, text + fr.v[i].off, fr.v[i].len, ids);
        }
        if (!rc && add_special && v->sep >= 0 && !nuage__ids_push(ids, v->sep)) rc = NUAGE_E_NOMEM;
        break;
    default:
        rc = NUAGE_E_STATE;
    }
done:
    free(fr.v);
    return rc;
}

int nuage_tokenize(const nuage_vocab *v, const char *text, size_t len, int32_t *out, size_t cap,
                   bool add_special, bool parse_special) {
    if (!v || (!text && len)) return NUAGE_E_INVAL;
    nuage__ids ids = {0};
    int rc = tokenize_ids(v, text ? text : "", len, add_special, parse_special, &ids);
    if (rc) {
        free(ids.v);
        return rc;
    }
    if (ids.n > INT32_MAX) {
        free(ids.v);
        return NUAGE_E_RANGE;
    }
    if (out && cap && ids.n) memcpy(out, ids.v, (ids.n < cap ? ids.n : cap) * sizeof *out);
    int n = (int)ids.n;
    free(ids.v);
    return n;
}
