/* ckptenv checkpoint NAME [--stop], ckptenv checkpoints NAME, ckptenv restore NAME [ID]:
 * process checkpoints of a job (ckpt.h; the supervisor's side is sup-ckpt.c). */
#include "ckpt-gc.h"
#include "ckpt.h"
#include "ckptenv.h"
#include "control.h"

#include "common/ck.h"
#include "restore/restore.h"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>

static const char checkpoint_usage[] =
	"Usage: ckptenv checkpoint NAME [--stop]\n"
	"\n"
	"Freeze the running job's process, save it with its /tmp into a new checkpoint, and let\n"
	"it go on. --stop: end the job once the checkpoint is complete, keeping its supervisor,\n"
	"/tmp and attached terminals for a 'ckptenv restore NAME' in place. Prints the checkpoint\n"
	"id on stdout and how long the job was frozen (by phase) on stderr. Only single-process\n"
	"jobs for now.\n";
static const char checkpoints_usage[] =
	"Usage: ckptenv checkpoints NAME\n"
	"\n"
	"List job NAME's checkpoints: ID, TIME, SIZE, EPOCH, FROZEN. A checkpoint whose /tmp epoch\n"
	"is missing from the store is reported on stderr (exit status 1).\n";
static const char restore_usage[] =
	"Usage: ckptenv restore NAME [ID] [--detach]\n"
	"\n"
	"Rebuild the ended or stopped job NAME from checkpoint ID (default: the newest): its /tmp\n"
	"as it was then, its terminal, its process at its old pid. A stopped job (checkpoint\n"
	"--stop, or a crash kept by its supervisor) is restored in its supervisor, its attached\n"
	"terminals redrawn. From a terminal, attach to it; else wait for it to end and exit with\n"
	"its status. --detach: print the name and return.\n";

/* NAME [ARG] with the long options of @longopts (flags into *ret_flags by their val bit). */
static int parse(const char *cmd, const char *usage, int argc, char **argv, int max_pos,
		 const struct option *longopts, unsigned *ret_flags, char **pos)
{
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return -1;
		}
		if (c > 0 && c < 256 && c != '?') {
			*ret_flags |= (unsigned)c;
			continue;
		}
		char what[300];
		snprintf(what, sizeof(what), "unknown option '%s'", argv[optind - 1]);
		return cli_usage(cmd, what);
	}
	if (optind >= argc)
		return cli_usage(cmd, "missing job name");
	if (argc - optind > max_pos)
		return cli_usage(cmd, "too many arguments");
	for (int i = 0; optind + i < argc; i++)
		pos[i] = argv[optind + i];
	return 0;
}

/* Does the supervisor on @sock hold a stopped job (CONTROL_INFO_PARKED)? */
static bool job_parked(int sock)
{
	struct control_msg m;
	if (control_call(sock, CONTROL_INFO, NULL, 0, &m) < 0)
		return false;
	control_msg_close_fds(&m);
	return m.type == CONTROL_INFO_REPLY && m.len >= 12 &&
	       (ck_get_le32(m.payload + 8) & CONTROL_INFO_PARKED);
}

