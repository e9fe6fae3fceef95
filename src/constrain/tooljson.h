/*
 * tooljson.h - the small JSON scanner the tool-call parser stands on.
 *
 * The streaming parser must tell, on every piece of output, whether the
 * text after a trigger is (a) a complete, valid JSON value, (b) still a
 * valid prefix of one (wait for more), or (c) already wrong (give the
 * text back as content). jansson answers only (a) or "error", and it
 * refuses valid JSON it cannot represent (integers beyond 64 bits), so
 * the scanner here is our own: RFC 8259 exactly, UTF-8 checked, nesting
 * bounded (no recursion on the C stack beyond TJ_MAX_DEPTH).
 *
 * Arguments are handed to clients as the model wrote them, minus the
 * insignificant whitespace (nuage__tj_compact): re-serializing through
 * jansson would turn 0.93 into 0.93000000000000005 and drop big
 * integers.
 */
#ifndef NUAGE_CONSTRAIN_TOOLJSON_H
#define NUAGE_CONSTRAIN_TOOLJSON_H

#include <stdbool.h>
#include <stddef.h>

#define TJ_MAX_DEPTH 128

typedef enum {
    TJ_OK = 0,    /* a complete value */
    TJ_MORE = 1,  /* input ends inside a value that may still be valid */
    TJ_BAD = 2,   /* not JSON (or nested deeper than TJ_MAX_DEPTH) */
} tj_status;

/* A resumable scan of one JSON value (see nuage__tj_scan). */
typedef struct {
    char stack[TJ_MAX_DEPTH];   /* open containers: '{' or '[' */
    int depth;
    int st, num, left, lit_i;
    unsigned char lo, hi;       /* range of the next UTF-8 continuation byte */
    bool key;                   /* the string being read is an object key */
    const char *lit;
    size_t pos;                 /* bytes scanned */
    size_t end;                 /* TJ_OK: where the value ends */
} tj_scan;

void nuage__tj_scan_init(tj_scan *z);
/* Continue scanning the value that starts at s[0] over s[z->pos..n): s
 * must be the same text as before, possibly longer. As nuage__tj_value. */
tj_status nuage__tj_scan(tj_scan *z, const char *s, size_t n, size_t *end);

/* Number of JSON whitespace bytes (space, tab, LF, CR) at the start of s. */
size_t nuage__tj_ws(const char *s, size_t n);
/* Scan one JSON value at s[0] (no leading whitespace skipped). TJ_OK sets
 * *end to the offset just past it. A number running up to the end of the
 * input is TJ_MORE (more digits may follow). */
tj_status nuage__tj_value(const char *s, size_t n, size_t *end);
/* The valid JSON text s[0..n) without whitespace outside strings
 * (malloc'd, NUL-terminated, *out_len set if not NULL), or NULL. */
char *nuage__tj_compact(const char *s, size_t n, size_t *out_len);
/* In the valid JSON object s[0..n), the value of the first member whose
 * (decoded) key is key: true and its span [*v, *v + *vlen). */
bool nuage__tj_member(const char *s, size_t n, const char *key, const char **v, size_t *vlen);
/* Number of members of the valid JSON object s[0..n); keys other than
 * those in allowed (NULL-terminated) counted in *n_other. */
size_t nuage__tj_count_members(const char *s, size_t n, const char *const *allowed,
                               size_t *n_other);
/* The decoded value of the valid JSON string literal s[0..n) (malloc'd,
 * NUL-terminated; *out_len set if not NULL), or NULL (out of memory). */
char *nuage__tj_string(const char *s, size_t n, size_t *out_len);

#endif
