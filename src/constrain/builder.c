/*
 * builder.c - the grammar builder: expressions as an immutable node DAG.
 *
 * Every constructor appends one node and returns its index; operands are
 * checked (a negative operand is returned as is, so a front end may check
 * only its final handle). A literal byte string is a sequence of one-byte
 * sets, and the one-byte set of each byte is made once. Code point ranges
 * (ncg_char_ranges) are normalised (sorted, merged, surrogates and values
 * above 10FFFF removed, complemented when negated) and split into ranges
 * whose UTF-8 encodings share a length and a prefix structure, each of
 * which is a sequence of byte ranges (the classic UTF-8 range split).
 * Compilation to automata is in compile.c.
 */
#include <stdlib.h>
#include <string.h>

#include "constrain/cg_internal.h"
#include "nuage/nuage.h"

#define MAX_NODES (1u << 26)

static int grow(void **p, uint32_t *cap, uint32_t need, size_t elt) {
    if (need <= *cap) return 0;
    uint32_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > (1u << 30)) return NUAGE_E_NOMEM;
        nc *= 2;
    }
    void *q = realloc(*p, (size_t)nc * elt);
    if (!q) return NUAGE_E_NOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

ncg_builder *ncg_builder_new(void) {
    ncg_builder *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    for (int i = 0; i < 256; i++) b->single[i] = -1;
    return b;
}

void ncg_builder_free(ncg_builder *b) {
    if (!b) return;
    for (uint32_t i = 0; i < b->n_rules; i++) free(b->rules[i].name);
    free(b->rules);
    free(b->nodes);
    free(b->kids);
    free(b->sets);
    free(b->set_slot);
    free(b);
}

/* Append a node; its index or NUAGE_E_NOMEM (also made sticky). */
static ncg_expr add_node(ncg_builder *b, uint8_t kind, int32_t a, uint32_t x, uint32_t y) {
    if (!b) return NUAGE_E_INVAL;
    if (b->err) return b->err;
    if (b->n_nodes >= MAX_NODES || grow((void **)&b->nodes, &b->cap_nodes, b->n_nodes + 1, sizeof *b->nodes))
        return b->err = NUAGE_E_NOMEM;
    b->nodes[b->n_nodes] = (ncg_node){kind, a, x, y};
    return (ncg_expr)b->n_nodes++;
}

static bool valid(const ncg_builder *b, ncg_expr e) { return e >= 0 && (uint32_t)e < b->n_nodes; }

ncg_expr ncg_empty(ncg_builder *b) { return add_node(b, NCG_N_EMPTY, 0, 0, 0); }
ncg_expr ncg_nothing(ncg_builder *b) { return add_node(b, NCG_N_NOTHING, 0, 0, 0); }

static uint32_t set_hash(const uint8_t set[32]) {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (int k = 0; k < 4; k++) {
        uint64_t w;
        memcpy(&w, set + 8 * k, 8);
        h = (h ^ w) * 0xC2B2AE3D27D4EB4Full;
        h ^= h >> 29;
    }
    return (uint32_t)(h ^ h >> 32);
}

/* Byte sets are hash-consed (front ends write the same classes, e.g. a
 * JSON string's characters, many times): equal sets are one node, so the
 * compiler refines byte classes by each distinct set once. */
