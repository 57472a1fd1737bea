/* ckptenv snapshot NAME [--drop ID], ckptenv snapshots NAME: epochs of a job's /tmp. */
#include "ckpt.h"
#include "ckptenv.h"
#include "control.h"

#include "common/ck.h"
#include "vfs/vfs.h"

#include <getopt.h>
#include <stdio.h>

static const char snapshot_usage[] =
	"Usage: ckptenv snapshot NAME            snapshot the running job's /tmp\n"
	"       ckptenv snapshot NAME --drop ID  delete snapshot ID\n"
	"\n"
	"Prints the snapshot id on stdout (use it with 'ckptenv run --from-snapshot ID').\n";

static const char snapshots_usage[] = "Usage: ckptenv snapshots NAME\n"
				      "\n"
				      "List job NAME's snapshots: ID, TIME, SIZE.\n";

static int parse_name(const char *cmd, const char *usage, int argc, char **argv,
		      const char **ret_drop, const char **ret_name)
{
	static const struct option longopts[] = {
		{"drop", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {0}};
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ret_drop ? "d:h" : "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return -1;
		}
		if (c == 'd' && ret_drop) {
			*ret_drop = optarg;
			continue;
		}
		char what[300];
		snprintf(what, sizeof(what), "%s '%s'",
			 c == '?' && optopt == 'd' ? "option needs a value:" : "unknown option",
			 argv[optind - 1]);
		return cli_usage(cmd, what);
	}
	if (optind >= argc)
		return cli_usage(cmd, "missing job name");
	if (optind + 1 < argc)
		return cli_usage(cmd, "too many arguments");
	*ret_name = argv[optind];
	return 0;
}

/* "7" or "snap-7" -> "snap-7"; "ckpt-..." passes as is. */
static int ref_name(const char *id, char *buf, size_t len)
{
	const char *digits = id;
	if (!strncmp(id, "ckpt-", 5) && id[5]) {
		snprintf(buf, len, "%s", id);
		return strlen(id) < len ? 0 : -EINVAL;
	}
	if (!strncmp(id, "snap-", 5))
		digits = id + 5;
	if (!*digits || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 20)
		return -EINVAL;
	snprintf(buf, len, "snap-%s", digits);
	return 0;
}

static int reply_error(const char *cmd, const char *name, const struct control_msg *m)
{
	char err[1100];
	int e;
	if (m->type == CONTROL_EXITED)
		cli_error(cmd, name, "the job ended meanwhile");
	else if (control_parse_error(m, &e, err, sizeof(err)) == 0)
		cli_error(cmd, name, "%s", err);
	else
		cli_error(cmd, name, "unexpected reply %u from the supervisor", m->type);
	return 1;
}

