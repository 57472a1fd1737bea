/* Private to restore/: the freeze handle, shared by freeze.c, inject.c and the dumpers. */
#ifndef RESTORE_FREEZE_INTERNAL_H
#define RESTORE_FREEZE_INTERNAL_H

#include "common/ck.h"
#include "restore/restore.h"

struct restore_freeze {
	pid_t pid;
	pid_t *tids; /* every seized thread, leader first */
	size_t n, cap;
	uint64_t t0;
};

/** Count pid and all its descendants through /proc/P/task/T/children. */
int freeze_count_procs(pid_t pid);

#endif
