/* ckptenv list [--json]: one line (or JSON object) per job. */
#include "ckpt-gc.h"
#include "ckptenv.h"
#include "control.h"

#include "common/ck.h"

#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

static const char list_usage[] =
	"Usage: ckptenv list [--json]\n"
	"\n"
	"List the jobs of $CKPTENV_HOME: NAME STATE PID COMMAND STARTED SPACE ATTACHED.\n"
	"SPACE: disk used by the job's state (its /tmp with every epoch, checkpoints, log).\n"
	"ATTACHED: clients attached to a running job's terminal (+N read-only ones).\n"
	"  --json   one JSON array of objects instead of a table\n";

/* Ask a running job's supervisor how many clients are attached (and its CONTROL_INFO_* flags
 * into *ret_flags when not NULL). -errno when it cannot say. */
/* Ask the supervisor of a running job: its clients, whether it is stopped and why, into @i. */
static int job_info(int job_fd, struct cli_job_info *i)
{
	_cleanup_close_ int sock = control_connect(job_fd, "control.sock");
	if (sock < 0)
		return sock;
	struct timeval tv = {.tv_sec = 1};
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct control_msg m;
	int r = control_call(sock, CONTROL_INFO, NULL, 0, &m);
	if (r < 0)
		return r;
	control_msg_close_fds(&m);
	if (m.type != CONTROL_INFO_REPLY || m.len < 8)
		return -EBADMSG;
	i->has_clients = true;
	i->clients = ck_get_le32(m.payload);
	i->writers = ck_get_le32(m.payload + 4);
	uint32_t flags = m.len >= 12 ? ck_get_le32(m.payload + 8) : 0;
	i->stopped = flags & CONTROL_INFO_PARKED;
	/* A stopped job's tail (control.h): absent from older supervisors. */
	uint64_t tail = m.len >= 20 ? 20 + 12 * (uint64_t)ck_get_le32(m.payload + 16) : 0;
	if (i->stopped && tail && tail <= m.len && m.len - tail >= 16) {
		i->has_park = true;
		i->park_status = (int)ck_get_le32(m.payload + tail);
		i->park_left_s = ck_get_le32(m.payload + tail + 4);
		i->park_ckpt = ck_get_le64(m.payload + tail + 8);
	}
	return 0;
}

void cli_job_info_load(int job_fd, struct cli_job_info *ret)
{
	struct cli_job_info i = {0};
	i.has_spec = job_spec_read(job_fd, &i.spec) == 0;
	i.has_status = job_status_read(job_fd, &i.status) == 0;
	i.has_run = job_run_read(job_fd, &i.run) == 0;
	if (state_job_running(job_fd) > 0) {
		i.state = CLI_JOB_RUNNING;
		(void)job_info(job_fd, &i); /* no answer: nothing of it is set */
	}
	else if (i.has_status && (!i.has_run || i.status.run_id == i.run.run_id))
		i.state = CLI_JOB_EXITED;
	else if (i.has_run)
		i.state = CLI_JOB_DIED; /* started, but its supervisor never wrote the end */
	else
		i.state = CLI_JOB_NEVER;
	*ret = i;
}

void cli_job_info_free(struct cli_job_info *i)
{
	if (i->has_spec)
		job_spec_free(&i->spec);
	*i = (struct cli_job_info){0};
}

const char *cli_job_state_str(const struct cli_job_info *i, char *buf, size_t len)
{
	switch (i->state) {
	case CLI_JOB_RUNNING:
		snprintf(buf, len, i->stopped ? "stopped" : "running");
		break;
	case CLI_JOB_EXITED:
		snprintf(buf, len, "exited %d", (int)i->status.exit_code);
		break;
	case CLI_JOB_DIED:
		snprintf(buf, len, "died");
		break;
	default:
		snprintf(buf, len, "never started");
	}
	return buf;
}

int cli_job_park_signal(const struct cli_job_info *i)
{
	return i->has_park && i->park_left_s ? job_status_signal(i->park_status) : 0;
}