ncg_expr ncg_byteset(ncg_builder *b, const uint8_t set[32]) {
    if (!b || !set) return NUAGE_E_INVAL;
    if (b->err) return b->err;
    if (2 * (b->n_sets + 1) > b->set_nslot) {
        uint32_t ns = b->set_nslot ? 2 * b->set_nslot : 256;
        int32_t *sl = calloc(ns, sizeof *sl);
        if (!sl) return b->err = NUAGE_E_NOMEM;
        for (uint32_t i = 0; i < b->set_nslot; i++) {
            if (!b->set_slot[i]) continue;
            uint32_t q = set_hash(b->sets[b->nodes[b->set_slot[i] - 1].a]) & (ns - 1);
            while (sl[q]) q = (q + 1) & (ns - 1);
            sl[q] = b->set_slot[i];
        }
        free(b->set_slot);
        b->set_slot = sl;
        b->set_nslot = ns;
    }
    uint32_t q = set_hash(set) & (b->set_nslot - 1);
    for (; b->set_slot[q]; q = (q + 1) & (b->set_nslot - 1)) {
        ncg_expr e = b->set_slot[q] - 1;
        if (!memcmp(b->sets[b->nodes[e].a], set, 32)) return e;
    }
    if (grow((void **)&b->sets, &b->cap_sets, b->n_sets + 1, sizeof *b->sets)) return b->err = NUAGE_E_NOMEM;
    memcpy(b->sets[b->n_sets], set, 32);
    ncg_expr e = add_node(b, NCG_N_SET, (int32_t)b->n_sets, 0, 0);
    if (e >= 0) {
        b->n_sets++;
        b->set_slot[q] = e + 1;
    }
    return e;
}

ncg_expr ncg_byte_range(ncg_builder *b, uint8_t lo, uint8_t hi) {
    if (!b) return NUAGE_E_INVAL;
    if (lo == hi && b->single[lo] >= 0) return b->single[lo];
    uint8_t set[32] = {0};
    for (unsigned c = lo; c <= hi; c++) set[c >> 3] |= (uint8_t)(1u << (c & 7));
    ncg_expr e = ncg_byteset(b, set);
    if (e >= 0 && lo == hi) b->single[lo] = e;
    return e;
}

static ncg_expr seq_or_alt(ncg_builder *b, uint8_t kind, const ncg_expr *items, size_t n) {
    if (!b || (n && !items)) return NUAGE_E_INVAL;
    if (b->err) return b->err;
    if (n == 0) return kind == NCG_N_SEQ ? ncg_empty(b) : ncg_nothing(b);
    for (size_t i = 0; i < n; i++) {
        if (items[i] < 0) return items[i];
        if (!valid(b, items[i])) return NUAGE_E_INVAL;
    }
    if (n == 1) return items[0];
    if (n > MAX_NODES || grow((void **)&b->kids, &b->cap_kids, b->n_kids + (uint32_t)n, sizeof *b->kids))
        return b->err = NUAGE_E_NOMEM;
    uint32_t off = b->n_kids;
    memcpy(b->kids + off, items, n * sizeof *items);
    ncg_expr e = add_node(b, kind, (int32_t)off, (uint32_t)n, 0);
    if (e >= 0) b->n_kids += (uint32_t)n;
    return e;
}

ncg_expr ncg_seq(ncg_builder *b, const ncg_expr *items, size_t n) { return seq_or_alt(b, NCG_N_SEQ, items, n); }
ncg_expr ncg_alt(ncg_builder *b, const ncg_expr *items, size_t n) { return seq_or_alt(b, NCG_N_ALT, items, n); }
ncg_expr ncg_seq2(ncg_builder *b, ncg_expr x, ncg_expr y) {
    ncg_expr it[2] = {x, y};
    return ncg_seq(b, it, 2);
}
ncg_expr ncg_alt2(ncg_builder *b, ncg_expr x, ncg_expr y) {
    ncg_expr it[2] = {x, y};
    return ncg_alt(b, it, 2);
}

ncg_expr ncg_bytes(ncg_builder *b, const char *s, size_t n) {
    if (!b || (n && !s)) return NUAGE_E_INVAL;
    if (n == 0) return ncg_empty(b);
    if (n == 1) return ncg_byte_range(b, (uint8_t)s[0], (uint8_t)s[0]);
    ncg_expr small[64];
    ncg_expr *items = n <= 64 ? small : malloc(n * sizeof *items);
    if (!items) return b->err = NUAGE_E_NOMEM;
    ncg_expr e = 0;
    for (size_t i = 0; i < n && e >= 0; i++) e = items[i] = ncg_byte_range(b, (uint8_t)s[i], (uint8_t)s[i]);
    if (e >= 0) e = ncg_seq(b, items, n);
    if (items != small) free(items);
    return e;
}

