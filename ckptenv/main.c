/* ckptenv: command line entry and subcommand dispatch. */
#include "ckptenv.h"

#include "common/ck.h"

#include <fcntl.h>
#include <errno.h>
#include <stdio.h>

static const char usage[] =
	"Usage: ckptenv COMMAND [OPTIONS]\n"
	"\n"
	"Run a job in an environment whose /tmp is private, persistent and snapshotted.\n"
	"\n"
	"Commands:\n"
	"  run [--name N] [--detach] [--detach-key K] [--log-size S] [--from-snapshot ID]\n"
	"      [--checkpoint-every D [--keep K]] [--checkpoint-on-term]\n"
	"      -- CMD [ARGS...]   run CMD as job N (state in $CKPTENV_HOME/jobs/N); from a\n"
	"                         terminal, attach to it (detach: Ctrl-\\)\n"
	"  attach NAME [--read-only] [--detach-key K]\n"
	"                         attach this terminal to a running job (screen redrawn)\n"
	"  log NAME [-f]          print the job's output log (-f: follow)\n"
	"  list [--json]          list jobs (state, space used, attached clients)\n"
	"  status NAME            show one job (clients, proxied connections)\n"
	"  rm NAME [--force]      delete a job and its data (--force: kill it first)\n"
	"  rm NAME --checkpoint ID  delete one checkpoint and its /tmp epoch\n"
	"  snapshot NAME          snapshot the running job's /tmp; prints the snapshot id\n"
	"  snapshot NAME --drop ID  delete a snapshot\n"
	"  snapshots NAME         list a job's snapshots\n"
	"  checkpoint NAME [--stop]  checkpoint the job's process, /tmp, terminal and\n"
	"                         connections; prints the id (--stop: end the job, keep its\n"
	"                         supervisor for a restore in place)\n"
	"  checkpoints NAME       list a job's checkpoints\n"
	"  restore NAME [ID] [--detach] [--allow-changed PATH]...\n"
	"                         rebuild an ended or stopped job from a checkpoint\n"
	"\n"
	"Options: --help (also after any command), --version\n"
	"State: $CKPTENV_HOME, else $XDG_STATE_HOME/ckptenv, else ~/.local/state/ckptenv\n";

/* Closed 0/1/2 would be taken by the next open() and end up as the job's stdio. */
static void ensure_stdio(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
		if (n >= 0 && n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} commands[] = {
	{"run", cmd_run}, {"list", cmd_list},	      {"status", cmd_status},
	{"rm", cmd_rm},	  {"snapshot", cmd_snapshot}, {"snapshots", cmd_snapshots},
	{"attach", cmd_attach}, {"log", cmd_log},
	{"checkpoint", cmd_checkpoint}, {"checkpoints", cmd_checkpoints}, {"restore", cmd_restore},
};

/* What a command printed must have reached its stdout: a snapshot's id or a generated job
 * name lost to a full disk (>/dev/full) was an exit 0. */
static int stdout_checked(int rc)
{
	errno = 0;
	int r = fflush(stdout);
	if (r == 0 && !ferror(stdout))
		return rc;
	fprintf(stderr, "ckptenv: cannot write to standard output: %s\n",
		r != 0 && errno ? strerror(errno) : "write error");
	return rc ? rc : 1;
}

int main(int argc, char **argv)
{
	ensure_stdio();
	if (argc < 2) {
		fprintf(stderr, "ckptenv: missing command (run, attach, list, status, checkpoint, "
				"restore, ...); see 'ckptenv --help'\n");
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage, stdout);
		return stdout_checked(0);
	}
	if (!strcmp(cmd, "--version") && argc > 2) {
		fprintf(stderr, "ckptenv: --version takes no arguments; see 'ckptenv --help'\n");
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "--version")) {
		printf("ckptenv %s\n", CKPTENV_VERSION);
		return stdout_checked(0);
	}
	for (size_t i = 0; i < CK_ARRAY_SIZE(commands); i++)
		if (!strcmp(cmd, commands[i].name))
			return stdout_checked(commands[i].fn(argc - 1, argv + 1));
	if (cmd[0] == '-')
		fprintf(stderr, "ckptenv: unknown option '%s'; see 'ckptenv --help'\n", cmd);
	else
		cli_error(cmd, NULL, "unknown command; see 'ckptenv --help'");
	return EXIT_USAGE;
}
