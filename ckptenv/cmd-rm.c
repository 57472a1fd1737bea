/* ckptenv rm NAME [--force]: delete a job's state directory (its /tmp store, snapshots, log).
 * The only command that deletes user data; it refuses a running job unless --force, which
 * kills the job and waits for its supervisor to let go of the lock first. */
#include "ckpt-gc.h"
#include "ckpt.h"
#include "ckptenv.h"
#include "control.h"

#include "common/ck.h"
#include "vfs/vfs.h"

#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>

static const char rm_usage[] =
	"Usage: ckptenv rm NAME [--force]\n"
	"       ckptenv rm NAME --checkpoint ID\n"
	"\n"
	"Delete job NAME and all its data (its /tmp, snapshots, checkpoints, log).\n"
	"  -f, --force          kill the job first if it runs (else a running job is refused;\n"
	"                       a stopped one, after 'checkpoint --stop', is not)\n"
	"  -c, --checkpoint ID  delete only checkpoint ID and the /tmp epoch kept for it (the\n"
	"                       job may run meanwhile; see 'ckptenv checkpoints NAME')\n";

/* Wait (bounded) until @pidfd's process has exited. */
static void wait_exit(int pidfd, int timeout_ms)
{
	if (pidfd < 0)
		return;
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	while (poll(&p, 1, timeout_ms) < 0 && errno == EINTR)
		;
}

/* Kill the job through its supervisor and wait for the supervisor to be gone (its lock free,
 * then the process itself); if it does not answer, SIGKILL the supervisor. Returns the lock fd
 * or -errno. */
static int stop_job(struct cli_job *j)
{
	int lock_fd = -1;
	_cleanup_close_ int pidfd = -1;
	struct job_run run;
	bool have_run = job_run_read(j->job_fd, &run) == 0 && run.supervisor_pid > 1;
	if (have_run)
		pidfd = (int)syscall(SYS_pidfd_open, run.supervisor_pid, 0);
	_cleanup_close_ int sock = control_connect(j->job_fd, "control.sock");
	if (sock >= 0) {
		struct control_msg m;
		if (control_call(sock, CONTROL_KILL, NULL, 0, &m) == 0)
			control_msg_close_fds(&m);
		if (state_lock_wait(j->job_fd, 10000, &lock_fd) == 0) {
			wait_exit(pidfd, 2000);
			return lock_fd;
		}
	}
	if (have_run)
		kill(run.supervisor_pid, SIGKILL);
	int r = state_lock_wait(j->job_fd, 5000, &lock_fd);
	if (r < 0)
		return r;
	wait_exit(pidfd, 2000);
	return lock_fd;
}

/* rm NAME --checkpoint ID: through the supervisor when one runs (it owns the store), else
 * with the job's lock and the store opened here. */
static int drop_checkpoint(struct cli_job *j, const char *name, const char *idstr)
{
	if (!*idstr || strspn(idstr, "0123456789") != strlen(idstr) || strlen(idstr) > 18 ||
	    !strtoull(idstr, NULL, 10)) {
		cli_error("rm", name, "invalid checkpoint id '%s'; see 'ckptenv checkpoints %s'",
			  idstr, name);
		return EXIT_USAGE;
	}
	uint64_t id = strtoull(idstr, NULL, 10);
	_cleanup_close_ int lock_fd = -1, sock = -1;
	if (cli_store_owner(j, "rm", name, &lock_fd, &sock))
		return 1;
	int r;
	if (sock >= 0) { /* running: the supervisor owns the store */
		uint8_t p[8];
		ck_put_le64(p, id);
		struct control_msg m;
		r = control_call(sock, CONTROL_CKPT_DROP, p, sizeof(p), &m);
		if (r < 0) {
			cli_error("rm", name, "supervisor: %s; see %s/log", strerror(-r), j->dir);
			return 1;
		}
		control_msg_close_fds(&m);
		if (m.type == CONTROL_OK)
			return 0;
		char err[1100];
		int e;
		if (control_parse_error(&m, &e, err, sizeof(err)) < 0)
			snprintf(err, sizeof(err), "unexpected reply %u from the supervisor", m.type);
		cli_error("rm", name, "%s", err);
		return 1;
	}
	_cleanup_close_ int ckdir = -1;
	if (ckpt_dir_open(j->job_fd, false, &ckdir) < 0) {
		cli_error("rm", name, "job %s has no checkpoints", name);
		return 1;
	}
	struct vfs *v;
	if (cli_job_vfs_open(j, "rm", name, &v))
		return 1;
	r = ckpt_drop(ckdir, v, id);
	vfs_close(v, false);
	if (r < 0) {
		cli_error("rm", name, "cannot drop checkpoint %s: %s; see 'ckptenv checkpoints %s'",
			  idstr, r == -ENOENT ? "no such checkpoint" : strerror(-r), name);
		return 1;
	}
	return 0;
}

int cmd_rm(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"force", no_argument, NULL, 'f'},
		{"checkpoint", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{0}};
	bool force = false;
	const char *ckpt_id = NULL;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fc:h", longopts, NULL)) != -1) {
		if (c == 'f') {
			force = true;
		} else if (c == 'c') {
			if (ckpt_id) /* dropping only the last one would surprise */
				return cli_usage("rm", "--checkpoint given twice; drop one checkpoint "
						       "at a time");
			ckpt_id = optarg;
		} else if (c == 'h') {
			fputs(rm_usage, stdout);
			return 0;
		} else {
			char what[300];
			if (c == '?' && optopt == 'c')
				snprintf(what, sizeof(what), "option '%s' needs a checkpoint id",
					 argv[optind - 1]);
			else
				cli_bad_option(argv, what, sizeof(what));
			return cli_usage("rm", what);
		}
	}
	if (optind >= argc)
		return cli_usage("rm", "missing job name");
	if (optind + 1 < argc)
		return cli_usage("rm", "too many arguments");
	if (ckpt_id && force)
		return cli_usage("rm", "--force and --checkpoint do not go together: --checkpoint "
				       "drops one checkpoint, --force removes a running job");
	const char *name = argv[optind];
	struct cli_job j;
	int r = cli_job_open("rm", name, false, &j);
	if (r)
		return r;
	if (ckpt_id) {
		r = drop_checkpoint(&j, name, ckpt_id);
		cli_job_close(&j);
		return r;
	}

	_cleanup_close_ int lock_fd = -1;
	r = state_lock_take(j.job_fd, &lock_fd);
	if (r == -EBUSY && !force) {
		/* A stopped job (checkpoint --stop, a kept crash) has nothing running to lose. */
		struct cli_job_info info;
		cli_job_info_load(j.job_fd, &info);
		force = info.stopped;
		cli_job_info_free(&info);
	}
	if (r == -EBUSY && !force) {
		cli_error("rm", name,
			  "the job is running; let it end (or end it from its terminal), or use "
			  "'ckptenv rm --force %s', which kills it",
			  name);
		cli_job_close(&j);
		return 1;
	}
	if (r == -EBUSY) {
		r = stop_job(&j);
		if (r >= 0)
			lock_fd = r;
	}
	if (r < 0) {
		cli_error("rm", name, "cannot stop the job (%s); see %s/log", strerror(-r), j.dir);
		cli_job_close(&j);
		return 1;
	}
	r = ck_rm_rf_at(j.jobs_fd, name);
	if (r < 0) {
		cli_error("rm", name, "cannot remove %s: %s", j.dir, strerror(-r));
		cli_job_close(&j);
		return 1;
	}
	cli_job_close(&j);
	return 0;
}
