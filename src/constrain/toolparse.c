/*
 * toolparse.c - the streaming tool-call parser (nuage_toolparse_*).
 *
 * Model output arrives in pieces of any size. The parser keeps the bytes
 * it has not decided yet in one buffer and, after every piece, decides as
 * much of its front as it can:
 *   - text that cannot be the start of markup is content, emitted at once;
 *   - a suffix that is a proper prefix of a trigger ("<tool_c") is held;
 *   - from a full trigger on, the family's block parser reads the call
 *     markup and answers MORE (valid so far: hold everything), FAIL (the
 *     trigger is given back as content and scanning resumes right after
 *     it, so nothing is lost and a later call is still found) or DONE
 *     (the calls of the block, emitted together: CALL_START, one
 *     CALL_ARGS fragment equal to the whole arguments, CALL_END).
 * Every decision depends only on the bytes seen and on `final`, never on
 * where the pieces were cut, so any split of the output gives the same
 * content and calls (tested from every split point). A call's events are
 * emitted when its markup is complete: a call cannot be un-emitted, and
 * markup that turns out malformed must become content.
 *
 * Whitespace: at the start of the output and right after a call, white
 * space is held; it is dropped when a call (or a family's closing marker,
 * e.g. <｜tool▁calls▁end｜>) follows or the output ends after a call, and
 * given back as content otherwise. So "\n" between two <tool_call>
 * blocks is not content, but an output made only of spaces still is.
 *
 * Trigger sets never contain one trigger inside another, which makes
 * "the earliest complete trigger" independent of how much has arrived.
 *
 * Harmony (gpt-oss) is a message stream rather than text with embedded
 * calls, so it has its own small state machine (header, body, between
 * messages), at the end of this file.
 *
 * Arguments are the model's JSON with the whitespace outside strings
 * removed (tooljson.c), checked to be a valid JSON object.
 *
 * Eager mode (nuage_toolparse_set_eager), for outputs a grammar forces to
 * be well-formed calls: a call is announced (CALL_START) as soon as its
 * name and the opening brace of its arguments have arrived, and its
 * arguments go out as CALL_ARGS fragments while they arrive -- the same
 * compaction applied to the prefix, never ending inside a UTF-8 sequence
 * -- so a client sees a long call grow as OpenAI streams it. The block
 * parsers report the head of the call they are waiting on (stream_head);
 * CALL_END still comes when the markup is complete and carries the whole
 * arguments, of which the fragments are a prefix. A call announced this
 * way cannot be given back as content: when its block fails anyway (the
 * output was cut by max_tokens; without a grammar a model could write
 * anything) the rest of the output is dropped and the call gets no
 * CALL_END, which the server reports as an unfinished call. When calls
 * are forced from the first token, call markup cut short before its head
 * is dropped as well, never content. Under a lazy grammar a call is
 * announced only where the grammar's trigger engaged it (Llama's {"name",
 * DeepSeek's and Kimi's section markers, the generic {"tool_calls"). Harmony
 * and Gemma still emit each call whole.
 */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "constrain/toolcall.h"
#include "constrain/toolgemma.h"
#include "constrain/tooljson.h"
#include "constrain/toolmarkup.h"
#include "nuage/nuage.h"

#define MAX_NAME 256   /* longest function name / call header we wait for */

typedef enum { BLK_MORE, BLK_FAIL, BLK_DONE } blk_status;

/* One result of a block: a call (name set) or content (name NULL). */
typedef struct {
    char *name;
    char *text;   /* call: compact arguments; content: the text */
    size_t len;
} tp_item;

typedef struct family family;

struct nuage_toolparse {
    nuage_toolfmt fmt;
    const family *fam;
    char **names;
    size_t n_names;
    char *buf;            /* undecided output */
    size_t len, cap;
    size_t base;          /* stream offset of buf[0] */
    /* the scan of the JSON value a pending call is waiting on, kept between
     * feeds so a long argument is read once (at stream offset jc_abs) */
    tj_scan jc;
    size_t jc_abs;
    bool jc_valid;
    size_t h_searched;    /* harmony: stream offset below which a call body has no end marker */
    size_t g_abs, g_searched; /* Gemma: the pending call's offset, and how far no close was seen */
    bool boundary;        /* start of output or right after a call */
    bool after_call;      /* closers may follow (and are dropped) */
    int n_calls;
    tp_item *items;       /* results of the block being parsed */
    size_t n_items, cap_items;
    /* callback of the current feed and its first nonzero answer */
    nuage_tp_cb cb;
    void *ud;
    int cb_rc;
    /* harmony */
    int h_state;
    /* eager mode: the head seen by the block being parsed, and the call
     * being streamed (args_* are stream offsets of its arguments) */
    bool eager;
    bool eager_start;         /* calls are forced from the first token */
    bool head;                /* the block reported a call head */
    const char *head_name;    /* in buf, head_nl bytes */
    size_t head_nl, head_args;
    bool open;                /* CALL_START sent, CALL_END not yet */
    int n_dropped;            /* announced calls that never completed: event
                               * indices are n_calls + n_dropped */
    size_t args_abs;          /* the arguments' '{' */
    size_t args_scan;         /* raw bytes up to here are decided */
    size_t args_sent;         /* compact bytes sent */
    int args_depth;
    bool args_str, args_esc, args_done;
};

struct family {
    const char *const *triggers;   /* NULL-terminated */
    const char *const *closers;    /* dropped right after a call */
    bool bare_json;                /* '{' at a boundary starts a block */
    blk_status (*block)(nuage_toolparse *p, const char *s, size_t n, bool final, size_t *used);
};

/* ---- small helpers ---- */

/* 1: s starts with lit; -1: s is a proper prefix of lit (n < strlen);
 * 0: neither. */
static int prefix_match(const char *s, size_t n, const char *lit) {
    size_t l = strlen(lit);
    if (n >= l) return memcmp(s, lit, l) == 0 ? 1 : 0;
    return memcmp(s, lit, n) == 0 ? -1 : 0;
}

