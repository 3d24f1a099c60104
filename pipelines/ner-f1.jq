# ner-f1.jq: entity-level precision, recall and F1 of NER answers.
#
#   jq -s -f pipelines/ner-f1.jq pairs.jsonl
#
# Input (slurped with -s into one array): one JSON object per record,
#
#   {"gold": ANSWER, "pred": ANSWER}
#
# where ANSWER is an answer in the form `mkinstr --from msra` writes as its
# "output": one `ENTITY_TYPE` line per entity (e.g. "张三_人名\n北京_地名"),
# or "没有" when the text has none. Other keys are ignored; "pred" may be
# null or absent (no answer: an empty set).
#
# Each answer is read as a set of entities:
#   - it is split at "\n"; each line is trimmed of surrounding white space;
#     empty lines and lines "没有" are dropped;
#   - an entity is a line with a "_" and text on both sides of its last "_";
#     entities match when the whole line matches (same text, same type);
#   - repeated lines count once;
#   - a pred line that is not an entity (no "_", or nothing before or after
#     it) matches nothing, so it counts as a false positive;
#   - a gold line that is not an entity is an error (gold comes from mkinstr).
#
# Output: {"precision", "recall", "f1", "tp", "fp", "fn"}, where tp, fp and fn
# are summed over records (tp: in pred and gold; fp: in pred only; fn: in gold
# only), precision = tp/(tp+fp), recall = tp/(tp+fn), f1 their harmonic mean,
# each rounded to 4 decimals. Records are numbered from 1 in error messages;
# an empty input is an error. A ratio with a zero denominator is 1 when
# tp = fp = fn = 0 (nothing to find and nothing claimed) and 0 otherwise.

def is_entity:
	split("_") | length >= 2 and (.[:-1] | join("_")) != "" and .[-1] != "";

# ANSWER -> sorted array of distinct lines, "没有" and blanks dropped.
def answer_lines($what; $n):
	if . == null then []
	elif type == "string" then
		split("\n")
		| map(sub("^\\s+"; "") | sub("\\s+$"; ""))
		| map(select(. != "" and . != "没有"))
		| unique
	else error("record \($n): \"\($what)\" is \(type), not a string")
	end;

def gold_entity($n):
	if is_entity then .
	else error("record \($n): gold line \"\(.)\" is not ENTITY_TYPE")
	end;

def ratio($num; $den; $allzero):
	if $den > 0 then $num / $den elif $allzero then 1 else 0 end;

def round4: . * 10000 | round / 10000;

if type != "array" then
	error("input is not an array: run as jq -s -f ner-f1.jq FILE")
elif length == 0 then
	error("no records")
else . end
| [ to_entries[]
    | (.key + 1) as $n
    | .value
    | if type != "object" or (has("gold") | not) then
        error("record \($n): not an object with a \"gold\" answer")
      else . end
    | (.gold | answer_lines("gold"; $n) | map(gold_entity($n))) as $g
    | (.pred | answer_lines("pred"; $n)) as $p
    | ([$p[] | select(. as $x | any($g[]; . == $x))] | length) as $tp
    | {tp: $tp, fp: (($p | length) - $tp), fn: (($g | length) - $tp)}
  ]
| {tp: (map(.tp) | add // 0), fp: (map(.fp) | add // 0),
   fn: (map(.fn) | add // 0)}
| (.tp == 0 and .fp == 0 and .fn == 0) as $z
| ratio(.tp; .tp + .fp; $z) as $p
| ratio(.tp; .tp + .fn; $z) as $r
| {precision: ($p | round4), recall: ($r | round4),
   f1: (ratio(2 * $p * $r; $p + $r; $z) | round4),
   tp, fp, fn}
