/* Helpers shared by the subcommands: one-line errors, opening a job, formatting. */
#include "ckptenv.h"

#include "common/ck.h"
#include "control.h"
#include "state.h"
#include "vfs/vfs.h"

#include <fcntl.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <time.h>

void cli_error(const char *cmd, const char *name, const char *fmt, ...)
{
	char msg[1024], line[1400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (name)
		snprintf(line, sizeof(line), "ckptenv: %s %s: %s", cmd, name, msg);
	else
		snprintf(line, sizeof(line), "ckptenv: %s: %s", cmd, msg);
	/* One line, and no escape sequence of a name or argument reaches the terminal. */
	for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			fprintf(stderr, "\\x%02x", *p);
		else
			fputc(*p, stderr);
	}
	fputc('\n', stderr);
}

const char *cli_bad_option(char *const *argv, char *buf, size_t len)
{
	const char *tok = optind > 0 ? argv[optind - 1] : "";
	const char *eq = strchr(tok, '=');
	if (!strncmp(tok, "--", 2) && eq && optopt)
		snprintf(buf, len, "option '%.*s' takes no value", (int)(eq - tok), tok);
	else if (strncmp(tok, "--", 2) && optopt > ' ' && optopt < 0x7f)
		snprintf(buf, len, "unknown option '-%c'", optopt);
	else
		snprintf(buf, len, "unknown option '%s'", tok);
	return buf;
}

static int dir_check(const char *cmd, const char *name, int fd, const char *path, mode_t deny,
		     bool root_may);

int cli_state_dir_check(const char *cmd, const char *name, int fd, const char *path, mode_t deny)
{
	/* Root may reach another user's job (attach, status, rm go through its supervisor), but
	 * not start a supervisor for it (cli_start_job), nor make one (cli_state_home_check). */
	return dir_check(cmd, name, fd, path, deny, true);
}

int cli_state_home_check(const char *cmd, const char *name, const char *home)
{
	_cleanup_close_ int hfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (hfd >= 0 && dir_check(cmd, name, hfd, home, 002, false))
		return 1;
	_cleanup_free_ char *jobs = NULL;
	if (asprintf(&jobs, "%s/jobs", home) < 0)
		return 0; /* the next step says it */
	_cleanup_close_ int jfd = open(jobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return jfd >= 0 && dir_check(cmd, name, jfd, jobs, 022, false) ? 1 : 0;
}

int cli_usage(const char *cmd, const char *what)
{
	cli_error(cmd, NULL, "%s; see 'ckptenv %s --help'", what, cmd);
	return EXIT_USAGE;
}

int cli_job_open(const char *cmd, const char *name, bool create, struct cli_job *ret)
{
	struct cli_job j = {.jobs_fd = -1, .job_fd = -1};
	if (state_name_check(name) < 0) {
		cli_error(cmd, name,
			  "invalid job name; use 1 to 64 of [A-Za-z0-9._-], not starting with '.' "
			  "or '-'");
		return EXIT_USAGE;
	}
	int r = state_home(&j.home);
	if (r < 0) {
		cli_error(cmd, name, "cannot find the state directory; set CKPTENV_HOME");
		return 1;
	}
	if (asprintf(&j.dir, "%s/jobs/%s", j.home, name) < 0) {
		cli_job_close(&j);
		return 1;
	}
	if (create && cli_state_home_check(cmd, name, j.home)) {
		cli_job_close(&j);
		return 1;
	}
	r = state_jobs_open(j.home, create, &j.jobs_fd);
	if (r < 0 && (r != -ENOENT || create)) {
		cli_error(cmd, name, "cannot %s %s/jobs: %s; set CKPTENV_HOME to a directory of yours",
			  create ? "create" : "open", j.home, strerror(-r));
		cli_job_close(&j);
		return 1;
	}
	if (r == 0)
		r = state_job_open(j.jobs_fd, name, create, &j.job_fd);
	if (r == -ENOENT) {
		cli_error(cmd, name, "no such job; see 'ckptenv list'");
		cli_job_close(&j);
		return 1;
	}
	if (r < 0) {
		cli_error(cmd, name, "cannot open %s: %s; check its owner and mode", j.dir,
			  strerror(-r));
		cli_job_close(&j);
		return 1;
	}
	/* Every directory of the job's state is ours alone, and writable by nobody else. */
	_cleanup_close_ int hfd = open(j.home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *jobs = NULL;
	if (asprintf(&jobs, "%s/jobs", j.home) < 0)
		jobs = NULL;
	if ((hfd >= 0 && cli_state_dir_check(cmd, name, hfd, j.home, 002)) ||
	    cli_state_dir_check(cmd, name, j.jobs_fd, jobs ? jobs : "jobs", 022) ||
	    cli_state_dir_check(cmd, name, j.job_fd, j.dir, 022)) {
		cli_job_close(&j);
		return 1;
	}
	*ret = j;
	return 0;
}

static int dir_check(const char *cmd, const char *name, int fd, const char *path, mode_t deny,
		     bool root_may)
{
	struct stat st;
	if (state_dir_ours(fd, deny, root_may, &st) != -EPERM)
		return 0;
	if (st.st_uid != geteuid())
		cli_error(cmd, name,
			  "%s belongs to uid %u; a job's state is its user's alone: run ckptenv as "
			  "that user, or set CKPTENV_HOME to a directory of yours",
			  path, (unsigned)st.st_uid);
	else
		cli_error(cmd, name,
			  "%s is writable by others (mode %03o); chmod go-w it, or set CKPTENV_HOME "
			  "to a directory of yours",
			  path, (unsigned)(st.st_mode & 07777));
	return 1;
}

void cli_job_close(struct cli_job *j)
{
	free(j->home);
	free(j->dir);
	if (j->jobs_fd >= 0)
		close(j->jobs_fd);
	if (j->job_fd >= 0)
		close(j->job_fd);
	*j = (struct cli_job){.jobs_fd = -1, .job_fd = -1};
}

int cli_job_vfs_open(const struct cli_job *j, const char *cmd, const char *name, struct vfs **ret)
{
	_cleanup_free_ char *store = NULL;
	if (asprintf(&store, "%s/store", j->dir) < 0)
		return 1;
	struct vfs_options o = {.store_dir = store};
	if (vfs_open(&o, ret) < 0) {
		cli_error(cmd, name, "%s", vfs_last_error());
		return 1;
	}
	return 0;
}

int cli_store_owner(const struct cli_job *j, const char *cmd, const char *name, int *lock_fd,
		    int *sock)
{
	*lock_fd = *sock = -1;
	int r = state_lock_try(j->job_fd, lock_fd);
	/* A supervisor holds the lock for its whole life: when one answers, ask it at once. Only
	 * a lock held for a moment by another command (rm, a run starting) is waited for. */
	if (r == -EBUSY && (*sock = control_connect_now(j->job_fd, "control.sock")) >= 0)
		return 0;
	if (r == -EBUSY)
		r = state_lock_take(j->job_fd, lock_fd);
	if (r == -EBUSY && (*sock = control_connect(j->job_fd, "control.sock")) < 0) {
		cli_error(cmd, name, "cannot reach the supervisor: %s; see %s/log", strerror(-*sock),
			  j->dir);
		return 1;
	}
	if (r < 0 && r != -EBUSY) {
		cli_error(cmd, name, "cannot lock %s/supervisor.lock: %s", j->dir, strerror(-r));
		return 1;
	}
	return 0;
}

const char *cli_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024 && u + 1 < CK_ARRAY_SIZE(unit)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

const char *cli_time(int64_t t, char *buf, size_t len)
{
	if (t <= 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}
