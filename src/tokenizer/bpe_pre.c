/*
 * bpe_pre.c - BPE pre-tokenizers: the regexes that cut text into words
 * before merges run, chosen by `tokenizer.ggml.pre`, evaluated with PCRE2.
 *
 * llama.cpp describes each pre-tokenizer as a list of regexes applied in
 * turn: the first splits the text into pieces (every match is a piece, and
 * so is every stretch of text between two matches), the next one splits
 * each of those pieces again without looking across their borders, and so
 * on. We keep the same lists (they come from the models' tokenizer.json)
 * and the same splitting rule, and run them through PCRE2 (UTF + UCP).
 *
 * llama.cpp itself does not evaluate them with a Unicode regex engine, and
 * the test vectors encode what its engine does, so each pattern is
 * rewritten (regex_rewrite) to PCRE2 with the same meaning:
 *  - llama.cpp runs std::regex on a copy of the text where every non-ASCII
 *    code point is replaced by one byte standing for its class (letter,
 *    number, punctuation, mark, symbol, other), and non-ASCII whitespace by
 *    \v. \p{L} becomes that letter byte plus A-Za-z, etc. Under PCRE2's
 *    Unicode properties this means exactly \p{L}, \p{N}, \p{P}, \p{M},
 *    \p{S}; but \p{Lu}, \p{Ll}, \p{Lt}, \p{Lm}, \p{Lo} all collapse to
 *    "letter", so we write \p{L} for each of them.
 *  - Its whitespace is Unicode's White_Space property, which includes
 *    U+0085 (NEL); PCRE2's \s does not, so \s becomes [\s\x{85}] and \S
 *    becomes [^\s\x{85}].
 *  - Patterns without \p{..} are run by llama.cpp with std::wregex on the
 *    code points, again with non-ASCII whitespace replaced by \v, so a
 *    character class written with non-ASCII ranges (deepseek's
 *    "[一-龥ࠀ-一가-퟿]", which spans U+3000 IDEOGRAPHIC SPACE) never matches a
 *    whitespace character. Such a class is wrapped in a negative lookahead
 *    for non-ASCII whitespace.
 *  - ECMAScript's $ matches only at the very end: PCRE2_DOLLAR_ENDONLY.
 *  - The hand-written fast paths llama.cpp uses for the GPT-2 and Llama-3
 *    patterns behave as those regexes do (we checked branch by branch,
 *    including the trailing \s+ its GPT-2 path adds, which only renames a
 *    gap the splitting rule would produce anyway), so no special case is
 *    needed for them.
 * Code points are classified by PCRE2's Unicode tables, llama.cpp's by its
 * own (generated from Python); the two can differ for characters assigned
 * in recent Unicode versions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3                                                                          \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                           \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN35                                                                          \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|" \
    "\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT4O                                                                           \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|" \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|" \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_TEKKEN                                                                          \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|"                   \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|"                   \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_BLOOM " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"
#define RE_DEEPSEEK_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
#define RE_DEEPSEEK3_MAIN                                                                  \
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|" \
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"

typedef struct {
    const char *names;  /* '|'-separated tokenizer.ggml.pre values */
    const char *canon;
    const char *re[NUAGE_PRE_MAX_RE];
    bool clean_spaces, ignore_merges, add_bos, no_bos;
} pre_def;

