#!/bin/sh
# One set of command-line conventions: every tool has --version (-V),
# --help (-h) and -q; an unknown option is one line and exit 2; each tool's
# --help agrees with the flag table in README.md; old spellings still work
# with a warning.
. "$(dirname "$0")/test-lib.sh"

TOOLS="mkinstr spm-merge tok lora-train lora-merge gen"
README="$SRC_DIR/README.md"

test_expect_success 'every tool prints its version with --version and -V' '
	for t in $TOOLS; do
		$t --version >v1 2>err && $t -V >v2 &&
		test_grep "^$t (llamapipe) [0-9][0-9.]*$" v1 && test_cmp v1 v2 &&
		test ! -s err || return 1
	done
'

test_expect_success 'every tool prints a usage with --help and -h, exit 0' '
	for t in $TOOLS; do
		$t --help >h1 2>err && $t -h >h2 &&
		test_grep "^usage: $t" h1 && test_cmp h1 h2 &&
		test_grep -e "-V, --version" h1 && test_grep -e "-q, --quiet" h1 &&
		test ! -s err || return 1
	done
'

test_expect_success 'an unknown option, or one without its value: one line, exit 2' '
	for t in $TOOLS; do
		$t --no-such-option </dev/null >out 2>err; rc=$?
		test $rc = 2 && test_line_count = 1 err && test ! -s out &&
		test_grep "^$t: unrecognized option .--no-such-option. (see .$t --help.)$" err &&
		$t -Z </dev/null >out 2>err; rc=$?
		test $rc = 2 && test_line_count = 1 err &&
		test_grep "^$t: unrecognized option .-Z." err &&
		$t --output </dev/null >out 2>err; rc=$?
		case $t in
		tok|gen) test_grep "unrecognized option .--output." err ;;
		*) test $rc = 2 && test_line_count = 1 err && test_grep "option .--output. needs a value" err ;;
		esac || return 1
	done &&
	mkinstr --quiet=yes </dev/null >out 2>err; test $? = 2 &&
	test_grep "option .--quiet. takes no value" err
'

# The table: lines "| `-X`, `--long ARG` | meaning | tool, tool |".
sed -n "/^## One set of flags/,/^## /p" "$README" |
	sed -n "s/^| \`\(-[A-Za-z]\)\`, \`\(--[a-z-]*\)[^|]*| [^|]* | \([^|]*\) |\$/\1 \2 \3/p" >table
test_expect_success 'README holds the flag table' '
	test_line_count -ge 13 table &&
	test_grep "^-M --model tok, lora-train, lora-merge, gen" table &&
	test_grep "^-b --batch-size lora-train, gen" table
'

test_expect_success 'each tool'"'"'s --help lists the flags of the table it has, and no other use of them' '
	while read short long tools; do
		for t in $TOOLS; do
			$t --help >h &&
			case ", $tools, " in
			*", $t, "*|*", all, "*)
				grep -q -e "^ *$short, $long\\b" h ||
					{ echo "$t --help lacks $short, $long" >&2; return 1; } ;;
			*)
				! grep -e "^ *$short, " h ||
					{ echo "$t --help uses $short for something else" >&2; return 1; } ;;
			esac || return 1
		done
	done <table
'

test_expect_success 'every letter of the table means the same in every tool that takes it' '
	for t in $TOOLS; do
		$t --help | sed -n "s/^ *\(-[A-Za-z]\), \(--[a-z-]*\).*/\1 \2/p" >flags.$t || return 1
	done &&
	cut -d" " -f1 table >letters &&
	cat flags.* | sort -u | while read l rest; do
		grep -q -x -e "$l" letters && echo "$l $rest"
	done >pairs &&
	cut -d" " -f1 pairs | uniq -d >dup &&
	test ! -s dup || { cat pairs >&2; return 1; }
'

test_expect_success 'old spellings work for one release, with a warning' '
	printf "{\"text\":\"a  b\"}\n{\"text\":\"a b\"}\n" >t.jsonl &&
	mkinstr -q -f json -d t.jsonl >out 2>err &&
	test_line_count = 1 out &&
	test_grep "mkinstr: -f is deprecated: write --from (-f will mean --force)" err &&
	test_grep "mkinstr: -d is deprecated: write --dedup (-d will mean --dtype)" err &&
	mkinstr -q --from json --dedup t.jsonl >out2 2>err &&
	test_cmp out out2 && test ! -s err
'

test_expect_success SPM_TRAIN 'tok: the old --model FILE, --model-dir, -b and -d' '
	make_spm_model m bpe 1000 &&
	echo "{\"text\":\"the of and a to in is you that it\"}" >p.jsonl &&
	tok -q --tokenizer m.model --block-size 4 p.jsonl >new.fr &&
	tok -q --model m.model -b 4 p.jsonl >old.fr 2>err &&
	cmp new.fr old.fr &&
	test_grep "tok: --model FILE is deprecated: write --tokenizer FILE (-m)" err &&
	test_grep "tok: -b is deprecated: write --block-size (-b will mean --batch-size)" err &&
	mkdir md && cp m.model md/tokenizer.model &&
	tok -q --model md --block-size 4 p.jsonl >dir.fr 2>err && cmp new.fr dir.fr && test ! -s err &&
	tok -q --model-dir md --block-size 4 p.jsonl >dir2.fr 2>err && cmp new.fr dir2.fr &&
	test_grep "model-dir is deprecated" err &&
	tok -q --mode ids -m m.model p.jsonl | tok -q -d -m m.model >d1 2>err &&
	test_grep "tok: -d is deprecated: write --decode" err &&
	tok -q --mode ids -m m.model p.jsonl | tok -q --decode -m m.model >d2 &&
	test_cmp d1 d2
'

command -v script >/dev/null 2>&1 && test_set_prereq SCRIPT
test_expect_success SCRIPT 'lora-train with a terminal as stdin and no --data says what it expects' '
	mkdir base && echo "{}" >base/config.json &&
	script -qec "lora-train -M base -o trained" /dev/null >typescript 2>&1 </dev/null;
	tr -d "\r" <typescript >clean &&
	test_grep "lora-train: reads token frames from stdin, which is a terminal" clean &&
	! test -e trained
'
test_done
