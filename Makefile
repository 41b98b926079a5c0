# bn - BitNet b1.58 inference as Unix tools. Plain GNU make.
#
#   make                 lib/libbn.a (as build/libbn.a) and bin/bn-*
#   make test            unit tests + bats tests (no ../shared needed)
#   make test-ref        parity with the reference engines (reads ../shared)
#   make sanitize        ASan+UBSan build of everything, then the test suite on it
#   make fuzz            libFuzzer harnesses (clang), each run for FUZZ_SECONDS
#   make test-neon       NEON kernels cross-built for aarch64, run under qemu
#   make install PREFIX=/usr/local DESTDIR=
#   make deps            install the Debian packages (apt-get, sudo when not root)
#   make demo            deps + build + generate text with the shipped model
#   make CUDA=1          also build the CUDA kernels (nvcc)

CC       ?= cc
PKG_CONFIG ?= pkg-config
PREFIX   ?= /usr/local
BUILD    ?= build
BIN      ?= bin
SHARED   ?= ../shared
FUZZ_SECONDS ?= 60
NVCC     ?= /usr/local/cuda/bin/nvcc

# msgpack-c 4.x (Debian 12) is "msgpack"; 6.x renamed it "msgpack-c".
MSGPACK_PC := $(shell $(PKG_CONFIG) --exists msgpack-c 2>/dev/null && echo msgpack-c || echo msgpack)
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags libzmq $(MSGPACK_PC) 2>/dev/null)
DEP_LIBS   := $(shell $(PKG_CONFIG) --libs libzmq $(MSGPACK_PC) 2>/dev/null)