static const pre_def g_pre[] = {
    {"default", "default",
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, true, false, false, false},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano", "llama3",
     {RE_LLAMA3}, true, true, true, false},
    {"dbrx", "dbrx", {RE_LLAMA3}, true, false, false, false},
    {"smaug-bpe", "smaug-bpe", {RE_LLAMA3}, true, false, false, false},
    {"deepseek-llm", "deepseek-llm",
     {"[\r\n]",
      "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$", RE_DEEPSEEK_CJK, "\\p{N}+"},
     false, false, false, false},
    {"deepseek-coder", "deepseek-coder",
     {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_DEEPSEEK_CJK, "\\p{N}"}, false, false, false, false},
    {"deepseek-v3|hunyuan-dense|joyai-llm|hy_v4", "deepseek-v3",
     {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+", RE_DEEPSEEK3_MAIN}, false, false, false, false},
    {"falcon", "falcon",
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, true, false, false, false},
    {"starcoder|refact|codeshell|exaone|minerva-7b|mellum2", "starcoder", {"\\p{N}", RE_GPT2},
     true, false, false, false},
    {"command-r|smollm", "command-r", {"\\p{N}", RE_GPT2}, false, false, false, false},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|"
     "jina-v1-en|jina-v2-code|roberta-bpe|exaone4|mpt|olmo|jais",
     "gpt-2", {RE_GPT2}, true, false, false, false},
    {"trillion|granite-docling", "trillion", {RE_GPT2}, false, false, false, false},
    {"stablelm2|megrez", "stablelm2", {RE_QWEN2}, true, false, false, false},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|hunyuan|solar-open|grok-2", "qwen2", {RE_QWEN2},
     false, false, false, false},
    {"qwen35", "qwen35", {RE_QWEN35}, false, false, false, false},
    {"poro-chat", "poro-chat", {RE_BLOOM}, false, false, false, false},
    {"bloom|gpt3-finnish", "bloom", {RE_BLOOM}, true, false, false, false},
    {"viking", "viking", {RE_BLOOM, "\\p{N}"}, false, false, false, false},
    {"glm4|chatglm-bpe", "chatglm-bpe", {RE_LLAMA3}, true, false, false, true},
    {"tekken", "tekken", {RE_TEKKEN}, false, true, true, false},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2", "gpt-4o", {RE_GPT4O}, false, false, false, false},
    {"chameleon", "chameleon",
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2},
     false, false, true, false},
    {"bailingmoe|bailingmoe2|llada-moe", "bailingmoe",
     {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     false, false, false, false},
    {"seed-coder", "seed-coder",
     {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false, false, false, false},
    {"superbpe", "superbpe", {"\\p{N}+", "(?=(\\d{3})+(?!\\d))"}, false, false, false, false},
};

/* Non-ASCII White_Space code points (llama.cpp's whitespace set beyond
 * ASCII), as a PCRE2 class body. */
#define NONASCII_WS "\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"

/* Append s to the growable out buffer. */
static bool put(nuage__buf *o, const char *s, size_t n) { return nuage__buf_put(o, s, n); }
static bool puts_(nuage__buf *o, const char *s) { return put(o, s, strlen(s)); }

/* Rewrite a llama.cpp pattern into PCRE2 syntax with llama.cpp's meaning
 * (see the file comment). Returns false on out-of-memory or a construct we
 * cannot translate (\S inside a class). */
static bool regex_rewrite(const char *re, nuage__buf *o, char *err, size_t errlen) {
    bool uses_props = strstr(re, "\\p{") != NULL;
    size_t n = strlen(re);
    bool in_class = false;
    bool wrap_class = false;  /* current class wrapped in a lookahead group */
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            char d = re[i + 1];
            if (d == 's') {
                if (!puts_(o, in_class ? "\\s\\x{85}" : "[\\s\\x{85}]")) return false;
                i++;
                continue;
            }
            if (d == 'S') {
                if (in_class) {
                    snprintf(err, errlen, "pre-tokenizer regex: \\S inside a class is not supported");
                    return false;
                }
                if (!puts_(o, "[^\\s\\x{85}]")) return false;
                i++;
                continue;
            }
            if (d == 'd' || d == 'w') {
                /* ECMAScript's \d and \w are ASCII-only; PCRE2_UCP's are not */
                const char *cls = d == 'd' ? "0-9" : "A-Za-z0-9_";
                if (!in_class && !put(o, "[", 1)) return false;
                if (!puts_(o, cls)) return false;
                if (!in_class && !put(o, "]", 1)) return false;
                i++;
                continue;
            }
            if (d == 'p' && i + 2 < n && re[i + 2] == '{') {
                const char *close = strchr(re + i + 3, '}');
                if (close && close - (re + i) == 5 && re[i + 3] == 'L') {
                    /* \p{Lu} \p{Ll} \p{Lt} \p{Lm} \p{Lo}: llama.cpp treats each as \p{L} */
                    if (!puts_(o, "\\p{L}")) return false;
                    i += 5;
                    continue;
                }
            }
            if (!put(o, re + i, 2)) return false;
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            wrap_class = false;
            bool negated = i + 1 < n && re[i + 1] == '^';
            if (!uses_props && !negated) {
                /* does the class contain a non-ASCII literal? */
                for (size_t k = i + 1; k < n && re[k] != ']'; k++) {
                    if (re[k] == '\\') {
                        if (k + 1 < n && re[k + 1] == 'x') { wrap_class = true; break; }
                        k++;
                        continue;
                    }
                    if ((unsigned char)re[k] >= 0x80) { wrap_class = true; break; }
                }
            }
            if (wrap_class && !puts_(o, "(?:(?![" NONASCII_WS "])")) return false;
            if (!put(o, "[", 1)) return false;
            continue;
        }
        if (in_class && c == ']') {
            in_class = false;
            if (!put(o, "]", 1)) return false;
            if (wrap_class && !put(o, ")", 1)) return false;
            continue;
        }
        if (!put(o, &c, 1)) return false;
    }
    return true;
}

pcre2_code *nuage__regex_compile(const char *llama_pattern, char *err, size_t errlen) {
    nuage__buf o = {0};
    if (!regex_rewrite(llama_pattern, &o, err, errlen) || !o.p) {
        if (err && !*err) snprintf(err, errlen, "out of memory");
        free(o.p);
        return NULL;
    }
    int ec = 0;
    PCRE2_SIZE eo = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)o.p, o.n,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(err, errlen, "pre-tokenizer regex '%s': %s at %zu", llama_pattern, (char *)msg,
                 (size_t)eo);
        free(o.p);
        return NULL;
    }
    free(o.p);
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: the interpreter works without */
    return re;
}

