/* bw.cu - device memory bandwidth of a plain copy kernel, the yardstick for
 * "fraction of peak bandwidth" of the decode step (docs/CUDA.md): decode
 * reads every weight once per token, so tokens/s <= bandwidth / bytes. */
#include "cuda/kernels.cuh"

/* 16-byte loads and stores, grid-stride. */
__global__ void k_copy16(const uint4 *__restrict__ src, uint4 *__restrict__ dst, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

extern "C" int bn_cu_copy_bandwidth(int dev, size_t bytes, int iters, double *gbps, char *err, size_t errn) {
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    const size_t n = bytes / 16;
    float best = 0.0f;
    int sms = 0;
    *gbps = 0.0;
    if (n == 0 || iters < 1) { snprintf(err, errn, "bandwidth: bytes %zu / iters %d too small", bytes, iters); return -1; }
    CU_TRY(cudaSetDevice(dev), "cudaSetDevice");
    CU_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    CU_TRY(cudaMalloc(&a, n * 16), "cudaMalloc");
    CU_TRY(cudaMalloc(&b, n * 16), "cudaMalloc");
    CU_TRY(cudaMemset(a, 1, n * 16), "cudaMemset");
    CU_TRY(cudaEventCreate(&e0), "cudaEventCreate");
    CU_TRY(cudaEventCreate(&e1), "cudaEventCreate");
    for (int it = 0; it <= iters; it++) { /* run 0 warms up */
        CU_TRY(cudaEventRecord(e0), "cudaEventRecord");
        k_copy16<<<sms * 8, 512>>>((const uint4 *)a, (uint4 *)b, n);
        CU_TRY(cudaEventRecord(e1), "cudaEventRecord");
        CU_TRY(cudaEventSynchronize(e1), "copy kernel");
        float ms = 0.0f;
        CU_TRY(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
        if (it > 0 && (best == 0.0f || ms < best)) best = ms;
    }
    *gbps = 2.0 * (double)(n * 16) / (best * 1e-3) / 1e9;
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return 0;
fail:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return -1;
}

extern "C" int bn_cu_device_count(char *why, size_t n) {
    int c = 0;
    const cudaError_t e = cudaGetDeviceCount(&c);
    if (e != cudaSuccess) {
        snprintf(why, n, "no usable CUDA device: %s", cudaGetErrorString(e));
        return 0;
    }
    if (c == 0) snprintf(why, n, "no CUDA device found");
    return c;
}

extern "C" int bn_cu_device_name(int dev, char *buf, size_t n) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
        snprintf(buf, n, "device %d: unavailable", dev);
        return -1;
    }
    snprintf(buf, n, "%s, sm_%d%d, %.1f GiB", p.name, p.major, p.minor, (double)p.totalGlobalMem / (1024.0 * 1024 * 1024));
    return 0;
}
