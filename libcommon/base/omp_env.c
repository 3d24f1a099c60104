/* omp_env.c: OpenMP threads of every tool wait passively unless the user
 * chose otherwise.
 *
 * libgomp spins idle threads for a while before it puts them to sleep.
 * On a machine shared with other work a spinning thread takes a core from
 * one that has work, and every parallel region then waits for descheduled
 * threads: kernels ran many times slower. OMP_WAIT_POLICY=passive makes
 * idle threads sleep at once. libgomp reads its environment when it is
 * loaded, before any code of the program runs, so setting the variable in
 * main() would be too late: when OMP_WAIT_POLICY is unset, this
 * constructor sets it and runs the program again (execv of /proc/self/exe
 * with the same arguments). When the execv fails the program carries on
 * with libgomp's default. A user's OMP_WAIT_POLICY, whatever it says, is
 * left alone. Under valgrind, whose /proc/self/exe is valgrind itself and
 * whose children run unwatched, nothing is done. */
#include "base/common.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Called by lp_init() so that every program links this file. */
void lp_omp_env_link(void)
{
}

/* glibc calls .init_array functions of the executable with (argc, argv,
 * envp), after the shared libraries' own constructors. */
static void passive_wait(int argc, char **argv, char **envp)
{
	(void)envp;
	const char *preload = getenv("LD_PRELOAD");
	if (argc < 1 || !argv || !argv[0] || getenv("OMP_WAIT_POLICY"))
		return;
	if (preload && strstr(preload, "vgpreload"))
		return;
	if (setenv("OMP_WAIT_POLICY", "passive", 1) == 0)
		execv("/proc/self/exe", argv);
}

__attribute__((section(".init_array"), used))
static void (*const passive_wait_init)(int, char **, char **) = passive_wait;
