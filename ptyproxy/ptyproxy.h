/* ptyproxy: the terminal a job keeps. The supervisor holds the master of a pty (or, with no
 * terminal, the supervisor-side ends of three pipes), forwards the job's output to every attached
 * client and into a bounded log and a ring, records the terminal modes the job sets, and keeps a
 * libvterm screen model (fed lazily from the ring, never in the output path) to redraw the screen
 * when a client (re)attaches. The client side (`ckptenv attach`) is ptyproxy_client_run().
 *
 * Event-loop contract: the library never blocks and never owns a loop on the server side. It
 * asks the caller to watch its fds through ops->watch (epoll_ctl ADD/MOD/DEL), and the caller
 * hands every readiness event on such an fd to ptyproxy_handle(). ptyproxy_idle() says when it
 * wants to be called again for background work (screen model catch-up, log flush).
 * Single-threaded: all calls on one struct ptyproxy from the same thread. The caller ignores
 * SIGPIPE (writes to a job's stdin pipe that the job closed); sockets use MSG_NOSIGNAL. */
#ifndef PTYPROXY_H
#define PTYPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <termios.h>

/* ---- Attach protocol (also used by the client) ----------------------------------------- */

/* Every message: le16 magic, u8 version, u8 type, le32 payload length, payload. */
#define PTYPROXY_MSG_MAGIC   0xC7A7u
#define PTYPROXY_MSG_VERSION 1
#define PTYPROXY_MSG_HDR     8
#define PTYPROXY_MSG_MAX     65536u /* payload bound; longer is malformed */
#define PTYPROXY_TERM_MAX    64u

enum ptyproxy_msg_type {
	PTYPROXY_MSG_HELLO = 1,	     /* c->s: le32 flags, le16 rows, cols, xpix, ypix,
				      * [termios, PTYPROXY_TERMIOS_LEN], TERM bytes */
	PTYPROXY_MSG_INPUT = 2,	     /* c->s: bytes for the job's stdin */
	PTYPROXY_MSG_RESIZE = 3,     /* c->s: le16 rows, cols, xpix, ypix */
	PTYPROXY_MSG_DETACH = 4,     /* c->s: empty; the server closes this client */
	PTYPROXY_MSG_OUTPUT = 5,     /* s->c: bytes of the job's output (stdout in pipe mode) */
	PTYPROXY_MSG_REDRAW = 6,     /* c->s: empty (request); s->c: screen bytes to write */
	PTYPROXY_MSG_EXITED = 7,     /* s->c: le32 wait status of the job; then the server closes */
	PTYPROXY_MSG_STDERR = 8,     /* s->c: pipe mode only: bytes of the job's stderr */
	PTYPROXY_MSG_INPUT_EOF = 9,  /* c->s: pipe mode: end of the job's stdin */
	PTYPROXY_MSG_WELCOME = 10,   /* s->c: le32 flags (PTYPROXY_WELCOME_*) */
	PTYPROXY_MSG_MODES = 11,     /* s->c: le32 enum ptyproxy_mode bits the terminal may be in
				      * (only to a client whose terminal the server writes) */
	PTYPROXY_MSG_SYNC = 12,	     /* s->c: le32 n; answer SYNCED n once every OUTPUT before it
				      * is written (direct clients: see PTYPROXY_HELLO_TTY_FD) */
	PTYPROXY_MSG_SYNCED = 13,    /* c->s: le32 n, the answer to SYNC n */
	PTYPROXY_MSG_OUTPUT_CLOSED = 14, /* c->s: pipe mode: le32 1 (stdout) or 2 (stderr): the
					  * client can write it no more (its reader is gone); the
					  * server closes the job's end, so the job's next write
					  * fails (SIGPIPE) as in a shell pipeline */
	PTYPROXY_MSG_NOTICE = 15, /* s->c: pipe mode: a line from ckptenv itself (not the job's
				   * output) for the client's own stderr */
};
#define PTYPROXY_HELLO_READ_ONLY 0x1u
#define PTYPROXY_HELLO_PIPES	 0x2u /* the client has no terminal (stdin not a tty) */
#define PTYPROXY_HELLO_NO_REDRAW 0x4u /* the client saw the screen from the start (run) */
#define PTYPROXY_HELLO_TERMIOS	 0x8u /* the client's terminal modes follow the window size */
/* The client's terminal comes with the HELLO (SCM_RIGHTS, exactly one fd: a tty in an open file
 * description of its own, which the server makes O_NONBLOCK). The server then reads keystrokes
 * from it and writes output to it itself, one process hop fewer each way; a le16 detach key
 * (0xffff: none) follows the termios block, and the server cuts that key out and detaches.
 * During a flood the server sends the output as OUTPUT messages for the client to write (two
 * processes share the work), and goes back to writing itself after a SYNC / SYNCED round. */
