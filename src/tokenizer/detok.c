/*
 * detok.c - from token ids back to text.
 *
 * Two consumers, two functions:
 *  - nuage_detokenize reproduces llama.cpp's llama_detokenize for a whole
 *    sequence (first-token space strip for SPM, optional BOS/EOS removal,
 *    and the " ," / " 's" clean-up of BPE vocabularies that ask for it).
 *    Its output is bytes: a byte-level vocabulary can produce any byte
 *    sequence, valid UTF-8 or not.
 *  - the streaming detokenizer (nuage_detok) is what generation uses: one
 *    token at a time, it returns only complete, valid UTF-8. A token often
 *    ends in the middle of a character (byte tokens, byte-level BPE), so an
 *    incomplete sequence at the end is held back until the next token
 *    completes it; bytes that can never become valid (a stray continuation
 *    byte, an overlong or surrogate form, a sequence cut short by a new lead
 *    byte) are replaced by U+FFFD at once, one U+FFFD per maximal invalid
 *    subpart as Unicode recommends; flush replaces whatever is still held.
 *    So every byte the caller ever receives is valid UTF-8: a server can
 *    put it into JSON without further checks.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* ---- whole-sequence detokenization -------------------------------------- */

static void clean_spaces(char *t, size_t *np) {
    size_t total = *np;
    if (total == 0) return;
    /* pass 1: " ?", " !", " .", " ," lose the space */
    size_t n1 = total, o = 1;
    for (size_t i = 1; i < n1; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) o--;
        t[o++] = x;
    }
    /* pass 2: " ' " -> "'" */
    size_t n2 = o;
    o = 1;
    for (size_t i = 1; i < n2; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < n2 && t[i - 1] == ' ' && t[i + 1] == ' ') {
            o--;
            t[++i] = 0;
        }
        t[o++] = x;
    }
    /* pass 3: " 's", " 'm", " 're", " 've" lose the space */
    size_t n3 = o;
    o = 1;
    for (size_t i = 1; i < n3; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < n3) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm') o--;
            else if (i + 2 < n3 && ((x1 == 'r' && t[i + 2] == 'e') || (x1 == 'v' && t[i + 2] == 'e'))) o--;
        }
        t[o++] = x;
    }
    *np = o;
}

int nuage_detokenize(const nuage_vocab *v, const int32_t *toks, size_t n, char *buf, size_t cap,
                     bool remove_special, bool unparse_special) {
    if (!v || (!toks && n)) return NUAGE_E_INVAL;
    nuage__buf b = {0};
    bool remove_space = v->add_space_prefix;
    if (remove_special && v->add_bos && n > 0 && toks[0] == v->bos) {
        remove_space = false;
        toks++;
        n--;
    }
    if (remove_special && v->add_eos && n > 0 && toks[n - 1] == v->eos) n--;
    for (size_t i = 0; i < n; i++) {
        int32_t t = toks[i];
        if (t < 0 || t >= v->n_tokens) {
            free(b.p);
            return NUAGE_E_RANGE;
        }
        bool render = unparse_special ||
                      !(v->toks[t].attr & (NUAGE_TOKEN_ATTR_CONTROL | NUAGE_TOKEN_ATTR_UNKNOWN));
        if (render) {
            const char *p = v->piece_pool + v->piece_off[t];
            size_t pn = v->piece_len[t];
            if (remove_space && pn && *p == ' ') {
                p++;
                pn--;
            }
            if (!nuage__buf_put(&b, p, pn)) {
                free(b.p);
                return NUAGE_E_NOMEM;
            }
        }
        remove_space = false;
    }
    if (v->clean_spaces && b.p) clean_spaces(b.p, &b.n);
    if (b.n > INT32_MAX) {
        free(b.p);
        return NUAGE_E_RANGE;
    }
    if (buf && cap) {
        size_t c = b.n < cap ? b.n : cap;
        if (c) memcpy(buf, b.p, c);
        if (b.n < cap) buf[b.n] = 0;
    }
    int len = (int)b.n;
    free(b.p);
    return len;
}

/* ---- streaming ---------------------------------------------------------- */

struct nuage_detok {
    const nuage_vocab *v;
    bool special;
    unsigned char pend[4];
    size_t n_pend;
    nuage__buf out;
};

enum { SEQ_VALID, SEQ_INCOMPLETE, SEQ_INVALID };

/* Classify the sequence starting at s[0] (n >= 1 bytes available). VALID:
 * *len bytes form a character. INCOMPLETE: all n bytes are a proper prefix
 * of a valid character. INVALID: *len (>= 1) bytes are a maximal invalid
 * subpart to replace by one U+FFFD. */