ncg_expr ncg_str(ncg_builder *b, const char *s) { return s ? ncg_bytes(b, s, strlen(s)) : NUAGE_E_INVAL; }

ncg_expr ncg_token(ncg_builder *b, int32_t tok) {
    if (tok < 0) return NUAGE_E_INVAL;
    return add_node(b, NCG_N_TOK, tok, 0, 0);
}

ncg_expr ncg_repeat(ncg_builder *b, ncg_expr x, uint32_t min, uint32_t max) {
    if (!b) return NUAGE_E_INVAL;
    if (x < 0) return x;
    if (!valid(b, x) || min > max) return NUAGE_E_INVAL;
    if (max == 0) return ncg_empty(b);
    if (min == 1 && max == 1) return x;
    return add_node(b, NCG_N_REP, x, min, max);
}

ncg_expr ncg_opt(ncg_builder *b, ncg_expr x) { return ncg_repeat(b, x, 0, 1); }

/* ---- code point ranges ---- */

static int cmp_u32pair(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

static int utf8_enc(uint32_t c, uint8_t *o) {
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = (uint8_t)(0xC0 | c >> 6); o[1] = (uint8_t)(0x80 | (c & 63)); return 2; }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | c >> 12); o[1] = (uint8_t)(0x80 | ((c >> 6) & 63));
        o[2] = (uint8_t)(0x80 | (c & 63)); return 3;
    }
    o[0] = (uint8_t)(0xF0 | c >> 18); o[1] = (uint8_t)(0x80 | ((c >> 12) & 63));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 63)); o[3] = (uint8_t)(0x80 | (c & 63));
    return 4;
}

typedef struct { ncg_builder *b; ncg_expr *alts; size_t n, cap; int err; } range_acc;

static void acc_push(range_acc *r, ncg_expr e) {
    if (r->err) return;
    if (e < 0) { r->err = e; return; }
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        ncg_expr *q = realloc(r->alts, nc * sizeof *q);
        if (!q) { r->err = NUAGE_E_NOMEM; return; }
        r->alts = q;
        r->cap = nc;
    }
    r->alts[r->n++] = e;
}

/* lo..hi have UTF-8 encodings of one length; split until each byte position is a plain range. */
static void split_range(range_acc *r, uint32_t lo, uint32_t hi, int depth) {
    if (r->err || depth > 64) return;
    uint8_t a[4], z[4];
    int n = utf8_enc(lo, a);
    for (int i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if (lo & m) {
                split_range(r, lo, lo | m, depth + 1);
                split_range(r, (lo | m) + 1, hi, depth + 1);
                return;
            }
            if ((hi & m) != m) {
                split_range(r, lo, (hi & ~m) - 1, depth + 1);
                split_range(r, hi & ~m, hi, depth + 1);
                return;
            }
        }
    }
    utf8_enc(hi, z);
    ncg_expr parts[4];
    for (int i = 0; i < n; i++) parts[i] = ncg_byte_range(r->b, a[i], z[i]);
    acc_push(r, ncg_seq(r->b, parts, (size_t)n));
}