void cli_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cmd_list(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
	bool json = false;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "jh", longopts, NULL)) != -1) {
		if (c == 'j') {
			json = true;
		} else if (c == 'h') {
			fputs(list_usage, stdout);
			return 0;
		} else {
			char what[300];
			cli_bad_option(argv, what, sizeof(what));
			return cli_usage("list", what);
		}
	}
	if (optind < argc)
		return cli_usage("list", "unexpected argument");

	_cleanup_free_ char *home = NULL;
	if (state_home(&home) < 0) {
		cli_error("list", NULL, "cannot find the state directory; set CKPTENV_HOME");
		return 1;
	}
	int jobs_fd = -1;
	int r = state_jobs_open(home, false, &jobs_fd);
	if (r < 0 && r != -ENOENT) {
		cli_error("list", NULL, "cannot open %s/jobs: %s", home, strerror(-r));
		return 1;
	}
	_cleanup_free_ char *jobs = NULL;
	_cleanup_close_ int hfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if ((hfd >= 0 && cli_state_dir_check("list", NULL, hfd, home, 002)) ||
	    (jobs_fd >= 0 && asprintf(&jobs, "%s/jobs", home) >= 0 &&
	     cli_state_dir_check("list", NULL, jobs_fd, jobs, 022))) {
		if (jobs_fd >= 0)
			close(jobs_fd);
		return 1;
	}
	char **names = NULL;
	size_t n = 0;
	DIR *d = jobs_fd >= 0 ? fdopendir(jobs_fd) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (state_name_check(de->d_name) < 0)
			continue;
		char **nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn)
			break;
		names = nn;
		if ((names[n] = strdup(de->d_name)))
			n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);

	if (json)
		fputs("[", stdout);
	else
		printf("%-20s %-14s %-8s %-40s %-19s %10s %s\n", "NAME", "STATE", "PID",
		       "COMMAND", "STARTED", "SPACE", "ATTACHED");
	bool first = true;
	for (size_t k = 0; k < n; k++) {
		_cleanup_close_ int fd = -1;
		struct stat dst;
		if (state_job_open(dirfd(d), names[k], false, &fd) < 0)
			continue;
		int own = state_dir_ours(fd, 022, true, &dst);
		if (own < 0) { /* not a job of ours (see cli_job_open): said, not hidden */
			_cleanup_free_ char *dir = NULL;
			if (own == -EPERM && asprintf(&dir, "%s/jobs/%s", home, names[k]) >= 0)
				(void)cli_state_dir_check("list", NULL, fd, dir, 022);
			continue;
		}
		struct cli_job_info i;
		cli_job_info_load(fd, &i);
		char st[32], t[32];
		_cleanup_free_ char *cmd = i.has_spec ? job_spec_command(&i.spec) : NULL;
		int64_t started = i.has_run ? i.run.started : i.has_spec ? i.spec.created : 0;
		bool running = i.state == CLI_JOB_RUNNING;
		/* Asked of the supervisor once, in cli_job_info_load. */
		uint32_t ncl = i.clients, nwr = i.writers;
		bool have_cl = running && i.has_clients;
		cli_job_state_str(&i, st, sizeof(st));
		struct ckpt_space sp = {0};
		(void)ckpt_space(fd, &sp);
		if (json) {
			printf("%s\n  {\"name\": ", first ? "" : ",");
			cli_json_str(stdout, names[k]);
			printf(", \"state\": \"%s\"", running && i.stopped	  ? "stopped"
						      : running			  ? "running"
						      : i.state == CLI_JOB_EXITED ? "exited"
						      : i.state == CLI_JOB_DIED	  ? "died"
										: "never started");
			if (i.state == CLI_JOB_EXITED)
				printf(", \"exit_code\": %d", (int)i.status.exit_code);
			if (running && i.stopped && i.has_park && i.park_left_s)
				printf(", \"stopped_by\": \"crash\", \"signal\": %d, "
				       "\"kept_until\": %lld",
				       cli_job_park_signal(&i),
				       (long long)time(NULL) + (long long)i.park_left_s);
			else if (running && i.stopped && i.has_park)
				printf(", \"stopped_by\": \"checkpoint\"");
			if (running && i.stopped && i.has_park)
				printf(", \"checkpoint\": %llu", (unsigned long long)i.park_ckpt);
			/* Stopped: that init is gone (status leaves its pid out too). */
			if (running && i.has_run && !i.stopped)
				printf(", \"pid\": %d, \"supervisor_pid\": %d", (int)i.run.init_pid,
				       (int)i.run.supervisor_pid);
			if (have_cl)
				printf(", \"clients\": %u, \"read_only_clients\": %u", ncl,
				       ncl - nwr);
			printf(", \"command\": ");
			cli_json_str(stdout, cmd ? cmd : "");
			/* The words themselves: "command" is for reading, joined and escaped. */
			printf(", \"argv\": [");
			for (uint32_t a = 0; i.has_spec && a < i.spec.argc; a++) {
				printf("%s", a ? ", " : "");
				cli_json_str(stdout, i.spec.argv[a]);
			}
			printf("]");
			printf(", \"started\": %lld, \"space\": %llu, \"space_store\": %llu, "
			       "\"space_checkpoints\": %llu}",
			       (long long)started, (unsigned long long)sp.total,
			       (unsigned long long)sp.store, (unsigned long long)sp.checkpoints);
		} else {
			char pid[16] = "-";
			if (running && i.has_run && !i.stopped)
				snprintf(pid, sizeof(pid), "%d", (int)i.run.init_pid);
			char shortcmd[41], att[24] = "-";
			snprintf(shortcmd, sizeof(shortcmd), "%s", cmd ? cmd : "-");
			if (have_cl && ncl > nwr)
				snprintf(att, sizeof(att), "%u+%u", nwr, ncl - nwr);
			else if (have_cl)
				snprintf(att, sizeof(att), "%u", ncl);
			char space[32];
			printf("%-20s %-14s %-8s %-40s %-19s %10s %s\n", names[k], st, pid,
			       shortcmd, cli_time(started, t, sizeof(t)),
			       cli_bytes(sp.total, space, sizeof(space)), att);
		}
		first = false;
		cli_job_info_free(&i);
	}
	if (json)
		fputs(n ? "\n]\n" : "]\n", stdout);
	for (size_t k = 0; k < n; k++)
		free(names[k]);
	free(names);
	if (d)
		closedir(d);
	return 0;
}
