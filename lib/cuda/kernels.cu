/* kernels.cu - the CUDA kernels of the forward step. Each mirrors a CPU
 * reference (lib/kernels_scalar.c, lib/quant_*.c, lib/forward.c) and, where
 * the arithmetic allows it, in the same order so results are bitwise equal:
 * I2_S, TQ2_0, Q8_0 and F16/F32 matmuls, the activation quantizers, RMSNorm,
 * RoPE and the embedding are exact; attention (online softmax) and top-k
 * ties are the documented exceptions (docs/CUDA.md). */
#include <float.h>
#include <limits.h>
#include <math.h>

#include "cuda/kernels.cuh"

#define FULL 0xffffffffu

/* ---- reductions ------------------------------------------------------------ */

/* Warp sums / maxima (butterfly: every lane ends with the result). */
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    return v;
}
__device__ __forceinline__ int warp_sum_i(int v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    return v;
}
__device__ __forceinline__ float warp_max_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
    return v;
}

/* Block-wide reductions through shared memory (blockDim a multiple of 32, <= 1024). */
__device__ double block_sum_d(double v, double *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    double r = 0.0;
    for (int i = 0; i < nw; i++) r += sh[i]; /* fixed order: deterministic */
    return r;
}
__device__ int block_sum_i(int v, int *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_i(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    int r = 0;
    for (int i = 0; i < nw; i++) r += sh[i];
    return r;
}
__device__ float block_max_f(float v, float *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max_f(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    float r = sh[0];
    for (int i = 1; i < nw; i++) r = fmaxf(r, sh[i]);
    return r;
}

/* ggml_v_expf lane by lane (lib/forward.c BN_V_EXPF_BODY), so SiLU matches the CPU bit for bit. */
__device__ float ggml_expf_dev(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = __float_as_uint(z) << 23;
    const float k = __uint_as_float(e + 0x3f800000u);
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         0x1.ffffecp-1f * b);
    if (!(fabsf(n) > 126.0f)) return fmaf(j, k, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = __uint_as_float(g + 0x7f000000u);
    if (fabsf(n) > 192.0f) return s1 * s1;
    const float s2 = __uint_as_float(e - g);
    return fmaf(s2, j, s2) * s1;
}

/* ---- RMSNorm / FFN activation fused with I8S quantization ------------------
 * One block of NQ_THREADS per token. Pass 1 forms the input (x, or act(gate)
 * * up) in shared memory and the sum of squares in double; pass 2 normalizes
 * (x * scale) * w as ggml does; pass 3 quantizes as bitnet.cpp
 * quantize_row_i8s (max in double, s = (float)(127/max), round to nearest
 * even, clamp). The row lives in shared memory between passes, so the global
 * loads of each pass are independent and pipeline (a loop that reads and
 * writes global memory through possibly aliasing pointers serializes one
 * load latency per element). block_norm_row is shared with the fused decode
 * matmul below, so both give the same bits. */
#define NQ_THREADS 256

template <int MODE>
__device__ float block_norm_row(const float *__restrict__ xr, const float *__restrict__ w, float eps, int K, float *xs,
                                double *shd, float *shf) {
    double ss = 0.0;
#pragma unroll 4
    for (int i = threadIdx.x; i < K; i += NQ_THREADS) {
        float h;
        if (MODE == BN_CU_NORM_RELU2) {
            const float g = xr[i], r = g > 0.0f ? g : 0.0f;
            h = (r * r) * xr[K + i];
        } else if (MODE == BN_CU_NORM_SILU) {
            const float g = xr[i];
            h = (g / (1.0f + ggml_expf_dev(0.0f - g))) * xr[K + i];
        } else {
            h = xr[i];
        }
        if (MODE != BN_CU_NORM_NONE) ss += (double)(h * h);
        xs[i] = h;
    }
    float amax = 0.0f;
    if (MODE != BN_CU_NORM_NONE) {
        ss = block_sum_d(ss, shd); /* its barriers also publish xs */
        const float mean = (float)(ss / K);
        const float sc = 1.0f / sqrtf(mean + eps);
#pragma unroll 4
        for (int i = threadIdx.x; i < K; i += NQ_THREADS) {
            const float v = (xs[i] * sc) * w[i];
            xs[i] = v;
            amax = fmaxf(amax, fabsf(v));
        }
    } else {
        for (int i = threadIdx.x; i < K; i += NQ_THREADS) amax = fmaxf(amax, fabsf(xs[i]));
    }
    return block_max_f(amax, shf);
}

/* The I8S scale of a row whose largest magnitude is amax. */
__device__ __forceinline__ float i8s_scale(float amax) {
    const double mx = (double)amax > 0.00001 ? (double)amax : 0.00001;
    return (float)(127 / mx);
}
__device__ __forceinline__ int i8s_code(float v, float s) {
    int q = __float2int_rn(v * s);
    return q > 127 ? 127 : (q < -128 ? -128 : q);
}

template <int MODE>
__global__ void __launch_bounds__(NQ_THREADS) k_norm_quant(const float *__restrict__ x, int64_t ldx, const float *__restrict__ w,
                                                           float eps, int K, float *__restrict__ xn, int8_t *__restrict__ q,
                                                           float *qscale, int32_t *qsum) {
    extern __shared__ float xs[];
    __shared__ double shd[32];
    __shared__ float shf[32];
    __shared__ int shi[32];
    const int t = blockIdx.x;
    const float amax = block_norm_row<MODE>(x + (int64_t)t * ldx, w, eps, K, xs, shd, shf);
    float *o = xn + (int64_t)t * K;
    for (int i = threadIdx.x; i < K; i += NQ_THREADS) o[i] = xs[i];
    if (!q) return;
    const float s = i8s_scale(amax);
    int acc = 0;
    for (int i = threadIdx.x; i < K; i += NQ_THREADS) {
        const int v = i8s_code(xs[i], s);
        q[(int64_t)t * K + i] = (int8_t)v;
        acc += v;
    }
    acc = block_sum_i(acc, shi);
    if (threadIdx.x == 0) {
        qscale[t] = s;
        qsum[t] = acc;
    }
}

/* Dynamic shared memory above the default 48 KB needs an opt-in per kernel. */
template <typename F>
static void smem_optin(F *kern, size_t bytes) {
    if (bytes > 48 * 1024) cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

template <int MODE>
static void nq_launch(cudaStream_t s, const float *x, int64_t ldx, const float *w, float eps, int n, int K, float *xn,
                      int8_t *q, float *qscale, int32_t *qsum) {
    const size_t sm = (size_t)K * 4;
    smem_optin(k_norm_quant<MODE>, sm);
    k_norm_quant<MODE><<<n, NQ_THREADS, sm, s>>>(x, ldx, w, eps, K, xn, q, qscale, qsum);
}

void cu_norm_quant(cudaStream_t s, int mode, const float *x, int64_t ldx, const float *w, float eps, int n, int K,
                   float *xn, int8_t *q, float *qscale, int32_t *qsum) {
    switch (mode) {
    case BN_CU_NORM_RMS: nq_launch<BN_CU_NORM_RMS>(s, x, ldx, w, eps, n, K, xn, q, qscale, qsum); break;
    case BN_CU_NORM_RELU2: nq_launch<BN_CU_NORM_RELU2>(s, x, ldx, w, eps, n, K, xn, q, qscale, qsum); break;
    case BN_CU_NORM_SILU: nq_launch<BN_CU_NORM_SILU>(s, x, ldx, w, eps, n, K, xn, q, qscale, qsum); break;
    default: nq_launch<BN_CU_NORM_NONE>(s, x, ldx, w, eps, n, K, xn, q, qscale, qsum); break;
    }
}

/* ---- other activation kinds -------------------------------------------------- */

/* quantize_row_q8_K_ref: one warp per 256-block. max is the signed value of
 * largest magnitude, first occurrence; iscale = -127/max; q = min(127, rne). */
__global__ void k_quant_q8k(const float *__restrict__ xn, int64_t nblk_total, int nb_row, int K, uint8_t *out) {
    const int lane = threadIdx.x & 31;
    const int64_t blk = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (blk >= nblk_total) return;
    const int64_t t = blk / nb_row, b = blk % nb_row;
    const float *x = xn + t * K + b * 256;
    uint8_t *y = out + blk * BN_CU_Q8K_BYTES;
    float v[8], amax = 0.0f, mx = 0.0f;
    int at = INT_MAX;
    for (int j = 0; j < 8; j++) { /* element lane*8 + j: a lane's elements are contiguous, in order */
        v[j] = x[lane * 8 + j];
        const float ax = fabsf(v[j]);
        if (ax > amax) { amax = ax; mx = v[j]; at = lane * 8 + j; }
    }
    for (int o = 16; o > 0; o >>= 1) { /* larger |x| wins, ties to the lower index */
        const float oa = __shfl_xor_sync(FULL, amax, o), om = __shfl_xor_sync(FULL, mx, o);
        const int oat = __shfl_xor_sync(FULL, at, o);
        if (oa > amax || (oa == amax && oat < at)) { amax = oa; mx = om; at = oat; }
    }
    int8_t *qs = (int8_t *)(y + 4);
    int16_t *bs = (int16_t *)(y + 4 + 256);
    if (!(amax > 0.0f)) {
        for (int j = 0; j < 8; j++) qs[lane * 8 + j] = 0;
        if (lane < 16) bs[lane] = 0;
        if (lane == 0) *(float *)y = 0.0f;
        return;
    }
    const float iscale = -127.f / mx;
    int part = 0;
    for (int j = 0; j < 8; j++) {
        int q = __float2int_rn(iscale * v[j]);
        q = q < 127 ? q : 127;
        qs[lane * 8 + j] = (int8_t)q;
        part += q;
    }
    part += __shfl_xor_sync(FULL, part, 1); /* lanes 2i, 2i+1 hold the 16 of bsums[i] */
    if ((lane & 1) == 0) bs[lane >> 1] = (int16_t)part;
    if (lane == 0) *(float *)y = 1 / iscale;
}

void cu_quant_q8k(cudaStream_t s, const float *xn, int n, int K, uint8_t *out) {
    const int64_t tot = (int64_t)n * (K / 256);
    const int wpb = 8;
    k_quant_q8k<<<(unsigned)((tot + wpb - 1) / wpb), wpb * 32, 0, s>>>(xn, tot, K / 256, K, out);
}

/* quantize_row_q8_0_ref: one thread per 32-block; d = amax/127, q = roundf(x/d).
 * The block is written as 17 aligned 16-bit words (34 * blk is even): written
 * byte by byte (or the scale by memcpy), nvcc 13 -O3 code on an H200 left the
 * scale's low byte 0 in every block while computing it right (a standalone
 * repro printed hb 0x25e9 and stored 00 25); test_gpu's quantizer case caught it. */
__global__ void k_quant_q8_0(const float *__restrict__ xn, int64_t nblk_total, uint8_t *out) {
    const int64_t blk = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (blk >= nblk_total) return;
    const float *x = xn + blk * 32;
    uint16_t *y = (uint16_t *)(out + blk * BN_CU_Q8_0_BYTES);
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[0] = __half_as_ushort(__float2half_rn(d));
    for (int j = 0; j < 16; j++) {
        const unsigned lo = (uint8_t)(int8_t)roundf(x[2 * j] * id), hi = (uint8_t)(int8_t)roundf(x[2 * j + 1] * id);
        y[1 + j] = (uint16_t)(lo | hi << 8);
    }
}

void cu_quant_q8_0(cudaStream_t s, const float *xn, int n, int K, uint8_t *out) {
    const int64_t tot = (int64_t)n * (K / 32);
    k_quant_q8_0<<<(unsigned)((tot + 127) / 128), 128, 0, s>>>(xn, tot, out);
}

__global__ void k_quant_f16(const float *__restrict__ xn, int64_t total, __half *out) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) out[i] = __float2half_rn(xn[i]);
}

void cu_quant_f16(cudaStream_t s, const float *xn, int n, int K, __half *out) {
    const int64_t tot = (int64_t)n * K;
    k_quant_f16<<<(unsigned)((tot + 255) / 256), 256, 0, s>>>(xn, tot, out);
}

/* ---- matmul epilogue ------------------------------------------------------------ */

/* As lib/forward.c region_matmul: y *= scale (when != 1), then resid += y. */
__device__ __forceinline__ void mm_store(float y, const cu_mm_seg &S, int t, int64_t r) {
    const int64_t idx = (int64_t)t * S.ldy + r;
    if (S.scale != 1.0f) y *= S.scale;
    S.Y[idx] = y;
    if (S.resid) S.resid[idx] += y;
}

/* The segment (weight) of global row rg of a launch over concatenated
 * rows, and the row inside it; false past the last row. */
__device__ __forceinline__ bool mm_row(const cu_mm_args &A, int64_t rg, cu_mm_seg &S, int64_t &r) {
    r = rg;
    if (r < A.seg[0].M) { S = A.seg[0]; return true; }
    r -= A.seg[0].M;
    if (A.nseg > 1) {
        if (r < A.seg[1].M) { S = A.seg[1]; return true; }
        r -= A.seg[1].M;
    }
    if (A.nseg > 2 && r < A.seg[2].M) { S = A.seg[2]; return true; }
    return false;
}

/* The launch arguments of nw (1..3) weights sharing one input; resid
 * applies to the first. */
static cu_mm_args mm_args(int nw, const cu_mat *const *W, float *const *Y, int64_t ldy, const float *scale, float *resid) {
    cu_mm_args A;
    memset(&A, 0, sizeof A);
    A.nseg = nw;
    for (int i = 0; i < nw; i++) {
        A.seg[i].d = W[i]->d;
        A.seg[i].M = W[i]->M;
        A.seg[i].wscale = W[i]->scale;
        A.seg[i].Y = Y[i];
        A.seg[i].ldy = ldy;
        A.seg[i].scale = scale[i];
        A.seg[i].resid = i == 0 ? resid : NULL;
    }
    return A;
}

/* ---- I2_S x I8S (dp4a) -----------------------------------------------------------
 * One warp per weight row, NT tokens per warp so a weight word is loaded once
 * for NT activation rows (decode: NT = 1; prefill tiles: NT = 8). The x86 I2_S
 * layout is used as stored: a 32-bit word at byte p (p % 4 == 0) of block
 * b holds, as (word >> (6-2g)) & 0x03030303, the codes of elements
 * 128b + 32g + p .. +3 as four int8 lanes, which __dp4a multiplies with the
 * four matching int8 activations; lanes load 16 bytes (4 words) at a time. sumi = sum code*q is exact; the
 * epilogue is bn_i2s_out's formula, so results equal the scalar reference. */
template <int NT>
__global__ void k_mm_i2s(const cu_mm_args A, int64_t K, const int8_t *__restrict__ q, const float *__restrict__ as,
                         const int32_t *__restrict__ asum, int n) {
    const int lane = threadIdx.x & 31;
    const int t0 = blockIdx.y * NT;
    cu_mm_seg S;
    int64_t r;
    if (!mm_row(A, (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), S, r)) return;
    /* 16-byte chunk i of the row = bytes 16(i%2).. of block i/2: its four
     * words hold elements 128(i/2) + 16(i%2) + 32g + 0..15 in group g, i.e.
     * 16 consecutive activations per group: one 16-byte load each. Rows start
     * 16-byte aligned (K/4 is a multiple of 32). */
    const uint4 *w = (const uint4 *)(S.d + r * (K / 4));
    const int64_t nw = K / 64;
    int acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0;
#pragma unroll 2
    for (int64_t i = lane; i < nw; i += 32) {
        const uint4 v = __ldg(w + i);
        const int64_t e0 = (i >> 1) * 128 + (i & 1) * 16;
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (NT > 1 && t0 + t >= n) break;
            const int8_t *qt = q + (int64_t)(t0 + t) * K + e0;
            int a = acc[t];
#pragma unroll
            for (int g = 0; g < 4; g++) {
                const int sh = 6 - 2 * g;
                const int4 x = __ldg((const int4 *)(qt + 32 * g));
                a = __dp4a((int)((v.x >> sh) & 0x03030303u), x.x, a);
                a = __dp4a((int)((v.y >> sh) & 0x03030303u), x.y, a);
                a = __dp4a((int)((v.z >> sh) & 0x03030303u), x.z, a);
                a = __dp4a((int)((v.w >> sh) & 0x03030303u), x.w, a);
            }
            acc[t] = a;
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const int sumi = warp_sum_i(acc[t]);
        if (lane == 0 && t0 + t < n) {
            const int tt = t0 + t;
            const float y = ((float)sumi - (float)asum[tt]) / as[tt] * S.wscale;
            mm_store(y, S, tt, r);
        }
    }
}

/* ---- TQ2_0 x Q8K ---------------------------------------------------------------------
 * llama.cpp's AVX2 order, as bn_mm_tq2_0_scalar: per 256 block eight exact
 * int32 lanes (lane L: code*q of the elements with (e % 32) / 4 == L, i.e.
 * word L of each 32-byte group, minus bsums 2L, 2L+1), each lane an fmaf
 * chain over the blocks in order, reduced at the end as bn_hsum8f. One warp
 * per row: thread (b = lane / 8, L = lane % 8) computes lane L of block
 * base + b; the chains take the four blocks in order through shuffles. */
template <int NT>
__global__ void k_mm_tq2(const cu_mm_args A, int64_t K, const uint8_t *__restrict__ act, int n) {
    const int lane = threadIdx.x & 31, sub = lane >> 3, L = lane & 7;
    const int t0 = blockIdx.y * NT;
    cu_mm_seg S;
    int64_t r;
    if (!mm_row(A, (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), S, r)) return;
    const int64_t nb = K / 256;
    const uint8_t *row = S.d + r * nb * BN_CU_TQ2_BYTES;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    for (int64_t base = 0; base < nb; base += 4) {
        const int64_t i = base + sub;
        float v[NT], d[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) v[t] = d[t] = 0.0f;
        if (i < nb) {
            const uint8_t *x = row + i * BN_CU_TQ2_BYTES;
            __half hd;
            memcpy(&hd, x + 64, 2);
            const float wd = __half2float(hd);
            uint32_t w[2]; /* word L of each 32 bytes (the block is only 2-byte aligned) */
            for (int c = 0; c < 2; c++) {
                const uint8_t *p = x + 32 * c + 4 * L;
                w[c] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            }
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (NT > 1 && t0 + t >= n) break;
                const uint8_t *y = act + ((int64_t)(t0 + t) * nb + i) * BN_CU_Q8K_BYTES;
                const int *yq = (const int *)(y + 4);
                const int16_t *bs = (const int16_t *)(y + 4 + 256);
                int s = -((int)bs[2 * L] + (int)bs[2 * L + 1]);
                for (int c = 0; c < 2; c++)        /* elements 128c + 32l + m at byte 32c + m, bits 2l */
                    for (int l = 0; l < 4; l++)
                        s = __dp4a((int)((w[c] >> (2 * l)) & 0x03030303u), yq[(128 * c + 32 * l) / 4 + L], s);
                v[t] = (float)s;
                d[t] = *(const float *)y * wd;
            }
        }
        for (int b = 0; b < 4 && base + b < nb; b++)
#pragma unroll
            for (int t = 0; t < NT; t++)
                acc[t] = fmaf(__shfl_sync(FULL, v[t], b * 8 + L), __shfl_sync(FULL, d[t], b * 8 + L), acc[t]);
    }
    /* hsum_float_8 on lanes 0..7: t_i = a[4+i] + a[i]; (t0 + t2) + (t1 + t3) */
#pragma unroll
    for (int t = 0; t < NT; t++) {
        float a = acc[t];
        a = a + __shfl_sync(FULL, a, (lane & ~7) | ((L + 4) & 7));
        a = a + __shfl_sync(FULL, a, (lane & ~7) | ((L + 2) & 7));
        a = a + __shfl_sync(FULL, a, (lane & ~7) | ((L + 1) & 7));
        if (lane == 0 && t0 + t < n) mm_store(a, S, t0 + t, r);
    }
}

