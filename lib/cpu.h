/* cpu.h - CPU feature detection and choice of kernel path.
 *
 * SIMD sources are compiled with their own -m flags (lib/X_avx2.c,
 * lib/X_avx512.c, lib/X_neon.c) and chosen here at run time, so one binary
 * runs on any x86-64. BN_CPU=scalar|avx2|avx512|neon forces a path (tests use
 * it); forcing a path the CPU lacks is an error, not a silent fallback. */
#ifndef BN_CPU_H
#define BN_CPU_H

#include <stdbool.h>
#include "util.h"

typedef enum bn_isa {
    BN_ISA_SCALAR = 0,
    BN_ISA_AVX2,
    BN_ISA_AVX512, /* AVX-512 F/BW/VL (+VNNI when has_vnni) */
    BN_ISA_NEON,   /* aarch64 NEON (+dotprod when has_dotprod) */
    BN_ISA_COUNT
} bn_isa;

typedef struct bn_cpu_info {
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512vnni;
    bool amx_int8; /* AMX-TILE + AMX-INT8 in the CPU and tile state enabled by the OS */
    bool neon, dotprod;
    int n_cores;   /* physical cores (best effort), >= 1 */
    int n_logical; /* online logical CPUs, >= 1 */
} bn_cpu_info;

/* Read the features of this CPU (cpuid / getauxval). Pure function of the machine. */
void bn_cpu_detect(bn_cpu_info *ci);

/* Ask the kernel for permission to use AMX tile data in this process (Linux
 * 5.16+: arch_prctl ARCH_REQ_XCOMP_PERM); idempotent. False when the CPU or
 * OS lacks AMX, when refused, or when BN_AMX=0 turns it off. */
bool bn_cpu_amx_enable(const bn_cpu_info *ci);

/* Is this ISA's code compiled into the binary (x86 builds carry AVX2 and AVX-512,
 * aarch64 builds carry NEON)? */
bool bn_isa_compiled(bn_isa isa);

/* Can this CPU run it? */
bool bn_isa_supported(const bn_cpu_info *ci, bn_isa isa);

const char *bn_isa_name(bn_isa isa);

/* The ISA to use: BN_CPU from the environment when set (error if unknown or
 * unsupported), otherwise the best supported one. */
int bn_isa_select(bn_isa *out, bn_err *e);

/* "scalar avx2 avx512" style list of compiled-in paths, for --version. */
const char *bn_isa_compiled_list(void);

#endif
