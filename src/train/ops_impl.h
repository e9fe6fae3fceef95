/*
 * ops_impl.h - forward and backward of every operation of the llama block,
 * written once for a real type R and compiled twice: ops_f32.c (R = float,
 * what the trainer runs) and ops_f64.c (R = double, what the gradient
 * checks compare with central finite differences: in double a wrong
 * gradient cannot hide behind rounding noise). The includer defines R,
 * OP(name) (the suffixed name), EXP and SQRT.
 *
 * Conventions: rows are tokens, row-major; a forward writes its outputs;
 * a backward WRITES the gradient of its activation inputs (dx) and ADDS
 * to the gradient of its parameters (dw), so a caller accumulating over a
 * batch never clears parameter gradients between sequences.
 *
 * The forward formulas are the engine's (src/engine/forward.c): RMSNorm
 * sums squares in double and scales by 1/sqrt(mean + eps), RoPE rotates
 * adjacent pairs (2i, 2i+1) by pos * base^(-2i/d), attention is softmax(q
 * k^T / sqrt(hd)) v with a causal mask and KV head h / (H / Hkv) for query
 * head h, the FFN is down(silu(gate x) * up x).
 */

/* y (T, n) = x / rms(x) * w per row; rstd (T) receives 1 / rms. */
void OP(nuage__t_rmsnorm_fwd)(R *y, R *rstd, const R *x, const R *w, int T, int n, R eps) {
    for (int t = 0; t < T; t++) {
        const R *xr = x + (size_t)t * n;
        R *yr = y + (size_t)t * n;
        double ss = 0.0;
        for (int i = 0; i < n; i++) ss += (double)(xr[i] * xr[i]);
        R s = (R)1 / (R)SQRT((R)(ss / n) + eps);
        rstd[t] = s;
        for (int i = 0; i < n; i++) yr[i] = (xr[i] * s) * w[i];
    }
}

/* dx = d(rmsnorm)/dx^T dy; dw += sum_t dy * x * rstd. */
void OP(nuage__t_rmsnorm_bwd)(R *dx, R *dw, const R *dy, const R *x, const R *w, const R *rstd,
                               int T, int n) {
    for (int t = 0; t < T; t++) {
        const R *xr = x + (size_t)t * n, *dyr = dy + (size_t)t * n;
        R *dxr = dx + (size_t)t * n;
        R s = rstd[t];
        double dot = 0.0;
        for (int i = 0; i < n; i++) {
            dot += (double)(dyr[i] * w[i] * xr[i]);
            dw[i] += dyr[i] * xr[i] * s;
        }
        R c = (R)(dot * (double)s * (double)s * (double)s / n);
        for (int i = 0; i < n; i++) dxr[i] = dyr[i] * w[i] * s - xr[i] * c;
    }
}

/* y (T, nout) = x (T, nin) W^T, W (nout, nin): the reference loops. */
void OP(nuage__t_matmul_fwd)(R *y, const R *x, const R *W, int T, int nin, int nout) {
    for (int t = 0; t < T; t++)
        for (int o = 0; o < nout; o++) {
            R s = 0;
            for (int i = 0; i < nin; i++) s += x[(size_t)t * nin + i] * W[(size_t)o * nin + i];
            y[(size_t)t * nout + o] = s;
        }
}

/* dx = dy W (written; dx may be NULL), dW += dy^T x. */
void OP(nuage__t_matmul_bwd)(R *dx, R *dW, const R *dy, const R *x, const R *W, int T, int nin, int nout) {
    for (int t = 0; t < T; t++) {
        if (dx)
            for (int i = 0; i < nin; i++) dx[(size_t)t * nin + i] = 0;
        for (int o = 0; o < nout; o++) {
            R g = dy[(size_t)t * nout + o];
            for (int i = 0; i < nin; i++) {
                if (dx) dx[(size_t)t * nin + i] += g * W[(size_t)o * nin + i];
                dW[(size_t)o * nin + i] += g * x[(size_t)t * nin + i];
            }
        }
    }
}

/* x (T, n) = rows tok[t] of the table E (V, n); dE[tok[t]] += dx[t]. */
void OP(nuage__t_embed_fwd)(R *x, const R *E, const int32_t *tok, int T, int n) {
    for (int t = 0; t < T; t++) memcpy(x + (size_t)t * n, E + (size_t)tok[t] * n, (size_t)n * sizeof(R));
}

void OP(nuage__t_embed_bwd)(R *dE, const R *dx, const int32_t *tok, int T, int n) {
    for (int t = 0; t < T; t++) {
        R *d = dE + (size_t)tok[t] * n;
        for (int i = 0; i < n; i++) d[i] += dx[(size_t)t * n + i];
    }
}

/* RoPE in place on h (T rows of stride `stride`, n_heads heads of hd
 * values); cs (T, hd): cos, sin of each pair i < hd/2 at the row's
 * position. The backward rotates the gradient by the opposite angle. */
void OP(nuage__t_rope_fwd)(R *h, const R *cs, int T, int n_heads, int hd, int stride) {
    for (int t = 0; t < T; t++)
        for (int k = 0; k < n_heads; k++) {
            R *v = h + (size_t)t * stride + (size_t)k * hd;
            const R *c = cs + (size_t)t * hd;
            for (int i = 0; i < hd / 2; i++) {
                R a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * c[2 * i] - b * c[2 * i + 1];
                v[2 * i + 1] = a * c[2 * i + 1] + b * c[2 * i];
            }
        }
}

