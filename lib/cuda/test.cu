/* test.cu - single kernels on host data, for tests/unit/test_gpu.c: each
 * entry uploads its inputs, runs one launcher of kernels.cu on the default
 * stream, and copies the result back, so the test can compare it with the
 * CPU reference of the same operation. */
#include <stdlib.h>
#include <string.h>

#include "cuda/kernels.cuh"

/* Upload n bytes to a fresh device buffer (NULL src: zeroed). */
static int dup_dev(void **d, const void *src, size_t n, char *err, size_t errn) {
    *d = NULL;
    CU_TRY(cudaMalloc(d, n ? n : 1), "cudaMalloc");
    if (src)
        CU_TRY(cudaMemcpy(*d, src, n, cudaMemcpyHostToDevice), "cudaMemcpy");
    else
        CU_TRY(cudaMemset(*d, 0, n ? n : 1), "cudaMemset");
    return 0;
fail:
    return -1;
}

/* Wait for the kernels and copy back; reports launch and run errors. */
static int finish(void *dst, const void *src, size_t n, char *err, size_t errn) {
    CU_TRY(cudaGetLastError(), "kernel launch");
    CU_TRY(cudaDeviceSynchronize(), "kernel");
    if (dst) CU_TRY(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost), "cudaMemcpy back");
    return 0;
fail:
    return -1;
}

/* m's rows as ns (1..3) weights of one launch, as q|k|v are: parts[i] and
 * its output rows y + r0 in py[i]. */
static void split_rows(const cu_mat *m, int ns, float *y, cu_mat *parts, const cu_mat **pw, float **py) {
    int64_t r0 = 0;
    for (int i = 0; i < ns; i++) {
        const int64_t r1 = m->M * (i + 1) / ns;
        parts[i] = *m;
        parts[i].d = m->d + r0 * m->row_bytes;
        parts[i].M = r1 - r0;
        pw[i] = &parts[i];
        py[i] = y + r0;
        r0 = r1;
    }
}

extern "C" int bn_cu_test_norm_quant(int mode, const float *x, const float *w, float eps, int n, int K, float *xn,
                                     int8_t *q, float *scale, int32_t *sum, char *err, size_t errn) {
    void *dx = NULL, *dw = NULL, *dxn = NULL, *dq = NULL, *ds = NULL, *dsum = NULL;
    int rc = -1;
    const int64_t ldx = mode == BN_CU_NORM_RELU2 || mode == BN_CU_NORM_SILU ? 2 * (int64_t)K : K;
    if (dup_dev(&dx, x, (size_t)n * ldx * 4, err, errn) < 0 || dup_dev(&dw, w, (size_t)K * 4, err, errn) < 0 ||
        dup_dev(&dxn, NULL, (size_t)n * K * 4, err, errn) < 0 || dup_dev(&dq, NULL, (size_t)n * K, err, errn) < 0 ||
        dup_dev(&ds, NULL, (size_t)n * 4, err, errn) < 0 || dup_dev(&dsum, NULL, (size_t)n * 4, err, errn) < 0)
        goto out;
    cu_norm_quant(0, mode, (const float *)dx, ldx, (const float *)dw, eps, n, K, (float *)dxn, q ? (int8_t *)dq : NULL,
                  (float *)ds, (int32_t *)dsum);
    if (finish(xn, dxn, (size_t)n * K * 4, err, errn) < 0) goto out;
    if (q && (finish(q, dq, (size_t)n * K, err, errn) < 0 || finish(scale, ds, (size_t)n * 4, err, errn) < 0 ||
              finish(sum, dsum, (size_t)n * 4, err, errn) < 0))
        goto out;
    rc = 0;
out:
    cudaFree(dx); cudaFree(dw); cudaFree(dxn); cudaFree(dq); cudaFree(ds); cudaFree(dsum);
    return rc;
}

extern "C" int bn_cu_test_quant(int kind, const float *x, int n, int K, void *out, size_t row_bytes, char *err, size_t errn) {
    void *dx = NULL, *dout = NULL;
    int rc = -1;
    if (dup_dev(&dx, x, (size_t)n * K * 4, err, errn) < 0 || dup_dev(&dout, NULL, (size_t)n * row_bytes, err, errn) < 0) goto out;
    switch (kind) {
    case BN_CU_ACT_Q8K: cu_quant_q8k(0, (const float *)dx, n, K, (uint8_t *)dout); break;
    case BN_CU_ACT_Q8_0: cu_quant_q8_0(0, (const float *)dx, n, K, (uint8_t *)dout); break;
    case BN_CU_ACT_F16: cu_quant_f16(0, (const float *)dx, n, K, (__half *)dout); break;
    default: snprintf(err, errn, "quant: kind %d has no separate kernel", kind); goto out;
    }
    if (finish(out, dout, (size_t)n * row_bytes, err, errn) < 0) goto out;
    rc = 0;
out:
    cudaFree(dx); cudaFree(dout);
    return rc;
}