/* ---- Q8_0 x Q8_0 (the output head of Q8_0 models), same in-order scheme ---- */
template <int NT>
__global__ void k_mm_q8_0(const cu_mm_args A, int64_t K, const uint8_t *__restrict__ act, int n) {
    const int lane = threadIdx.x & 31;
    const int t0 = blockIdx.y * NT;
    cu_mm_seg S;
    int64_t r;
    if (!mm_row(A, (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), S, r)) return;
    const int64_t nb = K / 32;
    const uint8_t *row = S.d + r * nb * BN_CU_Q8_0_BYTES;
    float sumf[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) sumf[t] = 0.0f;
    for (int64_t base = 0; base < nb; base += 32) {
        const int64_t i = base + lane;
        float part[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) part[t] = 0.0f;
        if (i < nb) {
            const uint8_t *x = row + i * BN_CU_Q8_0_BYTES;
            __half hd;
            memcpy(&hd, x, 2);
            const float wd = __half2float(hd);
            const int8_t *xq = (const int8_t *)(x + 2);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (NT > 1 && t0 + t >= n) break;
                const uint8_t *y = act + ((int64_t)(t0 + t) * nb + i) * BN_CU_Q8_0_BYTES;
                __half yd;
                memcpy(&yd, y, 2);
                const int8_t *yq = (const int8_t *)(y + 2);
                int sumi = 0;
                for (int j = 0; j < 32; j++) sumi += xq[j] * yq[j];
                part[t] = (float)sumi * (wd * __half2float(yd));
            }
        }
        for (int s = 0; s < 32 && base + s < nb; s++)
#pragma unroll
            for (int t = 0; t < NT; t++) sumf[t] += __shfl_sync(FULL, part[t], s);
    }
    if (lane == 0)
