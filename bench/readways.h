/* readways.h - the ways bench/bwprobe and bench/gemvprobe read a buffer to
 * find the machine's streaming-read ceiling.
 *
 * The roofline is only as good as the read it divides by. One way of reading
 * is not the best on every CPU: on the Sapphire Rapids-class Xeon VM a read
 * prefetched into L1 2 KB ahead streamed 18.1 / 36.4 GB/s (1 / 2 threads,
 * 2 MB pages) where the same loads prefetched 4 KB ahead gave 15.5 / 31.0
 * and plain loads 15.1 / 29.3; on the EPYC VMs the 4 KB prefetch beat the
 * plain read. So each pass reads every way and the probes keep the best. */
#ifndef BN_BENCH_READWAYS_H
#define BN_BENCH_READWAYS_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

enum { READ_WAYS = 6 };
/* plain loads; prefetched into L1 4 KB and 2 KB ahead; into L2 8 KB ahead;
 * four streams, plain and prefetched into L1 2 KB ahead of each */
static const char *const read_way_name[READ_WAYS] = { "plain", "l1-4k", "l1-2k", "l2-8k", "4str", "4str-l1-2k" };

/* XOR of the n bytes at p (n a multiple of 128), read the given way; the
 * result is kept by the caller so the loads are not elided. */
static inline uint64_t read_way(const uint8_t *p, size_t n, int way) {
#if defined(__AVX2__)
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    if (way >= 4) { /* four parts of n/4 (whole 128-byte units) side by side, then the rest */
        const size_t part = n / 512 * 128;
        for (size_t i = 0; i < part; i += 128)
            for (int s = 0; s < 4; s++) {
                const uint8_t *q = p + (size_t)s * part + i;
                if (way == 5) {
                    _mm_prefetch((const char *)q + 2048, _MM_HINT_T0);
                    _mm_prefetch((const char *)q + 2048 + 64, _MM_HINT_T0);
                }
                a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)q));
                a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(q + 32)));
                a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(q + 64)));
                a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(q + 96)));
            }
        p += 4 * part;
        n -= 4 * part;
    }
    const size_t dist = way == 1 ? 4096 : way == 2 ? 2048 : 8192;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        const char *f = (const char *)p + i + dist;
        if (way == 1 || way == 2) {
            _mm_prefetch(f, _MM_HINT_T0);
            _mm_prefetch(f + 64, _MM_HINT_T0);
        } else if (way == 3) {
            _mm_prefetch(f, _MM_HINT_T1);
            _mm_prefetch(f + 64, _MM_HINT_T1);
        }
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    uint64_t o[4];
    _mm256_storeu_si256((__m256i *)o, a0);
    return o[0] ^ o[1] ^ o[2] ^ o[3];
#else
    (void)way;
    uint64_t s = 0, v;
    for (size_t i = 0; i + 8 <= n; i += 8) memcpy(&v, p + i, 8), s ^= v;
    return s;
#endif
}
#endif