OPT      ?= -O2 -g
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
SAN_FLAGS :=
ifeq ($(SAN),1)
OPT      := -O1 -g -fno-omit-frame-pointer
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Ilib -pthread $(OPT) $(WARN) $(SAN_FLAGS) $(DEP_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS   := $(DEP_LIBS) -lm -pthread $(SAN_FLAGS)

MACHINE  := $(shell $(CC) -dumpmachine)
ifneq (,$(findstring x86_64,$(MACHINE)))
ARCH := x86_64
else ifneq (,$(findstring aarch64,$(MACHINE)))
ARCH := aarch64
else
ARCH := other
endif

AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
NEON_FLAGS   := -march=armv8.2-a+dotprod+fp16

LIB_PLAIN := $(filter-out %_avx2.c %_avx512.c %_neon.c,$(wildcard lib/*.c))
LIB_AVX2  := $(wildcard lib/*_avx2.c)
LIB_AVX512:= $(wildcard lib/*_avx512.c)
LIB_NEON  := $(wildcard lib/*_neon.c)
ifeq ($(ARCH),x86_64)
LIB_SIMD := $(LIB_AVX2) $(LIB_AVX512)
else ifeq ($(ARCH),aarch64)
LIB_SIMD := $(LIB_NEON)
endif
LIB_SRC  := $(LIB_PLAIN) $(LIB_SIMD)
LIB_OBJ  := $(patsubst lib/%.c,$(BUILD)/lib/%.o,$(LIB_SRC))

CUDA_OBJ :=
ifeq ($(CUDA),1)
CUDA_SRC := $(wildcard lib/cuda/*.cu)
CUDA_OBJ := $(patsubst lib/cuda/%.cu,$(BUILD)/cuda/%.o,$(CUDA_SRC))
BASE_CFLAGS += -DBN_HAVE_CUDA -I/usr/local/cuda/include
# static cudart: binaries need only the driver (libcuda.so.1, loaded at run time), no toolkit rpath
LDLIBS += -L/usr/local/cuda/lib64 -lcudart_static -ldl -lrt -lstdc++
# --fmad=false: no implicit a*b+c contraction, so kernels round like the C references (explicit fmaf stays fused)
NVCC_FLAGS := -O3 -std=c++17 -Ilib -DBN_HAVE_CUDA --fmad=false -Xcompiler -fPIC,-Wall,-Wextra -Werror all-warnings \
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90
endif

LIBBN    := $(BUILD)/libbn.a
TOOLS    := $(notdir $(wildcard tools/bn-*))
TOOL_BIN := $(addprefix $(BIN)/,$(TOOLS))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
HELPER_SRC := $(wildcard tests/tools/*.c)
HELPER_BIN := $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(HELPER_SRC))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all test test-ref sanitize fuzz test-neon install deps demo clean check-deps crossval bench
all: $(LIBBN) $(TOOL_BIN) $(UNIT_BIN) $(HELPER_BIN) $(BUILD)/bench/compare $(BUILD)/bench/bwprobe

$(BUILD)/lib/%_avx2.o: lib/%_avx2.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(AVX2_FLAGS) -c $< -o $@
$(BUILD)/lib/%_avx512.o: lib/%_avx512.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(AVX512_FLAGS) -c $< -o $@
$(BUILD)/lib/%_neon.o: lib/%_neon.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(NEON_FLAGS) -c $< -o $@
$(BUILD)/lib/fetch.o: BASE_CFLAGS += -DBN_PREFIX='"$(PREFIX)"'
$(BUILD)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -c $< -o $@
$(BUILD)/cuda/%.o: lib/cuda/%.cu $(wildcard lib/*.h lib/cuda/*.h lib/cuda/*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(LIBBN): $(LIB_OBJ) $(CUDA_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BIN)/bn-%: tools/bn-%/main.c $(LIBBN)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $< -o $@ $(LIBBN) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h tests/unit/rng.h $(LIBBN)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Itests/unit $< -o $@ $(LIBBN) $(LDLIBS)
$(BUILD)/tests/%: tests/tools/%.c $(LIBBN)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $< -o $@ $(LIBBN) $(LDLIBS)

test: all
	BN_BIN=$(abspath $(BIN)) BN_TESTBIN=$(abspath $(BUILD)/tests) tests/run.sh unit bats

test-ref: all
	BN_BIN=$(abspath $(BIN)) BN_TESTBIN=$(abspath $(BUILD)/tests) BN_SHARED=$(abspath $(SHARED)) tests/run.sh ref

sanitize:
	$(MAKE) SAN=1 BUILD=build/san BIN=build/san/bin all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	BN_BIN=$(abspath build/san/bin) BN_TESTBIN=$(abspath build/san/tests) BN_SANITIZE=1 tests/run.sh unit bats

# libFuzzer: the whole library is rebuilt with clang and -fsanitize=fuzzer-no-link.
FUZZ_BUILD := build/fuzz
fuzz:
	$(MAKE) CC=clang BUILD=$(FUZZ_BUILD) BIN=$(FUZZ_BUILD)/bin \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" $(FUZZ_BUILD)/libbn.a
	@set -e; for src in $(FUZZ_SRC); do \
	  name=$$(basename $$src .c); \
	  clang $(BASE_CFLAGS) -fsanitize=fuzzer,address,undefined $$src -o $(FUZZ_BUILD)/$$name $(FUZZ_BUILD)/libbn.a $(LDLIBS); \
	  mkdir -p $(FUZZ_BUILD)/corpus-$$name; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	  $(FUZZ_BUILD)/$$name -max_total_time=$(FUZZ_SECONDS) -max_len=1048576 -rss_limit_mb=2048 \
	    -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus-$$name tests/fuzz/corpus/$$name; \
	done

# NEON: the kernel modules (no zmq/msgpack) cross-built and run under qemu.
NEON_CC ?= aarch64-linux-gnu-gcc
NEON_LIB := lib/util.c lib/cpu.c $(wildcard lib/quant*.c lib/kernels*.c) $(LIB_NEON)
NEON_LIB := $(sort $(filter-out %_avx2.c %_avx512.c,$(NEON_LIB)))
test-neon:
	@mkdir -p build/neon
	$(NEON_CC) -std=c11 -D_GNU_SOURCE -Ilib -Itests/unit -O2 $(WARN) -march=armv8.2-a+dotprod+fp16 -static -pthread \
	  tests/unit/test_kernels.c $(NEON_LIB) -o build/neon/test_kernels -lm
	qemu-aarch64 -cpu max build/neon/test_kernels

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/bn
	install -m 755 $(TOOL_BIN) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIBBN) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 lib/*.h $(DESTDIR)$(PREFIX)/include/bn/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@MSGPACK@|$(MSGPACK_PC)|g' bn.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/bn.pc
	install -d $(DESTDIR)$(PREFIX)/share/bn && install -m 755 pipelines/fetch-model.sh $(DESTDIR)$(PREFIX)/share/bn/
	install -d $(DESTDIR)$(PREFIX)/share/doc/bn/man
	install -m 644 docs/man/*.md $(DESTDIR)$(PREFIX)/share/doc/bn/man/
	for t in $(TOOLS); do $(BIN)/$$t --help > $(DESTDIR)$(PREFIX)/share/doc/bn/$$t.txt 2>&1 || true; done

DEB_PKGS := build-essential pkg-config libzmq3-dev libmsgpack-dev libsodium-dev bats bats-assert bats-support \
  bats-file clang libclang-rt-14-dev gcc-aarch64-linux-gnu qemu-user python3-numpy python3-msgpack \
  python3-sentencepiece iproute2 curl gnuplot-nox
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing:" $$missing; \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y $$missing; \
	else echo "all Debian packages present"; fi

# deps runs first and alone, then a fresh make: the pkg-config flags above are read when
# make starts, so a make that also installed libzmq/msgpack would link without them.
demo:
	$(MAKE) deps
	$(MAKE) all
	pipelines/demo.sh

crossval: all
	BN_BIN=$(abspath $(BIN)) BN_TESTBIN=$(abspath $(BUILD)/tests) BN_SHARED=$(abspath $(SHARED)) tests/crossval.sh

# Benchmarks (never part of make test): bench/run drives them.
$(BUILD)/bench/compare: bench/compare.c $(LIBBN)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $< -o $@ $(LIBBN) $(LDLIBS)
$(BUILD)/bench/int8peak: bench/int8peak.c $(LIBBN)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -Ilib -O2 -march=native -pthread $(WARN) $< -o $@ $(LIBBN) -lm
$(BUILD)/bench/gemvprobe: bench/gemvprobe.c $(LIBBN)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -Ilib -O2 -march=native -pthread $(WARN) $< -o $@ $(LIBBN) $(LDLIBS)
$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -march=native -pthread $(WARN) $< -o $@ -lm
# both read the buffer every way readways.h knows
$(BUILD)/bench/bwprobe $(BUILD)/bench/gemvprobe: bench/readways.h
bench: all $(BUILD)/bench/bwprobe $(BUILD)/bench/int8peak $(BUILD)/bench/compare $(BUILD)/bench/gemvprobe
	bench/run

clean:
	rm -rf build bin