#pragma unroll
        for (int t = 0; t < NT; t++)
            if (t0 + t < n) mm_store(sumf[t], S, t0 + t, r);
}

/* ---- F16 / F32 weights -------------------------------------------------------------
 * Lane j accumulates k = j, j+32, ... with fmaf, then lanes are combined
 * j += j+h for h = 16..1: exactly the scalar reference's acc[k & 31] and
 * reduce32, so the logits of an F16 head are bitwise equal to the CPU's. */
__device__ __forceinline__ float ld_f(const __half *p) { return __half2float(*p); }
__device__ __forceinline__ float ld_f(const float *p) { return *p; }

template <typename TW, typename TA, int NT>
__global__ void k_mm_float(const cu_mm_args A, int64_t K, const TA *__restrict__ X, int n) {
    const int lane = threadIdx.x & 31;
    const int t0 = blockIdx.y * NT;
    cu_mm_seg S;
    int64_t r;
    if (!mm_row(A, (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), S, r)) return;
    const TW *w = (const TW *)S.d + r * K;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
#pragma unroll 4
    for (int64_t k = lane; k < K; k += 32) {
        const float wv = ld_f(w + k);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (NT > 1 && t0 + t >= n) break;
            acc[t] = fmaf(wv, ld_f(X + (int64_t)(t0 + t) * K + k), acc[t]);
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        float v = acc[t];
        for (int h = 16; h >= 1; h >>= 1) v = v + __shfl_down_sync(FULL, v, h);
        if (lane == 0 && t0 + t < n) mm_store(v, S, t0 + t, r);
    }
}

