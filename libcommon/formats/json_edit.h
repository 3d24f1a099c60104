/* json_edit.h: change one top-level value of a JSON object in its text.
 *
 * lora-merge edits the base's config.json (vocab_size, dtype) this way, so
 * every other byte stays as the model's authors wrote it: key order,
 * spacing, number forms such as 1e-06 or 10000.0. */
#ifndef LP_JSON_EDIT_H
#define LP_JSON_EDIT_H

#include <stddef.h>

/* Set top-level key of the JSON object text json (NUL-terminated) to the
 * JSON value text val: its old value is replaced in place, or, if the key
 * is absent, "key": val is added after the last member with the first
 * member's indentation. Returns a malloc'd text, or NULL with a message in
 * err when json is not one JSON object. Never dies on bad input (fuzzed by
 * t/fuzz/json_edit.c). */
char *lp_json_set(const char *json, const char *key, const char *val, char *err,
		size_t errlen);

#endif