/* prefix_match against a NULL-terminated list: 1 (full, *len set) wins
 * over -1 (partial) over 0. */
static int match_any(const char *s, size_t n, const char *const *lits, size_t *len) {
    int best = 0;
    for (size_t i = 0; lits && lits[i]; i++) {
        int m = prefix_match(s, n, lits[i]);
        if (m == 1) { *len = strlen(lits[i]); return 1; }
        if (m == -1) best = -1;
    }
    return best;
}

static const char *find_bytes(const char *s, size_t n, const char *lit) {
    size_t l = strlen(lit);
    if (l == 0 || n < l) return NULL;
    return memmem(s, n, lit, l);
}

/* The earliest complete occurrence of any of lits in s: offset (and
 * *len), or n when none. */
static size_t find_any(const char *s, size_t n, const char *const *lits, size_t *len) {
    size_t best = n;
    for (size_t i = 0; lits && lits[i]; i++) {
        const char *h = find_bytes(s, n, lits[i]);
        if (h && (size_t)(h - s) < best) { best = (size_t)(h - s); *len = strlen(lits[i]); }
    }
    return best;
}

/* Offset from which s may be the beginning of one of lits (a proper
 * prefix running to the end of s); n when no suffix is. */
static size_t hold_point(const char *s, size_t n, const char *const *lits) {
    size_t maxl = 0;
    for (size_t i = 0; lits && lits[i]; i++) {
        size_t l = strlen(lits[i]);
        if (l > maxl) maxl = l;
    }
    size_t from = n >= maxl ? n - maxl + 1 : 0;
    for (size_t j = from; j < n; j++) {
        size_t dummy;
        if (match_any(s + j, n - j, lits, &dummy) == -1) return j;
    }
    return n;
}

static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

/* ---- events ---- */

static void emit(nuage_toolparse *p, nuage_tp_kind kind, int index, const char *text, size_t len,
                 const char *name) {
    if (p->cb_rc || !p->cb) return;
    if ((kind == NUAGE_TP_CONTENT || kind == NUAGE_TP_REASONING) && len == 0) return;
    nuage_tp_event ev = {kind, index, text, len, name};
    p->cb_rc = p->cb(&ev, p->ud);
}

static void emit_content(nuage_toolparse *p, const char *s, size_t n) {
    emit(p, NUAGE_TP_CONTENT, 0, s, n, NULL);
}

/* ---- eager streaming of arguments ---- */

static bool declared(const nuage_toolparse *p, const char *name);

/* A block parser has read a call's name n[0..nl) and sees its arguments
 * object start at args (both inside p->buf). */
static void stream_head(nuage_toolparse *p, const char *n, size_t nl, const char *args) {
    if (!p->eager || nl == 0 || nl > MAX_NAME) return;
    p->head = true;
    p->head_name = n;
    p->head_nl = nl;
    p->head_args = p->base + (size_t)(args - p->buf);
}

/* For envelopes {"name": "NAME", "arguments"|"parameters": {...}} at s[i]
 * (the '{'): report the head once it is all there (name first, as the
 * grammars write it; other orders are found when the call is complete). */
static void stream_obj_head(nuage_toolparse *p, const char *s, size_t n, size_t i) {
    if (!p->eager || i >= n || s[i] != '{') return;
    size_t j = i + 1 + nuage__tj_ws(s + i + 1, n - i - 1);
    if (prefix_match(s + j, n - j, "\"name\"") != 1) return;
    j += 6;
    j += nuage__tj_ws(s + j, n - j);
    if (j >= n || s[j] != ':') return;
    j++;
    j += nuage__tj_ws(s + j, n - j);
    if (j >= n || s[j] != '"') return;
    size_t n0 = ++j;
    while (j < n && is_name_char(s[j]) && j - n0 <= MAX_NAME) j++;
    if (j >= n || s[j] != '"') return;
    size_t nl = j - n0;
    j++;
    j += nuage__tj_ws(s + j, n - j);
    if (j >= n || s[j] != ',') return;
    j++;
    j += nuage__tj_ws(s + j, n - j);
    size_t kl = prefix_match(s + j, n - j, "\"arguments\"") == 1    ? 11
                : prefix_match(s + j, n - j, "\"parameters\"") == 1 ? 12
                                                                    : 0;
    if (!kl) return;
    j += kl;
    j += nuage__tj_ws(s + j, n - j);
    if (j >= n || s[j] != ':') return;
    j++;
    j += nuage__tj_ws(s + j, n - j);
    if (j < n && s[j] == '{') stream_head(p, s + n0, nl, s + j);
}

/* Bytes of s[0..n) that end on a UTF-8 character boundary. */
static size_t utf8_whole(const char *s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue;          /* continuation byte */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? n - back : n;
    }
    return n;
}

/* After a block answered MORE: announce its call and send the arguments
 * that arrived since the last piece, compacted. */
static void stream_more(nuage_toolparse *p) {
    if (!p->head) return;
    char name[MAX_NAME + 1];
    memcpy(name, p->head_name, p->head_nl);
    name[p->head_nl] = 0;
    if (!declared(p, name)) return;
    if (!p->open) {
        p->open = true;
        p->args_abs = p->args_scan = p->head_args;
        p->args_sent = 0;
        p->args_depth = 0;
        p->args_str = p->args_esc = p->args_done = false;
        emit(p, NUAGE_TP_CALL_START, p->n_calls + p->n_dropped, NULL, 0, name);
    } else if (p->args_abs != p->head_args) {
        return;
    }
    if (p->args_done || p->args_scan < p->base) return;
    const char *s = p->buf + (p->args_scan - p->base);
    size_t n = utf8_whole(s, p->len - (p->args_scan - p->base));
    char out[512];
    size_t o = 0, i = 0;
    for (; i < n && !p->args_done; i++) {
        char c = s[i];
        bool keep = true;
        if (p->args_str) {
            if (p->args_esc) p->args_esc = false;
            else if (c == '\\') p->args_esc = true;
            else if (c == '"') p->args_str = false;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            keep = false;
        } else if (c == '"') {
            p->args_str = true;
        } else if (c == '{' || c == '[') {
            p->args_depth++;
        } else if (c == '}' || c == ']') {
            if (--p->args_depth == 0) p->args_done = true;
        }
        if (keep) out[o++] = c;
        if (o == sizeof out) {
            emit(p, NUAGE_TP_CALL_ARGS, p->n_calls + p->n_dropped, out, o, name);
            p->args_sent += o;
            o = 0;
        }
    }
    p->args_scan += i;
    if (o) emit(p, NUAGE_TP_CALL_ARGS, p->n_calls + p->n_dropped, out, o, name);
    p->args_sent += o;
}