/* ---- decode: norm + I8S quantization fused into the I2_S matmul ------------------
 * One token. Every block first forms the normalized, quantized input row
 * itself (block_norm_row, the same bits as k_norm_quant) into shared memory,
 * so a decode layer needs no separate norm launches: the input row is a few
 * KB read from L2 per block, against the launch and the round trip through
 * global memory it replaces. The weight words of the block's rows are loaded
 * into registers before that prologue, so their HBM latency overlaps it.
 * Each warp owns R rows; a lane takes 16-byte chunks lane, lane + 32, ...
 * (at most FU_CH of them: K <= 64 * 32 * FU_CH). The int8 codes are stored
 * chunk-major per 2-bit group (qs[g][chunk][16]) so that the 16 bytes a lane
 * needs for group g of its chunk are contiguous and a warp's reads of one
 * group cover consecutive banks. The epilogue is bn_i2s_out's formula. */
#define FU_CH 4
#define FU_WARPS 8

__device__ __forceinline__ int fu_perm(int e, int K) {
    return ((e >> 5) & 3) * (K >> 2) + 16 * (2 * (e >> 7) + ((e >> 4) & 1)) + (e & 15);
}

template <int MODE, int R>
__global__ void __launch_bounds__(NQ_THREADS) k_mm_i2s_nq(const cu_mm_args A, int K, const float *__restrict__ x,
                                                          const float *__restrict__ nw, float eps) {
    extern __shared__ float xs[];
    int8_t *qs = (int8_t *)(xs + K);
    __shared__ double shd[32];
    __shared__ float shf[32];
    __shared__ int shi[32];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nch = K / 64;
    const int64_t rg0 = ((int64_t)blockIdx.x * FU_WARPS + wid) * R;
    cu_mm_seg S[R];
    int64_t rr[R];
    bool has[R];
    uint4 wv[R][FU_CH];
#pragma unroll
    for (int j = 0; j < R; j++) {
        has[j] = mm_row(A, rg0 + j, S[j], rr[j]);
        const uint4 *w = has[j] ? (const uint4 *)(S[j].d + rr[j] * (K / 4)) : NULL;
#pragma unroll
        for (int c = 0; c < FU_CH; c++) {
            const int i = lane + 32 * c;
            wv[j][c] = has[j] && i < nch ? __ldg(w + i) : make_uint4(0, 0, 0, 0);
        }
    }
    const float s = i8s_scale(block_norm_row<MODE>(x, nw, eps, K, xs, shd, shf));
    int acc = 0;
    for (int i = threadIdx.x; i < K; i += NQ_THREADS) {
        const int v = i8s_code(xs[i], s);
        qs[fu_perm(i, K)] = (int8_t)v;
        acc += v;
    }
    const int qsum = block_sum_i(acc, shi); /* its barriers publish qs */
    int sum[R];
#pragma unroll
    for (int j = 0; j < R; j++) sum[j] = 0;
#pragma unroll
    for (int c = 0; c < FU_CH; c++) {
        const int i = lane + 32 * c;
        if (i >= nch) break;
        int4 a[4];
#pragma unroll
        for (int g = 0; g < 4; g++) a[g] = *(const int4 *)(qs + g * (K / 4) + 16 * i);
#pragma unroll
        for (int j = 0; j < R; j++) {
            const uint4 v = wv[j][c];
            int t = sum[j];
#pragma unroll
            for (int g = 0; g < 4; g++) {
                const int sh = 6 - 2 * g;
                t = __dp4a((int)((v.x >> sh) & 0x03030303u), a[g].x, t);
                t = __dp4a((int)((v.y >> sh) & 0x03030303u), a[g].y, t);
                t = __dp4a((int)((v.z >> sh) & 0x03030303u), a[g].z, t);
                t = __dp4a((int)((v.w >> sh) & 0x03030303u), a[g].w, t);
            }
            sum[j] = t;
        }
    }
#pragma unroll
    for (int j = 0; j < R; j++) {
        const int sumi = warp_sum_i(sum[j]);
        if (lane == 0 && has[j]) mm_store(((float)sumi - (float)qsum) / s * S[j].wscale, S[j], 0, rr[j]);
    }
}

