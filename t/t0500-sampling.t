#!/bin/sh
# Logits processors, token draws and the search loops (libcommon/generate/sampling.c,
# libcommon/generate/beam.c): the C unit tests, then every processor, the processor
# list generate() builds, greedy, beam and group beam search against Hugging
# Face transformers (t/ref/processors.py, through the unit program's driver
# modes).
. "$(dirname "$0")/test-lib.sh"

DRIVER=$LP_BUILD/t/sampling
REF=$TEST_DIR/ref/processors.py
$PYTHON -c 'import torch, transformers
assert int(transformers.__version__.split(".")[0]) >= 5' 2>/dev/null &&
	test_set_prereq HF5

test_expect_success 'sampling unit tests pass' '
	"$DRIVER" >out &&
	! grep "^not ok" out &&
	grep -q "^1\.\." out
'

test_expect_success 'driver: a bad control value fails with its name' '
	printf "config\nset top_p lots\n" >in &&
	test_must_fail "$DRIVER" proc <in 2>err &&
	test_grep "set: top_p: want a number, got .lots." err
'

test_expect_success 'driver: an impossible combination fails clearly' '
	printf "config\nset num_beams 4\nset num_beam_groups 2\nfake 10 1 0\nprompt 1 2\n" >in &&
	test_must_fail "$DRIVER" search <in 2>err &&
	test_grep "diversity_penalty: group beam search needs diversity_penalty > 0" err
'

test_expect_success 'driver: a prompt as long as max_length fails clearly' '
	printf "config\nset max_length 3\nfake 10 1 0\nprompt 1 2 3\n" >in &&
	test_must_fail "$DRIVER" search <in 2>err &&
	test_grep "max_length: the prompt has 3 tokens, max_length is 3" err
'

test_expect_success 'driver: an unknown mode is a usage error' '
	test_must_fail "$DRIVER" frobnicate 2>err &&
	test_grep "usage:" err
'

test_expect_success 'driver: greedy search stops at eos, results on stdout' '
	printf "config\nset eos_token_id 2\nset max_new_tokens 10\nfake 20 7 0.25\nprompt 1 5 7\n" >in &&
	"$DRIVER" search <in >out &&
	test_grep "^result 0 [0-9]* 0 1 .* 2$" out &&
	test_grep "^steps [0-9]" out
'

test_expect_success HF5 'each processor agrees with its transformers class' '
	$PYTHON "$REF" procs "$DRIVER"
'

test_expect_success HF5 'the processor list agrees with what generate() builds' '
	$PYTHON "$REF" pipeline "$DRIVER"
'

test_expect_success HF5 'greedy and beam search agree with generate()' '
	$PYTHON "$REF" search "$DRIVER"
'

test_expect_success HF5 'group beam search agrees with the transcribed Hub algorithm' '
	$PYTHON "$REF" group "$DRIVER"
'

test_done
