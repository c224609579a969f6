/*
 * Exercises the clone() entry stub outside Deno, for an architecture we may not
 * run natively: tests/stub/harness.sh builds it statically for x86_64 and for
 * aarch64 (run under qemu-aarch64-static). It maps the assembled stub (stub.h,
 * generated from src/ffi/clone_stub_*.s) read+execute, starts it with glibc's
 * clone() on several syscall programs and checks each outcome: exit status,
 * failure report (step, errno) and side effects. Prints one line per case and
 * exits 0 only if all pass.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stub.h"

#define IGNORE 1
#define NONZERO 2

struct rec { uint64_t nr, a[6], flags; };
struct block { uint64_t report_fd, reserved; struct rec r[8]; char data[256]; };

static int (*entry)(void *);
static char *stack_top;
static int failures;

static void add(struct block *b, int i, long nr, uint64_t a0, uint64_t a1, uint64_t a2,
		uint64_t a3, uint64_t a4, uint64_t a5, uint64_t flags)
{
	b->r[i] = (struct rec){ nr, { a0, a1, a2, a3, a4, a5 }, flags };
	b->r[i + 1].nr = (uint64_t)-1;
}

/* Run the program; *step = -1 if no report (EOF), else the reported step/errno. */
static int run(struct block *b, long *step, long *err)
{
	int fds[2];
	uint64_t report[2];
	int status;

	if (pipe2(fds, O_CLOEXEC)) { perror("pipe2"); return -1; }
	b->report_fd = fds[1];
	pid_t pid = clone(entry, stack_top, SIGCHLD, b);
	if (pid < 0) { perror("clone"); return -1; }
	close(fds[1]);
	ssize_t n = read(fds[0], report, sizeof(report));
	close(fds[0]);
	*step = n == 16 ? (long)report[0] : -1;
	*err = n == 16 ? (long)report[1] : 0;
	if (n != 0 && n != 16) fprintf(stderr, "short report: %zd\n", n);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void expect(const char *name, int ok)
{
	printf("%s: %s\n", ok ? "PASS" : "FAIL", name);
	if (!ok) failures++;
}

int main(void)
{
	static struct block b;
	long step, err;
	int code, p[2], q[2];
	char buf[16] = { 0 };

	void *code_page = mmap(NULL, stub_bin_len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memcpy(code_page, stub_bin, stub_bin_len);
	mprotect(code_page, stub_bin_len, PROT_READ | PROT_EXEC);
	entry = (int (*)(void *))code_page;
	char *stack = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	stack_top = stack + 65536;

	/* 1. A step runs; the end of the list exits 127 without a report. */
	pipe(p);
	strcpy(b.data, "ok");
	add(&b, 0, SYS_write, p[1], (uintptr_t)b.data, 2, 0, 0, 0, 0);
	code = run(&b, &step, &err);
	close(p[1]);
	memset(buf, 0, sizeof(buf));
	read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	expect("write step, end of list exits 127 without report",
	       code == 127 && step == -1 && !strcmp(buf, "ok"));

	/* 2. A failing must-succeed step is reported with its index and errno. */
	add(&b, 0, SYS_getpid, 0, 0, 0, 0, 0, 0, 0);
	add(&b, 1, SYS_close, (uint64_t)-1, 0, 0, 0, 0, 0, 0);
	code = run(&b, &step, &err);
	expect("failed step 1 reports EBADF, exits 127", code == 127 && step == 1 && err == EBADF);

	/* 3. IGNORE skips a failure; exit_group(0) as a step ends the child. */
	add(&b, 0, SYS_close, (uint64_t)-1, 0, 0, 0, 0, 0, IGNORE);
	add(&b, 1, SYS_getpid, 0, 0, 0, 0, 0, 0, NONZERO);
	add(&b, 2, SYS_exit_group, 0, 0, 0, 0, 0, 0, 0);
	code = run(&b, &step, &err);
	expect("ignored failure, then exit_group(0)", code == 0 && step == -1);

	/* 4. NONZERO: a read hitting end of file is reported with errno 0. */
	pipe(p);
	close(p[1]);
	add(&b, 0, SYS_read, p[0], (uintptr_t)b.data, 1, 0, 0, 0, NONZERO);
	code = run(&b, &step, &err);
	close(p[0]);
	expect("read at EOF with NONZERO reports errno 0", code == 127 && step == 0 && err == 0);

	/* 5. Six arguments reach the kernel: splice(in, NULL, out, NULL, 2, NONBLOCK). */
	pipe(p);
	pipe(q);
	write(p[1], "abc", 3);
	add(&b, 0, SYS_splice, p[0], 0, q[1], 0, 2, SPLICE_F_NONBLOCK, NONZERO);
	add(&b, 1, SYS_exit_group, 3, 0, 0, 0, 0, 0, 0);
	code = run(&b, &step, &err);
	close(q[1]);
	memset(buf, 0, sizeof(buf));
	read(q[0], buf, sizeof(buf) - 1);
	close(p[0]); close(p[1]); close(q[0]);
	expect("six-argument splice moves exactly 2 bytes", code == 3 && step == -1 && !strcmp(buf, "ab"));

	/* 6. execve success: the CLOEXEC report pipe just closes. */
	strcpy(b.data, "/bin/true");
	uint64_t *argv = (uint64_t *)(b.data + 64);
	argv[0] = (uintptr_t)b.data;
	argv[1] = 0;
	add(&b, 0, SYS_execve, (uintptr_t)b.data, (uintptr_t)argv, (uintptr_t)(argv + 1), 0, 0, 0, 0);
	code = run(&b, &step, &err);
	expect("execve /bin/true: no report, exit 0", code == 0 && step == -1);

	/* 7. execve failure: reported as ENOENT at its step. */
	strcpy(b.data, "/nonexistent/command");
	add(&b, 0, SYS_getpid, 0, 0, 0, 0, 0, 0, 0);
	add(&b, 1, SYS_execve, (uintptr_t)b.data, (uintptr_t)argv, (uintptr_t)(argv + 1), 0, 0, 0, 0);
	code = run(&b, &step, &err);
	expect("execve of a missing file reports step 1 ENOENT",
	       code == 127 && step == 1 && err == ENOENT);

	/* 8. The pre-exec steps spawn.ts emits, with its struct sizes (sigaction 32
	 * bytes, sigset 8), then write through the dup3'd descriptor. */
	pipe(p);
	memset(b.data, 0, sizeof(b.data));
	strcpy(b.data + 64, "ok");
	add(&b, 0, SYS_rt_sigaction, SIGPIPE, (uintptr_t)b.data, 0, 8, 0, 0, 0);
	add(&b, 1, SYS_rt_sigprocmask, SIG_SETMASK, (uintptr_t)(b.data + 32), 0, 8, 0, 0, 0);
	add(&b, 2, SYS_dup3, p[1], 10, 0, 0, 0, 0, 0);
	add(&b, 3, SYS_close_range, 3, 0xffffffffu, 4 /* CLOSE_RANGE_CLOEXEC */, 0, 0, 0, 0);
	add(&b, 4, SYS_write, 10, (uintptr_t)(b.data + 64), 2, 0, 0, 0, NONZERO);
	add(&b, 5, SYS_exit_group, 0, 0, 0, 0, 0, 0, 0);
	code = run(&b, &step, &err);
	close(p[1]);
	memset(buf, 0, sizeof(buf));
	read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	if (step >= 0) printf("  step %ld failed: errno %ld\n", step, err);
	expect("rt_sigaction, rt_sigprocmask, dup3, close_range, write",
	       code == 0 && step == -1 && !strcmp(buf, "ok"));

	return failures ? 1 : 0;
}