int cu_fused_i2s_ok(int64_t K) { return K % 128 == 0 && K <= 64 * 32 * FU_CH; }

template <int MODE, int R>
static void fused_go(cudaStream_t s, const cu_mm_args &A, int64_t total, int K, const float *x, const float *w, float eps) {
    const int rows = FU_WARPS * R;
    const size_t sm = (size_t)K * 5; /* the f32 row, then its int8 codes */
    smem_optin(k_mm_i2s_nq<MODE, R>, sm);
    k_mm_i2s_nq<MODE, R><<<(unsigned)((total + rows - 1) / rows), NQ_THREADS, sm, s>>>(A, K, x, w, eps);
}

/* Rows per warp: 4 for big row counts (gate|up), else 2, so a launch keeps
 * a few blocks per SM. */
template <int MODE>
static void fused_launch(cudaStream_t s, const cu_mm_args &A, int K, const float *x, const float *w, float eps) {
    int64_t total = 0;
    for (int i = 0; i < A.nseg; i++) total += A.seg[i].M;
    if (total >= 8192) fused_go<MODE, 4>(s, A, total, K, x, w, eps);
    else fused_go<MODE, 2>(s, A, total, K, x, w, eps);
}

void cu_matmul_i2s_fused(cudaStream_t s, int mode, const float *x, const float *w, float eps, int nw,
                         const cu_mat *const *W, float *const *Y, const float *scale, float *resid) {
    const cu_mm_args A = mm_args(nw, W, Y, 0, scale, resid);
    const int K = (int)W[0]->K;
    switch (mode) {
    case BN_CU_NORM_RMS: fused_launch<BN_CU_NORM_RMS>(s, A, K, x, w, eps); break;
    case BN_CU_NORM_RELU2: fused_launch<BN_CU_NORM_RELU2>(s, A, K, x, w, eps); break;
    case BN_CU_NORM_SILU: fused_launch<BN_CU_NORM_SILU>(s, A, K, x, w, eps); break;
    default: fused_launch<BN_CU_NORM_NONE>(s, A, K, x, w, eps); break;
    }
}

