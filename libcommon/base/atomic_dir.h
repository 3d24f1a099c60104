/* atomic_dir.h: an output directory that appears whole or not at all.
 *
 * The files go to a temporary directory next to the real one,
 * "<parent>/.<name>.tmp.<pid>", which is renamed to the real name by
 * lp_atomic_dir_commit() after every file and the directory are fsynced.
 * Until then, lp_die(), exit() and SIGINT/SIGTERM/SIGHUP/SIGPIPE remove
 * the temporary directory and the files registered in it (and their own
 * lp_atomic temporaries, ".<file>.tmp.<pid>"), so an interrupted run
 * leaves nothing that looks like output. A run killed with SIGKILL leaves
 * its temporary directory behind; the next lp_atomic_dir_create() for the
 * same path removes such leftovers whose process is gone.
 *
 * An existing path is refused unless force is set; then the old directory
 * (or file) is swapped out on commit with one rename and removed after.
 *
 * LP_ATOMIC_DIR_NO_SIGNALS leaves signals alone: the directory is removed
 * on lp_die() and exit() only, for a program that answers a signal by
 * finishing what it writes (lora-train's checkpoint on SIGTERM). */
#ifndef LP_ATOMIC_DIR_H
#define LP_ATOMIC_DIR_H

typedef struct lp_atomic_dir lp_atomic_dir;

enum { LP_ATOMIC_DIR_FORCE = 1, LP_ATOMIC_DIR_NO_SIGNALS = 2 };

/* Create the temporary directory for path; dies naming path if path
 * exists (and !force) or the directory cannot be made. */
lp_atomic_dir *lp_atomic_dir_create(const char *path, int force);
/* The same with LP_ATOMIC_DIR_* flags. */
lp_atomic_dir *lp_atomic_dir_create_flags(const char *path, int flags);
/* The temporary directory. */
const char *lp_atomic_dir_tmp(const lp_atomic_dir *d);
/* "<tmp>/<name>" (malloc'd), registered for removal on failure. name is a
 * plain file name, no slashes. */
char *lp_atomic_dir_path(lp_atomic_dir *d, const char *name);
/* fsync the directory, rename it to its path, fsync the parent; frees d. */
void lp_atomic_dir_commit(lp_atomic_dir *d);

/* Replace-or-refuse for a single output file: dies "path: exists" when
 * path exists and !force (lp_atomic_* then replaces it atomically). */
void lp_refuse_existing(const char *path, int force);

/* Remove path and, if it is a directory, everything under it (links are
 * removed, not followed); what cannot be removed is warned about. */
void lp_remove_tree(const char *path);

#endif