static void items_clear(nuage_toolparse *p) {
    for (size_t i = 0; i < p->n_items; i++) {
        free(p->items[i].name);
        free(p->items[i].text);
    }
    p->n_items = 0;
}

/* Append an item (takes name and text); false when out of memory (both
 * freed). */
static bool items_add(nuage_toolparse *p, char *name, char *text, size_t len) {
    if (p->n_items == p->cap_items) {
        size_t nc = p->cap_items ? p->cap_items * 2 : 4;
        tp_item *ni = realloc(p->items, nc * sizeof *ni);
        if (!ni) { free(name); free(text); return false; }
        p->items = ni;
        p->cap_items = nc;
    }
    p->items[p->n_items++] = (tp_item){name, text, len};
    return true;
}

static bool declared(const nuage_toolparse *p, const char *name) {
    for (size_t i = 0; i < p->n_names; i++)
        if (strcmp(p->names[i], name) == 0) return true;
    return false;
}

/* A call whose name is n[0..nl) (raw bytes, not JSON) and whose
 * arguments are the valid JSON object a[0..al). FAIL for an empty or odd
 * name. */
static blk_status add_call_raw(nuage_toolparse *p, const char *n, size_t nl, const char *a, size_t al) {
    if (nl == 0 || nl > MAX_NAME) return BLK_FAIL;
    for (size_t i = 0; i < nl; i++)
        if (!is_name_char(n[i])) return BLK_FAIL;
    char *name = strndup(n, nl);
    size_t cl;
    char *args = nuage__tj_compact(a, al, &cl);
    if (!name || !args || !items_add(p, name, args, cl)) {
        if (name && args) return BLK_FAIL;   /* items_add freed them */
        free(name);
        free(args);
        return BLK_FAIL;
    }
    return BLK_DONE;
}

/* A valid JSON object text v[0..vl)? */
static bool is_object_text(const char *v, size_t vl) {
    size_t end;
    if (vl == 0 || v[0] != '{' || nuage__tj_value(v, vl, &end) != TJ_OK) return false;
    return end + nuage__tj_ws(v + end, vl - end) == vl;
}

/* A call from the valid JSON object o[0..ol): {"name": "...", "arguments"
 * or "parameters": {...} (or a string holding such an object)}, other
 * members ignored; no arguments means {}. */
static blk_status add_call_obj(nuage_toolparse *p, const char *o, size_t ol) {
    const char *v;
    size_t vl;
    if (!nuage__tj_member(o, ol, "name", &v, &vl) || v[0] != '"') return BLK_FAIL;
    size_t nl;
    char *name = nuage__tj_string(v, vl, &nl);
    if (!name) return BLK_FAIL;
    blk_status st = BLK_FAIL;
    if (!nuage__tj_member(o, ol, "arguments", &v, &vl) &&
        !nuage__tj_member(o, ol, "parameters", &v, &vl)) {
        v = "{}";
        vl = 2;
    }
    if (v[0] == '{') {
        st = add_call_raw(p, name, nl, v, vl);
    } else if (v[0] == '"') {
        size_t dl;
        char *d = nuage__tj_string(v, vl, &dl);
        if (d && is_object_text(d, dl)) st = add_call_raw(p, name, nl, d, dl);
        free(d);
    }
    free(name);
    return st;
}

/* Calls from the valid JSON array a[0..al) of call objects (at least
 * one; each as add_call_obj). */
static blk_status add_call_array(nuage_toolparse *p, const char *a, size_t al) {
    size_t j = 1 + nuage__tj_ws(a + 1, al - 1);
    if (a[j] == ']') return BLK_FAIL;   /* no call */
    while (j < al && a[j] != ']') {
        size_t vend;
        if (a[j] != '{' || nuage__tj_value(a + j, al - j, &vend) != TJ_OK) return BLK_FAIL;
        if (add_call_obj(p, a + j, vend) != BLK_DONE) return BLK_FAIL;
        j += vend;
        j += nuage__tj_ws(a + j, al - j);
        if (a[j] == ',') j++;
        j += nuage__tj_ws(a + j, al - j);
    }
    return BLK_DONE;
}

/* After a call's JSON at s[j..n): optional whitespace and then closing
 * markup `close` (NULL: none needed). DONE with *used past it; at final a
 * missing or cut closing is forgiven (the partial markup is swallowed). */
static blk_status expect_close(const char *s, size_t n, size_t j, const char *close, bool final,
                               size_t *used) {
    if (!close) { *used = j; return BLK_DONE; }
    size_t k = j + nuage__tj_ws(s + j, n - j);
    int m = prefix_match(s + k, n - k, close);
    if (m == 1) { *used = k + strlen(close); return BLK_DONE; }
    if (m == -1) {
        if (!final) return BLK_MORE;
        *used = n;
        return BLK_DONE;
    }
    return BLK_FAIL;
}

/* nuage__tj_value of the value at v (inside p->buf, vn bytes available),
 * resuming the scan an earlier feed left at the same stream offset. */
static tj_status scan_at(nuage_toolparse *p, const char *v, size_t vn, size_t *end) {
    size_t abs = p->base + (size_t)(v - p->buf);
    if (!p->jc_valid || p->jc_abs != abs || p->jc.pos > vn) {
        nuage__tj_scan_init(&p->jc);
        p->jc_abs = abs;
        p->jc_valid = true;
    }
    return nuage__tj_scan(&p->jc, v, vn, end);
}

