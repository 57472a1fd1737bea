/* ckptenv run: write the job file, start the job's supervisor as a daemon of its own, then act
 * only as its client: START over the control socket, then attach to the job's terminal (stdin
 * and stdout are ttys) or relay our stdio byte-exact over the job's pipes (otherwise),
 * forwarding signals in pipe mode, and exit with the job's status (0 after a detach). */
#include "ckpt.h"
#include "ckptenv.h"
#include "control.h"

#include "common/ck.h"
#include "vfs/vfs.h"

#include <ctype.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static const char run_usage[] =
	"Usage: ckptenv run [--name N] [--detach] [--detach-key KEY] [--log-size SIZE]\n"
	"                   [--from-snapshot ID] [--checkpoint-every DURATION [--keep K]]\n"
	"                   [--checkpoint-on-term] -- CMD [ARGS...]\n"
	"\n"
	"Run CMD as job N with a private, persistent /tmp. The same name again reuses the job's\n"
	"/tmp as it was. Exits with CMD's exit status (128+signal when killed).\n"
	"From a terminal, CMD gets a terminal of its own (/dev/pts/0 of a private devpts) and this\n"
	"one is attached to it: the detach key leaves CMD running ('ckptenv attach N' comes back).\n"
	"Without a terminal, CMD's stdin, stdout and stderr are pipes relayed byte for byte.\n"
	"All output is also kept in a bounded log: 'ckptenv log N'.\n"
	"CMD's TCP connections are made and held by the job's supervisor ('ckptenv status N'\n"
	"lists them); CKPTENV_NET_MAX_SESSIONS bounds how many are open at once (default 1024).\n"
	"\n"
	"  -n, --name N            job name ([A-Za-z0-9._-], 1..64); default: a new random one\n"
	"  -d, --detach            print the name and return at once; no client (stdin at end of\n"
	"                          file without a terminal; attach later with 'ckptenv attach N')\n"
	"  -k, --detach-key KEY    ^X, C-x, one character, or 'none' (default ^\\, Ctrl-\\)\n"
	"  -l, --log-size SIZE     bound of the output log, e.g. 512K, 16M (default 4M)\n"
	"  -s, --from-snapshot ID  start with /tmp as in snapshot ID, or as in checkpoint N with\n"
	"                          ID ckpt-N (see 'ckptenv snapshots N'); the state the last\n"
	"                          run left is kept as a snapshot first unless one holds it\n"
	"      --checkpoint-every DURATION\n"
	"                          checkpoint the job this often (30s, 10m, 2h; at least 1s)\n"
	"      --keep K            keep the newest K checkpoints, dropping older ones with their\n"
	"                          /tmp epochs (default 3 with --checkpoint-every, else all)\n"
	"      --checkpoint-on-term  on SIGTERM to the supervisor, take a last checkpoint and\n"
	"                          end the job (restore it later with 'ckptenv restore N')\n"
	"  -h, --help              this text\n"
	"With a checkpoint policy, a job killed by a signal it did not get from ckptenv (the OOM\n"
	"killer's SIGKILL) is kept with its connections for a 'ckptenv restore N' in place for\n"
	"CKPTENV_CRASH_KEEP_SECONDS (default 600).\n";

struct run_opts {
	const char *name;
	bool detach;
	int detach_key;
	uint64_t log_size;
	uint64_t from_epoch;
	const char *from_ref; /* --from-snapshot ckpt-N: a checkpoint's epoch, found at start */
	char **cmd;
	int cmd_argc;
	uint64_t ckpt_every_ns;
	long ckpt_keep; /* -1: not given */
	bool ckpt_on_term;
};

