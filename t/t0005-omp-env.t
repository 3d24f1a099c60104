#!/bin/sh
# Every tool sets OMP_WAIT_POLICY=passive for itself when it is unset
# (libcommon/base/omp_env.c), and leaves a value the user gave alone.
# mkinstr --jq shows the environment the program runs with ($ENV).
. "$(dirname "$0")/test-lib.sh"

test_expect_success 'unset: the tool runs with OMP_WAIT_POLICY=passive' '
	echo "{\"x\":1}" | env -u OMP_WAIT_POLICY mkinstr -q --jq "{text: \$ENV.OMP_WAIT_POLICY}" >out &&
	echo "{\"text\":\"passive\"}" >expect &&
	test_cmp expect out
'

test_expect_success 'a value the user set is kept' '
	echo "{\"x\":1}" | OMP_WAIT_POLICY=active mkinstr -q --jq "{text: \$ENV.OMP_WAIT_POLICY}" >out &&
	echo "{\"text\":\"active\"}" >expect &&
	test_cmp expect out
'

test_expect_success 'the program runs again with the same arguments' '
	printf "{\"t\":\"a b\"}\n{\"t\":\"c\"}\n" >in.jsonl &&
	env -u OMP_WAIT_POLICY mkinstr -q --jq "{text: .t}" in.jsonl >out &&
	printf "{\"text\":\"a b\"}\n{\"text\":\"c\"}\n" >expect &&
	test_cmp expect out
'

test_expect_success 'every tool starts with OMP_WAIT_POLICY unset' '
	for t in gen lora-merge lora-train mkinstr spm-merge tok; do
		env -u OMP_WAIT_POLICY $t --help >help.$t || return 1
		grep -q "^usage: $t" help.$t || return 1
	done
'
test_done