extern "C" int bn_cu_test_matmul(const bn_cu_mat *W, const void *act, const float *act_scale, const int32_t *act_sum, int n,
                                 int nseg, float *Y, char *err, size_t errn) {
    void *dw = NULL, *da = NULL, *ds = NULL, *dsum = NULL, *dy = NULL;
    int rc = -1;
    const int kind = cu_act_kind_of(W->wtype);
    size_t abytes;
    switch (kind) {
    case BN_CU_ACT_I8S: abytes = (size_t)n * W->K; break;
    case BN_CU_ACT_Q8K: abytes = (size_t)n * (W->K / 256) * BN_CU_Q8K_BYTES; break;
    case BN_CU_ACT_Q8_0: abytes = (size_t)n * (W->K / 32) * BN_CU_Q8_0_BYTES; break;
    case BN_CU_ACT_F16: abytes = (size_t)n * W->K * 2; break;
    default: abytes = (size_t)n * W->K * 4; break;
    }
    cu_mat m;
    cu_act a;
    memset(&a, 0, sizeof a);
    if (dup_dev(&dw, W->data, (size_t)W->M * W->row_bytes, err, errn) < 0 || dup_dev(&da, act, abytes, err, errn) < 0 ||
        dup_dev(&ds, act_scale, (size_t)n * 4, err, errn) < 0 || dup_dev(&dsum, act_sum, (size_t)n * 4, err, errn) < 0 ||
        dup_dev(&dy, NULL, (size_t)n * W->M * 4, err, errn) < 0)
        goto out;
    m.wtype = W->wtype; m.K = W->K; m.M = W->M; m.d = (const uint8_t *)dw; m.row_bytes = W->row_bytes; m.scale = W->scale;
    a.K = W->K;
    a.q = (int8_t *)da;
    a.qscale = (float *)ds;
    a.qsum = (int32_t *)dsum;
    a.q8k = (uint8_t *)da;
    a.q8_0 = (uint8_t *)da;
    a.f16 = (__half *)da;
    a.f32 = (const float *)da;
    if (nseg <= 1 || W->M < 3) {
        cu_matmul(0, &m, &a, n, (float *)dy, W->M, 1.0f, NULL);
    } else { /* the same rows as three weights in one launch (as q|k|v) */
        cu_mat parts[3];
        const cu_mat *pw[3];
        float *py[3];
        const float ones[3] = {1.0f, 1.0f, 1.0f};
        split_rows(&m, 3, (float *)dy, parts, pw, py);
        cu_matmul_multi(0, 3, pw, &a, n, py, W->M, ones, NULL);
    }
    if (finish(Y, dy, (size_t)n * W->M * 4, err, errn) < 0) goto out;
    rc = 0;
out:
    cudaFree(dw); cudaFree(da); cudaFree(ds); cudaFree(dsum); cudaFree(dy);
    return rc;
}

extern "C" int bn_cu_test_fused_i2s(int mode, const float *x, const float *w, float eps, const bn_cu_mat *W, int nseg,
                                    float *Y, char *err, size_t errn) {
    void *dx = NULL, *dw = NULL, *dm = NULL, *dy = NULL;
    int rc = -1;
    const int64_t K = W->K, ldx = mode == BN_CU_NORM_RELU2 || mode == BN_CU_NORM_SILU ? 2 * K : K;
    if (!cu_fused_i2s_ok(K)) { snprintf(err, errn, "fused: K %lld does not fit the kernel", (long long)K); return -1; }
    if (dup_dev(&dx, x, (size_t)ldx * 4, err, errn) < 0 || dup_dev(&dw, w, (size_t)K * 4, err, errn) < 0 ||
        dup_dev(&dm, W->data, (size_t)W->M * W->row_bytes, err, errn) < 0 || dup_dev(&dy, NULL, (size_t)W->M * 4, err, errn) < 0)
        goto out;
    {
        const cu_mat m = {W->wtype, K, W->M, (const uint8_t *)dm, W->row_bytes, W->scale};
        cu_mat parts[3];
        const cu_mat *pw[3];
        float *py[3];
        const float ones[3] = {1.0f, 1.0f, 1.0f};
        const int ns = nseg >= 2 && nseg <= 3 && W->M >= nseg ? nseg : 1;
        split_rows(&m, ns, (float *)dy, parts, pw, py);
        cu_matmul_i2s_fused(0, mode, (const float *)dx, (const float *)dw, eps, ns, pw, py, ones, NULL);
    }
    if (finish(Y, dy, (size_t)W->M * 4, err, errn) < 0) goto out;
    rc = 0;
out:
    cudaFree(dx); cudaFree(dw); cudaFree(dm); cudaFree(dy);
    return rc;
}

