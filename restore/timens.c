/* The time namespace a job runs in (restore_timens_enter) and the clocks an image recorded.
 *
 * CLOCK_MONOTONIC and CLOCK_BOOTTIME restart near zero at a reboot, and go on while a job is
 * checkpointed and not running. A time namespace adds fixed offsets to both for its members
 * (syscalls and vDSO alike); the offsets can only be written while no process has entered it.
 * So: unshare(CLONE_NEWTIME) (the new namespace is only our children's), compute and write the
 * offsets, then setns() into it ourselves; from then on they are frozen. Offsets are relative
 * to the host's clocks, not to the namespace we come from: host = what we read - our offsets. */
#include "common/ck.h"
#include "restore/restore.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <sys/stat.h>
#include <stdio.h>
#include <time.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

int restore_image_clocks(int dirfd, const char *id, uint64_t *ret_mono, uint64_t *ret_boot,
			 struct restore_err *err)
{
	struct restore_image *img = NULL;
	int r = restore_image_load(dirfd, id, &img, err);
	if (r < 0)
		return r;
	if (img->timers.flags & RESTORE_TIMERS_F_VALID) {
		*ret_mono = img->timers.mono_ns;
		*ret_boot = img->timers.boot_ns;
	} else {
		r = -ENODATA;
	}
	restore_image_free(img);
	return r;
}

static int64_t now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Our own namespace's offsets (ns): /proc/self/timens_offsets shows the namespace of our
 * children, which is ours as long as we have not unshared one (checked by the caller). */
static int own_offsets(int64_t off[2])
{
	_cleanup_free_ char *s = NULL;
	size_t len;
	int r = ck_read_file_at(AT_FDCWD, "/proc/self/timens_offsets", 4096, &s, &len);
	if (r == -ENOENT)
		return -EINVAL; /* no CONFIG_TIME_NS */
	if (r < 0)
		return r;
	off[0] = off[1] = 0;
	for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char name[32];
		long long sec;
		unsigned long nsec;
		if (sscanf(l, "%31s %lld %lu", name, &sec, &nsec) != 3)
			continue;
		int64_t v = sec * 1000000000 + (int64_t)nsec;
		if (!strcmp(name, "monotonic") || !strcmp(name, "1"))
			off[0] = v;
		else if (!strcmp(name, "boottime") || !strcmp(name, "7"))
			off[1] = v;
	}
	return 0;
}

static int same_ns(const char *a, const char *b)
{
	struct stat x, y;
	if (stat(a, &x) < 0 || stat(b, &y) < 0)
		return -errno;
	return x.st_ino == y.st_ino && x.st_dev == y.st_dev;
}

static void fmt_off(char *buf, size_t len, const char *name, int64_t v)
{
	/* "SECS NSECS" with 0 <= NSECS < 1e9: a negative offset has a negative seconds part. */
	int64_t sec = v / 1000000000, ns = v % 1000000000;
	if (ns < 0) {
		ns += 1000000000;
		sec--;
	}
	snprintf(buf, len, "%s %" PRId64 " %" PRId64 "\n", name, sec, ns);
}

int restore_timens_enter(const uint64_t clocks[2], struct restore_err *err)
{
#define FAIL(r, ...)                                                       \
	do {                                                               \
		if (err)                                                   \
			snprintf(err->msg, sizeof(err->msg), __VA_ARGS__); \
		return (r);                                                \
	} while (0)
	int r = same_ns("/proc/self/ns/time", "/proc/self/ns/time_for_children");
	if (r == -ENOENT)
		FAIL(-EINVAL, "this kernel has no time namespaces (CONFIG_TIME_NS)");
	if (r < 0)
		FAIL(r, "cannot read /proc/self/ns/time: %s", strerror(-r));
	if (r == 0)
		FAIL(-EBUSY, "a time namespace was already unshared for our children");
	int64_t own[2] = {0, 0};
	if (clocks && (r = own_offsets(own)) < 0)
		FAIL(r, "cannot read /proc/self/timens_offsets: %s", strerror(-r));
	if (unshare(CLONE_NEWTIME) < 0)
		FAIL(-errno, "cannot create a time namespace (unshare CLONE_NEWTIME): %m");
	if (clocks) {
		/* As late as possible: the clocks go on from @clocks when this is computed. */
		int64_t off[2] = {(int64_t)clocks[0] - (now_ns(CLOCK_MONOTONIC) - own[0]),
				  (int64_t)clocks[1] - (now_ns(CLOCK_BOOTTIME) - own[1])};
		char text[160], l2[80];
		fmt_off(text, sizeof(text), "monotonic", off[0]);
		fmt_off(l2, sizeof(l2), "boottime", off[1]);
		strncat(text, l2, sizeof(text) - strlen(text) - 1);
		_cleanup_close_ int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			FAIL(-errno, "cannot open /proc/self/timens_offsets: %m");
		ssize_t n = write(fd, text, strlen(text));
		if (n < 0)
			FAIL(-errno, "cannot set the clocks of the time namespace (%s): %m",
			     "/proc/self/timens_offsets");
		if ((size_t)n != strlen(text))
			FAIL(-EIO, "short write to /proc/self/timens_offsets");
	}
	_cleanup_close_ int ns = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		FAIL(-errno, "cannot open /proc/self/ns/time_for_children: %m");
	if (setns(ns, CLONE_NEWTIME) < 0)
		FAIL(-errno, "cannot enter the new time namespace (setns): %m");
	return 0;
#undef FAIL
}