int cmd_checkpoint(int argc, char **argv)
{
	static const struct option lo[] = {
		{"stop", no_argument, NULL, 1}, {"help", no_argument, NULL, 'h'}, {0}};
	unsigned fl = 0;
	char *pos[1] = {0};
	int r = parse("checkpoint", checkpoint_usage, argc, argv, 1, lo, &fl, pos);
	if (r)
		return r < 0 ? 0 : r;
	const char *name = pos[0];
	struct cli_job j = {.jobs_fd = -1, .job_fd = -1};
	if ((r = cli_job_open("checkpoint", name, false, &j)))
		return r;
	_cleanup_close_ int sock = control_connect(j.job_fd, "control.sock");
	if (sock < 0) {
		cli_error("checkpoint", name, "the job is not running");
		cli_job_close(&j);
		return 1;
	}
	uint8_t p[4];
	ck_put_le32(p, fl & 1 ? CONTROL_CKPT_STOP : 0);
	struct control_msg m;
	r = control_call(sock, CONTROL_CHECKPOINT, p, sizeof(p), &m);
	int code = 1;
	if (r < 0) {
		cli_error("checkpoint", name, "supervisor: %s; see %s/log", strerror(-r), j.dir);
	} else if (m.type == CONTROL_CHECKPOINTED && m.len >= 32) {
		char sz[32];
		printf("%llu\n", (unsigned long long)ck_get_le64(m.payload));
		fflush(stdout);
		fprintf(stderr,
			"ckptenv: job %s: checkpoint %llu, frozen %.1f ms, %s, epoch %llu\n", name,
			(unsigned long long)ck_get_le64(m.payload),
			(double)ck_get_le64(m.payload + 8) / 1e6,
			cli_bytes(ck_get_le64(m.payload + 24), sz, sizeof(sz)),
			(unsigned long long)ck_get_le64(m.payload + 16));
		if (m.len >= 72) /* where the frozen time went */
			fprintf(stderr,
				"ckptenv: job %s: frozen: freeze %.1f ms, vfs %.1f ms, pty %.1f ms, "
				"memory %.1f ms, commit %.1f ms, net %.1f ms\n",
				name, (double)ck_get_le64(m.payload + 32) / 1e6,
				(double)ck_get_le64(m.payload + 40) / 1e6,
				(double)ck_get_le64(m.payload + 48) / 1e6,
				(double)ck_get_le64(m.payload + 56) / 1e6,
				(double)ck_get_le64(m.payload + 64) / 1e6,
				m.len >= 80 ? (double)ck_get_le64(m.payload + 72) / 1e6 : 0.0);
		code = 0;
		/* --stop: wait until the job is gone and its supervisor waits for a restore, so
		 * one may follow at once. */
		for (int i = 0; (fl & 1) && i < 500 && !job_parked(sock); i++)
			poll(NULL, 0, 20);
	} else {
		char err[1100];
		int e;
		if (control_parse_error(&m, &e, err, sizeof(err)) == 0)
			cli_error("checkpoint", name, "%s", err);
		else
			cli_error("checkpoint", name, "unexpected reply %u", m.type);
	}
	if (r == 0)
		control_msg_close_fds(&m);
	cli_job_close(&j);
	return code;
}

struct disagree {
	const char *name;
};

static void report_disagree(void *ud, uint64_t id, uint64_t epoch, uint64_t ref_epoch)
{
	const struct disagree *d = ud;
	if (ref_epoch)
		cli_error("checkpoints", d->name,
			  "checkpoint %llu: its /tmp is epoch %llu but ref ckpt-%llu names epoch "
			  "%llu; do not restore it",
			  (unsigned long long)id, (unsigned long long)epoch, (unsigned long long)id,
			  (unsigned long long)ref_epoch);
	else
		cli_error("checkpoints", d->name,
			  "checkpoint %llu: its /tmp epoch %llu has no ref ckpt-%llu in the store; "
			  "do not restore it",
			  (unsigned long long)id, (unsigned long long)epoch, (unsigned long long)id);
}

