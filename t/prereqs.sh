# prereqs.sh: which prerequisites strict mode lets be missing, which are a
# reference implementation, and whether strict mode is on. Sourced by
# t/test-lib.sh and t/check.sh.
#
# Strict mode: CI=true, or STRICT=1 (STRICT=0 turns it off under CI). Then
# a test or file whose prerequisite is missing fails, naming it, unless the
# prerequisite is in LP_OPTIONAL_PREREQS: a suite that passes by skipping
# its reference comparisons has shown nothing.

# What a correct machine may lack, and why; every other prerequisite is
# required under strict mode. A test or file one of whose missing
# prerequisites is optional skips, whatever else it misses (what a GPU
# setup would have made is missing too where there is no GPU). Add a name
# here only with its reason.
#   GPU, NO_GPU   a CUDA device is there / is not (tests for either case)
#   MULTI_GPU     two or more CUDA devices
#   MPI, NCCL     an MPI launcher (mpirun) / the NCCL library at run time
#   TINY_FS       a user namespace that may mount a tmpfs (containers
#                 often forbid it)
LP_OPTIONAL_PREREQS="GPU NO_GPU MULTI_GPU MPI NCCL TINY_FS"

# The prerequisites that are a reference implementation (the Python stack
# of t/requirements.txt): tests that need one are the differential tests,
# counted apart in the summary of t/check.sh.
LP_REFERENCE_PREREQS="TORCH PY_TORCH PY_PEFT PY_TRAIN PY_GGUF PY_SAFETENSORS PY_SPM PY_SPM_PB2 HF5 TRANSFORMERS"

case ${STRICT:-} in
1 | yes | true) LP_STRICT="STRICT=$STRICT" ;;
0 | no | false) LP_STRICT= ;;
*) if [ "${CI:-}" = true ]; then LP_STRICT="CI=true"; else LP_STRICT=; fi ;;
esac
