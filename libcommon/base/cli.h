/* cli.h: the command-line conventions every tool shares.
 *
 * -h/--help prints the usage text, -V/--version the version, both on
 * stdout with exit 0; an unknown option, or one without its value, is one
 * line on stderr and exit 2. The same letter means the same thing in every
 * tool (README, "One set of flags"): -M/--model DIR, -m/--tokenizer FILE,
 * -A/--adapter DIR, -o/--output, -f/--force, -t/--template, -d/--dtype,
 * -j/--threads, -l/--max-len, -b/--batch-size, -q/--quiet. A spelling that
 * meant something else before is kept for one release and warned about. */
#ifndef LP_CLI_H
#define LP_CLI_H

#define LP_VERSION "0.2.0"

/* "prog (llamapipe) VERSION\n" on stdout; exit 0. */
_Noreturn void lp_version_exit(void);
/* usage on stdout; exit 0. */
_Noreturn void lp_help_exit(const char *usage);
/* getopt_long returned '?': "prog: unrecognized option '--x' (see 'prog
 * --help')" or "...: option '-x' needs a value", one line; exit 2. getopt's
 * own message is off (lp_init sets opterr = 0). */
_Noreturn void lp_bad_option(int argc, char **argv, const char *shortopts);
/* An old spelling, kept for now: "prog: OLD is deprecated: write NOW
 * (WHY)" once per spelling. why may be NULL. */
void lp_deprecated(const char *old, const char *now, const char *why);

#endif
