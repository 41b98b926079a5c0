/* cpu.c - feature detection and path selection. */
#include "cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif
static unsigned long long xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

/* Physical cores: count distinct (physical id, core id) pairs in /proc/cpuinfo;
 * fall back to the logical count. */
static int count_physical_cores(int logical) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return logical;
    char line[256];
    int phys = -1, core = -1, n = 0;
    int seen[1024][2];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "physical id", 11)) phys = atoi(strchr(line, ':') + 1);
        else if (!strncmp(line, "core id", 7)) core = atoi(strchr(line, ':') + 1);
        else if (line[0] == '\n') {
            if (phys >= 0 && core >= 0) {
                int dup = 0;
                for (int i = 0; i < n; i++)
                    if (seen[i][0] == phys && seen[i][1] == core) dup = 1;
                if (!dup && n < 1024) { seen[n][0] = phys; seen[n][1] = core; n++; }
            }
            phys = core = -1;
        }
    }
    fclose(f);
    if (n <= 0 || n > logical) return logical;
    return n;
}

void bn_cpu_detect(bn_cpu_info *ci) {
    memset(ci, 0, sizeof *ci);
    long nl = sysconf(_SC_NPROCESSORS_ONLN);
    ci->n_logical = nl > 0 ? (int)nl : 1;
    ci->n_cores = count_physical_cores(ci->n_logical);
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    bool osxsave = c & (1u << 27);
    ci->fma = c & (1u << 12);
    ci->f16c = c & (1u << 29);
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    bool ymm = (xcr0 & 0x6) == 0x6;
    bool zmm = (xcr0 & 0xe6) == 0xe6;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        ci->avx2 = ymm && (b & (1u << 5));
        ci->avx512f = zmm && (b & (1u << 16));
        ci->avx512bw = zmm && (b & (1u << 30));
        ci->avx512vl = zmm && (b & (1u << 31));
        ci->avx512vnni = zmm && (c & (1u << 11));
        /* AMX-TILE (edx 24), AMX-INT8 (edx 25); XCR0 17-18: XTILECFG, XTILEDATA */
        ci->amx_int8 = ci->avx512vnni && (d & (1u << 24)) && (d & (1u << 25)) && (xcr0 & 0x60000) == 0x60000;
    }
    if (!ymm) ci->fma = ci->f16c = false;
#elif defined(__aarch64__)
    ci->neon = true;
#if defined(__linux__)
    ci->dotprod = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#endif
#endif
}

/* Linux keeps the 8 KB of AMX tile data out of a process's signal frames
 * and context switches until it asks; asking again is harmless. */
bool bn_cpu_amx_enable(const bn_cpu_info *ci) {
    const char *env = getenv("BN_AMX");
    if (!ci->amx_int8 || (env && !strcmp(env, "0"))) return false;
#if defined(__x86_64__) && defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

bool bn_isa_compiled(bn_isa isa) {
    switch (isa) {
    case BN_ISA_SCALAR: return true;
#if defined(__x86_64__)
    case BN_ISA_AVX2: return true;
    case BN_ISA_AVX512: return true;
#endif
#if defined(__aarch64__)
    case BN_ISA_NEON: return true;
#endif
    default: return false;
    }
}

bool bn_isa_supported(const bn_cpu_info *ci, bn_isa isa) {
    switch (isa) {
    case BN_ISA_SCALAR: return true;
    case BN_ISA_AVX2: return ci->avx2 && ci->fma && ci->f16c;
    case BN_ISA_AVX512: return ci->avx512f && ci->avx512bw && ci->avx512vl && ci->avx2 && ci->fma && ci->f16c;
    case BN_ISA_NEON: return ci->neon;
    default: return false;
    }
}

const char *bn_isa_name(bn_isa isa) {
    static const char *names[] = { "scalar", "avx2", "avx512", "neon" };
    return (unsigned)isa < BN_ISA_COUNT ? names[isa] : "?";
}

int bn_isa_select(bn_isa *out, bn_err *e) {
    bn_cpu_info ci;
    bn_cpu_detect(&ci);
    const char *force = getenv("BN_CPU");
    if (force && *force) {
        for (int i = 0; i < BN_ISA_COUNT; i++) {
            if (strcmp(force, bn_isa_name((bn_isa)i)) != 0) continue;
            if (!bn_isa_compiled((bn_isa)i))
                return bn_errf(e, "BN_CPU=%s: this path is not compiled into this binary", force);
            if (!bn_isa_supported(&ci, (bn_isa)i))
                return bn_errf(e, "BN_CPU=%s: this CPU does not support it", force);
            *out = (bn_isa)i;
            return 0;
        }
        return bn_errf(e, "BN_CPU=%s: unknown path (expected scalar, avx2, avx512 or neon)", force);
    }
    bn_isa best = BN_ISA_SCALAR;
    for (int i = BN_ISA_COUNT - 1; i > 0; i--)
        if (bn_isa_compiled((bn_isa)i) && bn_isa_supported(&ci, (bn_isa)i)) { best = (bn_isa)i; break; }
    *out = best;
    return 0;
}

const char *bn_isa_compiled_list(void) {
#if defined(__x86_64__)
    return "scalar avx2 avx512";
#elif defined(__aarch64__)
    return "scalar neon";
#else
    return "scalar";
#endif
}
