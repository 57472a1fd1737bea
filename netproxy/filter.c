/* The job's seccomp filter. libseccomp builds it for the native arch only, so any other
 * architecture (i386 int 0x80, including socketcall) takes the bad-arch action, and libseccomp's
 * x86-64 prologue also sends x32 numbers (nr & __X32_SYSCALL_BIT) there; the unit tests check
 * both. We make that action ENOSYS rather than a kill so a probing libc falls back. */
#include "netproxy/netproxy-internal.h"

#include <fcntl.h>
#include <seccomp.h>
#include <sys/prctl.h>

static void seccomp_ctx_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

/* setsockopt(fd, level, name, ...) of the options listed in np_passed_opts: the level and name
 * are register arguments. Compared on their low 32 bits (they are ints; the upper half of the
 * register is not defined by the ABI). */
static int np_filter_sockopts(scmp_filter_ctx ctx)
{
	const uint64_t m = 0xffffffffu;
	for (size_t i = 0; i < np_passed_opts_n; i++) {
		int r = seccomp_rule_add(
			ctx, SCMP_ACT_NOTIFY, SCMP_SYS(setsockopt), 2,
			SCMP_A1(SCMP_CMP_MASKED_EQ, m, (uint32_t)np_passed_opts[i].level),
			SCMP_A2(SCMP_CMP_MASKED_EQ, m, (uint32_t)np_passed_opts[i].name));
		if (r < 0)
			return r;
	}
	return 0;
}

int netproxy_filter_install(unsigned flags)
{
#if !defined(__x86_64__)
	(void)flags;
	return -EOPNOTSUPP;
#else
	_cleanup_(seccomp_ctx_releasep) scmp_filter_ctx ctx = NULL;
	const uint64_t fo = MSG_FASTOPEN;
	int r;

	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return -ENOMEM;
	/* NO_NEW_PRIVS only when the kernel demands it: a caller with CAP_SYS_ADMIN in its user
	 * namespace (root, or a job's init in its own user namespace) may load a filter without
	 * it, and then setuid and file-capability programs in the job (sudo, ping, passwd) keep
	 * working as they would outside. libseccomp sets it by default. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	/* The kernel's own errno from seccomp_load (else -ECANCELED for all of them). */
	if (r >= 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
	if (r < 0)
		return r;
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS));
	if (r < 0)
		return r;
	/* io_uring would let the job connect without any syscall the filter sees. */
	int uring[] = {SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter),
		       SCMP_SYS(io_uring_register)};
	for (size_t i = 0; i < CK_ARRAY_SIZE(uring); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), uring[i], 0);
		if (r < 0)
			return r;
	}
	r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(connect), 0);
	if (r < 0)
		return r;
	/* TCP Fast Open connects implicitly; the flags are a register argument. */
	r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(sendto), 1,
			     SCMP_A3(SCMP_CMP_MASKED_EQ, fo, fo));
	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(sendmsg), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, fo, fo));
	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(sendmmsg), 1,
				     SCMP_A3(SCMP_CMP_MASKED_EQ, fo, fo));
	if (r >= 0 && (flags & NETPROXY_FILTER_NAMES)) {
		r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(getpeername), 0);
		if (r >= 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(getsockname), 0);
	}
	if (r >= 0 && (flags & NETPROXY_FILTER_SOCKOPTS))
		r = np_filter_sockopts(ctx);
	if (r < 0)
		return r;
	r = seccomp_load(ctx);
	if (r == -EACCES) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			return -errno;
		r = seccomp_load(ctx);
	}
	if (r < 0)
		return r;
	int fd = seccomp_notify_fd(ctx);
	if (fd < 0)
		return fd;
	/* libseccomp hands out the listener without FD_CLOEXEC. */
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	return fd;
#endif
}
