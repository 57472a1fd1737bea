/* Freeze a process with PTRACE_SEIZE + PTRACE_INTERRUPT on every thread. Threads can be created
 * while we seize, so the task list is re-read until a pass finds no thread we do not hold; once
 * every held thread sits in its stop, none can clone any more, so the final pass is exact.
 * A thread blocked in a FUSE request reaches its stop once the vfs (other supervisor threads)
 * answers; we only wait. */
#include "restore/dump-internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

static int read_children(pid_t pid, pid_t tid, pid_t **list, size_t *n, size_t *cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)tid);
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = ck_read_file_at(AT_FDCWD, path, 1 << 20, &buf, &len);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	char *save = NULL;
	for (char *tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 16;
			pid_t *p = realloc(*list, nc * sizeof(*p));
			if (!p)
				return -ENOMEM;
			*list = p;
			*cap = nc;
		}
		(*list)[(*n)++] = (pid_t)atoi(tok);
	}
	return 0;
}

/* Calls @fn for every tid of @pid. */
static int for_each_task(pid_t pid, int (*fn)(pid_t pid, pid_t tid, void *u), void *u)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ESRCH : -errno;
	int r = 0;
	struct dirent *de;
	while (r >= 0 && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		r = fn(pid, (pid_t)atoi(de->d_name), u);
	}
	closedir(d);
	return r;
}

struct kids {
	pid_t *list;
	size_t n, cap;
};

static int task_kids(pid_t pid, pid_t tid, void *u)
{
	struct kids *k = u;
	return read_children(pid, tid, &k->list, &k->n, &k->cap);
}

int freeze_count_procs(pid_t pid)
{
	struct kids k = {0};
	int r = 0;
	size_t done = 0;
	r = for_each_task(pid, task_kids, &k);
	/* Breadth first over the descendants; a bound guards against a pid-reuse loop. */
	while (r >= 0 && done < k.n && k.n < 100000) {
		pid_t p = k.list[done++];
		int q = for_each_task(p, task_kids, &k);
		if (q < 0 && q != -ESRCH)
			r = q;
	}
	int count = (int)k.n + 1;
	free(k.list);
	return r < 0 ? r : count;
}

static bool held(const struct restore_freeze *f, pid_t tid)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->tids[i] == tid)
			return true;
	return false;
}

struct seize_pass {
	struct restore_freeze *f;
	size_t added;
};

/* The leader ended with pthread_exit() while other threads run: it stays a zombie, which
 * ptrace refuses (EPERM), and /proc/PID/maps of it is empty. */
/* State letter and flags of thread @tid of @pid; false when gone (or unreadable). */
static bool task_stat(pid_t pid, pid_t tid, char *ret_state, unsigned long *ret_flags)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if (ck_read_file_at(AT_FDCWD, path, 4096, &buf, &len) < 0)
		return false;
	const char *s = strrchr(buf, ')'); /* comm may hold spaces: fields after it */
	return s && sscanf(s + 1, " %c %*d %*d %*d %*d %*d %lu", ret_state, ret_flags) == 2;
}

static bool leader_zombie(pid_t pid)
{
	char state;
	unsigned long flags;
	return task_stat(pid, pid, &state, &flags) && state == 'Z';
}

/* A thread on its way out: PTRACE_SEIZE answers EPERM once its exit has begun. */
static bool thread_exiting(pid_t pid, pid_t tid)
{
	char state;
	unsigned long flags;
	return !task_stat(pid, tid, &state, &flags) || state == 'Z' || state == 'X' ||
	       (flags & 0x4); /* PF_EXITING */
}

static int seize_one(pid_t pid, pid_t tid, void *u)
{
	struct seize_pass *sp = u;
	struct restore_freeze *f = sp->f;
	if (held(f, tid))
		return 0;
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0) {
		if (errno == EPERM && tid == pid && leader_zombie(pid))
			return -ENOTRECOVERABLE;
		if (errno == EPERM && tid != pid && thread_exiting(pid, tid))
			return 0; /* as ESRCH: it is gone by the next pass */
		return errno == ESRCH ? 0 : -errno; /* ESRCH: the thread just exited */
	}
	if (f->n == f->cap) {
		size_t nc = f->cap ? f->cap * 2 : 16;
		pid_t *p = realloc(f->tids, nc * sizeof(*p));
		if (!p) {
			ptrace(PTRACE_DETACH, tid, 0, 0);
			return -ENOMEM;
		}
		f->tids = p;
		f->cap = nc;
	}
	f->tids[f->n++] = tid;
	sp->added++;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 && errno != ESRCH)
		return -errno;
	return 0;
}

