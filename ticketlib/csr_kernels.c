/* The block-sparse layers' three CSR products (sparse.py), each summing in exactly the order of
 * torch 2.13's CPU kernel that it replaces, so the numbers are the same bit for bit, only sooner:
 * torch's sum without fused multiply-adds, as code built for the baseline x86 ISA; these use AVX-512.
 * Built and loaded by csr_kernels.py with -ffp-contract=off: a fused multiply-add would round
 * once where torch rounds twice. */
#include <immintrin.h>
#include <stdint.h>

#if !defined(__AVX512F__) || !defined(__AVX512VL__)
#error "these kernels need AVX-512 (F and VL); sparse.py falls back to torch's"
#endif

static inline __mmask16 lanes(int64_t left)  /* the first min(left, 16) of 16 lanes, none if left <= 0 */
{
    return left >= 16 ? 0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* out[r][n] = (sum over row r's entries e, in order, of val[e] * x[col[e]][n]) + bias[r], for x
 * (columns × B) and out (rows × B) row-major; bias NULL: none. As torch.addmm(bias, csr, x) and
 * torch.addmm(out, csr, x, beta=0): each output a chain of rounded products added from zero. */
void csr_matmul(int64_t rows, const int32_t *crow, const int32_t *col, const float *val,
                const float *x, int64_t B, const float *bias, float *out)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < B; c += 64) {  /* 64 outputs of the row at a time, in four registers */
            const __mmask16 m0 = lanes(B - c), m1 = lanes(B - c - 16), m2 = lanes(B - c - 32), m3 = lanes(B - c - 48);
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int32_t e = crow[r]; e < crow[r + 1]; e++) {
                const __m512 w = _mm512_set1_ps(val[e]);
                const float *p = x + (int64_t)col[e] * B + c;
                a0 = _mm512_add_ps(a0, _mm512_mul_ps(w, _mm512_maskz_loadu_ps(m0, p)));
                a1 = _mm512_add_ps(a1, _mm512_mul_ps(w, _mm512_maskz_loadu_ps(m1, p + 16)));
                a2 = _mm512_add_ps(a2, _mm512_mul_ps(w, _mm512_maskz_loadu_ps(m2, p + 32)));
                a3 = _mm512_add_ps(a3, _mm512_mul_ps(w, _mm512_maskz_loadu_ps(m3, p + 48)));
            }
            if (bias) {
                const __m512 b = _mm512_set1_ps(bias[r]);
                a0 = _mm512_add_ps(a0, b), a1 = _mm512_add_ps(a1, b), a2 = _mm512_add_ps(a2, b), a3 = _mm512_add_ps(a3, b);
            }
            float *o = out + r * B + c;
            _mm512_mask_storeu_ps(o, m0, a0), _mm512_mask_storeu_ps(o + 16, m1, a1);
            _mm512_mask_storeu_ps(o + 32, m2, a2), _mm512_mask_storeu_ps(o + 48, m3, a3);
        }
}

/* res[e] = g[r] · x[col[e]] for each entry e of row r (g: rows × B, x: columns × B), summed as
 * torch.sparse.sampled_addmm(csr, g, x.t(), beta=0) does: in eight lanes (the first eight
 * products, then each further block of eight added, the tail's into the first lanes), then
 * (l0+l4 + l2+l6) + (l1+l5 + l3+l7). 8 <= B <= 64: g's row stays in registers. */
void csr_sampled(int64_t rows, const int32_t *crow, const int32_t *col, const float *g,
                 const float *x, int64_t B, float *res)
{
    const int64_t blocks = B / 8, full = blocks * 8;
    const __mmask8 tail = (__mmask8)((1u << (B - full)) - 1);
    for (int64_t r = 0; r < rows; r++) {
        const float *gr = g + r * B;
        __m256 gv[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            gv[j] = j < blocks ? _mm256_loadu_ps(gr + 8 * j) : _mm256_setzero_ps();
        const __m256 gt = _mm256_maskz_loadu_ps(tail, gr + full);
        for (int32_t e = crow[r]; e < crow[r + 1]; e++) {
            const float *p = x + (int64_t)col[e] * B;
            __m256 a = _mm256_mul_ps(gv[0], _mm256_loadu_ps(p));
#pragma GCC unroll 8
            for (int j = 1; j < 8; j++)
                if (j < blocks)
                    a = _mm256_add_ps(a, _mm256_mul_ps(gv[j], _mm256_loadu_ps(p + 8 * j)));
            if (tail)
                a = _mm256_mask_add_ps(a, tail, a, _mm256_mul_ps(gt, _mm256_maskz_loadu_ps(tail, p + full)));
            const __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
            const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
            res[e] = _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
        }
    }
}
