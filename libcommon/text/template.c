/* template.c: prompt templates (see template.h). */
#include "text/template.h"
#include "base/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct lp_template {
	char *name;
	char *text;     /* with placeholders */
	char *turn;     /* a later turn of a conversation, or NULL */
	char *system;
};

static const struct {
	const char *name, *text, *turn;
} builtin[] = {
	{"alpaca", "Below is an instruction that describes a task. "
		"Write a response that appropriately completes the request.\n\n"
		"### Instruction:\n{instruction}\n\n### Response: ", NULL},
	{"llama2-chat", "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{instruction} [/INST]",
		"[INST] {instruction} [/INST]"},
	{"raw", "{instruction}", NULL},
};

/* The file's text less one final newline; NULL with err set. */
static char *read_template_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct stat sb;
	if (!f) {
		if (errno == ENOENT)
			snprintf(err, errlen, "unknown template '%s' (expected alpaca, "
					"llama2-chat, raw or a template file)", path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
		fclose(f);
		snprintf(err, errlen, "%s: template is not a regular file", path);
		return NULL;
	}
	size_t cap = 4096, n = 0, got;
	char *s = lp_malloc(cap);
	while ((got = fread(s + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (n + 1 == cap)
			s = lp_realloc(s, cap *= 2);
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
		free(s);
		return NULL;
	}
	if (n && s[n - 1] == '\n')
		n--;
	if (n && s[n - 1] == '\r')
		n--;
	s[n] = 0;
	if (strlen(s) != n) {
		snprintf(err, errlen, "%s: template file holds a NUL byte", path);
		free(s);
		return NULL;
	}
	if (!strstr(s, "{instruction}")) {
		snprintf(err, errlen, "%s: template file has no {instruction} placeholder", path);
		free(s);
		return NULL;
	}
	return s;
}

lp_template *lp_template_load(const char *name, const char *system, char *err, size_t errlen)
{
	char *text = NULL, *turn = NULL;
	for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
		if (!strcmp(name, builtin[i].name)) {
			text = lp_strdup(builtin[i].text);
			turn = builtin[i].turn ? lp_strdup(builtin[i].turn) : NULL;
		}
	if (!text && !(text = read_template_file(name, err, errlen)))
		return NULL;
	lp_template *t = lp_calloc(1, sizeof *t);
	t->name = lp_strdup(name);
	t->text = text;
	t->turn = turn;
	t->system = lp_strdup(system ? system : LP_TEMPLATE_SYSTEM_DEFAULT);
	return t;
}

void lp_template_free(lp_template *t)
{
	if (!t)
		return;
	free(t->name);
	free(t->text);
	free(t->turn);
	free(t->system);
	free(t);
}

const char *lp_template_name(const lp_template *t) { return t->name; }

/* Append s[0, n) to the growing string *buf (length *len, capacity *cap). */
static void append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	lp_grow((void **)buf, cap, *len + n + 1, 1);
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = 0;
}

static char *render(const lp_template *t, const char *p, const char *instruction)
{
	static const char ki[] = "{instruction}", ks[] = "{system}";
	char *out = NULL;
	size_t len = 0, cap = 0;
	append(&out, &len, &cap, "", 0);
	while (*p) {
		const char *brace = strchr(p, '{');
		if (!brace) {
			append(&out, &len, &cap, p, strlen(p));
			break;
		}
		append(&out, &len, &cap, p, brace - p);
		if (!strncmp(brace, ki, sizeof ki - 1)) {
			append(&out, &len, &cap, instruction, strlen(instruction));
			p = brace + sizeof ki - 1;
		} else if (!strncmp(brace, ks, sizeof ks - 1)) {
			append(&out, &len, &cap, t->system, strlen(t->system));
			p = brace + sizeof ks - 1;
		} else {
			append(&out, &len, &cap, "{", 1);
			p = brace + 1;
		}
	}
	return out;
}

char *lp_template_render(const lp_template *t, const char *instruction)
{
	return render(t, t->text, instruction);
}

int lp_template_has_turns(const lp_template *t) { return t->turn != NULL; }

char *lp_template_render_turn(const lp_template *t, const char *instruction)
{
	return render(t, t->turn ? t->turn : t->text, instruction);
}

char *lp_instruction_join(const char *instruction, const char *input)
{
	size_t a = strlen(instruction), b = input ? strlen(input) : 0;
	char *s = lp_malloc(a + b + 2);
	memcpy(s, instruction, a);
	if (b) {
		s[a] = '\n';
		memcpy(s + a + 1, input, b);
	}
	s[a + (b ? b + 1 : 0)] = 0;
	return s;
}