/* "4096", "512K", "16M", "1G" (binary units) within 4 KiB .. 1 GiB. */
static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	int shift = 0;
	if (*end) {
		const char *u = strchr("KMG", toupper((unsigned char)*end));
		if (!u || (end[1] && strcasecmp(end + 1, "iB") && strcasecmp(end + 1, "B")))
			return -EINVAL;
		shift = 10 * (int)(u - "KMG" + 1);
	}
	if (v > LOG_SIZE_MAX >> shift)
		return -EINVAL;
	v <<= shift;
	if (v < LOG_SIZE_MIN)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse(int argc, char **argv, struct run_opts *o, bool *ret_help)
{
	static const struct option longopts[] = {
		{"name", required_argument, NULL, 'n'},
		{"detach", no_argument, NULL, 'd'},
		{"from-snapshot", required_argument, NULL, 's'},
		{"detach-key", required_argument, NULL, 'k'},
		{"log-size", required_argument, NULL, 'l'},
		{"checkpoint-every", required_argument, NULL, 'E'},
		{"keep", required_argument, NULL, 'K'},
		{"checkpoint-on-term", no_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	unsigned seen = 0; /* bit per option: a second one was silently taken over the first */
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+n:ds:k:l:h", longopts, NULL)) != -1) {
		const char *known = c > 0 ? strchr("ndsklEKT", c) : NULL;
		unsigned bit = known ? 1u << (known - "ndsklEKT") : 0;
		if (bit & seen) {
			size_t k = 0;
			while (longopts[k].val != c)
				k++;
			char what[300];
			snprintf(what, sizeof(what), "option '--%s' given twice", longopts[k].name);
			return cli_usage("run", what);
		}
		seen |= bit;
		switch (c) {
		case 'n':
			o->name = optarg;
			break;
		case 'd':
			o->detach = true;
			break;
		case 's': {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (!strncmp(optarg, "ckpt-", 5) && optarg[5] && strlen(optarg) < 64) {
				/* As 'ckptenv snapshots' lists a checkpoint's /tmp. */
				o->from_ref = optarg;
				o->from_epoch = UINT64_MAX; /* resolved once the job is open */
				break;
			}
			if (errno || end == optarg || *end || v == 0 || optarg[0] == '-') {
				cli_error("run", o->name,
					  "invalid snapshot id '%s'; see 'ckptenv snapshots %s'",
					  optarg, o->name ? o->name : "NAME");
				return EXIT_USAGE;
			}
			o->from_epoch = v;
			break;
		}
		case 'k':
			if (cli_detach_key_parse(optarg, &o->detach_key) < 0) {
				char what[300];
				snprintf(what, sizeof(what), "invalid detach key '%s'", optarg);
				return cli_usage("run", what);
			}
			break;
		case 'l':
			if (parse_size(optarg, &o->log_size) < 0) {
				char what[300];
				snprintf(what, sizeof(what),
					 "invalid log size '%s'; use e.g. 512K or 16M (4K..1G)", optarg);
				return cli_usage("run", what);
			}
			break;
		case 'E':
			if (ckpt_duration_parse(optarg, &o->ckpt_every_ns) < 0) {
				char what[300];
				snprintf(what, sizeof(what),
					 "invalid duration '%s'; use e.g. 30s, 10m or 2h (1s..30d)",
					 optarg);
				return cli_usage("run", what);
			}
			break;
		case 'K': {
			char *end;
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > CKPT_KEEP_MAX) {
				char what[300];
				snprintf(what, sizeof(what),
					 "invalid --keep '%s'; use a number of checkpoints >= 1",
					 optarg);
				return cli_usage("run", what);
			}
			o->ckpt_keep = v;
			break;
		}
		case 'T':
			o->ckpt_on_term = true;
			break;
		case 'h':
			*ret_help = true;
			return 0;
		default: {
			char what[300];
			if (optopt && c == '?' && strchr("nsklEK", optopt))
				snprintf(what, sizeof(what), "option '%s' needs a value",
					 argv[optind - 1]);
			else
				cli_bad_option(argv, what, sizeof(what));
			return cli_usage("run", what);
		}
		}
	}
	if (optind >= argc)
		return cli_usage("run",
				 "missing command; use 'ckptenv run [OPTIONS] -- CMD [ARGS...]'");
	/* A new job has no snapshot: a random name could only fail, and leave a job behind. */
	if (o->from_epoch && !o->name)
		return cli_usage("run",
				 "--from-snapshot needs the --name of the job it belongs to");
	o->cmd = argv + optind;
	o->cmd_argc = argc - optind;
	return 0;
}