/* Launch with one warp per row, 8 rows per block, over the concatenated
 * rows of A; NT = 1 for a single token (decode GEMV), tiles of 8 tokens
 * otherwise (prefill). */
template <int NT>
static void mm_launch(cudaStream_t s, int wtype, int64_t K, const cu_mm_args &A, const cu_act *a, int n) {
    const int rows = 8;
    int64_t total = 0;
    for (int i = 0; i < A.nseg; i++) total += A.seg[i].M;
    dim3 grid((unsigned)((total + rows - 1) / rows), (unsigned)((n + NT - 1) / NT));
    const int th = rows * 32;
    switch (wtype) {
    case BN_CU_I2S: k_mm_i2s<NT><<<grid, th, 0, s>>>(A, K, a->q, a->qscale, a->qsum, n); break;
    case BN_CU_TQ2_0: k_mm_tq2<NT><<<grid, th, 0, s>>>(A, K, a->q8k, n); break;
    case BN_CU_Q8_0: k_mm_q8_0<NT><<<grid, th, 0, s>>>(A, K, a->q8_0, n); break;
    case BN_CU_F16: k_mm_float<__half, __half, NT><<<grid, th, 0, s>>>(A, K, a->f16, n); break;
    default: k_mm_float<float, float, NT><<<grid, th, 0, s>>>(A, K, a->f32, n); break;
    }
}

void cu_matmul_multi(cudaStream_t s, int nw, const cu_mat *const *W, const cu_act *a, int n, float *const *Y, int64_t ldy,
                     const float *scale, float *resid) {
    const cu_mm_args A = mm_args(nw, W, Y, ldy, scale, resid);
    if (n == 1)
        mm_launch<1>(s, W[0]->wtype, W[0]->K, A, a, n);
    else
        mm_launch<8>(s, W[0]->wtype, W[0]->K, A, a, n);
}

void cu_matmul(cudaStream_t s, const cu_mat *W, const cu_act *a, int n, float *Y, int64_t ldy, float scale, float *resid) {
    cu_matmul_multi(s, 1, &W, a, n, &Y, ldy, &scale, resid);
}

/* ---- embedding rows (F16, F32, Q8_0 as bn_model_embed dequantizes them) ---- */
__global__ void k_embed(const uint8_t *__restrict__ E, int wtype, int64_t D, size_t row_bytes, const int32_t *tok, float *x) {
    const int t = blockIdx.x;
    const uint8_t *row = E + (size_t)tok[t] * row_bytes;
    float *o = x + (int64_t)t * D;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        if (wtype == BN_CU_F16) {
            o[i] = __half2float(((const __half *)row)[i]);
        } else if (wtype == BN_CU_Q8_0) {
            const uint8_t *b = row + (i / 32) * BN_CU_Q8_0_BYTES;
            __half hd;
            memcpy(&hd, b, 2);
            o[i] = (float)((const int8_t *)(b + 2))[i % 32] * __half2float(hd);
        } else {
            o[i] = ((const float *)row)[i];
        }
    }
}

void cu_embed(cudaStream_t s, const cu_mat *E, const int32_t *tok, int n, float *x) {
    k_embed<<<n, 256, 0, s>>>(E->d, E->wtype, E->K, E->row_bytes, tok, x);
}

/* ---- NEOX RoPE + KV cache store ----------------------------------------------------
 * Block (token, head) over q heads then k heads; positions come from device
 * memory (*pos0 + t) so a captured graph replays for any position. cos/sin
 * come from the host table computed exactly as lib/forward.c rope_cache. */
__global__ void k_rope_store(float *qkv, int qkv_dim, const int *pos0, int n_head, int n_head_kv, int hd, int n_rot,
                             const float *__restrict__ cs, __half *kc, __half *vc) {
    const int t = blockIdx.x, h = blockIdx.y, half = n_rot / 2;
    const int q_dim = n_head * hd, kv_dim = n_head_kv * hd;
    const int p = *pos0 + t;
    const float *c = cs + (int64_t)p * n_rot;
    float *row = qkv + (int64_t)t * qkv_dim;
    float *v = h < n_head ? row + h * hd : row + q_dim + (h - n_head) * hd;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float co = c[2 * i], si = c[2 * i + 1];
        const float x0 = v[i], x1 = v[i + half];
        v[i] = x0 * co - x1 * si;
        v[i + half] = x0 * si + x1 * co;
    }
    if (h < n_head || !kc) return;
    __syncthreads();
    const int g = h - n_head;
    const float *vv = row + q_dim + kv_dim + g * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        kc[(int64_t)p * kv_dim + g * hd + d] = __float2half_rn(v[d]);
        vc[(int64_t)p * kv_dim + g * hd + d] = __float2half_rn(vv[d]);
    }
}

