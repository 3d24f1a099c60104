/* atomic_dir.c: a directory written under a temporary name, renamed whole. */
#include "base/atomic_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/common.h"

#define MAX_FILES 4096

struct lp_atomic_dir {
	char *path, *tmp, *parent;
	/* registered files: the final name and lp_atomic's temporary for it,
	 * both made up front so removal needs no allocation (signal handler) */
	char *file[MAX_FILES], *file_tmp[MAX_FILES];
	int nfiles;
	int force, exists;
	int on_signal;          /* removed by the signal handler too */
	struct lp_atomic_dir *next;
};

static struct lp_atomic_dir *pending;
static int hooked_exit, hooked_signals;
static struct sigaction old_action[4];
static const int signals[4] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };

/* Async-signal-safe: unlink and rmdir only. */
static void remove_dir(struct lp_atomic_dir *d)
{
	for (int i = 0; i < d->nfiles; i++) {
		unlink(d->file_tmp[i]);
		unlink(d->file[i]);
	}
	rmdir(d->tmp);
}

static void remove_pending(void)
{
	for (struct lp_atomic_dir *d = pending; d; d = d->next)
		remove_dir(d);
}

static void on_signal(int sig)
{
	for (struct lp_atomic_dir *d = pending; d; d = d->next)
		if (d->on_signal)
			remove_dir(d);
	for (int i = 0; i < 4; i++)
		if (signals[i] == sig)
			sigaction(sig, &old_action[i], NULL);
	raise(sig); /* now handled as before us (lp_init's handler, or death) */
}

static void hook(int signals_too)
{
	if (!hooked_exit) {
		hooked_exit = 1;
		atexit(remove_pending);
	}
	if (!signals_too || hooked_signals)
		return;
	hooked_signals = 1;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 4; i++)
		sigaction(signals[i], &sa, &old_action[i]);
}

static char *join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *s = lp_malloc(n);
	snprintf(s, n, "%s/%s", a, b);
	return s;
}

/* Leftovers of killed runs: "<parent>/.<base>.tmp.<pid>" directories whose
 * process is gone, holding only plain files. */
static void remove_stale(const char *parent, const char *base)
{
	DIR *dir = opendir(parent);
	if (!dir)
		return;
	size_t blen = strlen(base);
	struct dirent *de;
	while ((de = readdir(dir))) {
		const char *s = de->d_name;
		if (s[0] != '.' || strncmp(s + 1, base, blen) || strncmp(s + 1 + blen, ".tmp.", 5))
			continue;
		char *end;
		long pid = strtol(s + 1 + blen + 5, &end, 10);
		if (*end || pid <= 0 || pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		char *p = join(parent, s);
		struct stat st;
		DIR *sub = lstat(p, &st) == 0 && S_ISDIR(st.st_mode) ? opendir(p) : NULL;
		int clean = sub != NULL;
		struct dirent *fe;
		while (sub && (fe = readdir(sub))) {
			if (!strcmp(fe->d_name, ".") || !strcmp(fe->d_name, ".."))
				continue;
			char *f = join(p, fe->d_name);
			if (lstat(f, &st) == 0 && S_ISREG(st.st_mode))
				unlink(f);
			else
				clean = 0;
			free(f);
		}
		if (sub)
			closedir(sub);
		if (clean && rmdir(p) == 0)
			lp_info("removed %s, left by an interrupted run", p);
		free(p);
	}
	closedir(dir);
}

void lp_refuse_existing(const char *path, int force)
{
	struct stat st;
	if (!force && lstat(path, &st) == 0)
		lp_die(path, "exists (remove it first, or use --force)");
}

lp_atomic_dir *lp_atomic_dir_create(const char *path, int force)
{
	return lp_atomic_dir_create_flags(path, force ? LP_ATOMIC_DIR_FORCE : 0);
}

lp_atomic_dir *lp_atomic_dir_create_flags(const char *path, int flags)
{
	int force = flags & LP_ATOMIC_DIR_FORCE;
	lp_atomic_dir *d = lp_calloc(1, sizeof *d);
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	d->path = lp_malloc(n + 1);
	memcpy(d->path, path, n);
	d->path[n] = 0;
	char *slash = strrchr(d->path, '/');
	const char *base = slash ? slash + 1 : d->path;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		lp_die(path, "not a usable output name");
	d->parent = slash ? lp_strdup(slash == d->path ? "/" : d->path) : lp_strdup(".");
	if (slash && slash != d->path)
		d->parent[slash - d->path] = 0;
	struct stat st;
	if (lstat(d->path, &st) == 0) {
		if (!force)
			lp_die(d->path, "exists (remove it first, or use --force)");
		d->exists = 1;
	}
	d->force = force;
	remove_stale(d->parent, base);
	char name[4096];
	snprintf(name, sizeof name, ".%s.tmp.%ld", base, (long)getpid());
	d->tmp = join(d->parent, name);
	d->on_signal = !(flags & LP_ATOMIC_DIR_NO_SIGNALS);
	hook(d->on_signal);
	if (mkdir(d->tmp, 0777) != 0)
		lp_die(d->tmp, "cannot make directory: %s", strerror(errno));
	d->next = pending;
	pending = d;
	return d;
}

const char *lp_atomic_dir_tmp(const lp_atomic_dir *d)
{
	return d->tmp;
}

char *lp_atomic_dir_path(lp_atomic_dir *d, const char *name)
{
	if (strchr(name, '/') || !*name)
		lp_die(d->path, "bad file name '%s'", name);
	if (d->nfiles == MAX_FILES)
		lp_die(d->path, "more than %d files", MAX_FILES);
	char t[4096];
	snprintf(t, sizeof t, ".%s.tmp.%ld", name, (long)getpid());
	d->file_tmp[d->nfiles] = join(d->tmp, t);
	d->file[d->nfiles] = join(d->tmp, name);
	return lp_strdup(d->file[d->nfiles++]);
}

static void fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		lp_die(path, "cannot open directory: %s", strerror(errno));
	if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
		lp_die(path, "fsync: %s", strerror(errno));
	close(fd);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP ? rmdir(p) : unlink(p))
		lp_warn(p, "cannot remove: %s", strerror(errno));
	return 0;
}

void lp_remove_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0)
		nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void unlink_pending(lp_atomic_dir *d)
{
	for (lp_atomic_dir **pp = &pending; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
}

void lp_atomic_dir_commit(lp_atomic_dir *d)
{
	fsync_dir(d->tmp);
	if (d->exists) {
		/* swap the new directory in with one rename, then remove the
		 * old one, now under the temporary name */
		if (renameat2(AT_FDCWD, d->tmp, AT_FDCWD, d->path, RENAME_EXCHANGE) != 0)
			lp_die(d->path, "cannot replace: %s", strerror(errno));
		unlink_pending(d);
		fsync_dir(d->parent);
		nftw(d->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	} else {
		if (rename(d->tmp, d->path) != 0)
			lp_die(d->path, "cannot rename %s: %s", d->tmp, strerror(errno));
		unlink_pending(d);
		fsync_dir(d->parent);
	}
	for (int i = 0; i < d->nfiles; i++) {
		free(d->file[i]);
		free(d->file_tmp[i]);
	}
	free(d->path);
	free(d->tmp);
	free(d->parent);
	free(d);
}