#define PTYPROXY_HELLO_TTY_FD	 0x10u
/* termios in HELLO: le32 iflag oflag cflag lflag, u8 line, u8 ncc (= 32), c_cc, le32 ispeed
 * ospeed */
#define PTYPROXY_TERMIOS_LEN 58u
#define PTYPROXY_HELLO_MAX   (12u + PTYPROXY_TERMIOS_LEN + 2u + PTYPROXY_TERM_MAX)
#define PTYPROXY_WELCOME_PIPES	 0x1u /* the job runs on pipes, not a pty */
/* The server took the terminal sent with HELLO: the client must not read it; it writes the
 * OUTPUT and REDRAW it still gets (floods), answers SYNC, keeps MODES for the reset, and gets
 * DETACH (the detach key was typed, or the terminal hung up) and EXITED after the server let go
 * of the terminal. Without it the client relays. */
#define PTYPROXY_WELCOME_TTY	 0x2u
#define PTYPROXY_NO_DETACH_KEY	 0xffffu

struct ptyproxy_msg {
	uint8_t type;
	uint32_t len;
	const uint8_t *payload; /* points into the buffer given to ptyproxy_msg_parse() */
};

/** Write a message header for @type with payload length @len into @hdr (8 bytes).
 *  Returns 0, or -EMSGSIZE when @len > PTYPROXY_MSG_MAX. */
int ptyproxy_msg_header(uint8_t hdr[PTYPROXY_MSG_HDR], uint8_t type, uint32_t len);

/** Parse one message from the start of @buf (@len bytes, untrusted). Returns the bytes it takes
 *  (> 0) and fills *ret; 0 when more bytes are needed; -EBADMSG for a bad magic, version, type
 *  or length (for the type). Only checks form; who may send which type is the caller's rule. */
ssize_t ptyproxy_msg_parse(const uint8_t *buf, size_t len, struct ptyproxy_msg *ret);

struct ptyproxy_hello {
	uint32_t flags; /* PTYPROXY_HELLO_* */
	struct winsize ws;
	struct termios tio; /* with PTYPROXY_HELLO_TERMIOS: the client's modes before going raw */
	uint16_t detach_key; /* with PTYPROXY_HELLO_TTY_FD: a byte, or PTYPROXY_NO_DETACH_KEY */
	char term[PTYPROXY_TERM_MAX + 1];
};
/** Payload of a HELLO (@cap >= PTYPROXY_HELLO_MAX is always enough), and back. _unpack:
 *  -EBADMSG if short, an unknown flag, a bad termios block, a detach key above 255 (other than
 *  PTYPROXY_NO_DETACH_KEY), or TERM too long / has NUL. */
size_t ptyproxy_hello_pack(const struct ptyproxy_hello *h, uint8_t *buf, size_t cap);
int ptyproxy_hello_unpack(const struct ptyproxy_msg *m, struct ptyproxy_hello *ret);
/** RESIZE payload (8 bytes) and back; _unpack: -EBADMSG unless 8 bytes and rows, cols > 0. */
void ptyproxy_winsize_pack(const struct winsize *ws, uint8_t buf[8]);
int ptyproxy_winsize_unpack(const struct ptyproxy_msg *m, struct winsize *ret);

/* ---- Recorded modes --------------------------------------------------------------------- */

