/*
 * utf8.c - the UTF-8 rules the tokenizer needs, and the GPT-2 byte map.
 *
 * Two different notions of "valid" are in play. llama.cpp decodes input
 * text leniently (unicode_cpt_from_utf8: it checks lead bytes and that the
 * continuation bytes are 10xxxxxx, but accepts overlong forms and
 * surrogates) and replaces each byte it cannot decode by U+FFFD, then
 * re-encodes the code points; the BPE and WordPiece tokenizers see that
 * re-encoded text, so we reproduce it exactly (nuage__utf8_llama_normalize).
 * PCRE2, on the other hand, wants strictly valid UTF-8, so the copy we run
 * the pre-tokenizer regexes on has surrogates (the only thing the lenient
 * re-encoding can leave invalid once values above U+10FFFF are mapped to
 * U+FFFD) replaced by U+FFFF, which has the same length and, like a
 * surrogate, is neither letter, number, punctuation nor space.
 *
 * Output meant for people (the streaming detokenizer) uses the strict rules
 * of nuage__utf8_valid_prefix: no overlong forms, no surrogates, nothing
 * above U+10FFFF.
 *
 * The GPT-2 byte map is the one small table that cannot come from PCRE2:
 * printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100
 * onwards in byte order.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

bool nuage__ids_push(nuage__ids *a, int32_t x) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        int32_t *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) return false;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = x;
    return true;
}

bool nuage__buf_reserve(nuage__buf *b, size_t n) {
    if (b->cap - b->n >= n) return true;
    size_t nc = b->cap ? b->cap : 64;
    while (nc - b->n < n) {
        if (nc > SIZE_MAX / 2) return false;
        nc *= 2;
    }
    char *np = realloc(b->p, nc);
    if (!np) return false;
    b->p = np;
    b->cap = nc;
    return true;
}

bool nuage__buf_put(nuage__buf *b, const void *p, size_t n) {
    if (!nuage__buf_reserve(b, n + 1)) return false;
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

int32_t nuage__utf8_lax_decode(const unsigned char *s, size_t n, size_t i, size_t *adv) {
    unsigned char c = s[i];
    *adv = 1;
    if (!(c & 0x80)) return c;
    if (!(c & 0x40)) return -1;
    if (!(c & 0x20)) {
        if (i + 1 >= n || (s[i + 1] & 0xc0) != 0x80) return -1;
        *adv = 2;
        return ((c & 0x1f) << 6) | (s[i + 1] & 0x3f);
    }
    if (!(c & 0x10)) {
        if (i + 2 >= n || (s[i + 1] & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80) return -1;
        *adv = 3;
        return ((c & 0x0f) << 12) | ((s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f);
    }
    if (!(c & 0x08)) {
        if (i + 3 >= n || (s[i + 1] & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80 ||
            (s[i + 3] & 0xc0) != 0x80)
            return -1;
        *adv = 4;
        return ((c & 0x07) << 18) | ((s[i + 1] & 0x3f) << 12) | ((s[i + 2] & 0x3f) << 6) |
               (s[i + 3] & 0x3f);
    }
    return -1;
}

size_t nuage__utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the strictly valid sequence at s[0..n), 0 when invalid or
 * truncated. */
static size_t strict_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c == 0xe0) { len = 3; lo = 0xa0; }
    else if (c >= 0xe1 && c <= 0xec) len = 3;
    else if (c == 0xed) { len = 3; hi = 0x9f; }
    else if (c >= 0xee && c <= 0xef) len = 3;
    else if (c == 0xf0) { len = 4; lo = 0x90; }
    else if (c >= 0xf1 && c <= 0xf3) len = 4;
    else if (c == 0xf4) { len = 4; hi = 0x8f; }
    else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if ((s[k] & 0xc0) != 0x80) return 0;
    return len;
}

size_t nuage__utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = strict_seq(s + i, n - i);
        if (!k) return i;
        i += k;
    }
    return n;
}

bool nuage__utf8_llama_normalize(const char *text, size_t len, nuage__buf *out, nuage__buf *matchable) {
    const unsigned char *s = (const unsigned char *)text;
    out->n = 0;
    if (matchable) matchable->n = 0;
    if (!nuage__buf_reserve(out, len + 1)) return false;
    if (matchable && !nuage__buf_reserve(matchable, len + 1)) return false;
    size_t i = 0;
    while (i < len) {
        size_t ok = nuage__utf8_valid_prefix(s + i, len - i);
        if (ok) {
            if (!nuage__buf_put(out, s + i, ok)) return false;
            if (matchable && !nuage__buf_put(matchable, s + i, ok)) return false;
            i += ok;
            continue;
        }
        /* s[i] starts something the strict decoder rejects */
        size_t adv;
        int32_t cp = nuage__utf8_lax_decode(s, len, i, &adv);
        char enc[4];
        size_t el;
        if (cp < 0 || cp > 0x10ffff) {
            /* invalid byte (or a value UTF-8 cannot hold): U+FFFD */
            el = nuage__utf8_encode(0xfffd, enc);
            if (cp > 0x10ffff) adv = 4;
            else adv = 1;
            if (!nuage__buf_put(out, enc, el)) return false;
            if (matchable && !nuage__buf_put(matchable, enc, el)) return false;
        } else if (cp >= 0xd800 && cp <= 0xdfff) {
            el = nuage__utf8_encode((uint32_t)cp, enc); /* ED xx xx as llama.cpp writes it */
            if (!nuage__buf_put(out, enc, el)) return false;
            if (matchable && !nuage__buf_put(matchable, "\xef\xbf\xbf", 3)) return false;
        } else {
            /* overlong form: re-encoded shortest */
            el = nuage__utf8_encode((uint32_t)cp, enc);
            if (!nuage__buf_put(out, enc, el)) return false;
            if (matchable && !nuage__buf_put(matchable, enc, el)) return false;
        }
        i += adv;
    }
    if (!nuage__buf_reserve(out, 1)) return false;
    out->p[out->n] = 0;
    return true;
}

/* ---- GPT-2 byte map ----------------------------------------------------- */

static nuage__bytechar g_byte_enc[256];
static int16_t g_byte_dec[324]; /* code points 0..323 -> byte or -1 */
static pthread_once_t g_byte_once = PTHREAD_ONCE_INIT;

static void byte_map_init(void) {
    int n = 0;
    for (int i = 0; i < 324; i++) g_byte_dec[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
        uint32_t cp = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        g_byte_enc[b].n = (unsigned char)nuage__utf8_encode(cp, g_byte_enc[b].s);
        g_byte_dec[cp] = (int16_t)b;
    }
}

const nuage__bytechar *nuage__gpt2_byte_enc(void) {
    pthread_once(&g_byte_once, byte_map_init);
    return g_byte_enc;
}

int nuage__gpt2_byte_dec(uint32_t cp) {
    pthread_once(&g_byte_once, byte_map_init);
    return cp < 324 ? g_byte_dec[cp] : -1;
}
