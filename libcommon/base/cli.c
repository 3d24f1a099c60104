/* cli.c: the shared command-line conventions (see cli.h). */
#include "base/cli.h"
#include "base/common.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lp_version_exit(void)
{
	printf("%s (llamapipe) %s\n", lp_prog, LP_VERSION);
	lp_close_stdout();
	exit(0);
}

void lp_help_exit(const char *usage)
{
	fputs(usage, stdout);
	lp_close_stdout();
	exit(0);
}

void lp_bad_option(int argc, char **argv, const char *shortopts)
{
	const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "";
	if (word[0] == '-' && word[1] == '-') {
		size_t n = strcspn(word, "=");
		if (!optopt)
			lp_usage_error("unrecognized option '%.*s'", (int)n, word);
		if (word[n])
			lp_usage_error("option '%.*s' takes no value", (int)n, word);
		lp_usage_error("option '%s' needs a value", word);
	}
	if (optopt && optopt != ':' && strchr(shortopts, optopt))
		lp_usage_error("option '-%c' needs a value", optopt);
	lp_usage_error("unrecognized option '-%c'", optopt ? optopt : '?');
}

void lp_deprecated(const char *old, const char *now, const char *why)
{
	static char seen[16][32];
	static int nseen;
	for (int i = 0; i < nseen; i++)
		if (!strcmp(seen[i], old))
			return;
	if (nseen < 16)
		snprintf(seen[nseen++], sizeof seen[0], "%s", old);
	lp_warn(NULL, "%s is deprecated: write %s%s%s%s", old, now, why ? " (" : "",
			why ? why : "", why ? ")" : "");
}