/* A new job directory with a random 6-character name. */
static int make_random_job(int jobs_fd, char name[8])
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	for (int tries = 0; tries < 100; tries++) {
		uint8_t rnd[6];
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return -errno;
		for (int i = 0; i < 6; i++)
			name[i] = alphabet[rnd[i] % 36];
		name[6] = 0;
		if (mkdirat(jobs_fd, name, 0700) == 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

static void daemon_child(struct cli_job *j, const char *name, int lock_fd, int ready_fd,
			 struct supervisor_args *a) __attribute__((noreturn));

/* Runs in the first child: setsid, fork again (so the supervisor is no session leader and
 * can never acquire a terminal), then become the supervisor with stdio on the log. */
static void daemon_child(struct cli_job *j, const char *name, int lock_fd, int ready_fd,
			 struct supervisor_args *a)
{
	if (setsid() < 0)
		_exit(1);
	pid_t p = fork();
	if (p != 0)
		_exit(p < 0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int log = openat(j->job_fd, "log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (null < 0 || log < 0 || dup2(null, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
		_exit(1);
	close(null);
	close(log);
	ck_log_set_file(2);
	if (chdir("/") < 0)
		_exit(1);
	umask(0077);
	a->name = name;
	a->job_dir = j->dir;
	a->job_fd = j->job_fd;
	a->lock_fd = lock_fd;
	a->ready_fd = ready_fd;
	_exit(supervisor_main(a));
}

/* The umask the command gets: the caller's, as if it ran it itself (the supervisor's own is
 * 0077, for the state directory). */
static mode_t cur_umask(void)
{
	mode_t m = umask(0077);
	umask(m);
	return m;
}

/* Wait for the supervisor's readiness: a NUL byte, or an error line, or EOF (it died). */
static int wait_ready(int fd, char *err, size_t len)
{
	ssize_t n = ck_read_full(fd, err, len - 1);
	if (n < 0) {
		snprintf(err, len, "reading the supervisor's readiness: %s", strerror((int)-n));
		return (int)n;
	}
	err[n] = 0;
	if (n >= 1 && err[0] == 0)
		return 0;
	if (n == 0)
		snprintf(err, len, "the supervisor died while starting");
	return -EIO;
}

/* Forward signals until the supervisor says the job ended; returns the job's exit code. With
 * @known >= 0 (the relay already saw the end) that is the code if the supervisor goes away
 * without saying. */
static int wait_job(const char *cmd, int sock, const char *name, const char *dir, int known)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	_cleanup_close_ int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	struct pollfd pfd[2] = {{.fd = sock, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
	for (;;) {
		if (poll(pfd, sfd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			cli_error(cmd, name, "poll: %m");
			return 1;
		}
		if (sfd >= 0 && (pfd[1].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				control_send_u32(sock, CONTROL_SIGNAL, si.ssi_signo);
		}
		if (!pfd[0].revents)
			continue;
		struct control_msg m;
		int r = control_recv(sock, &m);
		if (r < 0 && known >= 0)
			return known;
		if (r < 0) {
			cli_error(cmd, name,
				  "lost the supervisor before the job ended (%s); see %s/log",
				  r == -ECONNRESET ? "connection closed" : strerror(-r), dir);
			return 1;
		}
		control_msg_close_fds(&m);
		uint32_t code;
		char note[1100];
		int note_err;
		if (m.type == CONTROL_NOTE &&
		    control_parse_error(&m, &note_err, note, sizeof(note)) == 0)
			cli_error(cmd, name, "%s", note);
		if (m.type == CONTROL_EXITED && control_parse_u32(&m, &code) == 0) {
			/* Wait for the supervisor to be gone (EOF), so the name is free again when we
			 * return. */
			struct pollfd e = {.fd = sock, .events = POLLIN};
			for (int i = 0; i < 100 && poll(&e, 1, 50) >= 0; i++) {
				char b[64];
				if ((e.revents & (POLLIN | POLLHUP)) &&
				    recv(sock, b, sizeof(b), 0) <= 0)
					break;
			}
			return (int)(code & 0xff);
		}
	}
}

int cli_follow_started(struct cli_job *j, const char *cmd, const char *name, int sock,
		       const struct control_msg *m, const struct cli_run_opts *o, bool pty)
{
	int r;
	bool restoring = o->restore_spec || o->in_place;
	cli_print_restore_report(cmd, name, m);
	/* le32 init pid, then the restore's report lines (cli_print_restore_report). */
	if (o->started && m->len >= 4 &&
	    (r = o->started((pid_t)ck_get_le32(m->payload), o->started_data)) != 0)
		return r;
	if (o->detach) {
		printf("%s\n", name);
		return 0;
	}
	if (restoring && !(pty && isatty(0) && isatty(1)))
		return wait_job(cmd, sock, name, j->dir, -1);
	struct cli_attach_opts ao = {
		.detach_key = o->detach_key,
		.pipes = !pty,
		.no_redraw = !restoring, /* a restore shows the saved screen */
		.control_sock = pty ? -1 : sock};
	int code = 1;
	r = cli_attach(j, cmd, name, &ao, &code);
	if (r == 1)
		return 0; /* detached: the job runs on */
	if (r < 0 && r != -ECONNRESET) {
		cli_error(cmd, name, "cannot reach the job's terminal: %s; see %s/log",
			  strerror(-r), j->dir);
		return 1;
	}
	/* The job ended (or the relay was lost): the supervisor's EXITED is authoritative and
	 * means it let go of the job's name. A lost relay left the cursor wherever the job's
	 * output had it: what follows starts a line of its own. */
	if (r < 0 && pty && isatty(2))
		fputs("\r\n", stderr);
	return wait_job(cmd, sock, name, j->dir, r == 0 ? code : -1);
}

/* A first run whose supervisor failed: remove the directory it made, once that supervisor let
 * go of the job (its lock), unless a job ran there after all (another run's status or run). */
static void forget_fresh_job(struct cli_job *j, const char *name)
{
	_cleanup_close_ int lock_fd = -1;
	int r = -EBUSY;
	for (int i = 0; i < 300 && r == -EBUSY; i++) {
		r = state_lock_take(j->job_fd, &lock_fd);
		if (r == -EBUSY)
			usleep(10000);
	}
	if (r < 0 || faccessat(j->job_fd, "status", F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
	    faccessat(j->job_fd, "run", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return;
	/* The directory locked, not another one given the name meanwhile (rm, then run). */
	struct stat held, now;
	if (fstat(j->job_fd, &held) < 0 || fstatat(j->jobs_fd, name, &now, AT_SYMLINK_NOFOLLOW) < 0 ||
	    held.st_ino != now.st_ino || held.st_dev != now.st_dev)
		return;
	(void)ck_rm_rf_at(j->jobs_fd, name);
}

static int start_job(struct cli_job *j, const char *cmd, const char *name,
		     const struct cli_run_opts *o, bool print_name, struct supervisor_args *sa,
		     bool *unstarted);

int cli_start_job(struct cli_job *j, const char *cmd, const char *name,
		  const struct cli_run_opts *o, bool print_name, struct supervisor_args *sa)
{
	bool unstarted = false;
	int r = start_job(j, cmd, name, o, print_name, sa, &unstarted);
	if (r != 0 && o->fresh && unstarted)
		forget_fresh_job(j, name);
	return r;
}

/* cli_start_job; *unstarted: a supervisor was launched and did not start the job. */
static int start_job(struct cli_job *j, const char *cmd, const char *name,
		     const struct cli_run_opts *o, bool print_name, struct supervisor_args *sa,
		     bool *unstarted)
{
	_cleanup_close_ int lock_fd = -1;
	struct stat st;
	if (state_dir_ours(j->job_fd, 022, false, &st) == -EPERM && st.st_uid != geteuid()) {
		/* root: its supervisor would run the user's program as root, in the user's files */
		cli_error(cmd, name,
			  "%s belongs to uid %u: a supervisor started by uid %u would run the job as "
			  "uid %u; run 'ckptenv %s' as its user",
			  j->dir, (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(), cmd);
		return 1;
	}
	const char *nm = getenv("CKPTENV_NET_MAX_SESSIONS");
	if (nm && *nm && net_max_sessions_parse(nm, NULL) < 0) {
		cli_error(cmd, name,
			  "CKPTENV_NET_MAX_SESSIONS=%s is not a number of connections in 1..%u; "
			  "unset it or give one",
			  nm, NET_MAX_SESSIONS_MAX);
		return 2;
	}
	const char *ck = getenv(CRASH_KEEP_ENV);
	if (ck && *ck && env_count_parse(ck, CRASH_KEEP_MAX_S, NULL) < 0) {
		cli_error(cmd, name, "%s=%s is not a number of seconds in 1..%u; unset it or give one",
			  CRASH_KEEP_ENV, ck, CRASH_KEEP_MAX_S);
		return 2;
	}
	const char *sp = getenv("CKPTENV_SPIN_US");
	uint64_t spin_ns;
	if (vfs_spin_parse(sp, &spin_ns) < 0) {
		cli_error(cmd, name,
			  "CKPTENV_SPIN_US=%s is not a number of microseconds in 0..999999; unset "
			  "it or give one",
			  sp);
		return 2;
	}
	int r = state_lock_take(j->job_fd, &lock_fd);
	if (r == -EBUSY) {
		/* restore: another restore won the race since the job was seen ended. */
		if (!strcmp(cmd, "restore"))
			cli_error(cmd, name,
				  "the job is already running (restored by another client?); "
				  "see 'ckptenv status %s'",
				  name);
		else {
			struct cli_job_info info;
			cli_job_info_load(j->job_fd, &info);
			if (info.stopped) /* its supervisor holds it for a restore in place */
				cli_error(cmd, name,
					  "the job is stopped at a checkpoint; 'ckptenv restore %s' "
					  "resumes it, 'ckptenv rm %s' ends it and deletes its data, or use "
					  "another --name",
					  name, name);
			else
				cli_error(cmd, name,
					  "the job is already running; wait for it to end, or use "
					  "another --name");
			cli_job_info_free(&info);
		}
		return 1;
	}
	if (r < 0) {
		cli_error(cmd, name, "cannot lock %s/supervisor.lock: %s", j->dir, strerror(-r));
		return 1;
	}
	char cwd[4096];
	if (!getcwd(cwd, sizeof(cwd)))
		strcpy(cwd, "/");
	uint32_t envc = 0;
	while (environ && environ[envc])
		envc++;
	char *no_env[] = {NULL};
	struct job_spec spec = {
		.argv = o->cmd,
		.argc = (uint32_t)o->cmd_argc,
		.envp = environ ? environ : no_env,
		.envc = envc,
		.cwd = cwd,
		.flags = o->detach ? JOB_F_DETACH : 0,
		.from_epoch = o->from_epoch,
		.created = time(NULL),
		.umask = cur_umask(),
	};
	if (o->restore_spec) {
		spec = *o->restore_spec;
		spec.flags |= JOB_F_DETACH; /* the process runs at once; no stdin to relay */
	}
	sa->spec = &spec;
	if (print_name)
		fprintf(stderr, "ckptenv: job %s\n", name);

	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0) {
		cli_error(cmd, name, "pipe: %m");
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		cli_error(cmd, name, "fork: %m");
		close(ready[0]);
		close(ready[1]);
		return 1;
	}
	if (pid == 0) {
		close(ready[0]);
		close(j->jobs_fd);
		daemon_child(j, name, lock_fd, ready[1], sa);
	}
	close(ready[1]);
	close(TAKE_FD(lock_fd)); /* the supervisor's copy holds the lock now */
	*unstarted = true;
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	char err[1024];
	r = wait_ready(ready[0], err, sizeof(err));
	close(ready[0]);
	if (r < 0) {
		cli_error(cmd, name, "%s", err);
		return 1;
	}
	/* The job's record (list, status) changes only now that the supervisor took the store: a
	 * run refused before (a corrupt store, say) leaves the record of the last good one. */
	r = job_spec_write(j->job_fd, o->restore_spec ? o->restore_spec : &spec);
	if (r < 0)
		fprintf(stderr, "ckptenv: %s %s: cannot write %s/job (%s); list and status will "
				"show the previous command\n",
			cmd, name, j->dir, strerror(-r));

	_cleanup_close_ int sock = control_connect(j->job_fd, "control.sock");
	if (sock < 0) {
		cli_error(cmd, name, "cannot reach the supervisor: %s; see %s/log",
			  strerror(-sock), j->dir);
		return 1;
	}
	r = control_send(sock, CONTROL_START, NULL, 0, NULL, 0);
	struct control_msg m;
	if (r == 0)
		r = control_recv(sock, &m);
	while (r == 0 && m.type == CONTROL_NOTE) { /* lines for the user before the reply */
		int e;
		if (control_parse_error(&m, &e, err, sizeof(err)) == 0)
			fprintf(stderr, "ckptenv: %s %s: %s\n", cmd, name, err);
		control_msg_close_fds(&m);
		r = control_recv(sock, &m);
	}
	if (r < 0) {
		cli_error(cmd, name, "the supervisor did not start the job (%s); see %s/log",
			  strerror(-r), j->dir);
		return 1;
	}
	control_msg_close_fds(&m);
	if (m.type == CONTROL_ERROR) {
		int e;
		if (control_parse_error(&m, &e, err, sizeof(err)) < 0)
			snprintf(err, sizeof(err), "bad error message");
		cli_error(cmd, name, "%s", err);
		return 1;
	}
	if (m.type != CONTROL_STARTED) {
		cli_error(cmd, name, "unexpected reply %u from the supervisor", m.type);
		return 1;
	}
	*unstarted = false;
	return cli_follow_started(j, cmd, name, sock, &m, o, sa->pty);
}

/* The epoch of store ref @ref (ckpt-N) of job @name, for --from-snapshot. */
static int resolve_ref(struct cli_job *j, const char *name, const char *ref, uint64_t *epoch)
{
	_cleanup_free_ char *store = NULL;
	struct vfs_ref *refs = NULL;
	size_t n = 0;
	if (asprintf(&store, "%s/store", j->dir) < 0)
		return 1;
	int r = vfs_refs_list(store, &refs, &n);
	for (size_t k = 0; r == 0 && k < n; k++)
		if (!strcmp(refs[k].name, ref)) {
			*epoch = refs[k].epoch;
			free(refs);
			return 0;
		}
	free(refs);
	cli_error("run", name, "no snapshot %s; see 'ckptenv snapshots %s'", ref, name);
	return 1;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = {.detach_key = DEFAULT_DETACH_KEY, .ckpt_keep = -1};
	bool help = false;
	int r = parse(argc, argv, &o, &help);
	if (r)
		return r;
	if (help) {
		fputs(run_usage, stdout);
		return 0;
	}
	/* Signals to forward are blocked from here on: one that arrives while the job starts
	 * stays pending and is forwarded once it runs. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct cli_job j = {.jobs_fd = -1, .job_fd = -1};
	char rname[8];
	const char *name = o.name;
	if (name) {
		/* --from-snapshot: an existing job's, so a typo in the name creates nothing. */
		r = cli_job_open("run", name, !o.from_epoch, &j);
		if (r)
			return r;
		if (o.from_ref && (r = resolve_ref(&j, name, o.from_ref, &o.from_epoch)) != 0) {
			cli_job_close(&j);
			return r;
		}
	} else {
		_cleanup_free_ char *home = NULL;
		_cleanup_close_ int jobs_fd = -1;
		if (state_home(&home) == 0 && cli_state_home_check("run", NULL, home))
			return 1;
		if (!home || state_jobs_open(home, true, &jobs_fd) < 0 ||
		    make_random_job(jobs_fd, rname) < 0) {
			cli_error("run", NULL, "cannot create a job directory below %s: %m",
				  home ? home : "the state directory");
			return 1;
		}
		name = rname;
		r = cli_job_open("run", name, false, &j);
		if (r)
			return r;
	}
	struct supervisor_args sa = {
		.log_size = o.log_size,
		.ckpt_every_ns = o.ckpt_every_ns,
		.ckpt_keep = o.ckpt_keep > 0 ? (uint32_t)o.ckpt_keep
			     : o.ckpt_every_ns ? CKPT_KEEP_DEFAULT
					       : 0,
		.ckpt_on_term = o.ckpt_on_term};
	/* A terminal only when both ends are one: `run -- cmd > file` wants cmd's bytes. */
	sa.pty = isatty(0) && isatty(1);
	if (sa.pty && (ioctl(0, TIOCGWINSZ, &sa.ws) < 0 || !sa.ws.ws_row || !sa.ws.ws_col))
		sa.ws = (struct winsize){24, 80, 0, 0};
	struct cli_run_opts ro = {.detach = o.detach,
				  .detach_key = o.detach_key,
				  .cmd = o.cmd,
				  .cmd_argc = o.cmd_argc,
				  .from_epoch = o.from_epoch,
				  .fresh = faccessat(j.job_fd, "job", F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
					   errno == ENOENT};
	r = cli_start_job(&j, "run", name, &ro, !o.name && !o.detach, &sa);
	cli_job_close(&j);
	return r;
}
