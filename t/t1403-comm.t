#!/bin/sh
# The communicator (libcommon/train/comm.h): every operation alone, and
# under mpirun on 2 and 3 ranks, whole and split into small MPI calls
# (LLAMAPIPE_COMM_CHUNK). The unit test prints the checks; this runs it.
. "$(dirname "$0")/test-lib.sh"

COMM="$LP_BUILD/t/comm"
export OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Under AddressSanitizer (make asan) the ranks do not look for leaks:
# OpenMPI's plug-ins keep allocations until exit and are unloaded before
# the leak report, which then cannot say whose they are. One process is
# leak-checked by t1400 and by this file's tests that run without mpirun.
mpirun() { ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" command mpirun "$@"; }
export OMPI_MCA_rmaps_base_oversubscribe=1

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
