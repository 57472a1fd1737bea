/* ckptenv checkpoint NAME [--stop], ckptenv checkpoints NAME, ckptenv restore NAME [ID]:
 * process checkpoints of a job (ckpt.h; the supervisor's side is sup-ckpt.c). */
#include "ckpt-gc.h"
#include "ckpt.h"
#include "ckptenv.h"
#include "control.h"

#include "common/ck.h"
#include "restore/restore.h"
#include "vfs/vfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>

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
	"Usage: ckptenv restore NAME [ID] [--detach] [--detach-key K] [--allow-changed PATH]...\n"
	"\n"
	"Rebuild the ended or stopped job NAME from checkpoint ID (default: the newest): its /tmp\n"
	"as it was then, its terminal, its process at its old pid. A stopped job (checkpoint\n"
	"--stop, or a crash kept by its supervisor) is restored in its supervisor, its attached\n"
	"terminals redrawn. From a terminal, attach to it; else wait for it to end and exit with\n"
	"its status. --detach: print the name and return. --detach-key K: as for attach (Ctrl-\\\n"
	"unless given; none to disable).\n"
	"Files outside /tmp that the job had open or mapped (its program and libraries too) must\n"
	"be as they were; --allow-changed PATH (repeatable) restores even though PATH changed.\n";

/* --allow-changed paths, canonical (the image records /proc's view of each file). */
#define MAX_ALLOW 64
struct allow_list {
	char *paths[MAX_ALLOW];
	size_t n;
	int detach_key; /* restore --detach-key (DEFAULT_DETACH_KEY unless given) */
};

static void allow_list_free(struct allow_list *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->paths[i]);
	a->n = 0;
}

/* realpath when the file exists (a symlink or relative name of it), else made absolute. */
static int allow_list_add(struct allow_list *a, const char *path)
{
	if (a->n == MAX_ALLOW || !*path)
		return -EINVAL;
	char *p = realpath(path, NULL);
	if (!p && path[0] == '/')
		p = strdup(path);
	if (!p) {
		char cwd[4096];
		if (!getcwd(cwd, sizeof(cwd)) || asprintf(&p, "%s/%s", cwd, path) < 0)
			return -ENOMEM;
	}
	if (!p)
		return -ENOMEM;
	a->paths[a->n++] = p;
	return 0;
}

/* Long checkpoints and restores show how far they are after a second (CKPTENV_PROGRESS_MS:
 * another delay, for tests): one line on stderr, rewritten in place on a terminal, else one
 * line per report at most every second. */
#define PROGRESS_AFTER_NS 1000000000ull

struct progress {
	uint64_t t0, last, after;
	bool shown, tty;
};

static struct progress progress_start(void)
{
	const char *e = getenv("CKPTENV_PROGRESS_MS");
	uint64_t after = PROGRESS_AFTER_NS;
	if (e && *e && strspn(e, "0123456789") == strlen(e) && strlen(e) < 10)
		after = strtoull(e, NULL, 10) * 1000000ull;
	return (struct progress){.t0 = ck_now_ns(), .after = after, .tty = isatty(2)};
}

static void progress_show(struct progress *p, const char *name, const char *what, uint64_t done,
			  uint64_t total, const char *extra)
{
	uint64_t now = ck_now_ns();
	if (now - p->t0 < p->after || (!p->tty && now - p->last < PROGRESS_AFTER_NS))
		return;
	char d[32], t[32];
	cli_bytes(done, d, sizeof(d));
	if (total && done <= total)
		fprintf(stderr, "%sckptenv: job %s: %s %s of %s (%u%%), %.1f s%s%s",
			p->tty ? "\r" : "", name, what, d, cli_bytes(total, t, sizeof(t)),
			(unsigned)(done * 100 / total), (double)(now - p->t0) / 1e9, extra,
			p->tty ? "\033[K" : "\n");
	else
		fprintf(stderr, "%sckptenv: job %s: %s %s, %.1f s%s%s", p->tty ? "\r" : "", name,
			what, d, (double)(now - p->t0) / 1e9, extra, p->tty ? "\033[K" : "\n");
	p->shown = true;
	p->last = now;
}