/* Wait until @tid is in a ptrace stop that is not a signal-delivery stop (signals arriving
 * meanwhile are passed on, so none is lost). Returns 1 stopped, 0 thread gone, -errno. */
static int wait_stop(pid_t tid)
{
	for (;;) {
		int st;
		pid_t r = waitpid(tid, &st, __WALL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == ECHILD ? 0 : -errno;
		}
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return 0;
		if (!WIFSTOPPED(st))
			continue;
		if ((st >> 16) == PTRACE_EVENT_STOP)
			return 1;
		/* Signal-delivery stop: deliver it; the pending interrupt traps right after. */
		int sig = WSTOPSIG(st);
		if (ptrace(PTRACE_CONT, tid, 0, (void *)(long)sig) < 0)
			return errno == ESRCH ? 0 : -errno;
	}
}

static void freeze_free(struct restore_freeze *f)
{
	if (!f)
		return;
	free(f->tids);
	free(f);
}

static int detach_all(struct restore_freeze *f)
{
	int ret = 0;
	for (size_t i = 0; i < f->n; i++)
		if (ptrace(PTRACE_DETACH, f->tids[i], 0, 0) < 0 && errno != ESRCH && ret == 0)
			ret = -errno;
	return ret;
}

static void set_multiproc(struct restore_err *err, int n)
{
	if (!err)
		return;
	err->nprocs = n;
	snprintf(err->msg, sizeof(err->msg),
		 "job has %d processes; only single-process jobs can be checkpointed yet", n);
}

int restore_freeze(pid_t pid, struct restore_freeze **ret, struct restore_err *err)
{
	int n = freeze_count_procs(pid);
	if (n < 0)
		return n;
	if (n > 1) {
		set_multiproc(err, n);
		return -EUSERS;
	}
	struct restore_freeze *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->pid = pid;
	f->t0 = ck_now_ns();
	int r;
	size_t waited = 0;
	for (;;) {
		struct seize_pass sp = {.f = f};
		r = for_each_task(pid, seize_one, &sp);
		if (r < 0)
			goto undo_seize;
		if (sp.added == 0 && waited == f->n)
			break;
		/* Wait for the newly seized ones; drop those that exited. */
		for (size_t i = waited; i < f->n;) {
			r = wait_stop(f->tids[i]);
			if (r < 0)
				goto undo_seize;
			if (r == 0) {
				memmove(&f->tids[i], &f->tids[i + 1],
					(f->n - i - 1) * sizeof(pid_t));
				f->n--;
				continue;
			}
			i++;
		}
		waited = f->n;
	}
	if (!held(f, pid)) {
		r = -ESRCH;
		goto undo_seize;
	}
	/* Leader first: the image and the restorer rely on it. */
	for (size_t i = 0; i < f->n; i++)
		if (f->tids[i] == pid) {
			f->tids[i] = f->tids[0];
			f->tids[0] = pid;
		}
	/* A fork could have raced the first count; now nothing runs, so count again. */
	n = freeze_count_procs(pid);
	if (n != 1) {
		r = n < 0 ? n : -EUSERS;
		if (n > 1)
			set_multiproc(err, n);
		goto undo_seize;
	}
	*ret = f;
	return 0;
undo_seize:
	detach_all(f);
	freeze_free(f);
	if (r == -EPERM && err)
		snprintf(err->msg, sizeof(err->msg), "cannot ptrace pid %d: not permitted",
			 (int)pid);
	if (r == -ENOTRECOVERABLE) {
		r = -EOPNOTSUPP;
		if (err)
			snprintf(err->msg, sizeof(err->msg),
				 "the main thread of pid %d has ended (pthread_exit) while other "
				 "threads run; such a process cannot be checkpointed yet",
				 (int)pid);
	}
	return r;
}

pid_t restore_freeze_pid(const struct restore_freeze *f)
{
	return f->pid;
}

size_t restore_freeze_nthreads(const struct restore_freeze *f)
{
	return f->n;
}

pid_t restore_freeze_tid(const struct restore_freeze *f, size_t i)
{
	return i < f->n ? f->tids[i] : -1;
}

uint64_t restore_freeze_elapsed_ns(const struct restore_freeze *f)
{
	return ck_now_ns() - f->t0;
}

int restore_freeze_resume(struct restore_freeze *f)
{
	if (!f)
		return 0;
	int r = detach_all(f);
	freeze_free(f);
	return r;
}

int restore_freeze_leave_stopped(struct restore_freeze *f)
{
	if (!f)
		return 0;
	/* Queued while every thread is held, SIGSTOP takes effect as a group stop on detach. */
	int r = kill(f->pid, SIGSTOP) < 0 ? -errno : 0;
	int q = detach_all(f);
	freeze_free(f);
	return r < 0 ? r : q;
}
