/*
 * Namespace thread: a raw thread that makes system calls on request (x86_64).
 *
 * Called by clone(3) as fn(arg) in a new thread of our process, rdi = arg = the
 * request block (see ns_stub.ts):
 *   +0   u32 state: 0 idle, 1 request, 2 done, 3 exit
 *   +8   u64 syscall number, +16..+56 six arguments
 *   +64  i64 result (-errno on failure)
 *   +72  u64 signal mask set at start (kernel sigset, 8 bytes)
 * It blocks the signals in the mask, then forever: waits (futex) until state
 * is 1, makes the call, stores the result, sets state 2 and wakes the waiter;
 * on state 3 it exits (this thread only). Uses no stack, no libc, no TLS.
 * Assemble: as ns_stub_x86_64.s -o x.o && objcopy -O binary -j .text x.o x.bin
 */
	.text
	.globl	ns_stub
ns_stub:
	movq	%rdi, %rbx		/* block base */
	movl	$14, %eax		/* rt_sigprocmask(SIG_SETMASK, block+72, NULL, 8) */
	movl	$2, %edi
	leaq	72(%rbx), %rsi
	xorl	%edx, %edx
	movl	$8, %r10d
	syscall
.Lwait:
	movl	(%rbx), %edx		/* state */
	cmpl	$1, %edx
	je	.Lcall
	cmpl	$3, %edx
	je	.Lexit
	movl	$202, %eax		/* futex(block, FUTEX_WAIT_PRIVATE, state, NULL) */
	movq	%rbx, %rdi
	movl	$128, %esi
	xorl	%r10d, %r10d
	syscall
	jmp	.Lwait
.Lcall:
	movq	8(%rbx), %rax
	movq	16(%rbx), %rdi
	movq	24(%rbx), %rsi
	movq	32(%rbx), %rdx
	movq	40(%rbx), %r10
	movq	48(%rbx), %r8
	movq	56(%rbx), %r9
	syscall
	movq	%rax, 64(%rbx)
	movl	$2, (%rbx)		/* done: x86 keeps stores in order */
	movl	$202, %eax		/* futex(block, FUTEX_WAKE_PRIVATE, 1) */
	movq	%rbx, %rdi
	movl	$129, %esi
	movl	$1, %edx
	syscall
	jmp	.Lwait
.Lexit:
	movl	$60, %eax		/* exit(0): this thread only */
	xorl	%edi, %edi
	syscall
	ud2
