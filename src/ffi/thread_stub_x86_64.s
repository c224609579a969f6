/*
 * Per-thread syscall list: a signal handler (x86_64) that every thread of the
 * process runs once, to make the calls that act on the calling thread only
 * (capset, prctl(PR_CAPBSET_DROP)).
 *
 * Installed with sigaction(SA_SIGINFO) and called as handler(sig, info, ctx).
 * The address of the program block sits in the 8 bytes after the code (the
 * loader writes it there before making the page executable). The block is a
 * list of records of 8 little-endian u64: nr, a0, a1, a2, a3, a4, a5, flags
 * (flags unused), ending with nr = -1. Results are not checked here: the
 * caller reads every thread's state back from /proc afterwards.
 * Uses no libc; rcx and r11 are clobbered by syscall, r12 is saved.
 * Assemble: as thread_stub_x86_64.s -o x.o && objcopy -O binary -j .text x.o x.bin
 */
	.text
	.globl	thread_stub
thread_stub:
	pushq	%r12
	movq	.Lblock(%rip), %r12	/* current record */
.Lloop:
	movq	(%r12), %rax		/* syscall number */
	cmpq	$-1, %rax
	je	.Ldone
	movq	8(%r12), %rdi
	movq	16(%r12), %rsi
	movq	24(%r12), %rdx
	movq	32(%r12), %r10
	movq	40(%r12), %r8
	movq	48(%r12), %r9
	syscall
	addq	$64, %r12
	jmp	.Lloop
.Ldone:
	popq	%r12
	ret
	.balign	8
.Lblock:
	.quad	0			/* program block address, written by the loader */
