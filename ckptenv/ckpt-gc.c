/* Dropping checkpoints and collecting what a crash left behind.
 *
 * Invariant: a checkpoint ID that is visible (checkpoints/ID with a valid manifest) always has
 * its vfs ref "ckpt-ID" pointing at the manifest's epoch. Creation sets the ref first and
 * renames .ID.tmp to ID last (sup-ckpt.c); dropping is the mirror image: rename ID to .ID.del
 * (invisible from then on), fsync the directory, then drop the ref, then delete the files. So a
 * kill -9 at any instant leaves at worst a ref without a checkpoint, or a .ID.tmp / .ID.del
 * directory (or a LATEST.tmp.PID); ckpt_sweep() removes them (at supervisor start and before every checkpoint, when
 * no checkpoint can be in progress: only the supervisor that holds the job lock writes them). */
#include "ckpt-gc.h"
#include "ckpt.h"

#include "common/ck.h"
#include "vfs/vfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static void ref_name(uint64_t id, char *buf, size_t len)
{
	snprintf(buf, len, "ckpt-%llu", (unsigned long long)id);
}

int ckpt_drop(int ckdir, struct vfs *v, uint64_t id)
{
	char name[24], del[32], ref[48];
	snprintf(name, sizeof(name), "%llu", (unsigned long long)id);
	snprintf(del, sizeof(del), ".%s.del", name);
	ref_name(id, ref, sizeof(ref));
	if (renameat(ckdir, name, ckdir, del) < 0)
		return -errno;
	if (fsync(ckdir) < 0)
		return -errno;
	/* LATEST may now name this dropped id: ckpt_latest() then takes the highest complete
	 * one, and ckpt_next_id() never gives this id again. */
	int r = vfs_ref_drop(v, ref);
	if (r == -ENOENT)
		r = 0;
	int rd = ck_rm_rf_at(ckdir, del);
	return r < 0 ? r : rd;
}

int ckpt_prune(int ckdir, struct vfs *v, uint32_t keep, uint64_t *dropped, size_t max,
	       size_t *ret_n)
{
	*ret_n = 0;
	if (!keep)
		return 0;
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r = ckpt_list(ckdir, &ids, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i + keep < n; i++) {
		r = ckpt_drop(ckdir, v, ids[i]);
		if (r < 0)
			return r;
		if (*ret_n < max)
			dropped[*ret_n] = ids[i];
		(*ret_n)++;
	}
	return 0;
}

/* ".12.tmp" or ".12.del", or "LATEST.tmp.PID" (ck_write_file_atomic's, killed) -> true. */
static bool stale_name(const char *s)
{
	size_t l = strlen(s);
	if (!strncmp(s, CKPT_LATEST ".tmp.", strlen(CKPT_LATEST) + 5))
		return true;
	if (l < 6 || s[0] != '.' || (strcmp(s + l - 4, ".tmp") && strcmp(s + l - 4, ".del")))
		return false;
	return strspn(s + 1, "0123456789") == l - 5;
}

/* Up to 64 stale directories removed per call; *ret_n says how many. */
static int sweep_some(int ckdir, size_t *ret_n)
{
	DIR *d = NULL;
	int r = ckpt_dir_stream(ckdir, &d);
	if (r < 0)
		return r;
	struct dirent *de;
	/* Removing while reading: readdir may then skip or repeat entries, so collect first. */
	char names[64][32];
	size_t n = 0;
	while ((de = readdir(d)) && n < 64)
		if (stale_name(de->d_name) && strlen(de->d_name) < sizeof(names[0]))
			strcpy(names[n++], de->d_name);
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		int e = ck_rm_rf_at(ckdir, names[i]);
		if (e < 0 && r == 0)
			r = e;
	}
	*ret_n = n;
	return r;
}

static int sweep_dirs(int ckdir, size_t *ret_n)
{
	size_t n;
	int r;
	*ret_n = 0;
	do {
		r = sweep_some(ckdir, &n);
		*ret_n += n;
	} while (r == 0 && n == 64);
	return r;
}

