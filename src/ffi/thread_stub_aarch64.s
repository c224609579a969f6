/*
 * Per-thread syscall list: a signal handler (aarch64) that every thread of the
 * process runs once, to make the calls that act on the calling thread only
 * (capset, prctl(PR_CAPBSET_DROP)).
 *
 * Installed with sigaction(SA_SIGINFO) and called as handler(sig, info, ctx).
 * The address of the program block sits in the 8 bytes after the code (the
 * loader writes it there before making the page executable). The block is a
 * list of records of 8 little-endian u64: nr, a0, a1, a2, a3, a4, a5, flags
 * (flags unused), ending with nr = -1. Results are not checked here: the
 * caller reads every thread's state back from /proc afterwards.
 * Uses no libc and no stack; svc clobbers x0 only; x8 and x9 are scratch.
 * Assemble: aarch64-linux-gnu-as thread_stub_aarch64.s -o a.o
 *           aarch64-linux-gnu-objcopy -O binary -j .text a.o a.bin
 */
	.text
	.globl	thread_stub
thread_stub:
	ldr	x9, .Lblock		/* current record */
.Lloop:
	ldr	x8, [x9]		/* syscall number */
	cmn	x8, #1
	b.eq	.Ldone
	ldp	x0, x1, [x9, #8]
	ldp	x2, x3, [x9, #24]
	ldp	x4, x5, [x9, #40]
	svc	#0
	add	x9, x9, #64
	b	.Lloop
.Ldone:
	ret
	.balign	8
.Lblock:
	.quad	0			/* program block address, written by the loader */