/* A JSON object at s[*i] (after whitespace; s inside p->buf): status,
 * span in *o and *ol, *i moved past it. */
static blk_status json_object_at(nuage_toolparse *p, const char *s, size_t n, size_t *i, const char **o,
                                 size_t *ol) {
    *i += nuage__tj_ws(s + *i, n - *i);
    if (*i >= n) return BLK_MORE;
    if (s[*i] != '{') return BLK_FAIL;
    size_t end;
    tj_status st = scan_at(p, s + *i, n - *i, &end);
    if (st == TJ_BAD) return BLK_FAIL;
    if (st == TJ_MORE) return BLK_MORE;
    *o = s + *i;
    *ol = end;
    *i += end;
    return BLK_DONE;
}

/* ---- families ---- */

/* Hermes: <tool_call> {"name": ..., "arguments": {...}} </tool_call> */
static blk_status blk_hermes(nuage_toolparse *p, const char *s, size_t n, bool final, size_t *used) {
    size_t i = strlen("<tool_call>");
    const char *o;
    size_t ol;
    stream_obj_head(p, s, n, i + nuage__tj_ws(s + i, n - i));
    blk_status st = json_object_at(p, s, n, &i, &o, &ol);
    if (st != BLK_DONE) return st;
    st = expect_close(s, n, i, "</tool_call>", final, used);
    if (st != BLK_DONE) return st;
    return add_call_obj(p, o, ol);
}

/* Llama 3: [<|python_tag|>] {"name": ..., "parameters": {...}} */
static blk_status blk_llama3(nuage_toolparse *p, const char *s, size_t n, bool final, size_t *used) {
    (void)final;
    size_t i = 0;
    if (prefix_match(s, n, "<|python_tag|>") == 1) i = strlen("<|python_tag|>");
    i += nuage__tj_ws(s + i, n - i);
    if (i >= n) return BLK_MORE;
    if (s[i] != '{') return BLK_FAIL;
    size_t k = i + 1 + nuage__tj_ws(s + i + 1, n - i - 1);
    int m = prefix_match(s + k, n - k, "\"name\"");
    if (m == 0) return BLK_FAIL;
    if (m == -1) return BLK_MORE;
    const char *o;
    size_t ol;
    /* a lazy grammar engages at {"name" exactly: only then is the call sure */
    if (k == i + 1 || p->eager_start) stream_obj_head(p, s, n, i);
    blk_status st = json_object_at(p, s, n, &i, &o, &ol);
    if (st != BLK_DONE) return st;
    *used = i;
    return add_call_obj(p, o, ol);
}

/* Mistral: [TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}, ...]
 * or (Small 3.x) [TOOL_CALLS]NAME[CALL_ID]ID[ARGS]{...} */
static blk_status blk_mistral(nuage_toolparse *p, const char *s, size_t n, bool final, size_t *used) {
    (void)final;
    size_t i = strlen("[TOOL_CALLS]");
    i += nuage__tj_ws(s + i, n - i);
    if (i >= n) return BLK_MORE;
    if (s[i] == '[') {
        size_t end;
        stream_obj_head(p, s, n, i + 1 + nuage__tj_ws(s + i + 1, n - i - 1));
        tj_status ts = scan_at(p, s + i, n - i, &end);
        if (ts == TJ_BAD) return BLK_FAIL;
        if (ts == TJ_MORE) return BLK_MORE;
        if (add_call_array(p, s + i, end) != BLK_DONE) return BLK_FAIL;
        *used = i + end;
        return BLK_DONE;
    }
    size_t n0 = i;
    while (i < n && is_name_char(s[i]) && i - n0 <= MAX_NAME) i++;
    if (i - n0 > MAX_NAME || (i < n && s[i] != '[')) return BLK_FAIL;
    if (i >= n) return BLK_MORE;
    size_t nl = i - n0;
    if (nl == 0) return BLK_FAIL;
    int m = prefix_match(s + i, n - i, "[CALL_ID]");
    if (m == -1) return BLK_MORE;
    if (m == 1) {
        i += strlen("[CALL_ID]");
        size_t id0 = i;
        while (i < n && is_name_char(s[i]) && i - id0 <= MAX_NAME) i++;
        if (i >= n) return BLK_MORE;
        if (s[i] != '[') return BLK_FAIL;
    }
    m = prefix_match(s + i, n - i, "[ARGS]");
    if (m == -1) return BLK_MORE;
    if (m == 0) return BLK_FAIL;
    i += strlen("[ARGS]");
    const char *o;
    size_t ol;
    size_t a = i + nuage__tj_ws(s + i, n - i);
    if (a < n && s[a] == '{') stream_head(p, s + n0, nl, s + a);
    blk_status st = json_object_at(p, s, n, &i, &o, &ol);
    if (st != BLK_DONE) return st;
    *used = i;
    return add_call_raw(p, s + n0, nl, o, ol);
}

/* Up to `lit` from s[i]: its offset (the text before it is at most
 * MAX_NAME bytes without a newline), or MORE / FAIL. */
static blk_status until(const char *s, size_t n, size_t i, const char *lit, size_t *at) {
    size_t lim = n - i < MAX_NAME + strlen(lit) ? n - i : MAX_NAME + strlen(lit);
    const char *h = find_bytes(s + i, lim, lit);
    if (h) {
        if (memchr(s + i, '\n', (size_t)(h - (s + i)))) return BLK_FAIL;
        *at = (size_t)(h - s);
        return BLK_DONE;
    }
    if (memchr(s + i, '\n', lim)) return BLK_FAIL;
    return lim < MAX_NAME + strlen(lit) ? BLK_MORE : BLK_FAIL;
}

/* DeepSeek R1: [<calls_begin>]<call_begin>function<sep>NAME\n```json\n{...}\n```<call_end>
 * DeepSeek V3.1: [<calls_begin>]<call_begin>NAME<sep>{...}<call_end> */