enum ptyproxy_mode {
	PTYPROXY_MODE_ALTSCREEN = 1u << 0,   /* ?47 / ?1047 / ?1049 */
	PTYPROXY_MODE_MOUSE_X10 = 1u << 1,   /* ?9 */
	PTYPROXY_MODE_MOUSE_VT200 = 1u << 2, /* ?1000 */
	PTYPROXY_MODE_MOUSE_BTN = 1u << 3,   /* ?1002 */
	PTYPROXY_MODE_MOUSE_ANY = 1u << 4,   /* ?1003 */
	PTYPROXY_MODE_MOUSE_UTF8 = 1u << 5,  /* ?1005 */
	PTYPROXY_MODE_MOUSE_SGR = 1u << 6,   /* ?1006 */
	PTYPROXY_MODE_MOUSE_URXVT = 1u << 7, /* ?1015 */
	PTYPROXY_MODE_FOCUS = 1u << 8,	     /* ?1004 */
	PTYPROXY_MODE_PASTE = 1u << 9,	     /* ?2004 bracketed paste */
	PTYPROXY_MODE_CURSOR_KEYS = 1u << 10, /* ?1 DECCKM application cursor keys */
	PTYPROXY_MODE_CURSOR_HIDDEN = 1u << 11, /* ?25 reset */
	PTYPROXY_MODE_KEYPAD = 1u << 12,	/* ESC = (DECKPAM) / ?66 */
};

/* A scanner for the modes above in an output stream, cheap enough for the fast path; any split
 * of a sequence across calls is handled. Plain data, zero-initialise (or _init) before use. */
#define PTYPROXY_ALT_LOG 8
struct ptyproxy_modes {
	uint32_t modes; /* enum ptyproxy_mode bits now in effect */
	uint32_t seen;	/* bits turned on since the caller last cleared this (a transient mode) */
	uint8_t st;	/* parser state */
	uint8_t nparam;
	uint8_t priv;
	uint32_t param[8];
	/* Where the alternate screen was switched: stream positions (bytes scanned before the
	 * byte after the sequence) of the last PTYPROXY_ALT_LOG switches, so a reader that
	 * skips part of the stream knows which screen it lands on (ptyproxy_modes_alt_at). */
	uint64_t pos, cur;
	uint64_t alt_at[PTYPROXY_ALT_LOG];
	uint8_t alt_on;	  /* bit i: switch i turned it on */
	uint32_t nalt;	  /* switches recorded in all */
	bool alt_initial; /* the mode before the first one */
};
void ptyproxy_modes_init(struct ptyproxy_modes *m, uint32_t modes);
/** Scan @len output bytes and update m->modes. */
void ptyproxy_modes_scan(struct ptyproxy_modes *m, const uint8_t *buf, size_t len);
/** Was the alternate screen on at stream position @pos (bytes scanned before it)? false in
 *  *known when the switch log no longer reaches back that far. */
bool ptyproxy_modes_alt_at(const struct ptyproxy_modes *m, uint64_t pos, bool *known);
/** The @k-th newest alternate screen switch still logged (0: the newest): its position (as
 *  above) and direction. false when there is no such entry. */
bool ptyproxy_modes_alt_switch(const struct ptyproxy_modes *m, uint32_t k, uint64_t *at, bool *on);
/** Escape bytes that turn on every mode in @modes (for a redraw). Returns length (< @cap). */
size_t ptyproxy_modes_apply_seq(uint32_t modes, char *buf, size_t cap);
/** Escape bytes that put a terminal where the job left it in @modes back to defaults
 *  (leave alt screen, mouse/paste/focus off, show cursor, normal keypad and cursor keys, SGR 0). */
size_t ptyproxy_modes_reset_seq(uint32_t modes, char *buf, size_t cap);

/* ---- Pty pair, job side, pipes ---------------------------------------------------------- */

/** A new pty pair from @ptmx (NULL: openpty() on /dev/ptmx; else a ptmx of the job's own devpts
 *  instance, e.g. ".../dev/pts/ptmx", the slave then got with TIOCGPTPEER), with termios @tio
 *  (NULL: the kernel's defaults) and @ws (NULL or 0x0: 24x80). Both fds are O_CLOEXEC; the
 *  master is O_NONBLOCK. Returns 0 or -errno. */
int ptyproxy_pty_open(const char *ptmx, const struct termios *tio, const struct winsize *ws,
		      int *ret_master, int *ret_slave);

/** For the job's init, after fork and before exec: setsid(), make @slave_fd the controlling
 *  terminal (TIOCSCTTY), dup2 it onto 0, 1, 2 and close the original. Returns 0 or -errno. */
int ptyproxy_child_setup(int slave_fd);