static void add_cp_range(range_acc *r, uint32_t lo, uint32_t hi) {
    static const uint32_t bounds[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    for (int i = 0; i < 4 && lo <= hi; i++) {
        if (lo > bounds[i]) continue;
        uint32_t h = hi < bounds[i] ? hi : bounds[i];
        split_range(r, lo, h, 0);
        lo = h + 1;
    }
}

ncg_expr ncg_char_ranges(ncg_builder *b, const uint32_t *lohi, size_t n, bool negate) {
    if (!b || (n && !lohi)) return NUAGE_E_INVAL;
    if (b->err) return b->err;
    if (n > (1u << 24)) return NUAGE_E_INVAL;
    /* normalise: pairs sorted by lo, merged, clipped, surrogates cut out */
    uint32_t *p = malloc((n + 2) * 2 * sizeof *p);
    if (!p) return b->err = NUAGE_E_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = lohi[2 * i], hi = lohi[2 * i + 1];
        if (hi > 0x10FFFF) hi = 0x10FFFF;
        if (lo > hi) continue;
        p[2 * k] = lo; p[2 * k + 1] = hi; k++;
    }
    qsort(p, k, 2 * sizeof *p, cmp_u32pair);
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (m && p[2 * i] <= p[2 * (m - 1) + 1] + 1) {
            if (p[2 * i + 1] > p[2 * (m - 1) + 1]) p[2 * (m - 1) + 1] = p[2 * i + 1];
        } else {
            p[2 * m] = p[2 * i]; p[2 * m + 1] = p[2 * i + 1]; m++;
        }
    }
    if (negate) {  /* complement in place (needs at most m + 1 pairs) */
        size_t c = 0;
        uint32_t next = 0;
        uint32_t *tmp = malloc((m + 1) * 2 * sizeof *tmp);
        if (!tmp) { free(p); return b->err = NUAGE_E_NOMEM; }
        for (size_t i = 0; i < m; i++) {
            if (p[2 * i] > next) { tmp[2 * c] = next; tmp[2 * c + 1] = p[2 * i] - 1; c++; }
            next = p[2 * i + 1] + 1;
        }
        if (next <= 0x10FFFF) { tmp[2 * c] = next; tmp[2 * c + 1] = 0x10FFFF; c++; }
        memcpy(p, tmp, c * 2 * sizeof *p);
        free(tmp);
        m = c;
    }
    range_acc r = {b, NULL, 0, 0, 0};
    for (size_t i = 0; i < m; i++) {
        uint32_t lo = p[2 * i], hi = p[2 * i + 1];
        if (lo < 0xD800 && hi >= 0xD800) {
            add_cp_range(&r, lo, 0xD7FF);
            lo = 0xE000;
        }
        if (lo >= 0xD800 && lo <= 0xDFFF) lo = 0xE000;
        if (lo <= hi) add_cp_range(&r, lo, hi);
    }
    free(p);
    ncg_expr e = r.err ? r.err : ncg_alt(b, r.alts, r.n);
    free(r.alts);
    return e;
}

/* ---- rules ---- */

ncg_rule ncg_rule_new(ncg_builder *b, const char *name) {
    if (!b) return NUAGE_E_INVAL;
    if (b->err) return b->err;
    if (b->n_rules >= (1u << 24) || grow((void **)&b->rules, &b->cap_rules, b->n_rules + 1, sizeof *b->rules))
        return b->err = NUAGE_E_NOMEM;
    char *nm = strdup(name ? name : "");
    if (!nm) return b->err = NUAGE_E_NOMEM;
    b->rules[b->n_rules] = (ncg_rule_def){nm, -1};
    return (ncg_rule)b->n_rules++;
}

int ncg_rule_set(ncg_builder *b, ncg_rule r, ncg_expr body) {
    if (!b) return NUAGE_E_INVAL;
    if (body < 0) return body;
    if (r < 0 || (uint32_t)r >= b->n_rules || !valid(b, body)) return NUAGE_E_INVAL;
    b->rules[r].body = body;
    return 0;
}

ncg_expr ncg_ref(ncg_builder *b, ncg_rule r) {
    if (!b) return NUAGE_E_INVAL;
    if (r < 0) return r;
    if ((uint32_t)r >= b->n_rules) return NUAGE_E_INVAL;
    return add_node(b, NCG_N_REF, r, 0, 0);
}

const char *ncg_rule_name(const ncg_builder *b, ncg_rule r) {
    return (r >= 0 && (uint32_t)r < b->n_rules) ? b->rules[r].name : "?";
}