static bool name_in_list(const char *list, const char *name) {
    size_t nl = strlen(name);
    const char *p = list;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == nl && !memcmp(p, name, l)) return true;
        if (!bar) break;
        p = bar + 1;
    }
    return false;
}

int nuage__pre_init(nuage__pre *p, const char *name, nuage__pre_flags *flags, const char **canon,
                    char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    const pre_def *d = NULL;
    const char *key = (name && *name) ? name : "default";
    for (size_t i = 0; i < sizeof g_pre / sizeof g_pre[0]; i++)
        if (name_in_list(g_pre[i].names, key)) {
            d = &g_pre[i];
            break;
        }
    if (!d) {
        snprintf(err, errlen, "unknown pre-tokenizer type '%s'", key);
        return NUAGE_E_UNSUPPORTED;
    }
    for (int i = 0; i < NUAGE_PRE_MAX_RE && d->re[i]; i++) {
        p->re[i] = nuage__regex_compile(d->re[i], err, errlen);
        if (!p->re[i]) {
            nuage__pre_free(p);
            return NUAGE_E_UNSUPPORTED;
        }
        p->n_re = i + 1;
    }
    flags->clean_spaces = d->clean_spaces;
    flags->ignore_merges = d->ignore_merges;
    flags->add_bos = d->add_bos;
    flags->no_bos = d->no_bos;
    *canon = d->canon;
    return 0;
}

void nuage__pre_free(nuage__pre *p) {
    for (int i = 0; i < NUAGE_PRE_MAX_RE; i++) {
        if (p->re[i]) pcre2_code_free(p->re[i]);
        p->re[i] = NULL;
    }
    p->n_re = 0;
}

typedef struct {
    size_t *v;
    size_t n, cap;
} offs;

static bool offs_push(offs *a, size_t x) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 256;
        size_t *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) return false;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = x;
    return true;
}

/* One match of re in subj[0..n) from pos; 1 found (ovector in md), 0 none,
 * negative on error. Falls back to the interpreter when the JIT stack is
 * too small. */
static int match_at(const pcre2_code *re, const char *subj, size_t n, size_t pos, uint32_t opts,
                    pcre2_match_data *md) {
    int rc = pcre2_match(re, (PCRE2_SPTR)subj, n, pos, opts | PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(re, (PCRE2_SPTR)subj, n, pos, opts | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                         NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) return rc;
    return 1;
}

/* Split every chunk of `in` (end offsets into text) by re, appending the
 * new chunk ends to `out`. */
static int split_pass(const pcre2_code *re, const char *text, const offs *in, offs *out,
                      pcre2_match_data *md) {
    size_t a = 0;
    for (size_t ci = 0; ci < in->n; ci++) {
        size_t b = in->v[ci];
        const char *subj = text + a;
        size_t n = b - a, pos = 0, prev = 0;
        uint32_t opts = 0;
        while (pos < n) {
            int rc = match_at(re, subj, n, pos, opts, md);
            if (rc < 0) return NUAGE_E_INVAL;
            if (rc == 0) {
                if (!opts) break;
                /* no non-empty match at pos after an empty one: step one character */
                opts = 0;
                pos++;
                while (pos < n && ((unsigned char)subj[pos] & 0xc0) == 0x80) pos++;
                continue;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t s = ov[0], e = ov[1];
            if (e == s) {
                opts = PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED;
                pos = e;
                continue;
            }
            if (s > prev && !offs_push(out, a + s)) return NUAGE_E_NOMEM;
            if (!offs_push(out, a + e)) return NUAGE_E_NOMEM;
            prev = pos = e;
            opts = 0;
        }
        if (prev < n && !offs_push(out, b)) return NUAGE_E_NOMEM;
        a = b;
    }
    return 0;
}

int nuage__pre_split_ends(const nuage__pre *p, const char *text, size_t len, size_t **ends,
                          size_t *n_ends) {
    offs cur = {0}, nxt = {0};
    int rc = 0;
    *ends = NULL;
    *n_ends = 0;
    if (len == 0) return 0;
    if (!offs_push(&cur, len)) return NUAGE_E_NOMEM;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) {
        free(cur.v);
        return NUAGE_E_NOMEM;
    }
    for (int i = 0; i < p->n_re; i++) {
        nxt.n = 0;
        rc = split_pass(p->re[i], text, &cur, &nxt, md);
        if (rc) goto done;
        offs t = cur;
        cur = nxt;
        nxt = t;
    }
    *ends = cur.v;
    *n_ends = cur.n;
    cur.v = NULL;
done:
    pcre2_match_data_free(md);
    free(cur.v);
    free(nxt.v);
    return rc;
}