static blk_status blk_deepseek(nuage_toolparse *p, const char *s, size_t n, bool final, size_t *used) {
    size_t i = 0;
    /* the lazy grammar's trigger is the calls-begin marker */
    bool sure = p->eager_start || prefix_match(s, n, DS_CALLS_BEGIN) == 1;
    if (prefix_match(s, n, DS_CALLS_BEGIN) == 1) i = strlen(DS_CALLS_BEGIN);
    i += nuage__tj_ws(s + i, n - i);
    int m = prefix_match(s + i, n - i, DS_CALL_BEGIN);
    if (m != 1) return m == -1 || i >= n ? BLK_MORE : BLK_FAIL;
    i += strlen(DS_CALL_BEGIN);
    size_t sep;
    blk_status st = until(s, n, i, DS_SEP, &sep);
    if (st != BLK_DONE) return st;
    const char *name = s + i;
    size_t nl = sep - i;
    i = sep + strlen(DS_SEP);
    bool r1 = nl == 8 && memcmp(name, "function", 8) == 0;
    if (r1) {
        if (i >= n) return BLK_MORE;
        r1 = s[i] != '{';
    }
    const char *o;
    size_t ol;
    if (r1) {
        name = s + i;
        size_t nlpos;
        st = until(s, n, i, "\n", &nlpos);
        if (st != BLK_DONE) return st;
        nl = nlpos - i;
        i = nlpos + nuage__tj_ws(s + nlpos, n - nlpos);
        if ((m = prefix_match(s + i, n - i, "```")) != 1) return m == -1 ? BLK_MORE : BLK_FAIL;
        i += 3;
        if ((m = prefix_match(s + i, n - i, "json")) == -1) return BLK_MORE;
        if (m == 1) i += 4;
        size_t a = i + nuage__tj_ws(s + i, n - i);
        if (sure && a < n && s[a] == '{') stream_head(p, name, nl, s + a);
        st = json_object_at(p, s, n, &i, &o, &ol);
        if (st != BLK_DONE) return st;
        i += nuage__tj_ws(s + i, n - i);
        m = prefix_match(s + i, n - i, "```");
        if (m == 0) return BLK_FAIL;
        if (m == -1) {
            if (!final) return BLK_MORE;
            *used = n;
            return add_call_raw(p, name, nl, o, ol);
        }
        i += 3;
    } else {
        size_t a = i + nuage__tj_ws(s + i, n - i);
        if (sure && a < n && s[a] == '{') stream_head(p, name, nl, s + a);
        st = json_object_at(p, s, n, &i, &o, &ol);
        if (st != BLK_DONE) return st;
    }
    st = expect_close(s, n, i, DS_CALL_END, final, used);
    if (st != BLK_DONE) return st;
    return add_call_raw(p, name, nl, o, ol);
}

/* Kimi K2: [<|tool_calls_section_begin|>]<|tool_call_begin|>functions.NAME:IDX
 * then <|tool_call_argument_begin|>, the arguments, <|tool_call_end|>. */
static blk_status blk_kimi(nuage_toolparse *p, const char *s, size_t n, bool final, size_t *used) {
    size_t i = 0;
    /* the lazy grammar's trigger is the section-begin marker */
    bool sure = p->eager_start || prefix_match(s, n, "<|tool_calls_section_begin|>") == 1;
    if (prefix_match(s, n, "<|tool_calls_section_begin|>") == 1) i = strlen("<|tool_calls_section_begin|>");
    i += nuage__tj_ws(s + i, n - i);
    int m = prefix_match(s + i, n - i, "<|tool_call_begin|>");
    if (m != 1) return m == -1 || i >= n ? BLK_MORE : BLK_FAIL;
    i += strlen("<|tool_call_begin|>");
    i += nuage__tj_ws(s + i, n - i);
    size_t at;
    blk_status st = until(s, n, i, "<|tool_call_argument_begin|>", &at);
    if (st != BLK_DONE) return st;
    const char *name = s + i;
    size_t nl = at - i;
    while (nl && (name[nl - 1] == ' ' || name[nl - 1] == '\t')) nl--;
    if (nl >= 10 && memcmp(name, "functions.", 10) == 0) { name += 10; nl -= 10; }
    size_t d = nl;
    while (d && name[d - 1] >= '0' && name[d - 1] <= '9') d--;
    if (d < nl && d && name[d - 1] == ':') nl = d - 1;
    i = at + strlen("<|tool_call_argument_begin|>");
    const char *o;
    size_t ol;
    size_t a = i + nuage__tj_ws(s + i, n - i);
    if (sure && a < n && s[a] == '{') stream_head(p, name, nl, s + a);
    st = json_object_at(p, s, n, &i, &o, &ol);
    if (st != BLK_DONE) return st;
    st = expect_close(s, n, i, "<|tool_call_end|>", final, used);
    if (st != BLK_DONE) return st;
    return add_call_raw(p, name, nl, o, ol);
}

/* Generic: {"tool_calls": [{"name": ..., "arguments": {...}}, ...]} or
 * {"content": "..."} (both keys allowed, nothing else). */
static blk_status blk_generic(nuage_toolparse *p, const char *s, size_t n, bool final, size_t *used) {
    (void)final;
    size_t k = 1 + nuage__tj_ws(s + 1, n - 1);
    int m1 = prefix_match(s + k, n - k, "\"tool_calls\"");
    int m2 = prefix_match(s + k, n - k, "\"content\"");
    if (m1 == 0 && m2 == 0) return BLK_FAIL;
    /* the first call of {"tool_calls": [{"name": ...: a lazy grammar
     * engages at {"tool_calls" exactly */
    if (m1 == 1 && (k == 1 || p->eager_start)) {
        size_t j = k + strlen("\"tool_calls\"");
        j += nuage__tj_ws(s + j, n - j);
        if (j < n && s[j] == ':') {
            j++;
            j += nuage__tj_ws(s + j, n - j);
            if (j < n && s[j] == '[') stream_obj_head(p, s, n, j + 1 + nuage__tj_ws(s + j + 1, n - j - 1));
        }
    }
    size_t i = 0;
    const char *o;
    size_t ol;
    blk_status st = json_object_at(p, s, n, &i, &o, &ol);
    if (st != BLK_DONE) return st;
    static const char *const keys[] = {"tool_calls", "content", NULL};
    size_t other;
    if (nuage__tj_count_members(o, ol, keys, &other) == 0 || other) return BLK_FAIL;
    const char *v;
    size_t vl;
    /* content first, unless a call is being streamed: then after it */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == (p->open ? 1 : 0) && nuage__tj_member(o, ol, "content", &v, &vl)) {
            if (v[0] != '"') return BLK_FAIL;
            size_t cl;
            char *c = nuage__tj_string(v, vl, &cl);
            if (!c || !items_add(p, NULL, c, cl)) return BLK_FAIL;
        }
        if (pass == 0 && nuage__tj_member(o, ol, "tool_calls", &v, &vl)) {
            if (v[0] != '[' || add_call_array(p, v, vl) != BLK_DONE) return BLK_FAIL;
        }
    }
    *used = i;
    return BLK_DONE;
}