static int drop(struct cli_job *j, const char *name, const char *id)
{
	char ref[64];
	if (ref_name(id, ref, sizeof(ref)) < 0) {
		cli_error("snapshot", name, "invalid snapshot id '%s'; see 'ckptenv snapshots %s'",
			  id, name);
		return EXIT_USAGE;
	}
	/* A checkpoint's epoch goes with its checkpoint, never alone (docs/checkpoint.md). */
	_cleanup_close_ int ckdir = -1;
	uint64_t *ids = NULL;
	size_t n = 0;
	bool owned = false;
	if (!strncmp(ref, "ckpt-", 5) && ckpt_dir_open(j->job_fd, false, &ckdir) == 0 &&
	    ckpt_list(ckdir, &ids, &n) == 0)
		for (size_t k = 0; k < n && !owned; k++)
			owned = ids[k] == strtoull(ref + 5, NULL, 10);
	free(ids);
	if (owned) {
		cli_error("snapshot", name,
			  "%s is the /tmp of checkpoint %s; drop both with 'ckptenv rm %s "
			  "--checkpoint %s'",
			  ref, ref + 5, name, ref + 5);
		return 1;
	}
	_cleanup_close_ int lock_fd = -1, sock = -1;
	if (cli_store_owner(j, "snapshot", name, &lock_fd, &sock))
		return 1;
	int r;
	if (sock >= 0) { /* running: the supervisor owns the store */
		struct ck_buf b = {0};
		ck_buf_str(&b, ref, strlen(ref));
		struct control_msg m;
		r = b.err ? b.err : control_call(sock, CONTROL_DROP, b.data, b.len, &m);
		ck_buf_free(&b);
		if (r < 0) {
			cli_error("snapshot", name, "supervisor: %s", strerror(-r));
			return 1;
		}
		control_msg_close_fds(&m);
		return m.type == CONTROL_OK ? 0 : reply_error("snapshot", name, &m);
	}
	struct vfs *v;
	if (cli_job_vfs_open(j, "snapshot", name, &v))
		return 1;
	r = vfs_ref_drop(v, ref);
	vfs_close(v, false);
	if (r < 0) {
		cli_error("snapshot", name, "cannot drop %s: %s; see 'ckptenv snapshots %s'", ref,
			  r == -ENOENT ? "no such snapshot" : strerror(-r), name);
		return 1;
	}
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	const char *name = NULL, *drop_id = NULL;
	int r = parse_name("snapshot", snapshot_usage, argc, argv, &drop_id, &name);
	if (r)
		return r < 0 ? 0 : r;
	struct cli_job j;
	r = cli_job_open("snapshot", name, false, &j);
	if (r)
		return r;
	if (drop_id) {
		r = drop(&j, name, drop_id);
		cli_job_close(&j);
		return r;
	}
	if (state_job_running(j.job_fd) <= 0) {
		cli_error("snapshot", name,
			  "the job is not running; its /tmp as it ended is what the next 'ckptenv "
			  "run --name %s -- CMD' starts from",
			  name);
		cli_job_close(&j);
		return 1;
	}
	_cleanup_close_ int sock = control_connect(j.job_fd, "control.sock");
	if (sock < 0) {
		cli_error("snapshot", name, "cannot reach the supervisor: %s; see %s/log",
			  strerror(-sock), j.dir);
		cli_job_close(&j);
		return 1;
	}
	struct control_msg m;
	r = control_call(sock, CONTROL_SNAPSHOT, NULL, 0, &m);
	if (r < 0) {
		cli_error("snapshot", name, "supervisor: %s; see %s/log", strerror(-r), j.dir);
		cli_job_close(&j);
		return 1;
	}
	control_msg_close_fds(&m);
	uint64_t epoch, ns;
	if (m.type != CONTROL_SNAPPED || control_parse_u64x2(&m, &epoch, &ns) < 0) {
		r = reply_error("snapshot", name, &m);
		cli_job_close(&j);
		return r;
	}
	printf("%llu\n", (unsigned long long)epoch);
	fflush(stdout);
	if (m.len >= 40) {
		/* The breakdown: the kernel's writeback drain, then the store's own work. */
		fprintf(stderr,
			"ckptenv: snapshot %s: snapshot %llu taken in %.1f ms (syncfs %.1f ms, "
			"commit %.1f ms, %.1f MiB changed)\n",
			name, (unsigned long long)epoch, (double)ns / 1e6,
			(double)ck_get_le64(m.payload + 16) / 1e6,
			(double)ck_get_le64(m.payload + 24) / 1e6,
			(double)ck_get_le64(m.payload + 32) / (1024.0 * 1024.0));
	} else {
		fprintf(stderr, "ckptenv: snapshot %s: snapshot %llu taken in %.1f ms\n", name,
			(unsigned long long)epoch, (double)ns / 1e6);
	}
	cli_job_close(&j);
	return 0;
}

int cmd_snapshots(int argc, char **argv)
{
	const char *name = NULL;
	int r = parse_name("snapshots", snapshots_usage, argc, argv, NULL, &name);
	if (r)
		return r < 0 ? 0 : r;
	struct cli_job j;
	r = cli_job_open("snapshots", name, false, &j);
	if (r)
		return r;
	_cleanup_free_ char *store = NULL;
	struct vfs_ref *refs = NULL;
	size_t n = 0;
	if (asprintf(&store, "%s/store", j.dir) < 0) {
		cli_job_close(&j);
		return 1;
	}
	r = vfs_refs_list(store, &refs, &n);
	if (r < 0 && r != -ENOENT) {
		cli_error("snapshots", name, "cannot read the snapshots of %s: %s", store,
			  strerror(-r));
		cli_job_close(&j);
		return 1;
	}
	printf("%-20s %-20s %s\n", "ID", "TIME", "SIZE");
	for (size_t k = 0; k < n; k++) {
		if (!strcmp(refs[k].name, "head"))
			continue;
		char t[32], sz[32], id[64];
		if (!strncmp(refs[k].name, "snap-", 5))
			snprintf(id, sizeof(id), "%llu", (unsigned long long)refs[k].epoch);
		else
			snprintf(id, sizeof(id), "%s", refs[k].name);
		printf("%-20s %-20s %s\n", id, cli_time(refs[k].created, t, sizeof(t)),
		       cli_bytes(refs[k].bytes, sz, sizeof(sz)));
	}
	free(refs);
	cli_job_close(&j);
	return 0;
}
