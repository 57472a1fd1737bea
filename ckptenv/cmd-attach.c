/* ckptenv attach NAME: put this terminal on a running job's terminal (redrawn as it is now),
 * until the detach key, the job's end, or a terminating signal. Also the relay `run` uses. */
#include "ckptenv.h"
#include "control.h"

#include "common/ck.h"
#include "ptyproxy/ptyproxy.h"

#include <ctype.h>
#include <getopt.h>
#include <signal.h>
#include <strings.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>

static const char attach_usage[] =
	"Usage: ckptenv attach NAME [--read-only] [--detach-key KEY]\n"
	"\n"
	"Attach this terminal to the running job NAME: its screen is redrawn as it is now, and the\n"
	"window size follows the most recently attached client still there (not a read-only one).\n"
	"Exits with the job's exit status when it ends while attached, 0 after a detach. A job on a\n"
	"terminal needs a terminal here (stdin); 'ckptenv log -f NAME' follows its output.\n"
	"\n"
	"  -r, --read-only       watch only: keystrokes are not sent to the job\n"
	"  -k, --detach-key KEY  key that detaches: ^X, C-x, one character, or 'none'\n"
	"                        (default ^\\ , i.e. Ctrl-\\)\n"
	"  -h, --help            this text\n";

int cli_detach_key_parse(const char *s, int *ret)
{
	size_t n = strlen(s);
	if (!strcmp(s, "none")) {
		*ret = -1;
		return 0;
	}
	const char *c = NULL;
	if (n == 2 && s[0] == '^')
		c = s + 1;
	else if (n == 3 && (s[0] == 'C' || s[0] == 'c') && s[1] == '-')
		c = s + 2;
	else if (n == 6 && !strncasecmp(s, "ctrl-", 5))
		c = s + 5;
	if (c) {
		int k = toupper((unsigned char)*c);
		if (k == '?') {
			*ret = 0x7f;
			return 0;
		}
		if (k < '@' || k > '_')
			return -EINVAL;
		*ret = k - '@';
		return 0;
	}
	if (n == 1) {
		*ret = (unsigned char)s[0];
		return 0;
	}
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (errno || *end || end == s || v < 0 || v > 255)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

static bool forward_signal(void *ud, int sig)
{
	const struct cli_attach_opts *o = ud;
	/* A lost supervisor shows on the attach socket too; nothing to do about it here. */
	(void)control_send_u32(o->control_sock, CONTROL_SIGNAL, (uint32_t)sig);
	return false;
}

int cli_attach(const struct cli_job *j, const char *cmd, const char *name,
	       const struct cli_attach_opts *o, int *ret_code)
{
	(void)cmd;
	_cleanup_close_ int sock = control_unix_connect(j->job_fd, ATTACH_SOCK, SOCK_STREAM);
	if (sock < 0)
		return sock;
	struct ptyproxy_client_opts po;
	ptyproxy_client_opts_init(&po);
	po.detach_key = o->detach_key;
	po.read_only = o->read_only;
	po.pipes = o->pipes;
	po.no_redraw = o->no_redraw;
	/* The older path, where this process relays both ways (for comparison: bench/pty.sh). */
	const char *relay = getenv("CKPTENV_ATTACH_RELAY");
	po.relay = relay && *relay && strcmp(relay, "0");
	if (o->control_sock >= 0) {
		po.on_signal = forward_signal;
		po.userdata = (void *)o;
	}
	int ws = 0;
	int r = ptyproxy_client_run(sock, &po, &ws);
	switch (r) {
	case PTYPROXY_END_EXITED:
		*ret_code = WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws);
		return 0;
	case PTYPROXY_END_DETACHED:
	case PTYPROXY_END_SIGNAL:
		/* On a terminal the cursor may be anywhere in the job's last line: a line of our own. */
		fprintf(stderr, "%sdetached from %s; reattach with: ckptenv attach %s\n",
			o->pipes ? "ckptenv: " : "\n", name, name);
		return 1;
	case PTYPROXY_END_LOST:
		return -ECONNRESET;
	default:
		return r < 0 ? r : -EIO;
	}
}

