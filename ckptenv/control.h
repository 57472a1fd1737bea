/* Control protocol between the CLI and a job's supervisor, over a SOCK_SEQPACKET unix socket
 * (jobs/NAME/control.sock, 0600, peer uid checked). One datagram is one message:
 *
 *   le32 magic "CKCT" | le16 version | le16 type | le32 payload length | payload
 *
 * Payload fields are packed little-endian with ck_buf/ck_rd; lengths are bounded by
 * CONTROL_PAYLOAD_MAX. No message carries file descriptors any more (the job's stdio is served
 * through jobs/NAME/attach.sock); the fd plumbing stays for later uses and is refused. */
#ifndef CKPTENV_CONTROL_H
#define CKPTENV_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#define CONTROL_MAGIC	    0x54434b43u /* "CKCT" */
#define CONTROL_VERSION	    1
#define CONTROL_HDR	    12
#define CONTROL_PAYLOAD_MAX 4096
#define CONTROL_FDS_MAX	    3
/* How long a connect waits for a supervisor that holds the job lock but does not listen yet. */
#define CONTROL_START_WAIT_MS 10000

enum control_type {
	/* client -> supervisor */
	CONTROL_START = 1, /* reply STARTED or ERROR; the command runs once a client attached */
	CONTROL_SIGNAL,	   /* le32 signal: forward to the job's init; reply OK */
	CONTROL_KILL,	   /* SIGKILL the job; reply OK, then EXITED */
	CONTROL_SNAPSHOT,  /* reply SNAPPED or ERROR */
	CONTROL_DROP,	   /* str ref; reply OK or ERROR */
	CONTROL_INFO,	   /* reply INFO_REPLY */
	CONTROL_CHECKPOINT, /* le32 CONTROL_CKPT_*; reply CHECKPOINTED or ERROR */
	CONTROL_NET_STATUS = 40, /* reply NET_STATUS_REPLY (sup-net.c documents it) */
	CONTROL_CKPT_DROP = 20, /* le64 checkpoint id; reply OK or ERROR (fixed number: merges) */
	CONTROL_RESTORE = 21,	/* le64 checkpoint id: restore a stopped job in place; reply
				 * STARTED or ERROR */
	/* supervisor -> client */
	CONTROL_OK = 100,
	CONTROL_ERROR,	 /* le32 errno, str message */
	CONTROL_STARTED, /* le32 init host pid */
	CONTROL_EXITED,	 /* le32 exit code (128+signal when killed); sent to every client */
	CONTROL_SNAPPED, /* le64 epoch, le64 ns taken; optionally le64 syncfs ns, le64 store
			  * commit ns, le64 bytes changed (see snapshot_reply) */
	CONTROL_INFO_REPLY, /* le32 attached clients, le32 of which writers, le32 CONTROL_INFO_*;
			     * then (sup_stdio_info_pack) le16 terminal rows, cols, le32 clients
			     * listed, each: le32 CONTROL_CLIENT_*, le16 rows, cols, le32 pid;
			     * then, when CONTROL_INFO_PARKED: le32 the init's wait status,
			     * le32 seconds the crashed job is still kept (0: stopped by
			     * `checkpoint --stop`, kept until restore or rm), le64 the newest
			     * checkpoint when it stopped (older CLIs ignore the tail) */
	CONTROL_CHECKPOINTED, /* le64 id, le64 frozen ns, le64 epoch, le64 bytes; optionally
			       * le64 ns per phase: freeze, vfs, pty, memory, commit */
	CONTROL_NET_STATUS_REPLY = 140, /* the job's proxied connections (sup-net.c) */
	CONTROL_NOTE = 150, /* as ERROR, but not a reply: a line for the user (stderr), then the
			     * next message */
	/* During a CHECKPOINT, before its reply: le64 page bytes written so far, le64 bytes
	 * expected (the job's resident anonymous and shared memory; 0 unknown), le64 frozen ns
	 * (0 while still frozen). Numbered apart so that new types above do not move it. */
	CONTROL_CKPT_PROGRESS = 120,
};
#define CONTROL_INFO_STARTED 0x1u
#define CONTROL_INFO_PIPES   0x2u
#define CONTROL_INFO_PARKED  0x4u /* the job ended at a checkpoint or crashed; restorable in place */
#define CONTROL_CLIENT_READ_ONLY  0x1u
#define CONTROL_CLIENT_PIPES	  0x2u
#define CONTROL_CLIENT_DIRECT	  0x4u /* the supervisor writes the client's terminal itself */
#define CONTROL_CLIENT_SIZE_OWNER 0x8u /* the job's terminal has this client's size */
#define CONTROL_CLIENTS_MAX	  64u  /* listed in an INFO_REPLY at most */
#define CONTROL_CKPT_STOP    0x1u /* end the job once the checkpoint is complete */

struct control_msg {
	uint16_t type;
	uint32_t len;
	uint8_t payload[CONTROL_PAYLOAD_MAX];
	int fds[CONTROL_FDS_MAX];
	size_t nfds;
};

/** Send one message (with optional fds). Returns 0 or -errno. */
int control_send(int sock, uint16_t type, const void *payload, size_t len, const int *fds,
		 size_t nfds);

/** Receive one message into @m; fds received are O_CLOEXEC and owned by the caller (close
 *  them with control_msg_close_fds). -ECONNRESET at end of stream; -EBADMSG for a bad magic,
 *  version, length or truncated datagram (any fds are closed then). */
int control_recv(int sock, struct control_msg *m);
void control_msg_close_fds(struct control_msg *m);

/** Send ERROR with @err (positive errno) and a message. */
int control_send_error(int sock, int err, const char *msg);
/** The same payload as type NOTE. */
int control_send_note(int sock, int err, const char *msg);
/** Send a message whose payload is one le32 / two le64. */
int control_send_u32(int sock, uint16_t type, uint32_t v);
int control_send_u64x2(int sock, uint16_t type, uint64_t a, uint64_t b);

/** Parse ERROR: *ret_err positive errno, message copied (NUL-terminated) into @buf. */
int control_parse_error(const struct control_msg *m, int *ret_err, char *buf, size_t len);
int control_parse_u32(const struct control_msg *m, uint32_t *ret);
int control_parse_u64x2(const struct control_msg *m, uint64_t *ret_a, uint64_t *ret_b);

/** Bind (0600) and listen on @name inside directory @dir_fd; an existing socket file is
 *  replaced (call with the job lock held). Returns the listening fd or -errno. */
int control_listen(int dir_fd, const char *name);
/** Connect to @name inside @dir_fd, waiting up to CONTROL_START_WAIT_MS while the job lock is
 *  held but nothing listens yet. -ECONNREFUSED/-ENOENT when no supervisor listens. */
int control_connect(int dir_fd, const char *name);
/** The same without waiting: a listening supervisor or -errno at once. */
int control_connect_now(int dir_fd, const char *name);

/** The same for any unix socket @type (SOCK_STREAM for attach.sock). */
int control_unix_listen(int dir_fd, const char *name, int type);
int control_unix_connect(int dir_fd, const char *name, int type);

/** Send a request and wait for its reply (skipping nothing: the first message is returned). */
int control_call(int sock, uint16_t type, const void *payload, size_t len, struct control_msg *ret);

#endif
