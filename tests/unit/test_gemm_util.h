/* test_gemm_util.h - the SIMD-equals-reference check shared by the GEMM
 * tests (test_gemm.c for the block types, test_gemm_k.c for K-quants).
 *
 * Both tests build a problem (nw weight rows of ws bytes, na prepared
 * activation rows of as bytes) their own way; the check itself is the
 * same: the type's SIMD gemm must write exactly what its scalar twin
 * writes, leave the gaps of a strided output untouched, and give every
 * output the same bits when computed alone (a row's result must not
 * depend on its batch). Include after cmocka.h. */
#ifndef NUAGE_TEST_GEMM_UTIL_H
#define NUAGE_TEST_GEMM_UTIL_H

#include <stdint.h>
#include <stdlib.h>

#include "engine/quant.h"

static inline void gemm_check_simd_vs_ref(const nuage_type_traits *tt, int n,
                                          const uint8_t *w, size_t ws, int nw,
                                          const uint8_t *a, size_t as, int na) {
    const size_t ys = (size_t)nw + 3;
    float *y = malloc(sizeof(float) * ys * na), *r = malloc(sizeof(float) * ys * na);
    assert_non_null(y);
    assert_non_null(r);
    for (size_t i = 0; i < ys * na; i++) y[i] = r[i] = -12345.0f; /* gaps must survive */
    tt->gemm(n, y, ys, w, ws, nw, a, as, na);
    tt->gemm_ref(n, r, ys, w, ws, nw, a, as, na);
    assert_memory_equal(y, r, sizeof(float) * ys * na);
    /* each output alone */
    for (int j = 0; j < na; j += 1 + na / 7)
        for (int i = 0; i < nw; i += 1 + nw / 9) {
            float one = 0;
            tt->gemm(n, &one, 1, w + (size_t)i * ws, ws, 1, a + (size_t)j * as, as, 1);
            assert_memory_equal(&one, &y[(size_t)j * ys + i], sizeof one);
        }
    free(y);
    free(r);
}

#endif
