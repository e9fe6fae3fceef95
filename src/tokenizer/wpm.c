/*
 * wpm.c - WordPiece ("bert" vocabularies), as llama.cpp's
 * llm_tokenizer_wpm does it.
 *
 * Normalisation, per code point (llama.cpp decodes leniently, invalid
 * bytes become U+FFFD):
 *  - with strip_accents, the code point is replaced by the first code point
 *    of its NFD decomposition (wpm_nfd.c) and combining marks are dropped;
 *  - whitespace ends a word; NUL, U+FFFD and control/format/unassigned
 *    characters (\p{C}) are dropped;
 *  - punctuation, ASCII symbols and CJK ideographs become one-character
 *    words;
 *  - everything else is appended to the current word, lower-cased when the
 *    normaliser asks for it.
 * The character classes come from PCRE2 (one regex with a group per class,
 * matched along the text); lower-casing uses PCRE2's Unicode case data
 * through pcre2_substitute's \L. Then each word, with U+2581 prepended (the
 * GGUF vocabulary writes word-initial pieces that way and continuation
 * pieces without BERT's "##"), is cut greedily into the longest tokens
 * from the left; a word that cannot be cut completely becomes one [UNK].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* Groups: 1 whitespace, 2 dropped (\p{C}), 3 combining mark, 4 a character
 * that is a word of its own, 5 word characters. */
#define CJK "\\x{4E00}-\\x{9FFF}\\x{3400}-\\x{4DBF}\\x{20000}-\\x{2A6DF}\\x{2A700}-\\x{2B73F}" \
            "\\x{2B740}-\\x{2B81F}\\x{2B920}-\\x{2CEAF}\\x{F900}-\\x{FAFF}\\x{2F800}-\\x{2FA1F}"
#define ASCII_PS "!-/:-@\\[-`{-~"
static const char k_wpm_re[] =
    "([\\s\\x{85}]+)|(\\p{C}+)|(\\p{M})|([\\p{P}" ASCII_PS CJK "])|"
    "([^\\s\\x{85}\\p{C}\\p{M}\\p{P}" ASCII_PS CJK "]+)";

int nuage__wpm_init(nuage_vocab *v, char *err, size_t errlen) {
    int ec;
    PCRE2_SIZE eo;
    v->wpm_re = pcre2_compile((PCRE2_SPTR)k_wpm_re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                              &ec, &eo, NULL);
    if (!v->wpm_re) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(err, errlen, "WordPiece classifier regex: %s", (char *)msg);
        return NUAGE_E_STATE;
    }
    pcre2_jit_compile(v->wpm_re, PCRE2_JIT_COMPLETE);
    v->wpm_lower_re = pcre2_compile((PCRE2_SPTR) "(?s).+", PCRE2_ZERO_TERMINATED,
                                    PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!v->wpm_lower_re) {
        snprintf(err, errlen, "WordPiece lower-case regex failed");
        return NUAGE_E_STATE;
    }
    return 0;
}

/* Lower-case UTF-8 text s[0..n) into out with PCRE2's \L. */
static int lowercase(const pcre2_code *re, const char *s, size_t n, nuage__buf *out) {
    int rc = 0;
    PCRE2_SIZE olen = n + n / 2 + 16;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!nuage__buf_reserve(out, olen + 1)) {
            rc = NUAGE_E_NOMEM;
            break;
        }
        PCRE2_SIZE cap = out->cap;
        int r = pcre2_substitute(re, (PCRE2_SPTR)s, n, 0,
                                 PCRE2_SUBSTITUTE_EXTENDED | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH |
                                     PCRE2_NO_UTF_CHECK,
                                 NULL, NULL, (PCRE2_SPTR) "\\L$0", PCRE2_ZERO_TERMINATED,
                                 (PCRE2_UCHAR *)out->p, &cap);
        if (r >= 0) {
            out->n = cap;
            rc = 0;
            break;
        }
        if (r == PCRE2_ERROR_NOMEMORY) {
            olen = cap + 1;
            rc = NUAGE_E_NOMEM;
            continue;
        }
        rc = NUAGE_E_INVAL;
        break;
    }
    return rc;
}