static void progress_end(struct progress *p)
{
	if (p->shown && p->tty)
		fputc('\n', stderr);
}

/* NAME [ARG] with the long options of @longopts (flags into *ret_flags by their val bit). */
static int parse(const char *cmd, const char *usage, int argc, char **argv, int max_pos,
		 const struct option *longopts, unsigned *ret_flags, char **pos,
		 struct allow_list *allow)
{
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return -1;
		}
		if (c == 'K' && allow) {
			if (cli_detach_key_parse(optarg, &allow->detach_key) < 0) {
				char what[300];
				snprintf(what, sizeof(what), "invalid detach key '%s'", optarg);
				return cli_usage(cmd, what);
			}
			continue;
		}
		if (c == 'A' && allow) {
			if (allow_list_add(allow, optarg) < 0)
				return cli_usage(cmd, allow->n == MAX_ALLOW
							      ? "too many --allow-changed paths"
							      : "--allow-changed needs a path");
			continue;
		}
		if (c == ':') {
			char what[300];
			snprintf(what, sizeof(what), "option '%s' needs a value", argv[optind - 1]);
			return cli_usage(cmd, what);
		}
		if (c > 0 && c < 256 && c != '?') {
			if (*ret_flags & (unsigned)c) {
				char what[300];
				snprintf(what, sizeof(what), "option '%s' given twice",
					 argv[optind - 1]);
				return cli_usage(cmd, what);
			}
			*ret_flags |= (unsigned)c;
			continue;
		}
		char what[300];
		cli_bad_option(argv, what, sizeof(what));
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
	int r = parse("checkpoint", checkpoint_usage, argc, argv, 1, lo, &fl, pos, NULL);
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
	struct progress pr = progress_start();
	r = control_send(sock, CONTROL_CHECKPOINT, p, sizeof(p), NULL, 0);
	/* PROGRESS reports come first, then the reply. */
	while (r == 0 && (r = control_recv(sock, &m)) == 0 && m.type == CONTROL_CKPT_PROGRESS) {
		control_msg_close_fds(&m);
		if (m.len < 24)
			continue;
		uint64_t fz = ck_get_le64(m.payload + 16);
		char extra[48] = "";
		if (fz)
			snprintf(extra, sizeof(extra), " (resumed after %.1f ms)",
				 (double)fz / 1e6);
		progress_show(&pr, name, "checkpoint:", ck_get_le64(m.payload),
			      ck_get_le64(m.payload + 8), extra);
	}
	progress_end(&pr);
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
		if (m.len >= 72) /* where the time went; vfs, net and commit go on after the resume */
			fprintf(stderr,
				"ckptenv: job %s: time by phase (the job runs again once its memory "
				"is copied): freeze %.1f ms, vfs %.1f ms, pty %.1f ms, memory %.1f ms, "
				"commit %.1f ms, net %.1f ms\n",
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

/* Checkpoint directories that are not usable: a numeric directory without a valid manifest
 * (ckpt_list leaves it out), or a listed one whose image fails its structural check (what
 * restore checks before anything runs; the page checksums are left to the restore). One line
 * each on stderr. Returns how many. */
static int report_unusable(const struct cli_job *j, const char *name, int ckdir,
			   const uint64_t *ids, size_t n)
{
	DIR *d = NULL;
	if (ckpt_dir_stream(ckdir, &d) < 0)
		return 0;
	int bad = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		errno = 0;
		unsigned long long id = strtoull(e->d_name, &end, 10);
		if (e->d_name[0] < '1' || e->d_name[0] > '9' || *end || errno)
			continue;
		bool listed = false;
		for (size_t i = 0; i < n && !listed; i++)
			listed = ids[i] == id;
		_cleanup_close_ int fd = openat(ckdir, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		char why[1200] = ""; /* what is wrong, naming the file */
		if (!listed) {
			struct ckpt_manifest man;
			int r = fd < 0 ? -errno : ckpt_manifest_read(fd, &man);
			/* Gone since the listing (dropped), or complete since (a checkpoint
			 * committed between ckpt_list and this scan): neither is unusable. */
			if ((fd < 0 && r == -ENOENT) || (r == 0 && man.id == id))
				continue;
			if (r == 0) /* a valid manifest of another checkpoint */
				snprintf(why, sizeof(why), "%s/%s/%s/%s names checkpoint %llu", j->dir,
					 CKPT_DIR, e->d_name, CKPT_MANIFEST,
					 (unsigned long long)man.id);
			else
				snprintf(why, sizeof(why), "%s/%s/%s/%s: %s", j->dir, CKPT_DIR,
					 e->d_name, CKPT_MANIFEST,
					 r == -EBADMSG ? "truncated or corrupt" : strerror(-r));
		} else if (fd >= 0) {
			struct restore_err err = {0};
			struct restore_image *img = NULL;
			int r = restore_image_load(fd, CKPT_IMAGE, &img, &err);
			restore_image_free(img);
			if (r < 0 && !strncmp(err.msg, CKPT_IMAGE "/", strlen(CKPT_IMAGE) + 1))
				/* the message starts with the file's name */
				snprintf(why, sizeof(why), "%s/%s/%s/%s", j->dir, CKPT_DIR, e->d_name,
					 err.msg);
			else if (r < 0)
				snprintf(why, sizeof(why), "%s/%s/%s/%s: %s", j->dir, CKPT_DIR,
					 e->d_name, CKPT_IMAGE, err.msg[0] ? err.msg : strerror(-r));
			/* Its /tmp: the epoch and those it builds on, as the restore will read them
			 * (the message names the store's file). */
			struct ckpt_manifest man;
			_cleanup_free_ char *store = NULL;
			if (r == 0 && ckpt_manifest_read(fd, &man) == 0 &&
			    asprintf(&store, "%s/store", j->dir) >= 0)
				(void)vfs_epoch_check(store, man.epoch, why, sizeof(why));
		}
		if (!why[0])
			continue;
		cli_error("checkpoints", name,
			  "checkpoint %llu cannot be restored: %s; 'ckptenv rm %s --checkpoint %llu' "
			  "drops it",
			  id, why, name, id);
		bad++;
	}
	closedir(d);
	return bad;
}

int cmd_checkpoints(int argc, char **argv)
{
	static const struct option lo[] = {{"help", no_argument, NULL, 'h'}, {0}};
	unsigned fl = 0;
	char *pos[1] = {0};
	int r = parse("checkpoints", checkpoints_usage, argc, argv, 1, lo, &fl, pos, NULL);
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
	int bad = 0, unusable = ckdir >= 0 ? report_unusable(&j, pos[0], ckdir, ids, n) : 0;
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
	return bad || unusable ? 1 : 0;
}

/* The job's supervisor still runs with the job stopped (checkpoint --stop, or a crash): it
 * restores the checkpoint itself, and this client then attaches or waits as after `run`. */
static int restore_in_place(struct cli_job *j, const char *name, uint64_t id, bool detach,
			    bool pty, const struct allow_list *allow,
			    int (*started)(pid_t init, void *data), void *data)
{
	_cleanup_close_ int sock = control_connect(j->job_fd, "control.sock");
	if (sock < 0) {
		cli_error("restore", name, "cannot reach the supervisor: %s; see %s/log",
			  strerror(-sock), j->dir);
		return 1;
	}
	/* le64 id, then the --allow-changed paths, each NUL-terminated. */
	uint8_t p[CONTROL_PAYLOAD_MAX];
	size_t len = 8;
	ck_put_le64(p, id);
	for (size_t i = 0; i < allow->n; i++) {
		size_t l = strlen(allow->paths[i]) + 1;
		if (len + l > sizeof(p)) {
			cli_error("restore", name, "too many --allow-changed paths for a restore in "
				  "place (at most %zu bytes of names)", sizeof(p) - 8);
			return EXIT_USAGE;
		}
		memcpy(p + len, allow->paths[i], l);
		len += l;
	}
	struct control_msg m;
	int r = control_call(sock, CONTROL_RESTORE, p, len, &m);
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
	/* As after a new supervisor's start: follow the restorer, then detach, wait or attach. */
	struct cli_run_opts ro = {.detach = detach,
				  .detach_key = allow->detach_key,
				  .in_place = true,
				  .started = started,
				  .started_data = data};
	return cli_follow_started(j, "restore", name, sock, &m, &ro, pty);
}

/* Watching the restorer from outside (the job's process is the init's only child): it takes
 * the image's name at the point of no return, and holds pages.img open until the blob has
 * filled the last page. Named so and without pages.img: the process is rebuilt (a small one
 * is, between two looks). Its resident memory against the image's page bytes tells how far
 * the blob is. */
struct restore_watch {
	struct cli_job *j;
	const char *name;
	const char *id; /* the checkpoint's */
	char comm[17];	/* the checkpointed process's name */
	off_t log_off;	/* size of the job's output before the restore began */
	uint64_t bytes; /* page bytes of the image */
	struct progress pr;
};

/* 1: pages.img open, 0: not, -errno: cannot look (another user's process). */
static int has_pages_open(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	_cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	DIR *d = fdopendir(dfd);
	if (!d)
		return -errno;
	dfd = -1; /* owned by d */
	int r = 0;
	struct dirent *e;
	while (r == 0 && (e = readdir(d))) {
		char t[PATH_MAX];
		ssize_t n = readlinkat(dirfd(d), e->d_name, t, sizeof(t) - 1);
		if (n <= 0)
			continue;
		t[n] = 0;
		size_t k = strlen("/" CKPT_IMAGE "/pages.img");
		r = (size_t)n >= k && strcmp(t + n - k, "/" CKPT_IMAGE "/pages.img") == 0;
	}
	closedir(d);
	return r;
}

/* The restorer's last words in what the job wrote since the restore began (it failed before
 * or in the blob), or NULL. *ret_refused: they are the page check's refusal of the image. */
static const char *restore_failure(struct restore_watch *w, char *buf, size_t len,
				   bool *ret_refused)
{
	*ret_refused = false;
	_cleanup_close_ int fd = openat(w->j->job_fd, OUTPUT_LOG, O_RDONLY | O_CLOEXEC);
	off_t end = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
	if (end < 0)
		return NULL;
	off_t from = end > (off_t)len - 1 ? end - (off_t)len + 1 : 0;
	if (end >= w->log_off && from < w->log_off) /* else rotated meanwhile: all of it */
		from = w->log_off;
	ssize_t n = pread(fd, buf, len - 1, from);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	const char *why = NULL;
	size_t rk = strlen(RESTORE_CHECK_REFUSED);
	for (char *l = strtok(buf, "\r\n"); l; l = strtok(NULL, "\r\n")) {
		bool refused = !strncmp(l, RESTORE_CHECK_REFUSED, rk);
		if (!strncmp(l, "ckptenv: cannot restore the job: ", 33))
			why = l + 33;
		else if (!strncmp(l, "ckptenv restorer: ", 18))
			why = l + 8;
		else if (refused)
			why = l + rk;
		else
			continue;
		*ret_refused = refused;
	}
	return why;
}

/* Did the job write anything since the restore began (the output log grew or rotated)? */
static bool output_grew(struct restore_watch *w)
{
	struct stat st;
	return fstatat(w->j->job_fd, OUTPUT_LOG, &st, 0) == 0 && st.st_size != w->log_off;
}

/* The restored process (or the whole job) is gone. Before it took the image's name, or with
 * the restorer's words in the output, the restore failed: say so (exit 1). Else the job ran
 * and ended on its own: its status tells. */
static int restore_ended(struct restore_watch *w, bool named)
{
	char buf[4096];
	bool refused;
	const char *why = restore_failure(w, buf, sizeof(buf), &refused);
	progress_end(&w->pr);
	if (refused && !strncmp(why, CKPT_IMAGE "/", strlen(CKPT_IMAGE) + 1)) {
		cli_error("restore", w->name, "checkpoint %s refused: %s/%s/%s/%s", w->id,
			  w->j->dir, CKPT_DIR, w->id, why);
		return 1;
	}
	/* Gone before we saw it named, but it wrote output and the restorer wrote no failure:
	 * a restored job that ended quickly on its own (e.g. on a reset connection). */
	if (!why && (named || output_grew(w)))
		return 0;
	cli_error("restore", w->name, "the process could not be rebuilt: %s; see 'ckptenv log %s'",
		  why ? why : "it ended during the restore", w->name);
	return 1;
}

/* cli_run_opts.started of `restore`: follow the restorer until the process is rebuilt (see
 * struct restore_watch). */
static int restore_started(pid_t init, void *userdata)
{
	struct restore_watch *w = userdata;
	char path[64], buf[8192];
	pid_t pid = 0;
	bool named = false;
	/* A restorer that has not taken the image's name by then is not one we can follow. */
	uint64_t give_up = ck_now_ns() + 60 * 1000000000ull;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)init, (int)init);
	for (;;) {
		if (!pid) {
			if (ck_read_small(path, buf, sizeof(buf)) < 0)
				return restore_ended(w, false); /* the init is gone */
			pid = (pid_t)atoi(buf);
		}
		if (pid) {
			int open = has_pages_open(pid);
			if (open == -ENOENT)
				return restore_ended(w, named);
			if (open < 0)
				return 0; /* cannot watch it; nothing to report */
			char p2[64], comm[32] = "";
			snprintf(p2, sizeof(p2), "/proc/%d/comm", (int)pid);
			if (ck_read_small(p2, comm, sizeof(comm)) > 0)
				comm[strcspn(comm, "\n")] = 0;
			named = strcmp(comm, w->comm) == 0;
			if (named && !open)
				break;
			if (named)
				give_up = UINT64_MAX; /* the blob is filling: it ends or dies */
			snprintf(p2, sizeof(p2), "/proc/%d/status", (int)pid);
			const char *rss = ck_read_small(p2, buf, sizeof(buf)) > 0
						  ? strstr(buf, "\nVmRSS:")
						  : NULL;
			if (rss && w->bytes)
				progress_show(&w->pr, w->name,
					      "restore:", strtoull(rss + 7, NULL, 10) << 10,
					      w->bytes, "");
		}
		if (ck_now_ns() > give_up)
			return 0;
		poll(NULL, 0, 50);
	}
	progress_end(&w->pr);
	return 0;
}

