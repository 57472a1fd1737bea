/* ckptenv status NAME: what list shows, and the store's size, snapshots, last exit. */
#include "ckpt-gc.h"
#include "ckpt.h"
#include "ckptenv.h"

#include "common/ck.h"
#include "vfs/vfs.h"

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char status_usage[] =
	"Usage: ckptenv status NAME\n"
	"\n"
	"Show job NAME: state, pids, command, times, store size, snapshots,\n"
	"last exit status, and for a running job its proxied TCP connections\n"
	"(peer, state, bytes each way).\n";

/* The job's own checkpoints (run --checkpoint-every), and the last one's failure if it failed:
 * a policy that failed every time showed nowhere but in the supervisor's log. */
static void print_policy(int job_fd)
{
	struct ckpt_policy p;
	if (ckpt_policy_read(job_fd, &p) < 0 || !(p.every_ns || (p.flags & CKPT_POLICY_ON_TERM)))
		return;
	char keep[32] = "all";
	if (p.keep)
		snprintf(keep, sizeof(keep), "the newest %u", p.keep);
	if (p.every_ns)
		printf("policy:     a checkpoint every %.1f s, keeping %s%s\n",
		       (double)p.every_ns / 1e9, keep,
		       p.flags & CKPT_POLICY_ON_TERM ? ", and one on SIGTERM" : "");
	else
		printf("policy:     a checkpoint on SIGTERM\n");
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if (ck_read_file_at(job_fd, CKPT_FAILED, 1024, &buf, &len) < 0 || !len)
		return;
	char line[1100], t[32];
	snprintf(line, sizeof(line), "%.*s", (int)len, buf);
	line[strcspn(line, "\n")] = 0;
	char *msg = strchr(line, ' ');
	if (!msg)
		return;
	*msg++ = 0;
	for (char *q = msg; *q; q++) /* the supervisor's text, not a terminal's commands */
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
	printf("last periodic checkpoint failed (%s): %s\n",
	       cli_time((int64_t)strtoll(line, NULL, 10), t, sizeof(t)), msg);
}

/* Why a stopped job is stopped, and what brings it back. */
static void print_stopped(const struct cli_job_info *i, const char *name)
{
	if (!i->park_left_s) {
		printf("stopped:    at checkpoint %llu ('checkpoint --stop'); 'ckptenv restore %s' "
		       "resumes it, 'ckptenv rm %s' ends it and deletes its data\n",
		       (unsigned long long)i->park_ckpt, name, name);
		return;
	}
	char t[32], how[64];
	int sig = cli_job_park_signal(i);
	if (sig)
		snprintf(how, sizeof(how), "killed by signal %d (%s)", sig, strsignal(sig));
	else
		snprintf(how, sizeof(how), "crashed");
	printf("stopped:    %s; kept until %s for 'ckptenv restore %s' (from checkpoint %llu), "
	       "then it ends\n",
	       how, cli_time(time(NULL) + (int64_t)i->park_left_s, t, sizeof(t)), name,
	       (unsigned long long)i->park_ckpt);
}

int cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(status_usage, stdout);
			return 0;
		}
		char what[300];
		cli_bad_option(argv, what, sizeof(what));
		return cli_usage("status", what);
	}
	if (optind >= argc)
		return cli_usage("status", "missing job name");
	if (optind + 1 < argc)
		return cli_usage("status", "too many arguments");
	const char *name = argv[optind];
	struct cli_job j;
	int r = cli_job_open("status", name, false, &j);
	if (r)
		return r;

	struct cli_job_info i;
	cli_job_info_load(j.job_fd, &i);
	char st[32], t[32], sz[32];
	_cleanup_free_ char *cmd = i.has_spec ? job_spec_command(&i.spec) : NULL;
	printf("name:       %s\n", name);
	printf("state:      %s\n", cli_job_state_str(&i, st, sizeof(st)));
	if (i.state == CLI_JOB_RUNNING && i.stopped && i.has_park)
		print_stopped(&i, name);
	if (i.state == CLI_JOB_RUNNING && i.has_run && !i.stopped)
		printf("pid:        %d (supervisor %d)\n", (int)i.run.init_pid,
		       (int)i.run.supervisor_pid);
	else if (i.state == CLI_JOB_RUNNING && i.has_run) /* stopped: no process, its supervisor */
		printf("supervisor: %d\n", (int)i.run.supervisor_pid);
	if (i.state == CLI_JOB_RUNNING)
		cli_attach_print_clients(j.job_fd);
	printf("command:    %s\n", cmd ? cmd : "-");
	if (i.has_spec) {
		printf("cwd:        %s\n", i.spec.cwd);
		if (i.spec.from_epoch)
			printf("from:       snapshot %llu\n",
			       (unsigned long long)i.spec.from_epoch);
	}
	printf("started:    %s\n", cli_time(i.has_run	 ? i.run.started
					    : i.has_spec ? i.spec.created
							 : 0,
					    t, sizeof(t)));
	if (i.has_status) {
		printf("last exit:  %d (ended %s)\n", (int)i.status.exit_code,
		       cli_time(i.status.ended, t, sizeof(t)));
	} else {
		printf("last exit:  -\n");
	}
	printf("directory:  %s\n", j.dir);
	/* As list's SPACE: the store's reserve for the final commit is set aside, not used. */
	struct ckpt_space sp = {0};
	(void)ckpt_space(j.job_fd, &sp);
	printf("store size: %s\n", cli_bytes(sp.store, sz, sizeof(sz)));

	_cleanup_free_ char *store = NULL;
	struct vfs_ref *refs = NULL;
	size_t n = 0, snaps = 0;
	if (asprintf(&store, "%s/store", j.dir) >= 0 && vfs_refs_list(store, &refs, &n) == 0) {
		for (size_t k = 0; k < n; k++)
			if (strcmp(refs[k].name, "head"))
				snaps++;
	}
	free(refs);
	printf("snapshots:  %zu\n", snaps);
	print_policy(j.job_fd);
	if (i.state == CLI_JOB_RUNNING && (r = cli_status_net(j.job_fd)) < 0)
		printf("network:    unknown (the supervisor did not answer: %s)\n", strerror(-r));
	cli_job_info_free(&i);
	cli_job_close(&j);
	return 0;
}
