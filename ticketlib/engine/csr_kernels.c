/* The block-sparse layers' three CSR products (sparse.py), each summing in exactly the order of
 * torch 2.13's CPU kernel that it replaces, so the numbers are the same bit for bit, only sooner.
 * torch's kernels sum without fused multiply-adds, as code built for the baseline x86 ISA.
 *
 * Three builds of each product, chosen at run time by what the CPU has: AVX-512 (F and VL), AVX2,
 * and plain C for any other CPU (ARM included). All three add the same rounded products in the
 * same order; they differ only in how many outputs they carry at once. Compiled with
 * -ffp-contract=off: a fused multiply-add would round once where torch rounds twice.
 *
 * Built as an optional extension when the package is installed (setup.py) and loaded with ctypes
 * (csr_kernels.py); it uses no Python API. */
#include <stdint.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define CSR_X86 1
#endif

enum { PORTABLE = 0, AVX2 = 1, AVX512 = 2 };

/* ---- plain C ---------------------------------------------------------------------------------- */

/* out[r][n] = (sum over row r's entries e, in order, of val[e] * x[col[e]][n]) + bias[r], for x
 * (columns × B) and out (rows × B) row-major; bias NULL: none. As torch.addmm(bias, csr, x) and
 * torch.addmm(out, csr, x, beta=0): each output a chain of rounded products added from zero. */
static void matmul_portable(int64_t rows, const int32_t *crow, const int32_t *col, const float *val,
                            const float *x, int64_t B, const float *bias, float *out)
{
    for (int64_t r = 0; r < rows; r++) {
        float *o = out + r * B;
        for (int64_t n = 0; n < B; n++)
            o[n] = 0.0f;
        for (int32_t e = crow[r]; e < crow[r + 1]; e++) {
            const float w = val[e], *p = x + (int64_t)col[e] * B;
            for (int64_t n = 0; n < B; n++)
                o[n] = o[n] + w * p[n];
        }
        if (bias)
            for (int64_t n = 0; n < B; n++)
                o[n] = o[n] + bias[r];
    }
}

/* res[e] = g[r] · x[col[e]] for each entry e of row r (g: rows × B, x: columns × B), summed as
 * torch.sparse.sampled_addmm(csr, g, x.t(), beta=0) does: in eight lanes (the first eight
 * products, then each further block of eight added, the tail's into the first lanes), then
 * (l0+l4 + l2+l6) + (l1+l5 + l3+l7). Needs 8 <= B <= 64. */
static void sampled_portable(int64_t rows, const int32_t *crow, const int32_t *col, const float *g,
                             const float *x, int64_t B, float *res)
{
    const int64_t full = B / 8 * 8;
    for (int64_t r = 0; r < rows; r++) {
        const float *gr = g + r * B;
        for (int32_t e = crow[r]; e < crow[r + 1]; e++) {
            const float *p = x + (int64_t)col[e] * B;
            float l[8];
            for (int j = 0; j < 8; j++)
                l[j] = gr[j] * p[j];
            for (int64_t b = 8; b < full; b += 8)
                for (int j = 0; j < 8; j++)
                    l[j] = l[j] + gr[b + j] * p[b + j];
            for (int64_t j = 0; j < B - full; j++)
                l[j] = l[j] + gr[full + j] * p[full + j];
            res[e] = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
        }
    }
}

#ifdef CSR_X86
/* ---- AVX2: eight outputs a register --------------------------------------------------------- */

#define TARGET_AVX2 __attribute__((target("avx2")))
static const int32_t RAMP[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

TARGET_AVX2 static inline __m256i lanes8(int64_t left)  /* the first min(left, 8) of 8 lanes, none if left <= 0 */
{
    const int64_t n = left >= 8 ? 8 : left <= 0 ? 0 : left;
    return _mm256_loadu_si256((const __m256i *)(RAMP + 8 - n));
}

TARGET_AVX2 static void matmul_avx2(int64_t rows, const int32_t *crow, const int32_t *col, const float *val,
                                    const float *x, int64_t B, const float *bias, float *out)
{
    for (int64_t c = 0; c < B; c += 64) {  /* up to 64 outputs of a row at a time: eight full registers, */
        const int64_t left = B - c < 64 ? B - c : 64;  /* or fewer and one partial */
        const int full = (int)(left / 8);
        const int64_t rest = left - 8 * full;
        const __m256i m = lanes8(rest);
        for (int64_t r = 0; r < rows; r++) {
            __m256 a[8], at = _mm256_setzero_ps();
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                a[j] = _mm256_setzero_ps();
            for (int32_t e = crow[r]; e < crow[r + 1]; e++) {
                const __m256 w = _mm256_set1_ps(val[e]);
                const float *p = x + (int64_t)col[e] * B + c;
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++)
                    if (j < full)
                        a[j] = _mm256_add_ps(a[j], _mm256_mul_ps(w, _mm256_loadu_ps(p + 8 * j)));
                if (rest)
                    at = _mm256_add_ps(at, _mm256_mul_ps(w, _mm256_maskload_ps(p + 8 * full, m)));
            }
            const __m256 b = _mm256_set1_ps(bias ? bias[r] : 0.0f);
            float *o = out + r * B + c;
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                if (j < full)
                    _mm256_storeu_ps(o + 8 * j, bias ? _mm256_add_ps(a[j], b) : a[j]);
            if (rest)
                _mm256_maskstore_ps(o + 8 * full, m, bias ? _mm256_add_ps(at, b) : at);
        }
    }
}