/** No-terminal mode: three pipes. job_fds[0] is the job's stdin (read end), job_fds[1..2] its
 *  stdout and stderr (write ends); sup_fds[0] is the supervisor's write end of stdin, sup_fds[1..2]
 *  the read ends. All O_CLOEXEC; supervisor ends O_NONBLOCK. dup2 the job ends onto 0..2 in the
 *  child (ptyproxy_child_setup_pipes). Returns 0 or -errno (nothing left open). */
int ptyproxy_pipes_create(int job_fds[3], int sup_fds[3]);
/** In the child: dup2 job_fds onto 0, 1, 2 and close the originals. Returns 0 or -errno. */
int ptyproxy_child_setup_pipes(const int job_fds[3]);

/* ---- Server side (in the supervisor) ---------------------------------------------------- */

struct ptyproxy;
struct ptyproxy_state;

struct ptyproxy_ops {
	/** Watch @fd for @events (EPOLLIN / EPOLLOUT bits): add it, or modify it when watched
	 *  already; @events == 0: stop watching (epoll DEL; the library may close @fd right after).
	 *  Return 0 or -errno. Every event on such an fd goes to ptyproxy_handle(). */
	int (*watch)(void *userdata, int fd, uint32_t events);
	/** One line (no newline) worth logging at the boundary: a client closed for a malformed
	 *  message, a client that fell behind. May be NULL. */
	void (*log)(void *userdata, const char *line);
};

struct ptyproxy_config {
	const struct ptyproxy_ops *ops;
	void *userdata;
	int log_dirfd;	    /* directory for the output log; -1: no log. Not taken over. */
	const char *log_name; /* file name in it (default "output.log"; the older half is NAME.1) */
	uint64_t log_size;  /* bound of NAME + NAME.1 together (default 4 MiB) */
	size_t ring_size;   /* screen-model ring, a power of two (default 1 MiB) */
	/* The first writer client's terminal modes (HELLO termios) are applied to the pty, so a
	 * job held back until that attach starts on a terminal set up like the user's own (as
	 * it would run there directly: erase key, output processing, ...). Not for a restored
	 * pty, whose termios is the saved one. */
	bool adopt_termios;
};

/** Start serving a pty master (@master_fd, taken over; nonblocking). The screen model gets the
 *  master's current window size. @state (may be NULL) seeds modes and screen from a
 *  ptyproxy_state_load() result (the caller created the pty with its termios and winsize:
 *  ptyproxy_state_termios/winsize). Registers the master through ops->watch.
 *  Returns 0 or -errno; on error @master_fd is closed. */
int ptyproxy_new(const struct ptyproxy_config *cfg, int master_fd,
		 const struct ptyproxy_state *state, struct ptyproxy **ret);

/** Same for no-terminal mode: sup_fds from ptyproxy_pipes_create() (taken over). The job's
 *  output is not read until the first client attached (so a `run < in > out` loses nothing)
 *  unless ptyproxy_pipes_release() is called (--detach). */
int ptyproxy_new_pipes(const struct ptyproxy_config *cfg, const int sup_fds[3],
		       struct ptyproxy **ret);
/** Pipe mode: read the job's output even with no client attached (it goes to the log only). */
void ptyproxy_pipes_release(struct ptyproxy *p);

/** Close every client (unwatched first) and fd, flush the log. NULL-safe. */
void ptyproxy_free(struct ptyproxy *p);

/** Take over an accepted attach connection (@fd; the caller checked SO_PEERCRED). The client
 *  must send HELLO first; then it gets WELCOME, a redraw and the live output. Returns 0 or
 *  -errno (@fd closed). */
int ptyproxy_client_add(struct ptyproxy *p, int fd);

/** Handle readiness @events (EPOLL* bits) on @fd, an fd registered through ops->watch.
 *  Returns 0; PTYPROXY_HUP when the job side hung up (pty: EIO on the master, i.e. every slave
 *  fd closed; pipes: stdout and stderr at EOF); -ENOENT if @fd is not ours; other -errno only
 *  for failures of the master itself. Client problems never propagate: the client is closed. */
int ptyproxy_handle(struct ptyproxy *p, int fd, uint32_t events);
#define PTYPROXY_HUP 1

/** Background work (model catch-up from the ring, log flush). Returns the epoll timeout in ms
 *  the caller should use at most before calling again (-1: nothing pending). */
