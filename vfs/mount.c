/* vfs_mount_fuse: the job side of the mount. It runs in the job's mount namespace (and user
 * namespace, if any) because the kernel only accepts a /dev/fuse file whose opener's user
 * namespace is the one the mount is made in (file->f_cred->user_ns == fc->user_ns). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <unistd.h>

#include "common/ck.h"
#include "vfs/vfs.h"

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

	*ret_fd = TAKE_FD(fd);
	return 0;
}
