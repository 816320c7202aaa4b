/* The floor of a journaled recursive relabel, used by bench/relabel.sh: the calls svirt's walk
 * cannot do without for each entry, and nothing else. Each entry is read before it is changed
 * (its original must be known before it is lost) and each regular file's link count is read
 * (a file with a name outside the share must not be changed through it), all relative to the
 * directory's fd, never following a symlink. Nothing is remembered, no mark written, no
 * store: what is left between this floor and svirt is svirt's own cost.
 *   gcc -O2 -pthread -o rawfloor bench/rawfloor.c
 *   rawfloor selinux LABEL DIR THREADS   getxattrat + statx (files) + setxattrat
 *   rawfloor dac UID GID DIR THREADS     statx + fchownat + fchmodat2 (0600, 0700 for dirs)
 * The top-level directories of DIR are dealt to THREADS threads; exit 1 on the first failure.
 * Needs Linux 6.13 (getxattrat/setxattrat) and 6.6 (fchmodat2).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

struct xattr_args {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

static int dac;
static const char *label;
static uint32_t label_size;
static uid_t uid;
static gid_t gid;
static char **tops;
static int ntops;
static atomic_int next_top;
static atomic_int failed;

static int fail(const char *what, const char *name)
{
	fprintf(stderr, "rawfloor: %s %s: %s\n", what, name, strerror(errno));
	atomic_store(&failed, 1);
	return -1;
}

/* Read, then change, the entry NAME of DIRFD. */
static int one(int dirfd, const char *name, int is_dir)
{
	struct statx sx;
	if (dac) {
		if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) != 0)
			return fail("statx", name);
		if (fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
			return fail("fchownat", name);
		if (S_ISLNK(sx.stx_mode))
			return 0;
		if (syscall(SYS_fchmodat2, dirfd, name, is_dir ? 0700 : 0600, AT_SYMLINK_NOFOLLOW) != 0)
			return fail("fchmodat2", name);
		return 0;
	}
	char buf[256];
	struct xattr_args get = { (uintptr_t)buf, sizeof buf, 0 };
	if (syscall(SYS_getxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, "security.selinux", &get,
		    sizeof get) < 0 && errno != ENODATA)
		return fail("getxattrat", name);
	if (!is_dir && statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) != 0)
		return fail("statx", name);
	struct xattr_args set = { (uintptr_t)label, label_size, 0 };
	if (syscall(SYS_setxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, "security.selinux", &set,
		    sizeof set) != 0)
		return fail("setxattrat", name);
	return 0;
}

/* Every entry below the directory DIRFD (closed here), depth first. */
static int below(int dirfd)
{
	DIR *d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return fail("fdopendir", "");
	}
	struct dirent *e;
	int r = 0;
	while (r == 0 && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int is_dir = e->d_type == DT_DIR;
		if (is_dir) {
			int sub = openat(dirfd, e->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				r = fail("open", e->d_name);
				break;
			}
			r = below(sub);
		}
		if (r == 0)
			r = one(dirfd, e->d_name, is_dir);
	}
	closedir(d);
	return r;
}

static int root_fd;

static void *worker(void *unused)
{
	(void)unused;
	for (;;) {
		int i = atomic_fetch_add(&next_top, 1);
		if (i >= ntops || atomic_load(&failed))
			return NULL;
		int sub = openat(root_fd, tops[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0 || below(sub) != 0 || one(root_fd, tops[i], 1) != 0) {
			if (sub < 0)
				fail("open", tops[i]);
			return NULL;
		}
	}
}

int main(int argc, char **argv)
{
	const char *dir;
	int threads;
	if (argc == 5 && !strcmp(argv[1], "selinux")) {
		label = argv[2];
		label_size = strlen(label) + 1; /* the NUL is part of the value */
		dir = argv[3];
		threads = atoi(argv[4]);
	} else if (argc == 6 && !strcmp(argv[1], "dac")) {
		dac = 1;
		uid = atoi(argv[2]);
		gid = atoi(argv[3]);
		dir = argv[4];
		threads = atoi(argv[5]);
	} else {
		fprintf(stderr, "usage: rawfloor selinux LABEL DIR THREADS | dac UID GID DIR THREADS\n");
		return 2;
	}
	if (threads < 1 || threads > 64) {
		fprintf(stderr, "rawfloor: THREADS must be 1..64\n");
		return 2;
	}
	root_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root_fd < 0)
		return fail("open", dir), 1;
	/* The top-level entries: directories are dealt to the threads, the rest done here. */
	DIR *d = fdopendir(dup(root_fd));
	if (!d)
		return fail("fdopendir", dir), 1;
	struct dirent *e;
	int cap = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_type != DT_DIR) {
			if (one(root_fd, e->d_name, 0) != 0)
				return 1;
			continue;
		}
		if (ntops == cap) {
			cap = cap ? 2 * cap : 64;
			tops = realloc(tops, cap * sizeof *tops);
			if (!tops)
				return fail("realloc", dir), 1;
		}
		tops[ntops++] = strdup(e->d_name);
	}
	closedir(d);
	pthread_t t[64];
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	if (atomic_load(&failed))
		return 1;
	/* The root itself, through its parent as every other entry. */
	if (dac) {
		if (fchown(root_fd, uid, gid) != 0 || fchmod(root_fd, 0700) != 0)
			return fail("root", dir), 1;
	} else {
		struct xattr_args set = { (uintptr_t)label, label_size, 0 };
		if (syscall(SYS_setxattrat, root_fd, "", AT_EMPTY_PATH, "security.selinux", &set,
			    sizeof set) != 0)
			return fail("setxattrat", dir), 1;
	}
	return 0;
}