int cmd_checkpoints(int argc, char **argv)
{
	static const struct option lo[] = {{"help", no_argument, NULL, 'h'}, {0}};
	unsigned fl = 0;
	char *pos[1] = {0};
	int r = parse("checkpoints", checkpoints_usage, argc, argv, 1, lo, &fl, pos);
	if (r)
		return r < 0 ? 0 : r;
	struct cli_job j = {.jobs_fd = -1, .job_fd = -1};
	if ((r = cli_job_open("checkpoints", pos[0], false, &j)))
		return r;
	_cleanup_close_ int ckdir = -1;
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	printf("%-6s %-19s %10s %8s %10s\n", "ID", "TIME", "SIZE", "EPOCH", "FROZEN");
	if (ckpt_dir_open(j.job_fd, false, &ckdir) == 0 && ckpt_list(ckdir, &ids, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			char name[24], t[32], sz[32];
			snprintf(name, sizeof(name), "%llu", (unsigned long long)ids[i]);
			_cleanup_close_ int fd =
				openat(ckdir, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			struct ckpt_manifest man;
			if (fd < 0 || ckpt_manifest_read(fd, &man) < 0)
				continue;
			printf("%-6s %-19s %10s %8llu %8.1fms\n", name,
			       cli_time(man.created, t, sizeof(t)),
			       cli_bytes(man.bytes, sz, sizeof(sz)), (unsigned long long)man.epoch,
			       (double)man.frozen_ns / 1e6);
		}
	}
	/* Image and epoch must agree: the ref ckpt-ID names the manifest's epoch. */
	int bad = 0;
	if (ckdir >= 0) {
		_cleanup_free_ char *store = NULL;
		struct disagree d = {.name = pos[0]};
		if (asprintf(&store, "%s/store", j.dir) >= 0)
			bad = ckpt_check(ckdir, store, report_disagree, &d);
		if (bad < 0)
			cli_error("checkpoints", pos[0], "cannot check the store's refs: %s",
				  strerror(-bad));
	}
	cli_job_close(&j);
	return bad ? 1 : 0;
}

/* The job's supervisor still runs with the job stopped (checkpoint --stop, or a crash): it
 * restores the checkpoint itself, and this client then attaches or waits as after `run`. */
static int restore_in_place(struct cli_job *j, const char *name, uint64_t id, bool detach,
			    bool pty)
{
	_cleanup_close_ int sock = control_connect(j->job_fd, "control.sock");
	if (sock < 0) {
		cli_error("restore", name, "cannot reach the supervisor: %s; see %s/log",
			  strerror(-sock), j->dir);
		return 1;
	}
	uint8_t p[8];
	ck_put_le64(p, id);
	struct control_msg m;
	int r = control_call(sock, CONTROL_RESTORE, p, sizeof(p), &m);
	if (r < 0) {
		cli_error("restore", name, "supervisor: %s; see %s/log", strerror(-r), j->dir);
		return 1;
	}
	control_msg_close_fds(&m);
	if (m.type != CONTROL_STARTED) {
		char err[1100];
		int e;
		if (control_parse_error(&m, &e, err, sizeof(err)) < 0)
			snprintf(err, sizeof(err), "unexpected reply %u from the supervisor", m.type);
		cli_error("restore", name, "%s", err);
		return 1;
	}
	cli_print_restore_report("restore", name, &m);
	if (detach) {
		printf("%s\n", name);
		return 0;
	}
	if (!(pty && isatty(0) && isatty(1)))
		return cli_wait_job(sock, name, j->dir, -1);
	struct cli_attach_opts ao = {.detach_key = DEFAULT_DETACH_KEY, .control_sock = -1};
	int code = 1;
	r = cli_attach(j, "restore", name, &ao, &code);
	if (r == 1)
		return 0;
	if (r < 0 && r != -ECONNRESET) {
		cli_error("restore", name, "cannot reach the job's terminal: %s; see %s/log",
			  strerror(-r), j->dir);
		return 1;
	}
	return cli_wait_job(sock, name, j->dir, r == 0 ? code : -1);
}

static int do_restore(struct cli_job *j, const char *name, const char *want, bool detach)
{
	bool in_place = false;
	if (state_job_running(j->job_fd) == 1) {
		_cleanup_close_ int sock = control_connect(j->job_fd, "control.sock");
		in_place = sock >= 0 && job_parked(sock);
		if (!in_place) {
			cli_error("restore", name,
				  "the job is running; a checkpoint can only be restored once it "
				  "ended (e.g. 'ckptenv checkpoint %s --stop')",
				  name);
			return 1;
		}
	}
	_cleanup_close_ int ckdir = -1;
	uint64_t id = 0;
	int r = ckpt_dir_open(j->job_fd, false, &ckdir);
	if (r == 0 && want) {
		if (strspn(want, "0123456789") != strlen(want) || !*want || strlen(want) > 18) {
			cli_error("restore", name,
				  "invalid checkpoint id '%s'; see 'ckptenv "
				  "checkpoints %s'",
				  want, name);
			return EXIT_USAGE;
		}
		id = strtoull(want, NULL, 10);
	} else if (r == 0) {
		r = ckpt_latest(ckdir, &id);
	}
	if (r < 0) {
		cli_error("restore", name, "no checkpoint to restore; see 'ckptenv checkpoints %s'",
			  name);
		return 1;
	}
	char idstr[24];
	snprintf(idstr, sizeof(idstr), "%llu", (unsigned long long)id);
	_cleanup_close_ int cfd = openat(ckdir, idstr, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ckpt_manifest man;
	if (cfd < 0 || (r = ckpt_manifest_read(cfd, &man)) < 0) {
		cli_error("restore", name, "%s/%s/%s/%s: %s; see 'ckptenv checkpoints %s'", j->dir,
			  CKPT_DIR, idstr, cfd < 0 ? "" : CKPT_MANIFEST,
			  cfd < 0	  ? "no such checkpoint"
			  : r == -EBADMSG ? "truncated or corrupt"
					  : strerror(-r),
			  name);
		return 1;
	}
	/* Check the whole image before anything runs. */
	struct restore_err err = {0};
	r = restore_image_verify(cfd, CKPT_IMAGE, &err);
	if (r < 0) {
		if (!strncmp(err.msg, CKPT_IMAGE "/", strlen(CKPT_IMAGE) + 1))
			cli_error("restore", name, "checkpoint %s refused: %s/%s/%s/%s", idstr,
				  j->dir, CKPT_DIR, idstr, err.msg);
		else
			cli_error("restore", name, "checkpoint %s (%s/%s/%s/%s) refused: %s", idstr,
				  j->dir, CKPT_DIR, idstr, CKPT_IMAGE,
				  err.msg[0] ? err.msg : strerror(-r));
		return 1;
	}
	if (in_place)
		return restore_in_place(j, name, id, detach, man.flags & CKPT_F_PTY);
	struct job_spec spec;
	r = job_spec_read(j->job_fd, &spec);
	if (r < 0) {
		cli_error("restore", name, "cannot read %s/job: %s", j->dir, strerror(-r));
		return 1;
	}
	struct supervisor_args sa = {.pty = man.flags & CKPT_F_PTY,
				     .ws = {24, 80, 0, 0},
				     .restore_id = idstr,
				     .restore_epoch = man.epoch,
				     .restore_pid = man.pid};
	struct cli_run_opts ro = {
		.detach = detach, .detach_key = DEFAULT_DETACH_KEY, .restore_spec = &spec};
	r = cli_start_job(j, "restore", name, &ro, false, &sa);
	job_spec_free(&spec);
	return r;
}

int cmd_restore(int argc, char **argv)
{
	static const struct option lo[] = {
		{"detach", no_argument, NULL, 1}, {"help", no_argument, NULL, 'h'}, {0}};
	unsigned fl = 0;
	char *pos[2] = {0};
	int r = parse("restore", restore_usage, argc, argv, 2, lo, &fl, pos);
	if (r)
		return r < 0 ? 0 : r;
	/* As `run`: signals to forward to the job stay pending until it runs. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct cli_job j = {.jobs_fd = -1, .job_fd = -1};
	if ((r = cli_job_open("restore", pos[0], false, &j)))
		return r;
	r = do_restore(&j, pos[0], pos[1], fl & 1);
	cli_job_close(&j);
	return r;
}
