/* util.c - errors, allocation, clock, f16 conversion, sha256. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int bn_errf(bn_err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void bn_err_prefix(bn_err *e, const char *prefix) {
    if (!e || !prefix) return;
    char tmp[BN_ERR_MAX];
    size_t pl = strlen(prefix);
    if (pl > BN_ERR_MAX - 3) pl = BN_ERR_MAX - 3;
    memcpy(tmp, prefix, pl);
    tmp[pl] = ':';
    tmp[pl + 1] = ' ';
    size_t ml = strnlen(e->msg, BN_ERR_MAX);
    if (ml > BN_ERR_MAX - 1 - (pl + 2)) ml = BN_ERR_MAX - 1 - (pl + 2);
    memcpy(tmp + pl + 2, e->msg, ml);
    tmp[pl + 2 + ml] = 0;
    memcpy(e->msg, tmp, sizeof tmp);
}

void *bn_malloc(size_t n, bn_err *e) {
    void *p = malloc(n ? n : 1);
    if (!p) bn_errf(e, "out of memory allocating %zu bytes", n);
    return p;
}

void *bn_calloc(size_t n, size_t size, bn_err *e) {
    size_t total;
    if (!bn_mul_size(n, size, &total)) {
        bn_errf(e, "allocation size overflow (%zu x %zu)", n, size);
        return NULL;
    }
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) bn_errf(e, "out of memory allocating %zu bytes", total);
    return p;
}

/* Streams over 4 KB pages stall at every page boundary (the hardware
 * prefetchers stop there); one token's attention over a long context read
 * its keys at half the rate of a huge-page stream. The mapping is trimmed to
 * exactly [p, p + n rounded to pages) so bn_free_big needs only n. */
#if defined(__linux__) && defined(MADV_HUGEPAGE)
#define BN_BIG_ALIGN ((size_t)2 << 20)
static size_t big_len(size_t n) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) & ~(page - 1);
}
void *bn_alloc_big(size_t n, bn_err *e) {
    size_t len = big_len(n ? n : 1), span;
    if (len < n || !bn_add_size(len, BN_BIG_ALIGN, &span)) {
        bn_errf(e, "allocation size overflow (%zu bytes)", n);
        return NULL;
    }
    uint8_t *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        bn_errf(e, "out of memory allocating %zu bytes", n);
        return NULL;
    }
    uint8_t *p = (uint8_t *)(((uintptr_t)m + BN_BIG_ALIGN - 1) & ~(uintptr_t)(BN_BIG_ALIGN - 1));
    if (p > m) munmap(m, (size_t)(p - m));
    if (m + span > p + len) munmap(p + len, (size_t)(m + span - (p + len)));
    madvise(p, len, MADV_HUGEPAGE);
    return p;
}
void bn_free_big(void *p, size_t n) {
    if (p) munmap(p, big_len(n ? n : 1));
}
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* On the 2-vCPU VMs a fresh page costs the host a fault as well: a 512-token
 * prompt at -c 4096 touched all of its 315 MB cache (V is stored by column)
 * and spent up to 22% of its time in clear_page; populated in one call here
 * the pages cost no more in total (docs/PERFORMANCE.md, eighth session). */
void bn_populate_big(void *p, size_t n) {
    if (!p || !n) return;
    const size_t len = big_len(n);
    if (madvise(p, len, MADV_POPULATE_WRITE) == 0) return;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (size_t o = 0; o < len; o += page) ((volatile uint8_t *)p)[o] = 0;
}
#else
void *bn_alloc_big(size_t n, bn_err *e) { return bn_calloc(n ? n : 1, 1, e); }
void bn_free_big(void *p, size_t n) {
    (void)n;
    free(p);
}
void bn_populate_big(void *p, size_t n) { /* calloc's memory: touched page by page */
    for (size_t o = 0; p && o < n; o += 4096) ((volatile uint8_t *)p)[o] = 0;
}
#endif

uint64_t bn_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool bn_strict_env(void) {
    const char *s = getenv("BITNET_STRICT_MODE");
    return s && *s && strcmp(s, "0") != 0;
}

float bn_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    union { uint32_t u; float f; } v = { bits };
    return v.f;
}

uint16_t bn_f32_to_f16(float f) {
    union { float f; uint32_t u; } v = { f };
    uint32_t x = v.u;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t exp = (x >> 23) & 0xff;
    uint32_t man = x & 0x7fffff;
    if (exp == 0xff) /* inf or nan (keep a quiet nan) */
        return sign | 0x7c00 | (man ? 0x200 | (uint16_t)(man >> 13) : 0);
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return sign | 0x7c00;
    if (e <= 0) {
        if (e < -10) return sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = 1u << (shift - 1);
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t r = man >> shift;
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++; /* may carry into exp: correct */
    return sign | (uint16_t)r;
}

int bn_write_all(int fd, const void *buf, size_t n, bn_err *e) {
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return bn_errf(e, "write: %s", strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int bn_read_file(const char *path, uint8_t **data, size_t *len, size_t max_len, bn_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_errf(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return bn_errf(e, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_len) {
        close(fd);
        return bn_errf(e, "%s: file too large (%lld bytes, limit %zu)", path, (long long)st.st_size, max_len);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = bn_malloc(n + 1, e);
    if (!buf) { close(fd); return -1; }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            close(fd);
            return bn_errf(e, "%s: read failed", path);
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

/* ---- SHA-256 ------------------------------------------------------------ */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(bn_sha256 *s, const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + sha_k[i] + w[i];
        uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
        uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + mj;
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
    s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

void bn_sha256_init(bn_sha256 *s) {
    static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    memcpy(s->h, iv, sizeof iv);
    s->len = 0;
    s->nbuf = 0;
}

void bn_sha256_update(bn_sha256 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->len += n;
    if (s->nbuf) {
        size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take; p += take; n -= take;
        if (s->nbuf == 64) { sha_block(s, s->buf); s->nbuf = 0; }
    }
    while (n >= 64) { sha_block(s, p); p += 64; n -= 64; }
    if (n) { memcpy(s->buf, p, n); s->nbuf = n; }
}

void bn_sha256_final(bn_sha256 *s, uint8_t out[32]) {
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80;
    bn_sha256_update(s, &pad, 1);
    uint8_t zero = 0;
    while (s->nbuf != 56) bn_sha256_update(s, &zero, 1);
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    bn_sha256_update(s, lenb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24); out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8); out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void bn_sha256_hex(const uint8_t d[32], char out[65]) {
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) { out[2 * i] = hx[d[i] >> 4]; out[2 * i + 1] = hx[d[i] & 15]; }
    out[64] = 0;
}