void cu_rope_store(cudaStream_t s, float *qkv, int n, const int *pos0, int n_head, int n_head_kv, int hd, int n_rot,
                   const float *cs, __half *kc, __half *vc) {
    dim3 grid((unsigned)n, (unsigned)(n_head + n_head_kv));
    k_rope_store<<<grid, 64, 0, s>>>(qkv, (n_head + 2 * n_head_kv) * hd, pos0, n_head, n_head_kv, hd, n_rot, cs, kc, vc);
}

/* ---- attention over the F16 cache ----------------------------------------------------
 * One block per (query head, token, split): q rounded to f16 as ggml does,
 * keys of the split's range in tiles of ATT_TILE; each warp scores keys
 * (lanes over head dims), then an online softmax (running max m, sum l)
 * rescales the per-thread output dims. Thread d owns output dims d and
 * d + 128 (head_dim <= 256). With nsplit > 1 (decode: few heads, long
 * cache) the key range is cut into nsplit parts whose (m, l, acc) go to
 * `part` and k_attn_combine merges them ("flash-decoding"); the ranges are
 * computed from the position in device memory, so a graph replays them. */
#define ATT_TILE 64
#define ATT_THREADS 128
__global__ void __launch_bounds__(ATT_THREADS) k_attention(const float *__restrict__ qkv, int qkv_stride, const int *pos0,
                                                           int n_head, int n_head_kv, int hd, float scale,
                                                           const __half *__restrict__ kc, const __half *__restrict__ vc,
                                                           float *out, int out_stride, float *part) {
    __shared__ float qs[256];
    __shared__ float sc[ATT_TILE];
    const int h = blockIdx.x, t = blockIdx.y, sp = blockIdx.z, nsplit = gridDim.z;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int kv_dim = n_head_kv * hd, kvo = (h / (n_head / n_head_kv)) * hd;
    const int n_kv = *pos0 + t + 1;
    const int chunk = (n_kv + nsplit - 1) / nsplit;
    const int p_beg = sp * chunk, p_end = p_beg + chunk < n_kv ? p_beg + chunk : n_kv;
    for (int d = threadIdx.x; d < hd; d += ATT_THREADS)
        qs[d] = __half2float(__float2half_rn(qkv[(int64_t)t * qkv_stride + h * hd + d]));
    float m = -INFINITY, l = 0.0f, acc0 = 0.0f, acc1 = 0.0f;
    const int d0 = threadIdx.x, d1 = threadIdx.x + ATT_THREADS;
    __syncthreads();
    for (int p0 = p_beg; p0 < p_end; p0 += ATT_TILE) {
        const int nt = p_end - p0 < ATT_TILE ? p_end - p0 : ATT_TILE;
        for (int j = wid; j < nt; j += ATT_THREADS / 32) {
            /* head rows start at even offsets (hd even): 4-byte half2 loads */
            const __half2 *kr = (const __half2 *)(kc + (int64_t)(p0 + j) * kv_dim + kvo);
            float dot = 0.0f;
            for (int d2 = lane; d2 < hd / 2; d2 += 32) {
                const float2 k2 = __half22float2(kr[d2]);
                dot = fmaf(qs[2 * d2], k2.x, dot);
                dot = fmaf(qs[2 * d2 + 1], k2.y, dot);
            }
            for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(FULL, dot, o);
            if (lane == 0) sc[j] = dot * scale;
        }
        __syncthreads();
        float tm = m;
        for (int j = 0; j < nt; j++) tm = fmaxf(tm, sc[j]);
        const float corr = ggml_expf_dev(m - tm); /* m = -inf on the first tile: exp -> 0 */
        __syncthreads();
        if (threadIdx.x < nt) sc[threadIdx.x] = ggml_expf_dev(sc[threadIdx.x] - tm);
        __syncthreads();
        float ls = 0.0f;
        acc0 *= corr;
        acc1 *= corr;
        for (int j = 0; j < nt; j++) {
            const float pj = sc[j];
            ls += pj;
            const __half *vr = vc + (int64_t)(p0 + j) * kv_dim + kvo;
            if (d0 < hd) acc0 = fmaf(pj, __half2float(vr[d0]), acc0);
            if (d1 < hd) acc1 = fmaf(pj, __half2float(vr[d1]), acc1);
        }
        l = l * corr + ls;
        m = tm;
        __syncthreads();
    }
    if (nsplit == 1) {
        float *o = out + (int64_t)t * out_stride + h * hd;
        if (d0 < hd) o[d0] = acc0 / l;
        if (d1 < hd) o[d1] = acc1 / l;
        return;
    }
    /* part layout per (t, h): nsplit x (m, l), then nsplit x hd acc */
    float *pp = part + ((int64_t)t * n_head + h) * nsplit * (2 + hd);
    if (threadIdx.x == 0) {
        pp[2 * sp] = m;
        pp[2 * sp + 1] = l;
    }
    float *pa = pp + 2 * nsplit + (int64_t)sp * hd;
    if (d0 < hd) pa[d0] = acc0;
    if (d1 < hd) pa[d1] = acc1;
}

/* Merge the splits of k_attention: M = max m_s, w_s = exp(m_s - M),
 * out = sum w_s acc_s / sum w_s l_s (empty splits have l = 0, m = -inf). */
__global__ void k_attn_combine(const float *__restrict__ part, int n_head, int hd, int nsplit, float *out, int out_stride) {
    const int h = blockIdx.x, t = blockIdx.y;
    const float *pp = part + ((int64_t)t * n_head + h) * nsplit * (2 + hd);
    float M = -INFINITY;
    for (int s = 0; s < nsplit; s++)
        if (pp[2 * s + 1] > 0.0f) M = fmaxf(M, pp[2 * s]);
    float L = 0.0f;
    for (int s = 0; s < nsplit; s++)
        if (pp[2 * s + 1] > 0.0f) L += ggml_expf_dev(pp[2 * s] - M) * pp[2 * s + 1];
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.0f;
        for (int s = 0; s < nsplit; s++)
            if (pp[2 * s + 1] > 0.0f) a += ggml_expf_dev(pp[2 * s] - M) * pp[2 * nsplit + s * hd + d];
        out[(int64_t)t * out_stride + h * hd + d] = a / L;
    }
}