/* Gemma 4: <|tool_call>call:NAME{key:value,...}<tool_call|> (toolgemma.c) */
static blk_status blk_gemma4(nuage_toolparse *p, const char *s, size_t n, bool final, size_t *used) {
    /* Gemma's arguments are converted, not scanned, so a long call would be
     * converted again on every piece: wait (without converting) until the
     * closing marker may be there. Only a malformed call's fall back to
     * content is delayed by this, never changed. */
    if (!final) {
        size_t abs = p->base + (size_t)(s - p->buf), cl = strlen(GEMMA_CALL_CLOSE), from = 0;
        if (p->g_abs == abs && p->g_searched > abs + cl) from = p->g_searched - abs - cl;
        if (!find_bytes(s + from, n - from, GEMMA_CALL_CLOSE)) {
            p->g_abs = abs;
            p->g_searched = abs + n;
            return BLK_MORE;
        }
    }
    const char *name;
    size_t nl, jl;
    char *json;
    int r = nuage__gemma_call(s, n, final, used, &name, &nl, &json, &jl);
    if (r != 1) return r == 0 ? BLK_MORE : BLK_FAIL;
    blk_status st = is_object_text(json, jl) ? add_call_raw(p, name, nl, json, jl) : BLK_FAIL;
    free(json);
    return st;
}

static const char *const trig_hermes[] = {"<tool_call>", NULL};
static const char *const trig_llama3[] = {"<|python_tag|>", NULL};
static const char *const trig_mistral[] = {"[TOOL_CALLS]", NULL};
static const char *const trig_deepseek[] = {DS_CALLS_BEGIN, DS_CALL_BEGIN, NULL};
static const char *const close_deepseek[] = {DS_CALLS_END, NULL};
static const char *const trig_kimi[] = {"<|tool_calls_section_begin|>", "<|tool_call_begin|>", NULL};
static const char *const close_kimi[] = {"<|tool_calls_section_end|>", NULL};
static const char *const trig_none[] = {NULL};
static const char *const trig_gemma4[] = {GEMMA_CALL_OPEN, NULL};

static const family families[] = {
    [NUAGE_TOOLFMT_HERMES] = {trig_hermes, NULL, false, blk_hermes},
    [NUAGE_TOOLFMT_LLAMA3] = {trig_llama3, NULL, true, blk_llama3},
    [NUAGE_TOOLFMT_MISTRAL] = {trig_mistral, NULL, false, blk_mistral},
    [NUAGE_TOOLFMT_DEEPSEEK] = {trig_deepseek, close_deepseek, false, blk_deepseek},
    [NUAGE_TOOLFMT_GENERIC] = {trig_none, NULL, true, blk_generic},
    [NUAGE_TOOLFMT_KIMI] = {trig_kimi, close_kimi, false, blk_kimi},
    [NUAGE_TOOLFMT_GEMMA4] = {trig_gemma4, NULL, false, blk_gemma4},
};

/* Parse the block at s (it starts with a trigger) and emit its results;
 * *used set on BLK_DONE. BLK_MORE only when not final. */
static blk_status try_block(nuage_toolparse *p, const char *s, size_t n, bool final, size_t *used) {
    items_clear(p);
    p->head = false;
    blk_status st = p->fam->block(p, s, n, final, used);
    if (st == BLK_MORE && !final) {
        stream_more(p);
        items_clear(p);
        return st;
    }
    bool cut = st == BLK_MORE;   /* the output ended inside the block */
    if (cut) st = BLK_FAIL;
    if (st == BLK_DONE) {
        /* one undeclared name makes the whole block content */
        for (size_t i = 0; i < p->n_items; i++)
            if (p->items[i].name && !declared(p, p->items[i].name)) st = BLK_FAIL;
        if (p->n_items == 0) st = BLK_FAIL;
    }
    if (st == BLK_FAIL && (p->open || (cut && p->eager_start))) {
        /* an announced call cannot become content, nor can forced call
         * markup cut short (max_tokens) before its head: drop the rest */
        if (p->open) p->n_dropped++;
        p->open = false;
        *used = n;
        items_clear(p);
        return BLK_DONE;
    }
    if (st == BLK_DONE) {
        for (size_t i = 0; i < p->n_items; i++) {
            tp_item *it = &p->items[i];
            if (!it->name) { emit_content(p, it->text, it->len); continue; }
            int idx = p->n_calls++ + p->n_dropped;
            size_t sent = 0;
            if (p->open) {
                /* the call streamed so far: what is left of its arguments */
                p->open = false;
                sent = p->args_sent <= it->len ? p->args_sent : it->len;
            } else {
                emit(p, NUAGE_TP_CALL_START, idx, NULL, 0, it->name);
            }
            if (it->len > sent) emit(p, NUAGE_TP_CALL_ARGS, idx, it->text + sent, it->len - sent, it->name);
            emit(p, NUAGE_TP_CALL_END, idx, it->text, it->len, it->name);
        }
    }
    items_clear(p);
    return st;
}