int ckpt_sweep(int ckdir, struct vfs *v, const char *store_dir, struct ckpt_sweep_stats *ret)
{
	struct ckpt_sweep_stats st = {0};
	int r = sweep_dirs(ckdir, &st.dirs);
	struct vfs_ref *refs = NULL;
	size_t n = 0;
	int rr = vfs_refs_list(store_dir, &refs, &n);
	if (rr < 0 && rr != -ENOENT && r == 0)
		r = rr;
	_cleanup_free_ uint64_t *ids = NULL;
	size_t nids = 0;
	rr = ckpt_list(ckdir, &ids, &nids);
	if (rr < 0 && r == 0)
		r = rr;
	for (size_t i = 0; rr == 0 && i < n; i++) {
		if (strncmp(refs[i].name, "ckpt-", 5))
			continue;
		uint64_t id = strtoull(refs[i].name + 5, NULL, 10);
		bool found = false;
		for (size_t k = 0; k < nids && !found; k++)
			found = ids[k] == id;
		if (found)
			continue;
		int e = vfs_ref_drop(v, refs[i].name);
		if (e < 0 && e != -ENOENT && r == 0)
			r = e;
		else
			st.refs++;
	}
	free(refs);
	if (ret)
		*ret = st;
	return r;
}

int ckpt_check(int ckdir, const char *store_dir, ckpt_check_fn fn, void *ud)
{
	/* In this order, against a supervisor checkpointing or dropping meanwhile: a checkpoint
	 * listed had its ref before it became visible, so the refs read after the listing have
	 * it; and one whose directory still opens after the refs were read was not yet being
	 * dropped when they were (a drop renames it before dropping the ref). */
	_cleanup_free_ uint64_t *ids = NULL;
	size_t nids = 0;
	int r = ckpt_list(ckdir, &ids, &nids);
	if (r < 0)
		return r;
	struct vfs_ref *refs = NULL;
	size_t n = 0;
	r = vfs_refs_list(store_dir, &refs, &n);
	if (r < 0 && r != -ENOENT)
		return r;
	r = 0;
	int bad = 0;
	for (size_t k = 0; r == 0 && k < nids; k++) {
		char name[24], ref[48];
		snprintf(name, sizeof(name), "%llu", (unsigned long long)ids[k]);
		ref_name(ids[k], ref, sizeof(ref));
		_cleanup_close_ int fd = openat(ckdir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct ckpt_manifest m;
		if (fd < 0 || ckpt_manifest_read(fd, &m) < 0)
			continue; /* dropped meanwhile */
		const struct vfs_ref *found = NULL;
		for (size_t i = 0; i < n && !found; i++)
			if (!strcmp(refs[i].name, ref))
				found = &refs[i];
		if (!found || found->epoch != m.epoch) {
			bad++;
			fn(ud, ids[k], m.epoch, found ? found->epoch : 0);
		}
	}
	free(refs);
	return r < 0 ? r : bad;
}

/* Bytes allocated below @at/@path (st_blocks), not following symlinks or other mounts. */
static uint64_t du_at(int at, const char *path, dev_t dev, int depth)
{
	struct stat st;
	if (fstatat(at, path, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
		return 0;
	uint64_t total = (uint64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode) || depth > 64)
		return total;
	int fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return total;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return total;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			total += du_at(dirfd(d), de->d_name, dev, depth + 1);
	closedir(d);
	return total;
}

int ckpt_space(int job_fd, struct ckpt_space *ret)
{
	struct stat st;
	if (fstat(job_fd, &st) < 0)
		return -errno;
	/* Not the store's reserve: space set aside, not used (docs/vfs.md). */
	uint64_t res = du_at(job_fd, "store/" VFS_STORE_RESERVE, st.st_dev, 0);
	*ret = (struct ckpt_space){.total = du_at(job_fd, ".", st.st_dev, 0) - res,
				   .store = du_at(job_fd, "store", st.st_dev, 0) - res,
				   .checkpoints = du_at(job_fd, CKPT_DIR, st.st_dev, 0)};
	return 0;
}
