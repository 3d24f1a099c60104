#!/bin/sh
# The communicator (libcommon/train/comm.h): every operation alone, and
# under mpirun on 2 and 3 ranks, whole and split into small MPI calls
# (LLAMAPIPE_COMM_CHUNK). The unit test prints the checks; this runs it.
. "$(dirname "$0")/test-lib.sh"

COMM="$LP_BUILD/t/comm"
export OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# mpirun as the tests run it, first on PATH (timeout(1) finds it too):
# 3 ranks on 2 cores need --oversubscribe; under AddressSanitizer (make
# asan) the ranks do not look for leaks, since OpenMPI's plug-ins keep
# allocations until exit and are unloaded before the leak report, which
# then cannot say whose they are (one process is leak-checked by t1400
# and by the tests here that run without mpirun).
if real_mpirun=$(command -v mpirun); then
	mkdir -p "$TRASH/mpi-bin"
	cat >"$TRASH/mpi-bin/mpirun" <<-EOF
	#!/bin/sh
	ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0" exec "$real_mpirun" --oversubscribe "\$@"
	EOF
	chmod +x "$TRASH/mpi-bin/mpirun"
	PATH=$TRASH/mpi-bin:$PATH
fi

test_expect_success 'one process: every operation is the identity' '
	"$COMM" >out && test_grep "^# single process" out && ! grep "^not ok" out &&
	test_grep -q "^1\.\." out
'

# the rest needs a build with MPI, and mpirun
lora-train --help | grep -q "over MPI" && command -v mpirun >/dev/null 2>&1 &&
	test_set_prereq MPI

for n in 1 2 3; do
	for chunk in "" 3; do
		test_expect_success MPI "$n rank(s)${chunk:+, calls of $chunk elements}" "
			LLAMAPIPE_COMM_CHUNK=$chunk mpirun -np $n \"\$COMM\" >out &&
			test_grep \"^# MPI, $n rank\" out && ! grep \"^not ok\" out &&
			test_grep -q \"^1\\.\\.\" out
		"
	done
done

test_done