void OP(nuage__t_rope_bwd)(R *dh, const R *cs, int T, int n_heads, int hd, int stride) {
    for (int t = 0; t < T; t++)
        for (int k = 0; k < n_heads; k++) {
            R *v = dh + (size_t)t * stride + (size_t)k * hd;
            const R *c = cs + (size_t)t * hd;
            for (int i = 0; i < hd / 2; i++) {
                R a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * c[2 * i] + b * c[2 * i + 1];
                v[2 * i + 1] = -a * c[2 * i + 1] + b * c[2 * i];
            }
        }
}

/*
 * Causal grouped-query attention of one sequence. q (T, H*hd), k and v
 * (T, Hkv*hd); att (T, H*hd) = softmax(q k^T * scale) v; P (H, T, T)
 * keeps the probabilities (row t, columns 0..t) for the backward.
 */
void OP(nuage__t_attn_fwd)(R *att, R *P, const R *q, const R *k, const R *v, int T, int H, int Hkv,
                            int hd, R scale) {
    const int group = H / Hkv, qs = H * hd, ks = Hkv * hd;
    for (int h = 0; h < H; h++) {
        const int hk = h / group;
        for (int t = 0; t < T; t++) {
            const R *qr = q + (size_t)t * qs + (size_t)h * hd;
            R *p = P + ((size_t)h * T + t) * T;
            R mx = -INFINITY;
            for (int s = 0; s <= t; s++) {
                const R *kr = k + (size_t)s * ks + (size_t)hk * hd;
                R d = 0;
                for (int i = 0; i < hd; i++) d += qr[i] * kr[i];
                p[s] = d * scale;
                if (p[s] > mx) mx = p[s];
            }
            R sum = 0;
            for (int s = 0; s <= t; s++) {
                p[s] = EXP(p[s] - mx);
                sum += p[s];
            }
            R inv = (R)1 / sum;
            R *o = att + (size_t)t * qs + (size_t)h * hd;
            for (int i = 0; i < hd; i++) o[i] = 0;
            for (int s = 0; s <= t; s++) {
                p[s] *= inv;
                const R *vr = v + (size_t)s * ks + (size_t)hk * hd;
                for (int i = 0; i < hd; i++) o[i] += p[s] * vr[i];
            }
        }
    }
}

/* dq, dk, dv (written) from datt; scratch holds T values. */
void OP(nuage__t_attn_bwd)(R *dq, R *dk, R *dv, const R *datt, const R *P, const R *q, const R *k,
                            const R *v, int T, int H, int Hkv, int hd, R scale, R *scratch) {
    const int group = H / Hkv, qs = H * hd, ks = Hkv * hd;
    memset(dq, 0, (size_t)T * qs * sizeof(R));
    memset(dk, 0, (size_t)T * ks * sizeof(R));
    memset(dv, 0, (size_t)T * ks * sizeof(R));
    R *dp = scratch;
    for (int h = 0; h < H; h++) {
        const int hk = h / group;
        for (int t = 0; t < T; t++) {
            const R *p = P + ((size_t)h * T + t) * T;
            const R *da = datt + (size_t)t * qs + (size_t)h * hd;
            /* dp[s] = datt_t . v_s;  dv_s += p[s] datt_t */
            R dot = 0;
            for (int s = 0; s <= t; s++) {
                const R *vr = v + (size_t)s * ks + (size_t)hk * hd;
                R *dvr = dv + (size_t)s * ks + (size_t)hk * hd;
                R d = 0;
                for (int i = 0; i < hd; i++) {
                    d += da[i] * vr[i];
                    dvr[i] += p[s] * da[i];
                }
                dp[s] = d;
                dot += p[s] * d;
            }
            /* softmax backward, then the score's two factors */
            const R *qr = q + (size_t)t * qs + (size_t)h * hd;
            R *dqr = dq + (size_t)t * qs + (size_t)h * hd;
            for (int s = 0; s <= t; s++) {
                R ds = p[s] * (dp[s] - dot) * scale;
                const R *kr = k + (size_t)s * ks + (size_t)hk * hd;
                R *dkr = dk + (size_t)s * ks + (size_t)hk * hd;
                for (int i = 0; i < hd; i++) {
                    dqr[i] += ds * kr[i];
                    dkr[i] += ds * qr[i];
                }
            }
        }
    }
}

/* hb (n) = silu(g) * u; backward writes dg, du. */
void OP(nuage__t_swiglu_fwd)(R *hb, const R *g, const R *u, size_t n) {
    for (size_t i = 0; i < n; i++) hb[i] = g[i] / ((R)1 + EXP(-g[i])) * u[i];
}

void OP(nuage__t_swiglu_bwd)(R *dg, R *du, const R *dh, const R *g, const R *u, size_t n) {
    for (size_t i = 0; i < n; i++) {
        R sg = (R)1 / ((R)1 + EXP(-g[i]));
        R silu = g[i] * sg;
        du[i] = dh[i] * silu;
        dg[i] = dh[i] * u[i] * sg * ((R)1 + g[i] * ((R)1 - sg));
    }
}

/* Cross-entropy of N rows of logits (N, V) against targets: returns the
 * summed loss (double) and writes dlogits = (softmax - onehot) * scale. */
double OP(nuage__t_xent)(R *dlogits, const R *logits, const int32_t *target, int N, int V, R scale) {
    double loss = 0;
    for (int r = 0; r < N; r++) {
        const R *z = logits + (size_t)r * V;
        R *dz = dlogits + (size_t)r * V;
        R mx = z[0];
        for (int i = 1; i < V; i++)
            if (z[i] > mx) mx = z[i];
        double sum = 0;
        for (int i = 0; i < V; i++) {
            dz[i] = EXP(z[i] - mx);
            sum += (double)dz[i];
        }
        loss += log(sum) + (double)mx - (double)z[target[r]];
        R inv = (R)(1.0 / sum);
        for (int i = 0; i < V; i++) dz[i] = dz[i] * inv * scale;
        dz[target[r]] -= scale;
    }
    return loss;
}