/* Decide what can be decided in buf; returns bytes consumed. */
static size_t process_text(nuage_toolparse *p, bool final) {
    const family *f = p->fam;
    size_t pos = 0;
    while (pos < p->len) {
        const char *s = p->buf + pos;
        size_t n = p->len - pos;
        if (p->boundary) {
            size_t w = nuage__tj_ws(s, n);
            if (w == n) {
                if (!final) break;
                if (p->n_calls == 0) emit_content(p, s, n);
                pos = p->len;
                break;
            }
            const char *t = s + w;
            size_t tn = n - w, tl = 0, used = 0;
            if (p->after_call) {
                int cm = match_any(t, tn, f->closers, &tl);
                if (cm == 1) { pos += w + tl; continue; }
                if (cm == -1) {
                    if (!final) break;
                    pos = p->len;   /* a cut closer at the end: markup, dropped */
                    break;
                }
            }
            int tm = match_any(t, tn, f->triggers, &tl);
            bool bare = tm != 1 && f->bare_json && t[0] == '{';
            if (tm == 1 || bare) {
                if (bare) tl = 1;
                blk_status st = try_block(p, t, tn, final, &used);
                if (st == BLK_MORE) break;
                if (st == BLK_DONE) {
                    pos += w + used;
                    p->after_call = true;
                    continue;
                }
                emit_content(p, s, w + tl);
                pos += w + tl;
                p->boundary = p->after_call = false;
                continue;
            }
            if (tm == -1 && !final) break;
            p->boundary = p->after_call = false;
            continue;
        }
        size_t tl = 0, used = 0;
        size_t i = find_any(s, n, f->triggers, &tl);
        if (i == n) {
            size_t h = final ? n : hold_point(s, n, f->triggers);
            emit_content(p, s, h);
            pos += h;
            break;
        }
        emit_content(p, s, i);
        pos += i;
        blk_status st = try_block(p, s + i, n - i, final, &used);
        if (st == BLK_MORE) break;
        if (st == BLK_DONE) {
            pos += used;
            p->boundary = p->after_call = true;
            continue;
        }
        emit_content(p, s + i, tl);
        pos += tl;
    }
    return pos;
}

/* ---- harmony ----
 * The output continues a prompt that ends with "<|start|>assistant", so it
 * begins inside a message header. A header runs up to <|message|> and
 * names the channel (<|channel|>analysis / commentary / final) and maybe a
 * recipient (to=functions.NAME); the body runs up to <|end|>, <|call|> or
 * <|return|>. analysis bodies are REASONING, calls become call events,
 * other bodies are CONTENT (the final channel, and commentary without a
 * recipient: the "preamble" gpt-oss writes before calling tools). A
 * message with a recipient that is not a declared function, or whose body
 * is not a JSON object, gives its body as content. Headers and message
 * delimiters are markup and never content; a header that is not one (too
 * long, odd bytes) is read as the start of a plain content body instead.
 * Any number of messages may follow each other (analysis, preamble,
 * analysis, call, ...). */

enum { HS_HEADER = 0, HS_BETWEEN, HS_CONTENT, HS_REASONING };

static const char *const h_ends[] = {"<|end|>", "<|call|>", "<|return|>", "<|start|>", NULL};

/* Scan a header at s: DONE (*hl = offset of <|message|>), MORE, FAIL. */
static blk_status h_header(const char *s, size_t n, size_t *hl) {
    static const char *const inner[] = {"<|channel|>", "<|constrain|>", NULL};
    size_t i = 0;
    while (i < n && i <= MAX_NAME) {
        char c = s[i];
        if (c == '<') {
            int m = prefix_match(s + i, n - i, "<|message|>");
            if (m == 1) { *hl = i; return BLK_DONE; }
            size_t l = 0;
            int mi = match_any(s + i, n - i, inner, &l);
            if (mi == 1) { i += l; continue; }
            if (m == -1 || mi == -1) return BLK_MORE;
            return BLK_FAIL;
        }
        if (!is_name_char(c) && c != ' ' && c != '=' && c != ':' && c != '/') return BLK_FAIL;
        i++;
    }
    return i > MAX_NAME ? BLK_FAIL : BLK_MORE;
}

/* The value after the last key (e.g. "to=", "<|channel|>") in header
 * h[0..hl): up to a space or '<'. The last one, because gpt-oss sometimes
 * writes a stray "<|channel|>commentary to=assistant" before the real
 * channel. */
static bool h_field(const char *h, size_t hl, const char *key, const char **v, size_t *vl) {
    const char *k = NULL;
    for (const char *f = h; (f = find_bytes(f, hl - (size_t)(f - h), key)); f++) k = f;
    if (!k) return false;
    const char *b = k + strlen(key), *e = b;
    while (e < h + hl && *e != ' ' && *e != '<') e++;
    *v = b;
    *vl = (size_t)(e - b);
    return true;
}

/* A call message at s (header of hl bytes, then <|message|>): wait for
 * its end and emit the call, or give it back as content. Bytes consumed,
 * or 0 to wait. */
static size_t h_call(nuage_toolparse *p, const char *s, size_t n, size_t hl, const char *rc,
                     size_t rl, bool final) {
    size_t b = hl + strlen("<|message|>"), el = 0;
    /* search only where an end marker may start that earlier feeds did
     * not see (markers are at most 10 bytes) */
    size_t abs = p->base + (size_t)(s - p->buf), from = b;
    if (p->h_searched > abs + b + 10) from = p->h_searched - abs - 10;
    size_t e = from + find_any(s + from, n - from, h_ends, &el);
    if (e == n && !final) {
        p->h_searched = abs + n;
        return 0;
    }
    size_t bl = e - b;
    bool ok = false;
    const char *o = s + b;
    size_t w = nuage__tj_ws(o, bl);
    if (is_object_text(o + w, bl - w) && rl > 10 && memcmp(rc, "functions.", 10) == 0) {
        items_clear(p);
        size_t end;
        nuage__tj_value(o + w, bl - w, &end);
        if (add_call_raw(p, rc + 10, rl - 10, o + w, end) == BLK_DONE && declared(p, p->items[0].name)) {
            int idx = p->n_calls++;
            tp_item *it = &p->items[0];
            emit(p, NUAGE_TP_CALL_START, idx, NULL, 0, it->name);
            emit(p, NUAGE_TP_CALL_ARGS, idx, it->text, it->len, it->name);
            emit(p, NUAGE_TP_CALL_END, idx, it->text, it->len, it->name);
            ok = true;
        }
        items_clear(p);
    }
    /* not a call of a declared function (another recipient, a builtin
     * tool, arguments that are not an object, a cut message): its body is
     * content, its header is markup and dropped */
    if (!ok) emit_content(p, s + b, e - b);
    /* a closing <|start|> begins the next message: leave it */
    if (e < n && prefix_match(s + e, n - e, "<|start|>") != 1) e += el;
    p->h_state = HS_BETWEEN;
    return e;
}

