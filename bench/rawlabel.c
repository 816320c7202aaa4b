/* The floor for a recursive relabel, used by bench/relabel.sh: one walk, one core, one
 * lsetxattr of security.selinux per entry, symlinks never followed (FTW_PHYS) and labeled
 * themselves. No originals read, nothing remembered, no safety checks beyond FTW_PHYS.
 *   gcc -O2 -o rawlabel bench/rawlabel.c
 *   rawlabel LABEL DIR        exit 1 on the first entry that cannot be labeled
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

static const char *label;
static size_t label_len;

static int one(const char *path, const struct stat *st, int kind, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (kind == FTW_NS || kind == FTW_DNR) {
		fprintf(stderr, "rawlabel: cannot read %s\n", path);
		return 1;
	}
	/* The terminating NUL is part of the value, as libselinux writes it. */
	if (lsetxattr(path, "security.selinux", label, label_len + 1, 0) != 0) {
		perror(path);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: rawlabel LABEL DIR\n");
		return 2;
	}
	label = argv[1];
	label_len = strlen(label);
	return nftw(argv[2], one, 64, FTW_PHYS) == 0 ? 0 : 1;
}