/* The eight lanes' sum (l0+l4 + l2+l6) + (l1+l5 + l3+l7), as torch's reduction adds them. */
TARGET_AVX2 static inline float lane_sum(__m256 a)
{
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

TARGET_AVX2 static void sampled_avx2(int64_t rows, const int32_t *crow, const int32_t *col, const float *g,
                                     const float *x, int64_t B, float *res)
{
    const int64_t blocks = B / 8, full = blocks * 8;
    const __m256i tail = lanes8(B - full);
    const int has_tail = B > full;
    for (int64_t r = 0; r < rows; r++) {
        const float *gr = g + r * B;
        __m256 gv[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)  /* g's row stays in registers */
            gv[j] = j < blocks ? _mm256_loadu_ps(gr + 8 * j) : _mm256_setzero_ps();
        const __m256 gt = _mm256_maskload_ps(gr + full, tail);
        for (int32_t e = crow[r]; e < crow[r + 1]; e++) {
            const float *p = x + (int64_t)col[e] * B;
            __m256 a = _mm256_mul_ps(gv[0], _mm256_loadu_ps(p));
#pragma GCC unroll 8
            for (int j = 1; j < 8; j++)
                if (j < blocks)
                    a = _mm256_add_ps(a, _mm256_mul_ps(gv[j], _mm256_loadu_ps(p + 8 * j)));
            if (has_tail)  /* into the first lanes only: the others keep their bits (even a zero's sign) */
                a = _mm256_blendv_ps(a, _mm256_add_ps(a, _mm256_mul_ps(gt, _mm256_maskload_ps(p + full, tail))),
                                     _mm256_castsi256_ps(tail));
            res[e] = lane_sum(a);
        }
    }
}

/* ---- AVX-512: sixteen outputs a register ----------------------------------------------------- */

#define TARGET_AVX512 __attribute__((target("avx512f,avx512vl")))

TARGET_AVX512 static inline __mmask16 lanes16(int64_t left)  /* the first min(left, 16) of 16 lanes */
{
    return left >= 16 ? 0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

TARGET_AVX512 static void matmul_avx512(int64_t rows, const int32_t *crow, const int32_t *col, const float *val,
                                        const float *x, int64_t B, const float *bias, float *out)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < B; c += 64) {  /* 64 outputs of the row at a time, in four registers */
            const __mmask16 m0 = lanes16(B - c), m1 = lanes16(B - c - 16), m2 = lanes16(B - c - 32), m3 = lanes16(B - c - 48);
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

TARGET_AVX512 static void sampled_avx512(int64_t rows, const int32_t *crow, const int32_t *col, const float *g,
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
#endif

/* ---- dispatch -------------------------------------------------------------------------------- */

static int best_isa(void)
{
#ifdef CSR_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        return AVX512;
    if (__builtin_cpu_supports("avx2"))
        return AVX2;
#endif
    return PORTABLE;
}

static int chosen = -1;

/* The build in use: 0 plain C, 1 AVX2, 2 AVX-512. */
int csr_isa(void)
{
    if (chosen < 0)
        chosen = best_isa();
    return chosen;
}

/* The widest build this CPU runs. */
int csr_best_isa(void)
{
    return best_isa();
}

/* Use build `isa` if this CPU runs it (for tests: every build the CPU has gives the same bits);
 * returns the build now in use. */
int csr_use_isa(int isa)
{
    if (isa >= PORTABLE && isa <= best_isa())
        chosen = isa;
    return csr_isa();
}

void csr_matmul(int64_t rows, const int32_t *crow, const int32_t *col, const float *val,
                const float *x, int64_t B, const float *bias, float *out)
{
    switch (csr_isa()) {
#ifdef CSR_X86
    case AVX512: matmul_avx512(rows, crow, col, val, x, B, bias, out); return;
    case AVX2: matmul_avx2(rows, crow, col, val, x, B, bias, out); return;
#endif
    default: matmul_portable(rows, crow, col, val, x, B, bias, out);
    }
}

void csr_sampled(int64_t rows, const int32_t *crow, const int32_t *col, const float *g,
                 const float *x, int64_t B, float *res)
{
    switch (csr_isa()) {
#ifdef CSR_X86
    case AVX512: sampled_avx512(rows, crow, col, g, x, B, res); return;
    case AVX2: sampled_avx2(rows, crow, col, g, x, B, res); return;
#endif
    default: sampled_portable(rows, crow, col, g, x, B, res);
    }
}