int ptyproxy_idle(struct ptyproxy *p);

/** The job exited with wait status @wstatus: drain what the job side still holds (nonblocking),
 *  send EXITED to every client after its pending output, close each one when flushed. */
void ptyproxy_job_exited(struct ptyproxy *p, int wstatus);

/** Restore in place: the job side is replaced by a restored job's (@master_fd in pty mode, or
 *  @sup_fds from ptyproxy_pipes_create() in pipe mode; taken over), the attached clients stay.
 *  Pty mode: the screen model restarts from @state (the checkpoint's; NULL: blank) and every
 *  client is redrawn; input typed meanwhile is dropped. Pipe mode: the input queue is kept
 *  (held meanwhile, it goes to the restored job: a stream, not keys). -EINVAL after
 *  ptyproxy_job_exited or for the wrong mode (fds closed). */
int ptyproxy_restart(struct ptyproxy *p, int master_fd, const int sup_fds[3],
		     const struct ptyproxy_state *state);
/** Show @text to the attached clients only (not the screen model, not the log). Pipe mode:
 *  a NOTICE, which the client writes to its own stderr (never into the job's stdout, which it
 *  relays byte for byte); give a text for that mode ("ckptenv: ...\n"). */
void ptyproxy_notice(struct ptyproxy *p, const char *text);
/** Append @text to the output log only (not the clients, not the screen model), on a line of
 *  its own: a marker for whoever reads the log later, e.g. where a restore began. */
void ptyproxy_log_note(struct ptyproxy *p, const char *text);

/** Checkpoint helpers. hold: stop writing client input to the job (kept queued; resize and
 *  detach still work) until hold is false. catch_up: read the master until it is empty (the job
 *  must be frozen for this to mean "everything"), forward it, and feed the screen model all of
 *  the ring. Returns 0 or -errno. */
void ptyproxy_hold_input(struct ptyproxy *p, bool hold);
/** Pipe mode, the job frozen and about to end for a restore in place: move what the job had
 *  not read yet from its stdin pipe (@rfd, a read end of that pipe) to the front of the input
 *  queue, so the restored job reads it. Returns bytes moved or -errno (-EINVAL in pty mode). */
ssize_t ptyproxy_take_unread_input(struct ptyproxy *p, int rfd);
int ptyproxy_catch_up(struct ptyproxy *p);
/** Pipe mode: the identity of the job's stdio pipe @k (0, 1, 2) while the supervisor holds its
 *  other end. Returns 0, or -ENOENT (pty mode, or that end is closed). */
int ptyproxy_pipe_ident(const struct ptyproxy *p, int k, dev_t *ret_dev, ino_t *ret_ino);

struct ptyproxy_info {
	unsigned clients;   /* attached, after HELLO */
	unsigned writers;   /* of which not read-only */
	unsigned direct;    /* of which the server reads and writes the terminal (HELLO_TTY_FD) */
	unsigned connected; /* every connection, also before HELLO and while closing */
	bool pipes;	    /* no-terminal mode */
	uint32_t modes;	    /* enum ptyproxy_mode */
	struct winsize ws;
	uint64_t output_bytes; /* total read from the job */
	uint64_t model_lag;    /* bytes the screen model has not seen yet */
	uint64_t model_lost;   /* bytes dropped from the ring before the model saw them */
};
void ptyproxy_get_info(const struct ptyproxy *p, struct ptyproxy_info *ret);
/** A line (as ptyproxy_notice's) that every client attaching from now on gets after its
 *  redraw, so that it learns what the clients attached then were told (a job stopped at a
 *  checkpoint); NULL: none. */
void ptyproxy_set_attach_notice(struct ptyproxy *p, const char *text);
/** Whether an attached writer client (`run`, an attach that may type; not a read-only one,
 *  which a stopped watcher must not make wait forever) still has output to take (its
 *  connection or its terminal): after the job's end, the server waits for it as a pipe's
 *  writer would. */
bool ptyproxy_output_pending(const struct ptyproxy *p);

