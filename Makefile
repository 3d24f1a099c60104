# llamapipe: one build for everything.
#
#   make            build every tool into bin/
#   make check      run the test suite (prove -r t/) and sum up what it compared;
#                   STRICT=1 (or CI=true): a missing prerequisite fails
#   make asan       build with AddressSanitizer + UBSan into build/asan and run the suite
#   make fuzz       build libFuzzer targets (clang) into build/fuzz
#   make deps       install missing Debian/PyPI packages (as root)
#   make demo       the whole pipeline on the bundled data

CC      ?= cc
CXX     ?= c++
O       ?= build/release
BIN     ?= bin
OPT     ?= -O2 -g
SAN     ?=
WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wvla -Wformat=2
CFLAGS  ?=
CFLAGS  += -std=c11 $(OPT) $(SAN) $(WARN) -Wstrict-prototypes -fopenmp
CXXFLAGS += -std=c++17 $(OPT) $(SAN) $(WARN)
# kernels/ sees only libcommon/base; everything else sees every layer by path
# ("formats/frames.h") and base through kernels.h.
CPPFLAGS += -D_GNU_SOURCE -MMD -MP
INC_KERNELS := -Ilibcommon/base -Ikernels
INC_COMMON  := -Ilibcommon -Ilibcommon/base -Ikernels
LDFLAGS += $(SAN) -fopenmp
# make gpu-bundle: binaries that find their shared libraries in ../lib
# (DT_RPATH, which also serves the libraries' own dependencies)
BUNDLE_RPATH = -Wl,--disable-new-dtags,-rpath,'$$ORIGIN/../lib'
LDFLAGS += $(if $(GPU_BUNDLE),$(BUNDLE_RPATH))
LDLIBS  += -ljq -lzstd -lxxhash -lsentencepiece -lpthread -lm

# BLAS for the CPU backend's GEMM (OpenBLAS through pkg-config).
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)