static int classify(const unsigned char *s, size_t n, size_t *len) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *len = 1;
        return SEQ_VALID;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 2;
    else if (c == 0xe0) { need = 3; lo = 0xa0; }
    else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) need = 3;
    else if (c == 0xed) { need = 3; hi = 0x9f; }
    else if (c == 0xf0) { need = 4; lo = 0x90; }
    else if (c >= 0xf1 && c <= 0xf3) need = 4;
    else if (c == 0xf4) { need = 4; hi = 0x8f; }
    else {
        *len = 1;
        return SEQ_INVALID;
    }
    for (size_t k = 1; k < need; k++) {
        if (k >= n) return SEQ_INCOMPLETE;
        unsigned char b = s[k];
        unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xbf;
        if (b < l || b > h) {
            *len = k;
            return SEQ_INVALID;
        }
    }
    *len = need;
    return SEQ_VALID;
}

nuage_detok *nuage_detok_new(const nuage_vocab *v, bool special) {
    nuage_detok *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->v = v;
    d->special = special;
    return d;
}

void nuage_detok_free(nuage_detok *d) {
    if (!d) return;
    free(d->out.p);
    free(d);
}

void nuage_detok_reset(nuage_detok *d) {
    if (d) d->n_pend = 0;
}

static const char *finish(nuage_detok *d, size_t *n) {
    if (!nuage__buf_reserve(&d->out, 1)) {
        *n = 0;
        return NULL;
    }
    d->out.p[d->out.n] = 0;
    *n = d->out.n;
    return d->out.p;
}

/* Emit the valid part of pend + bytes into d->out, keeping an incomplete
 * tail in pend. */
static bool feed(nuage_detok *d, const unsigned char *bytes, size_t len) {
    /* work on pend ++ bytes without copying all of bytes: complete the
     * pending sequence first, then scan bytes in place */
    size_t i = 0;
    while (d->n_pend) {
        unsigned char tmp[8];
        size_t k = d->n_pend;
        memcpy(tmp, d->pend, k);
        size_t take = len - i < 4 ? len - i : 4;
        memcpy(tmp + k, bytes + i, take);
        size_t sl;
        int st = classify(tmp, k + take, &sl);
        if (st == SEQ_INCOMPLETE) {
            memcpy(d->pend + k, bytes + i, take);
            d->n_pend = k + take;
            return true;
        }
        if (st == SEQ_VALID) {
            if (!nuage__buf_put(&d->out, tmp, sl)) return false;
        } else {
            if (!nuage__buf_put(&d->out, "\xef\xbf\xbd", 3)) return false;
        }
        /* sl bytes of tmp consumed: some from pend, the rest from bytes */
        if (sl >= k) {
            i += sl - k;
            d->n_pend = 0;
        } else {
            memmove(d->pend, d->pend + sl, k - sl);
            d->n_pend = k - sl;
        }
    }
    while (i < len) {
        size_t ok = nuage__utf8_valid_prefix(bytes + i, len - i);
        if (ok && !nuage__buf_put(&d->out, bytes + i, ok)) return false;
        i += ok;
        if (i >= len) break;
        size_t sl;
        int st = classify(bytes + i, len - i, &sl);
        if (st == SEQ_INCOMPLETE) {
            memcpy(d->pend, bytes + i, len - i);
            d->n_pend = len - i;
            return true;
        }
        /* not VALID here (valid_prefix stopped) */
        if (!nuage__buf_put(&d->out, "\xef\xbf\xbd", 3)) return false;
        i += sl;
    }
    return true;
}

const char *nuage_detok_push_bytes(nuage_detok *d, const char *bytes, size_t len, size_t *n) {
    *n = 0;
    if (!d) return NULL;
    d->out.n = 0;
    if (len && !feed(d, (const unsigned char *)bytes, len)) return NULL;
    return finish(d, n);
}

const char *nuage_detok_push(nuage_detok *d, int32_t tok, size_t *n) {
    *n = 0;
    if (!d || !d->v || tok < 0 || tok >= d->v->n_tokens) return NULL;
    const nuage_vocab *v = d->v;
    d->out.n = 0;
    bool render = d->special ||
                  !(v->toks[tok].attr & (NUAGE_TOKEN_ATTR_CONTROL | NUAGE_TOKEN_ATTR_UNKNOWN));
    if (render && v->piece_len[tok] &&
        !feed(d, (const unsigned char *)v->piece_pool + v->piece_off[tok], v->piece_len[tok]))
        return NULL;
    return finish(d, n);
}

const char *nuage_detok_flush(nuage_detok *d, size_t *n) {
    *n = 0;
    if (!d) return NULL;
    d->out.n = 0;
    if (d->n_pend) {
        /* an incomplete sequence is one maximal subpart: one U+FFFD */
        d->n_pend = 0;
        if (!nuage__buf_put(&d->out, "\xef\xbf\xbd", 3)) return NULL;
    }
    return finish(d, n);
}
