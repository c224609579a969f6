/*
 * Exercises the namespace thread stub (src/ffi/ns_stub_*.s) as ns_stub.ts uses
 * it: code in an executable mapping, started with clone(3) as a thread of this
 * process, requests through the block and futex. Checks a successful call, a
 * failing one (-errno), the signal mask the thread sets, and its exit.
 * Built by harness.sh against the assembled bytes (stub.h: stub_bin).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "stub.h"

static volatile uint32_t *state;
static uint64_t *block;
static int failures;

static void check(int ok, const char *what)
{
	printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
	if (!ok)
		failures++;
}

static long call(long nr, long a0, long a1, long a2, long a3)
{
	struct timespec t = { 5, 0 };
	block[1] = nr;
	block[2] = a0;
	block[3] = a1;
	block[4] = a2;
	block[5] = a3;
	block[6] = 0;
	block[7] = 0;
	__atomic_store_n(state, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, state, FUTEX_WAKE_PRIVATE, 1, NULL);
	for (int i = 0; i < 100 && __atomic_load_n(state, __ATOMIC_SEQ_CST) != 2; i++)
		syscall(SYS_futex, state, FUTEX_WAIT_PRIVATE, 1, &t);
	return __atomic_load_n(state, __ATOMIC_SEQ_CST) == 2 ? (long)block[8] : -9999;
}

int main(void)
{
	void *code = mmap(NULL, stub_bin_len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memcpy(code, stub_bin, stub_bin_len);
	mprotect(code, stub_bin_len, PROT_READ | PROT_EXEC);
	block = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *stack = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	state = (volatile uint32_t *)block;
	block[9] = ~(1ULL << (63 - 1)); /* everything blocked but signal 63 */
	int tid = clone((int (*)(void *))code, stack + 65536,
			CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
				CLONE_SYSVSEM,
			block);
	check(tid > 0, "clone starts the thread");

	check(call(SYS_gettid, 0, 0, 0, 0) == tid, "gettid on the thread is its TID");
	char *path = (char *)block + 128;
	strcpy(path, "/nonexistent/x");
	check(call(SYS_openat, AT_FDCWD, (long)path, O_RDONLY, 0) == -ENOENT,
	      "a failing openat returns -ENOENT");
	strcpy(path, "/dev/null");
	long fd = call(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0);
	check(fd >= 0 && fcntl(fd, F_GETFD) >= 0, "openat's descriptor is the process's");
	uint64_t mask = 0;
	call(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&mask, 8);
	/* The kernel never blocks SIGKILL and SIGSTOP; qemu-user keeps signal 64 to itself. */
	uint64_t unblockable = (1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1)) | (1ULL << 63);
	check((mask & ~unblockable) == (block[9] & ~unblockable),
	      "the thread blocks every signal but 63");

	__atomic_store_n(state, 3, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, state, FUTEX_WAKE_PRIVATE, 1, NULL);
	char task[64];
	snprintf(task, sizeof(task), "/proc/self/task/%d", tid);
	int gone = 0;
	for (int i = 0; i < 200 && !gone; i++) {
		gone = access(task, F_OK) != 0;
		if (!gone)
			usleep(5000);
	}
	check(gone, "state 3 ends the thread, not the process");
	return failures ? 1 : 0;
}
