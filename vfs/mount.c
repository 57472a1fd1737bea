/* vfs_mount_fuse: the job side of the mount. It runs in the job's mount namespace (and user
 * namespace, if any) because the kernel only accepts a /dev/fuse file whose opener's user
 * namespace is the one the mount is made in (file->f_cred->user_ns == fc->user_ns). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/ck.h"
#include "vfs/vfs.h"

static void bdi_set(dev_t dev, const char *knob, const char *value)
{
	char p[96];
	snprintf(p, sizeof(p), "/sys/class/bdi/%u:%u/%s", major(dev), minor(dev), knob);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd >= 0)
		(void)!write(fd, value, strlen(value));
}

/* Best effort (needs root on the host; silently skipped otherwise), on the mount's own
 * backing_dev_info, before the daemon answers INIT:
 * read_ahead_kb 8192: the kernel caps FUSE readahead at min(bdi default 128 KiB,
 *    max_readahead), and offers the result as max_readahead in INIT: 8 MiB lets a sequential
 *    read keep several 1 MiB READs in flight (128 KiB READs otherwise).
 * (The writeback limits, strict_limit and max_ratio 1%, are left alone: raising max_ratio
 * showed no clear gain here and would let syncfs at a commit drain more.) */
static void tune_bdi(const char *target)
{
	/* Not stat(target): that would wait for the INIT reply, which needs our caller first.
	 * The newest mountinfo line for @target names the mount's device. */
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char line[1024], mnt[512];
	unsigned maj, min;
	dev_t dev = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %u:%u %*s %511s", &maj, &min, mnt) == 3 &&
		    strcmp(mnt, target) == 0 && strstr(line, " - fuse.ckptenv "))
			dev = makedev(maj, min);
	fclose(f);
	if (dev == 0)
		return;
	bdi_set(dev, "read_ahead_kb", "8192");
}

int vfs_mount_fuse(const char *target, bool allow_other, int *ret_fd)
{
	if (!target || !ret_fd)
		return -EINVAL;

	_cleanup_close_ int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;

	/* default_permissions: the kernel checks modes, so the daemon never has to. */
	char data[160];
	int n = snprintf(data, sizeof(data),
			 "fd=%d,rootmode=40000,user_id=%u,group_id=%u,default_permissions%s", fd,
			 (unsigned)getuid(), (unsigned)getgid(), allow_other ? ",allow_other" : "");
	if (n < 0 || (size_t)n >= sizeof(data))
		return -ENAMETOOLONG;
	if (mount("ckptenv", target, "fuse.ckptenv", MS_NOSUID | MS_NODEV, data) < 0)
		return -errno;
	tune_bdi(target);

	*ret_fd = TAKE_FD(fd);
	return 0;
}