/* Greedy longest-match of one word (without the U+2581 prefix). */
static int wpm_word(const nuage_vocab *v, const char *word, size_t wn, nuage__buf *tmp,
                    nuage__ids *out) {
    tmp->n = 0;
    if (!nuage__buf_put(tmp, "\xe2\x96\x81", 3) || !nuage__buf_put(tmp, word, wn)) return NUAGE_E_NOMEM;
    const char *w = tmp->p;
    size_t n = tmp->n, start = out->n;
    for (size_t i = 0; i < n; i++) {
        size_t j = i + (size_t)v->max_token_len + 1;
        if (j > n) j = n;
        bool match = false;
        for (; j > i; j--) {
            int32_t id = nuage__find(v, w + i, j - i);
            if (id >= 0) {
                if (!nuage__ids_push(out, id)) return NUAGE_E_NOMEM;
                match = true;
                i = j - 1;
                break;
            }
        }
        if (!match) {
            out->n = start;
            break;
        }
    }
    if (out->n == start && v->unk >= 0 && !nuage__ids_push(out, v->unk)) return NUAGE_E_NOMEM;
    return 0;
}

int nuage__wpm_tokenize(const nuage_vocab *v, const char *text, size_t len, nuage__ids *out) {
    if (len == 0) return 0;
    const unsigned char *s = (const unsigned char *)text;
    nuage__buf t = {0}, low = {0}, word = {0}, tmp = {0};
    pcre2_match_data *md = NULL;
    int rc = 0;
    /* 1. decode, NFD-first, drop what PCRE2 cannot hold (all of it is \p{C}
     *    or U+FFFD, which WordPiece drops anyway) */
    if (!nuage__buf_reserve(&t, len + 1)) { rc = NUAGE_E_NOMEM; goto done; }
    for (size_t i = 0; i < len;) {
        size_t adv;
        int32_t cp = nuage__utf8_lax_decode(s, len, i, &adv);
        i += adv;
        if (cp <= 0 || cp == 0xfffd || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) continue;
        uint32_t c = v->strip_accents ? nuage__nfd_first((uint32_t)cp) : (uint32_t)cp;
        char enc[4];
        size_t el = nuage__utf8_encode(c, enc);
        if (!nuage__buf_put(&t, enc, el)) { rc = NUAGE_E_NOMEM; goto done; }
    }
    const char *src = t.p ? t.p : "";
    size_t sn = t.n;
    if (v->lowercase && sn) {
        if ((rc = lowercase(v->wpm_lower_re, src, sn, &low))) goto done;
        src = low.p;
        sn = low.n;
    }
    /* 2. classify and build words */
    md = pcre2_match_data_create_from_pattern(v->wpm_re, NULL);
    if (!md) { rc = NUAGE_E_NOMEM; goto done; }
    size_t pos = 0;
    while (pos < sn) {
        int r = pcre2_match(v->wpm_re, (PCRE2_SPTR)src, sn, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (r == PCRE2_ERROR_JIT_STACKLIMIT)
            r = pcre2_match(v->wpm_re, (PCRE2_SPTR)src, sn, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (r < 0) { rc = NUAGE_E_INVAL; goto done; }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms != pos || me <= ms) { rc = NUAGE_E_INVAL; goto done; } /* classes cover everything */
        int grp = r - 1; /* highest group set is the one that matched */
        bool end_word = grp == 1 || grp == 4;
        bool append = grp == 5 || (grp == 3 && !v->strip_accents);
        if (end_word && word.n) {
            if ((rc = wpm_word(v, word.p, word.n, &tmp, out))) goto done;
            word.n = 0;
        }
        if (grp == 4) {
            if ((rc = wpm_word(v, src + ms, me - ms, &tmp, out))) goto done;
        } else if (append) {
            if (!nuage__buf_put(&word, src + ms, me - ms)) { rc = NUAGE_E_NOMEM; goto done; }
        }
        pos = me;
    }
    if (word.n) rc = wpm_word(v, word.p, word.n, &tmp, out);
done:
    if (md) pcre2_match_data_free(md);
    free(t.p);
    free(low.p);
    free(word.p);
    free(tmp.p);
    return rc;
}