extern "C" int bn_cu_test_rope(float *qkv, int n, int pos, int n_head, int n_head_kv, int hd, int n_rot, const float *cs,
                               int n_ctx, char *err, size_t errn) {
    void *dq = NULL, *dcs = NULL, *dpos = NULL;
    int rc = -1;
    const size_t nq = (size_t)n * (n_head + 2 * n_head_kv) * hd;
    if (dup_dev(&dq, qkv, nq * 4, err, errn) < 0 || dup_dev(&dcs, cs, (size_t)n_ctx * n_rot * 4, err, errn) < 0 ||
        dup_dev(&dpos, &pos, 4, err, errn) < 0)
        goto out;
    cu_rope_store(0, (float *)dq, n, (const int *)dpos, n_head, n_head_kv, hd, n_rot, (const float *)dcs, NULL, NULL);
    if (finish(qkv, dq, nq * 4, err, errn) < 0) goto out;
    rc = 0;
out:
    cudaFree(dq); cudaFree(dcs); cudaFree(dpos);
    return rc;
}

extern "C" int bn_cu_test_attention(const float *q, const uint16_t *kc, const uint16_t *vc, int n, int pos, int n_head,
                                    int n_head_kv, int hd, int nsplit, float *out, char *err, size_t errn) {
    void *dq = NULL, *dk = NULL, *dv = NULL, *dpos = NULL, *dout = NULL, *dpart = NULL;
    int rc = -1;
    const size_t qd = (size_t)n_head * hd, kvd = (size_t)n_head_kv * hd, nkv = (size_t)pos + n;
    if (dup_dev(&dq, q, (size_t)n * qd * 4, err, errn) < 0 || dup_dev(&dk, kc, nkv * kvd * 2, err, errn) < 0 ||
        dup_dev(&dv, vc, nkv * kvd * 2, err, errn) < 0 || dup_dev(&dpos, &pos, 4, err, errn) < 0 ||
        dup_dev(&dout, NULL, (size_t)n * qd * 4, err, errn) < 0 ||
        dup_dev(&dpart, NULL, (size_t)n * n_head * nsplit * (2 + hd) * 4, err, errn) < 0)
        goto out;
    cu_attention(0, (const float *)dq, (int)qd, n, (const int *)dpos, n_head, n_head_kv, hd, (const __half *)dk,
                 (const __half *)dv, (float *)dout, (int)qd, nsplit, (float *)dpart);
    if (finish(out, dout, (size_t)n * qd * 4, err, errn) < 0) goto out;
    rc = 0;
out:
    cudaFree(dq); cudaFree(dk); cudaFree(dv); cudaFree(dpos); cudaFree(dout); cudaFree(dpart);
    return rc;
}

extern "C" int bn_cu_test_topk(const float *v, int n, int k, float *topv, int32_t *topi, char *err, size_t errn) {
    void *dv = NULL, *tv = NULL, *ti = NULL, *ov = NULL, *oi = NULL;
    int rc = -1;
    if (k < 1 || k > BN_CU_TOPK_MAX || k > n) { snprintf(err, errn, "top-k: k %d not in 1..min(%d, n)", k, BN_CU_TOPK_MAX); return -1; }
    const size_t tn = cu_topk_tmp_elems(n, k);
    if (dup_dev(&dv, v, (size_t)n * 4, err, errn) < 0 || dup_dev(&tv, NULL, tn * 4, err, errn) < 0 ||
        dup_dev(&ti, NULL, tn * 4, err, errn) < 0 || dup_dev(&ov, NULL, (size_t)k * 4, err, errn) < 0 ||
        dup_dev(&oi, NULL, (size_t)k * 4, err, errn) < 0)
        goto out;
    cu_topk(0, (const float *)dv, n, k, (float *)tv, (int32_t *)ti, (float *)ov, (int32_t *)oi);
    if (finish(topv, ov, (size_t)k * 4, err, errn) < 0 || finish(topi, oi, (size_t)k * 4, err, errn) < 0) goto out;
    rc = 0;
out:
    cudaFree(dv); cudaFree(tv); cudaFree(ti); cudaFree(ov); cudaFree(oi);
    return rc;
}