void cli_attach_print_clients(int job_fd)
{
	_cleanup_close_ int sock = control_connect(job_fd, "control.sock");
	struct control_msg m = {0};
	int r = sock;
	if (sock >= 0) {
		struct timeval tv = {.tv_sec = 1};
		setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		r = control_call(sock, CONTROL_INFO, NULL, 0, &m);
	}
	if (r >= 0) {
		control_msg_close_fds(&m);
		if (m.type != CONTROL_INFO_REPLY || m.len < 20 ||
		    m.len < 20 + 12 * (uint64_t)ck_get_le32(m.payload + 16))
			r = -EBADMSG;
	}
	if (r < 0) {
		printf("clients:    ? (the supervisor did not answer: %s)\n", strerror(-r));
		return;
	}
	uint32_t clients = ck_get_le32(m.payload), writers = ck_get_le32(m.payload + 4);
	uint32_t flags = ck_get_le32(m.payload + 8), n = ck_get_le32(m.payload + 16);
	printf("clients:    %u attached (%u read-only)", clients, clients - writers);
	if (flags & CONTROL_INFO_PIPES)
		printf("; no terminal (pipes)\n");
	else
		printf("; terminal %ux%u\n", ck_get_le16(m.payload + 14), ck_get_le16(m.payload + 12));
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = m.payload + 20 + 12 * i;
		uint32_t f = ck_get_le32(e);
		char size[32] = "-";
		if (!(f & CONTROL_CLIENT_PIPES))
			snprintf(size, sizeof(size), "%ux%u", ck_get_le16(e + 6), ck_get_le16(e + 4));
		printf("  pid %-8u %-10s %-9s%s%s\n", ck_get_le32(e + 8),
		       f & CONTROL_CLIENT_READ_ONLY ? "read-only" : "writer", size,
		       f & CONTROL_CLIENT_SIZE_OWNER ? " size owner" : "",
		       f & CONTROL_CLIENT_PIPES ? " pipes" : f & CONTROL_CLIENT_DIRECT ? " direct" : " relayed");
	}
}

/* Does the job run on a terminal (1), on pipes (0)? Unknown: -1. */
static int job_on_terminal(int job_fd)
{
	_cleanup_close_ int sock = control_connect(job_fd, "control.sock");
	struct control_msg m;
	if (sock < 0 || control_call(sock, CONTROL_INFO, NULL, 0, &m) < 0)
		return -1;
	control_msg_close_fds(&m);
	uint32_t f = m.type == CONTROL_INFO_REPLY && m.len >= 12 ? ck_get_le32(m.payload + 8) : 0;
	if (!(f & CONTROL_INFO_STARTED))
		return -1;
	return !(f & CONTROL_INFO_PIPES);
}

int cmd_attach(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"read-only", no_argument, NULL, 'r'},
		{"detach-key", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct cli_attach_opts o = {.detach_key = DEFAULT_DETACH_KEY, .control_sock = -1};
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "rk:h", longopts, NULL)) != -1) {
		char what[300];
		switch (c) {
		case 'r':
			o.read_only = true;
			break;
		case 'k':
			if (cli_detach_key_parse(optarg, &o.detach_key) < 0) {
				snprintf(what, sizeof(what), "invalid detach key '%s'", optarg);
				return cli_usage("attach", what);
			}
			break;
		case 'h':
			fputs(attach_usage, stdout);
			return 0;
		default:
			if (c == '?' && optopt == 'k')
				snprintf(what, sizeof(what), "option '%s' needs a value",
					 argv[optind - 1]);
			else
				cli_bad_option(argv, what, sizeof(what));
			return cli_usage("attach", what);
		}
	}
	if (optind + 1 != argc)
		return cli_usage("attach", optind >= argc ? "missing job name"
							  : "unexpected argument");
	const char *name = argv[optind];
	signal(SIGPIPE, SIG_IGN);
	struct cli_job j;
	int r = cli_job_open("attach", name, false, &j);
	if (r)
		return r;
	if (state_job_running(j.job_fd) <= 0) {
		cli_error("attach", name, "the job is not running; see 'ckptenv status %s'", name);
		cli_job_close(&j);
		return 1;
	}
	o.pipes = !isatty(0);
	int tty_job = job_on_terminal(j.job_fd);
	if ((o.pipes || !isatty(1)) && tty_job == 1) {
		/* Keys from a file or a pipe into a screen nobody sees, and no end to it; or the
		 * session, redraws and all, into a file while the terminal stays blank. */
		cli_error("attach", name,
			  "job %s runs on a terminal and %s is not one; attach from a terminal, "
			  "or follow its output with 'ckptenv log -f %s'",
			  name, o.pipes ? "stdin" : "stdout", name);
		cli_job_close(&j);
		return 1;
	}
	/* A job on pipes: this terminal stays as it is (lines, echo, Ctrl-C), as for `run` of
	 * such a job; in raw mode its output staircased and nothing typed was echoed. */
	if (tty_job == 0)
		o.pipes = true;
	int code = 0;
	r = cli_attach(&j, "attach", name, &o, &code);
	if (r == 0) { /* `run` says it with its exit status; an attach ended silently (rm --force) */
		if (!o.pipes) /* the cursor may be anywhere in the job's last line */
			fputc('\n', stderr);
		cli_error("attach", name, "the job ended (exit status %d)", code);
	}
	if (r < 0) {
		cli_error("attach", name, "%s the job's terminal (%s); see %s/log",
			  r == -ECONNRESET ? "lost" : "cannot reach",
			  r == -ECONNRESET ? "connection closed" : strerror(-r), j.dir);
		code = 1;
	} else if (r == 1) {
		code = 0;
	}
	cli_job_close(&j);
	return code;
}