/* One attached client, for `ckptenv status`. */
struct ptyproxy_client_info {
	bool read_only, pipes, direct; /* direct: HELLO_TTY_FD, the server writes its terminal */
	bool size_owner;	       /* the pty has this client's window size */
	struct winsize ws;	       /* its window (0x0 for a pipe client) */
	pid_t pid;		       /* SO_PEERCRED of the connection; 0 if unknown */
};
/** Fill up to @cap entries of @ret (attached clients, newest first). Returns how many clients
 *  there are (may be more than @cap). */
size_t ptyproxy_list_clients(const struct ptyproxy *p, struct ptyproxy_client_info *ret,
			     size_t cap);

/** Escape bytes redrawing the current screen (after catching the model up): SGR reset, alt
 *  screen when on, clear, every row's cells with attributes/colours, the recorded modes, cursor
 *  position and visibility. Malloc'd in *ret (caller frees). Returns 0 or -errno. */
int ptyproxy_redraw(struct ptyproxy *p, char **ret, size_t *ret_len);

/** Print the output log (NAME.1 then NAME in @dirfd) to @out_fd. Returns 0 or -errno. */
int ptyproxy_log_dump(int dirfd, const char *name, int out_fd);

/* ---- Saved state (checkpoint / restore) ------------------------------------------------- */

#define PTYPROXY_STATE_FILE "pty.state"

/** Write modes, termios (from the master), window size and the screen (cells + cursor; after a
 *  catch-up) to @dirfd/pty.state atomically (magic, version, checksum). Returns 0 or -errno. */
int ptyproxy_state_save(struct ptyproxy *p, int dirfd);
/** Read @dirfd/pty.state. -ENOENT if missing, -EBADMSG if corrupt (checksum, magic, version,
 *  bounds). The result seeds ptyproxy_new(); free it with ptyproxy_state_free(). */
int ptyproxy_state_load(int dirfd, struct ptyproxy_state **ret);
void ptyproxy_state_free(struct ptyproxy_state *s);
const struct termios *ptyproxy_state_termios(const struct ptyproxy_state *s);
const struct winsize *ptyproxy_state_winsize(const struct ptyproxy_state *s);
uint32_t ptyproxy_state_modes(const struct ptyproxy_state *s);

/* ---- Client side (ckptenv attach / run) ------------------------------------------------- */

struct ptyproxy_client_opts {
	int in_fd, out_fd, err_fd; /* the user's side; usually 0, 1, 2 */
	int detach_key;		   /* byte that detaches; -1: none. Default in _init: 0x1c (^\) */
	bool read_only;
	bool pipes;	  /* relay byte-exact (pipe mode) even when in_fd is a tty */
	bool relay;	  /* never hand the terminal to the server (PTYPROXY_HELLO_TTY_FD) */
	bool no_redraw;	  /* first client of a new job: leave the user's screen as it is */
	const char *term; /* sent in HELLO; NULL: $TERM */
	/** SIGHUP/SIGTERM/SIGINT/SIGQUIT reached the client: return true to end the session
	 *  (PTYPROXY_END_SIGNAL), false to go on (e.g. after forwarding it to the job). NULL:
	 *  every such signal ends the session. Called from the loop, not the handler. */
	bool (*on_signal)(void *userdata, int sig);
	void *userdata;
};
void ptyproxy_client_opts_init(struct ptyproxy_client_opts *o);

enum ptyproxy_end {
	PTYPROXY_END_EXITED = 0,   /* the job ended; *ret_wstatus holds its wait status */
	PTYPROXY_END_DETACHED = 1, /* detach key, or the server said detach */
	PTYPROXY_END_LOST = 2,	   /* the supervisor connection dropped */
	PTYPROXY_END_SIGNAL = 3,   /* SIGHUP/SIGTERM/SIGINT reached the client */
};

/** Relay the user's terminal (or, when in_fd is not a tty, its stdin/stdout/stderr byte-exact)
 *  to the job over @sock_fd (connected to the attach socket; not closed) until detach, job end,
 *  lost connection or a terminating signal. SIGWINCH/HUP/TERM/INT/QUIT get handlers and are
 *  unblocked for the duration (handlers and mask restored on return). A tty is put in raw mode and restored exactly, and
 *  modes the job turned on are reset, on every way out. Returns enum ptyproxy_end (>= 0) or
 *  -errno (terminal restored as well). */
int ptyproxy_client_run(int sock_fd, const struct ptyproxy_client_opts *o, int *ret_wstatus);

#endif