static int do_restore(struct cli_job *j, const char *name, const char *want, bool detach,
		      const struct allow_list *allow)
{
	bool in_place = false;
	if (want && (strspn(want, "0123456789") != strlen(want) || !*want || strlen(want) > 18)) {
		cli_error("restore", name, "invalid checkpoint id '%s'; see 'ckptenv checkpoints %s'",
			  want, name);
		return EXIT_USAGE;
	}
	if (state_job_running(j->job_fd) == 1) {
		_cleanup_close_ int sock = control_connect(j->job_fd, "control.sock");
		/* A supervisor that no longer answers is on its way out (killed, its lock not yet
		 * released while the kernel tears down its FUSE mount): wait for that a little
		 * rather than call the job running. */
		bool gone = false;
		for (int i = 0; sock < 0 && i < 100 && !gone; i++) {
			poll(NULL, 0, 50);
			gone = state_job_running(j->job_fd) != 1;
		}
		in_place = sock >= 0 && job_parked(sock);
		if (!in_place && !gone) {
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
	/* Check the image's structure before anything runs (the page checksums are checked as the
	 * restorer reads the pages: restore_pages_check, in the job's init). */
	struct restore_err err = {0};
	struct restore_watch watch = {
		.j = j, .name = name, .id = idstr, .bytes = man.bytes, .pr = progress_start()};
	struct restore_image *img = NULL;
	r = restore_image_load(cfd, CKPT_IMAGE, &img, &err);
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
	memcpy(watch.comm, img->proc.comm, sizeof(img->proc.comm));
	/* A new supervisor's restorer has this shell's open-file limit: checked now, not found
	 * out by the restorer with the job half rebuilt ("Too many open files"). */
	r = in_place ? 0 : restore_nofile_check(img, true, &err);
	restore_image_free(img);
	if (r < 0) {
		cli_error("restore", name, "checkpoint %s refused: %s", idstr, err.msg);
		return 1;
	}
	struct stat lst;
	if (fstatat(j->job_fd, OUTPUT_LOG, &lst, 0) == 0)
		watch.log_off = lst.st_size;
	/* Can it run here: CPU, kernel, and the files outside /tmp it had open or mapped. */
	struct restore_process_opts ro_check = {.allow_paths = (const char *const *)allow->paths,
						.nallow_paths = allow->n};
	r = restore_image_check(cfd, CKPT_IMAGE, &ro_check, &err);
	if (r < 0) {
		cli_error("restore", name, "checkpoint %s refused: %s", idstr,
			  err.msg[0] ? err.msg : strerror(-r));
		return r == -ENOENT && err.msg[0] == '-' ? EXIT_USAGE : 1;
	}
	if (in_place)
		return restore_in_place(j, name, id, detach, man.flags & CKPT_F_PTY, allow,
					restore_started, &watch);
	/* The command the checkpoint was taken of (checkpoints before session 6 have none: then
	 * the job's record). */
	struct job_spec spec;
	bool own = (r = job_spec_read(cfd, &spec)) != -ENOENT;
	if (!own)
		r = job_spec_read(j->job_fd, &spec);
	if (r < 0) {
		cli_error("restore", name, "cannot read %s/%s%s%sjob: %s", j->dir,
			  own ? CKPT_DIR "/" : "", own ? idstr : "", own ? "/" : "",
			  r == -EBADMSG ? "truncated or corrupt" : strerror(-r));
		return 1;
	}
	struct supervisor_args sa = {.pty = man.flags & CKPT_F_PTY,
				     .ws = {24, 80, 0, 0},
				     .restore_id = idstr,
				     .restore_epoch = man.epoch,
				     .restore_pid = man.pid,
				     .allow_changed = (const char *const *)allow->paths,
				     .nallow_changed = allow->n};
	struct cli_run_opts ro = {.detach = detach,
				  .detach_key = allow->detach_key,
				  .restore_spec = &spec,
				  .started = restore_started,
				  .started_data = &watch};
	r = cli_start_job(j, "restore", name, &ro, false, &sa);
	job_spec_free(&spec);
	return r;
}

int cmd_restore(int argc, char **argv)
{
	static const struct option lo[] = {{"detach", no_argument, NULL, 1},
					   {"allow-changed", required_argument, NULL, 'A'},
					   {"detach-key", required_argument, NULL, 'K'},
					   {"help", no_argument, NULL, 'h'},
					   {0}};
	unsigned fl = 0;
	char *pos[2] = {0};
	struct allow_list allow = {.detach_key = DEFAULT_DETACH_KEY};
	int r = parse("restore", restore_usage, argc, argv, 2, lo, &fl, pos, &allow);
	if (r) {
		allow_list_free(&allow);
		return r < 0 ? 0 : r;
	}
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
	if ((r = cli_job_open("restore", pos[0], false, &j))) {
		allow_list_free(&allow);
		return r;
	}
	r = do_restore(&j, pos[0], pos[1], fl & 1, &allow);
	cli_job_close(&j);
	allow_list_free(&allow);
	return r;
}