static size_t process_harmony(nuage_toolparse *p, bool final) {
    size_t pos = 0;
    while (pos < p->len) {
        const char *s = p->buf + pos;
        size_t n = p->len - pos;
        if (p->h_state == HS_BETWEEN) {
            int m = prefix_match(s, n, "<|start|>");
            if (m == -1 && !final) break;
            if (m == 1) pos += strlen("<|start|>");
            p->h_state = HS_HEADER;
            continue;
        }
        if (p->h_state == HS_HEADER) {
            size_t hl = 0;
            blk_status st = h_header(s, n, &hl);
            if (st == BLK_MORE && final) st = BLK_FAIL;
            if (st == BLK_MORE) break;
            if (st == BLK_FAIL) { p->h_state = HS_CONTENT; continue; }
            const char *v;
            size_t vl;
            /* a recipient; "to=assistant" (addressed to us) is none */
            if (h_field(s, hl, "to=", &v, &vl) && !(vl == 9 && !memcmp(v, "assistant", 9))) {
                size_t used = h_call(p, s, n, hl, v, vl, final);
                if (!used) break;
                pos += used;
                continue;
            }
            bool analysis = h_field(s, hl, "<|channel|>", &v, &vl) && vl == 8 &&
                            memcmp(v, "analysis", 8) == 0;
            p->h_state = analysis ? HS_REASONING : HS_CONTENT;
            pos += hl + strlen("<|message|>");
            continue;
        }
        /* a content or reasoning body */
        nuage_tp_kind kind = p->h_state == HS_REASONING ? NUAGE_TP_REASONING : NUAGE_TP_CONTENT;
        size_t el = 0;
        size_t e = find_any(s, n, h_ends, &el);
        if (e == n) {
            size_t h = final ? n : hold_point(s, n, h_ends);
            emit(p, kind, 0, s, h, NULL);
            pos += h;
            break;
        }
        emit(p, kind, 0, s, e, NULL);
        pos += e;
        if (prefix_match(s + e, n - e, "<|start|>") != 1) pos += el;
        p->h_state = HS_BETWEEN;
    }
    return pos;
}

/* ---- public ---- */

nuage_toolparse *nuage_toolparse_new(nuage_toolfmt fmt, const char *const *tool_names, size_t n) {
    if (fmt != NUAGE_TOOLFMT_HARMONY &&
        ((size_t)fmt >= sizeof families / sizeof families[0] || !families[fmt].block))
        fmt = NUAGE_TOOLFMT_GENERIC;
    nuage_toolparse *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->fmt = fmt;
    p->fam = fmt == NUAGE_TOOLFMT_HARMONY ? NULL : &families[fmt];
    p->boundary = true;
    /* harmony: the prompt ended with <|start|>assistant, but a model may
     * write the delimiter again */
    p->h_state = HS_BETWEEN;
    if (n) {
        p->names = calloc(n, sizeof *p->names);
        if (!p->names) goto fail_p;
        for (size_t i = 0; i < n; i++) {
            p->names[i] = strdup(tool_names[i] ? tool_names[i] : "");
            if (!p->names[i]) goto fail_names;
            p->n_names = i + 1;
        }
    }
    return p;
fail_names:
    for (size_t i = 0; i < p->n_names; i++) free(p->names[i]);
    free(p->names);
fail_p:
    free(p);
    return NULL;
}

void nuage_toolparse_free(nuage_toolparse *p) {
    if (!p) return;
    items_clear(p);
    free(p->items);
    for (size_t i = 0; i < p->n_names; i++) free(p->names[i]);
    free(p->names);
    free(p->buf);
    free(p);
}

int nuage_toolparse_feed(nuage_toolparse *p, const char *text, size_t len, bool final,
                         nuage_tp_cb cb, void *ud) {
    if (!p || (len && !text)) return NUAGE_E_INVAL;
    if (p->len + len + 1 > p->cap) {
        size_t nc = p->cap ? p->cap : 256;
        while (nc < p->len + len + 1) nc *= 2;
        char *nb = realloc(p->buf, nc);
        if (!nb) return NUAGE_E_NOMEM;
        p->buf = nb;
        p->cap = nc;
    }
    if (len) memcpy(p->buf + p->len, text, len);
    p->len += len;
    p->cb = cb;
    p->ud = ud;
    p->cb_rc = 0;
    size_t used = p->fmt == NUAGE_TOOLFMT_HARMONY ? process_harmony(p, final) : process_text(p, final);
    memmove(p->buf, p->buf + used, p->len - used);
    p->len -= used;
    p->base += used;
    if (final) {
        p->base += p->len;
        p->len = 0;
    }
    p->cb = NULL;
    p->ud = NULL;
    return p->cb_rc;
}

int nuage_toolparse_n_calls(const nuage_toolparse *p) { return p ? p->n_calls : 0; }

void nuage_toolparse_set_eager(nuage_toolparse *p, bool on, bool from_start) {
    if (!p) return;
    p->eager = on;
    p->eager_start = on && from_start;
}

bool nuage_toolparse_in_reasoning(const nuage_toolparse *p) {
    return p && p->fmt == NUAGE_TOOLFMT_HARMONY && p->h_state == HS_REASONING;
}
