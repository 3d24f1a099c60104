#!/bin/sh
# run.sh: build the CUDA backend and t/gpu/ops.c, check every op (forward and backward)
# against the CPU backend and time it. Meant for a machine with an NVIDIA GPU
# (H100/H200); `make check` runs only the CPU self-check (t/t0310-gpu-ops.t).
# pipelines/bench/gpu.sh runs it too, with the training and benchmarks.
#
#   sh t/gpu/run.sh [gpu-ops options]   build into build/gpu, run, write logs
#                                       to $OUT (else build/gpu/logs)
#   sh t/gpu/run.sh --sanitize          also run compute-sanitizer (memcheck on
#                                       the quick set, racecheck on attention)
#   sh t/gpu/run.sh --bundle            on a machine without a GPU: build into
#                                       build/gpu-bundle and copy beside it the
#                                       shared libraries the GPU image may lack
#
# The GPU image has nvcc, gcc and CUDA's libraries, but perhaps not OpenBLAS
# (the CPU reference's GEMM). If the build fails there and a bundle was
# carried (carry build/gpu-bundle), the bundled binary runs instead, with
# LD_LIBRARY_PATH set to its lib/.
#
# Prints failures, the timing table and a summary; the whole TAP stream is
# in gpu-ops.tap. Exit status: gpu-ops's (0 when every check passed).
set -u
cd "$(dirname "$0")/../.." || exit 1
O=${O:-build/gpu}
BUNDLE=build/gpu-bundle
LOG=${OUT:-$O/logs}
JOBS=$(nproc 2>/dev/null || echo 4)
mkdir -p "$LOG" || exit 1

build() {   # build() DIR: the test program into DIR/t/gpu-ops
	make -j"$JOBS" O="$1" BIN="$1/bin" gpu-test >"$LOG/build.log" 2>&1
}

if [ "${1-}" = --bundle ]; then
	build "$BUNDLE" || { tail -n 40 "$LOG/build.log"; exit 1; }
	rm -rf "$BUNDLE/lib" && mkdir -p "$BUNDLE/lib" || exit 1
	# what the binary needs beyond glibc, gcc's runtime and CUDA's libraries
	ldd "$BUNDLE/t/gpu-ops" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' |
		grep -E 'openblas|gfortran|quadmath' |
		while read -r lib; do cp -L "$lib" "$BUNDLE/lib/" || exit 1; done
	ls -l "$BUNDLE/t/gpu-ops" "$BUNDLE/lib"
	echo "run.sh: carry $BUNDLE to the GPU machine"
	exit 0
fi

sanitize=0
if [ "${1-}" = --sanitize ]; then
	sanitize=1
	shift
fi

{
	date -u
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	command -v nvcc >/dev/null && nvcc --version | tail -n 2
} >"$LOG/machine.txt" 2>&1
cat "$LOG/machine.txt"

bin=$O/t/gpu-ops
libdir=
if ! build "$O"; then
	if [ -x "$BUNDLE/t/gpu-ops" ]; then
		echo "run.sh: the build failed here (build.log); running the carried bundle" >&2
		tail -n 5 "$LOG/build.log" >&2
		bin=$BUNDLE/t/gpu-ops
		libdir=$(pwd)/$BUNDLE/lib
	else
		tail -n 40 "$LOG/build.log" >&2
		echo "run.sh: the build failed; see $LOG/build.log" >&2
		exit 1
	fi
fi
if [ -n "$libdir" ]; then
	LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	export LD_LIBRARY_PATH
fi

"$bin" "$@" >"$LOG/gpu-ops.tap" 2>"$LOG/gpu-ops.err"
rc=$?
cat "$LOG/gpu-ops.err" >&2

# failures with their diagnostics, then the table, then a summary
awk '/^not ok/ { show = 1; print; next } /^ok/ { show = 0; next }
	/^#   / && show { print }' "$LOG/gpu-ops.tap"
grep -E '^# (reference|under test|op  )' "$LOG/gpu-ops.tap"
grep -E '^# [a-z_]+ +[A-Za-z]+=' "$LOG/gpu-ops.tap"
grep -E '^1\.\.' "$LOG/gpu-ops.tap"
pass=$(grep -c '^ok' "$LOG/gpu-ops.tap")
fail=$(grep -c '^not ok' "$LOG/gpu-ops.tap")
echo "gpu-ops: $pass passed, $fail failed (exit $rc)"

if [ "$sanitize" = 1 ]; then
	if command -v compute-sanitizer >/dev/null; then
		compute-sanitizer --tool memcheck --leak-check no --error-exitcode 3 \
			"$bin" --quick >"$LOG/memcheck.log" 2>&1
		echo "memcheck: exit $? (memcheck.log)"
		tail -n 3 "$LOG/memcheck.log"
		compute-sanitizer --tool racecheck --error-exitcode 3 \
			"$bin" --quick --op attention >"$LOG/racecheck.log" 2>&1
		echo "racecheck: exit $? (racecheck.log)"
		tail -n 3 "$LOG/racecheck.log"
	else
		echo "run.sh: compute-sanitizer not found; --sanitize skipped" >&2
	fi
fi
exit "$rc"