# CUDA backend: built wherever nvcc is found (it needs no GPU to build).
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
KERNEL_CU := $(if $(NVCC),$(wildcard kernels/cuda/*.cu))
KERNEL_C  := kernels/kernels.c kernels/quant.c $(wildcard kernels/cpu/*.c) $(if $(KERNEL_CU),,kernels/cuda/none.c)
KERNEL_OBJ := $(KERNEL_C:%.c=$(O)/%.o) $(KERNEL_CU:%.cu=$(O)/%.o)
ifneq ($(KERNEL_CU),)
CUDA_HOME := $(abspath $(dir $(NVCC))/..)
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVCCFLAGS ?= -O2 -g -std=c++17 $(CUDA_ARCH) -Xcompiler -Wall,-Wextra,-Werror -Werror all-warnings
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart
BACKENDS := cpu cuda
else
BACKENDS := cpu (no nvcc: CUDA backend not built)
endif

# Data parallel training (libcommon/train/comm*.c): MPI when mpicc or
# pkg-config finds it; NCCL as well when nvcc and nccl.h are there too.
# Without MPI lora-train is single-process.
MPICC ?= $(shell command -v mpicc 2>/dev/null)
MPI_CFLAGS ?= $(if $(MPICC),$(shell $(MPICC) --showme:compile 2>/dev/null),$(shell pkg-config --cflags ompi-c 2>/dev/null))
MPI_LIBS ?= $(if $(MPICC),$(shell $(MPICC) --showme:link 2>/dev/null),$(shell pkg-config --libs ompi-c 2>/dev/null))
ifneq ($(strip $(MPI_LIBS)),)
NCCL_H := $(if $(KERNEL_CU),$(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))
COMM_DEFS := -DLP_HAVE_MPI $(MPI_CFLAGS) $(if $(NCCL_H),-DLP_HAVE_NCCL -isystem $(CUDA_HOME)/include)
COMM_LIBS := $(MPI_LIBS) $(if $(NCCL_H),-lnccl)
COMM := MPI$(if $(NCCL_H), + NCCL,; no NCCL)
else
COMM := single process (no MPI)
endif
$(O)/libcommon/train/comm_mpi.o $(O)/libcommon/train/comm_nccl.o: CPPFLAGS += $(COMM_DEFS)
LDLIBS += -Wl,--as-needed $(CUDA_LIBS) $(BLAS_LIBS) $(COMM_LIBS) -Wl,--no-as-needed

TOOLS   := $(patsubst tools/%.c,%,$(wildcard tools/*.c))
# libcommon in layers (see README): base/ is an archive of its own so that
# libcommon.a, libkernels.a and libbase.a link in that order, without groups.
BASE_C  := $(wildcard libcommon/base/*.c)
BASE_OBJ := $(BASE_C:%.c=$(O)/%.o)
LIB_C   := $(filter-out $(BASE_C),$(wildcard libcommon/*/*.c))
LIB_CXX := $(wildcard libcommon/*/*.cc)
LIB_OBJ := $(LIB_C:%.c=$(O)/%.o) $(LIB_CXX:%.cc=$(O)/%.o)
UNIT    := $(patsubst t/unit/%.c,%,$(wildcard t/unit/*.c))
FUZZ    := $(patsubst t/fuzz/%.c,%,$(filter-out t/fuzz/driver.c,$(wildcard t/fuzz/*.c)))

all: $(TOOLS:%=$(BIN)/%) $(UNIT:%=$(O)/t/%) $(FUZZ:%=$(O)/t/fuzz-%) $(O)/t/gpu-ops
	@echo "built: $(TOOLS) into $(BIN); backends: $(BACKENDS); data parallel: $(COMM)"

$(O)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(INC_COMMON) $(CFLAGS) -c -o $@ $<

$(O)/%.o: %.cc
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(INC_COMMON) $(CXXFLAGS) -c -o $@ $<

$(O)/kernels/%.o: kernels/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(INC_KERNELS) $(BLAS_CFLAGS) $(CFLAGS) -c -o $@ $<

$(O)/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) $(INC_KERNELS) -c -o $@ $<

$(O)/libbase.a: $(BASE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(O)/libcommon.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(O)/libkernels.a: $(KERNEL_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The archives in link order, whatever order the rules listed them in.
ARCHIVES = $(filter %/libcommon.a,$^) $(filter %/libkernels.a,$^) $(filter %/libbase.a,$^)

# Tools link with the C++ driver because the tokenizer wrapper is C++.
# Those that compute link the kernels too.
KERNEL_TOOLS := gen lora-train lora-merge
$(foreach t,$(KERNEL_TOOLS),$(eval $(BIN)/$(t): $(O)/libkernels.a))
$(BIN)/%: $(O)/tools/%.o $(O)/libcommon.a $(O)/libbase.a
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $(filter %.o,$^) $(ARCHIVES) $(LDLIBS)

# C unit tests: one binary per t/unit/*.c, run by the t/*.t that names it.
# Those that compute link the kernels too.
KERNEL_UNITS := kernels_cpu llama_logits comm matvec quant
$(foreach u,$(KERNEL_UNITS),$(eval $(O)/t/$(u): $(O)/libkernels.a))
$(O)/t/%: $(O)/t/unit/%.o $(O)/libcommon.a $(O)/libbase.a
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $(filter %.o,$^) $(ARCHIVES) $(LDLIBS)

# Fuzz targets built with a plain driver that replays files (used by the
# test suite on the seed corpora); `make fuzz` builds them for libFuzzer.
$(O)/t/fuzz-%: $(O)/t/fuzz/%.o $(O)/t/fuzz/driver.o $(O)/libcommon.a $(O)/libbase.a
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# GPU differential test: t/gpu/ops.c checks the CUDA backend against the
# CPU backend op by op, forward and backward. `make` builds it and `make
# check` runs its CPU self-check (t/t0310-gpu-ops.t); t/gpu/run.sh and
# pipelines/bench/gpu.sh run it on a GPU machine. It links only the kernels
# and libcommon/base, so it builds where jq, zstd and sentencepiece are not
# installed.
gpu-test: $(O)/t/gpu-ops
$(O)/t/gpu-ops: $(O)/t/gpu/ops.o $(O)/libkernels.a $(O)/libbase.a
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) -o $@ $^ -Wl,--as-needed $(CUDA_LIBS) $(BLAS_LIBS) -Wl,--no-as-needed -lpthread -lm
$(O)/t/gpu/ops.o: CPPFLAGS += $(if $(KERNEL_CU),-I$(CUDA_HOME)/include -DLP_HAVE_CUDA)

# A GPU machine has the CUDA toolkit but not Debian's -dev packages:
# `make gpu-bundle` builds everything into $(GPU_BUNDLE_DIR) with an rpath
# of $$ORIGIN/../lib and copies beside it the libraries and headers the
# GPU machine may lack (pipelines/bench/bundle.sh). Carry that folder;
# pipelines/bench/gpu.sh uses it.
GPU_BUNDLE_DIR ?= build/gpu-bundle
gpu-bundle:
	$(MAKE) GPU_BUNDLE=1 O=$(GPU_BUNDLE_DIR)-obj BIN=$(GPU_BUNDLE_DIR)/bin all
	sh pipelines/bench/bundle.sh $(GPU_BUNDLE_DIR) $(GPU_BUNDLE_DIR)-obj

# t/check.sh runs prove with the venv that install-deps.sh makes (python3
# without it) and ends with a summary: tests run, compared with a reference,
# skipped and why. CI=true or STRICT=1: a missing prerequisite fails.
check:
	sh pipelines/install-deps.sh
	$(MAKE) all
	LP_BIN=$(abspath $(BIN)) LP_BUILD=$(abspath $(O)) $(if $(STRICT),STRICT=$(STRICT)) \
		sh t/check.sh

# libjq 1.6 leaks a few bytes on some malformed JSON; that is not ours.
asan: export LSAN_OPTIONS = suppressions=$(abspath t/lsan.supp):print_suppressions=0
asan: export ASAN_OPTIONS = abort_on_error=0:detect_leaks=1
asan:
	$(MAKE) O=build/asan BIN=build/asan/bin OPT="-O1 -g -fno-omit-frame-pointer" \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" check

FUZZCC := clang
fuzz:
	$(MAKE) O=build/fuzz BIN=build/fuzz/bin CC=$(FUZZCC) CXX=clang++ \
		OPT="-O1 -g" SAN="-fsanitize=fuzzer-no-link,address,undefined" fuzz-targets
fuzz-targets: $(FUZZ:%=$(O)/fuzz-%)
$(O)/fuzz-%: $(O)/t/fuzz/%.o $(O)/libcommon.a $(O)/libbase.a
	$(CXX) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

deps:
	sh pipelines/install-deps.sh

demo:
	sh pipelines/install-deps.sh --debian-only
	$(MAKE) all
	$(MAKE) -f pipelines/demo.mk BIN=$(BIN)

clean:
	rm -rf build $(BIN)

.PHONY: all check asan fuzz fuzz-targets deps demo clean gpu-test gpu-bundle
.SECONDARY:
-include $(shell find build -name '*.d' 2>/dev/null)