int cu_attention_splits(int n, int n_ctx) {
    if (n > 1) return 1; /* prefill: n x n_head blocks are enough */
    int s = (n_ctx + 255) / 256;
    return s < 1 ? 1 : (s > BN_CU_ATT_MAX_SPLIT ? BN_CU_ATT_MAX_SPLIT : s);
}

void cu_attention(cudaStream_t s, const float *qkv, int qkv_stride, int n, const int *pos0, int n_head, int n_head_kv,
                  int hd, const __half *kc, const __half *vc, float *out, int out_stride, int nsplit, float *part) {
    const float scale = 1.0f / sqrtf((float)hd);
    dim3 grid((unsigned)n_head, (unsigned)n, (unsigned)nsplit);
    k_attention<<<grid, ATT_THREADS, 0, s>>>(qkv, qkv_stride, pos0, n_head, n_head_kv, hd, scale, kc, vc, out, out_stride,
                                             part);
    if (nsplit > 1) k_attn_combine<<<dim3((unsigned)n_head, (unsigned)n), 128, 0, s>>>(part, n_head, hd, nsplit, out, out_stride);
}

/* ---- top-k ------------------------------------------------------------------------------
 * Each block takes a chunk of TK_CHUNK values into shared memory; every
 * thread keeps the best of its own TK_EPT values, and k rounds pick the
 * block's best (higher value, then lower id), which its owner replaces.
 * Chunks yield k candidates each; stages repeat until one block is left. */
#define TK_THREADS 256
#define TK_EPT 8
#define TK_CHUNK (TK_THREADS * TK_EPT)

__device__ __forceinline__ bool tk_better(float av, int ai, float bv, int bi) {
    return av > bv || (av == bv && ai < bi);
}

__global__ void __launch_bounds__(TK_THREADS) k_topk_stage(const float *__restrict__ v, const int32_t *__restrict__ ids,
                                                           int n, int k, float *ov, int32_t *oi) {
    __shared__ float sv[TK_CHUNK];
    __shared__ int si[TK_CHUNK];
    __shared__ float wv[TK_THREADS / 32];
    __shared__ int wi[TK_THREADS / 32], wslot[TK_THREADS / 32];
    __shared__ int win_slot;
    const int base = blockIdx.x * TK_CHUNK, lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    for (int j = 0; j < TK_EPT; j++) {
        const int slot = threadIdx.x + j * TK_THREADS, g = base + slot;
        sv[slot] = g < n ? v[g] : -INFINITY;
        si[slot] = g < n ? (ids ? ids[g] : g) : INT_MAX;
    }
    /* thread's own best slot (its slots are threadIdx.x + j*TK_THREADS) */
    int best = threadIdx.x;
    for (int j = 1; j < TK_EPT; j++) {
        const int slot = threadIdx.x + j * TK_THREADS;
        if (tk_better(sv[slot], si[slot], sv[best], si[best])) best = slot;
    }
    for (int r = 0; r < k; r++) {
        float bv = sv[best];
        int bi = si[best], bs = best;
        for (int o = 16; o > 0; o >>= 1) {
            const float ov2 = __shfl_xor_sync(FULL, bv, o);
            const int oi2 = __shfl_xor_sync(FULL, bi, o), os = __shfl_xor_sync(FULL, bs, o);
            if (tk_better(ov2, oi2, bv, bi)) { bv = ov2; bi = oi2; bs = os; }
        }
        if (lane == 0) { wv[wid] = bv; wi[wid] = bi; wslot[wid] = bs; }
        __syncthreads();
        if (threadIdx.x == 0) {
            int w = 0;
            for (int i = 1; i < TK_THREADS / 32; i++)
                if (tk_better(wv[i], wi[i], wv[w], wi[w])) w = i;
            ov[(int64_t)blockIdx.x * k + r] = wv[w];
            oi[(int64_t)blockIdx.x * k + r] = wi[w];
            win_slot = wslot[w];
        }
        __syncthreads();
        if ((win_slot % TK_THREADS) == (int)threadIdx.x) { /* the owner drops it and rescans */
            sv[win_slot] = -INFINITY;
            si[win_slot] = INT_MAX;
            best = threadIdx.x;
            for (int j = 1; j < TK_EPT; j++) {
                const int slot = threadIdx.x + j * TK_THREADS;
                if (tk_better(sv[slot], si[slot], sv[best], si[best])) best = slot;
            }
        }
        __syncthreads();
    }
}

size_t cu_topk_tmp_elems(int n, int k) {
    return 2 * (size_t)((n + TK_CHUNK - 1) / TK_CHUNK) * (size_t)k;
}

void cu_topk(cudaStream_t s, const float *v, int n, int k, float *tmpv, int32_t *tmpi, float *outv, int32_t *outi) {
    const size_t half = cu_topk_tmp_elems(n, k) / 2;
    const float *cv = v;
    const int32_t *ci = NULL;
    int cnt = n, flip = 0;
    for (;;) {
        const int nb = (cnt + TK_CHUNK - 1) / TK_CHUNK;
        float *dv = nb == 1 ? outv : tmpv + (flip ? half : 0);
        int32_t *di = nb == 1 ? outi : tmpi + (flip ? half : 0);
        k_topk_stage<<<nb, TK_THREADS, 0, s>>>(cv, ci, cnt, k, dv, di);
        if (nb == 1) break;
        cv = dv;
        ci = di;
        cnt = nb * k;
        flip ^= 1;
    }
}
