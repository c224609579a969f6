/*
 * Namespace thread: a raw thread that makes system calls on request (aarch64).
 *
 * Called by clone(3) as fn(arg) in a new thread of our process, x0 = arg = the
 * request block (see ns_stub.ts):
 *   +0   u32 state: 0 idle, 1 request, 2 done, 3 exit
 *   +8   u64 syscall number, +16..+56 six arguments
 *   +64  i64 result (-errno on failure)
 *   +72  u64 signal mask set at start (kernel sigset, 8 bytes)
 * It blocks the signals in the mask, then forever: waits (futex) until state
 * is 1, makes the call, stores the result, sets state 2 (store-release) and
 * wakes the waiter; on state 3 it exits (this thread only). Uses no stack, no
 * libc, no TLS.
 * Assemble: aarch64-linux-gnu-as ns_stub_aarch64.s -o a.o &&
 *           aarch64-linux-gnu-objcopy -O binary -j .text a.o a.bin
 */
	.text
	.globl	ns_stub
ns_stub:
	mov	x19, x0			/* block base */
	mov	x8, #135		/* rt_sigprocmask(SIG_SETMASK, block+72, NULL, 8) */
	mov	x0, #2
	add	x1, x19, #72
	mov	x2, #0
	mov	x3, #8
	svc	#0
.Lwait:
	ldar	w2, [x19]		/* state */
	cmp	w2, #1
	b.eq	.Lcall
	cmp	w2, #3
	b.eq	.Lexit
	mov	x8, #98			/* futex(block, FUTEX_WAIT_PRIVATE, state, NULL) */
	mov	x0, x19
	mov	x1, #128
	mov	x3, #0
	svc	#0
	b	.Lwait
.Lcall:
	ldr	x8, [x19, #8]
	ldp	x0, x1, [x19, #16]
	ldp	x2, x3, [x19, #32]
	ldp	x4, x5, [x19, #48]
	svc	#0
	str	x0, [x19, #64]
	mov	w1, #2
	stlr	w1, [x19]		/* done, after the result */
	mov	x8, #98			/* futex(block, FUTEX_WAKE_PRIVATE, 1) */
	mov	x0, x19
	mov	x1, #129
	mov	x2, #1
	svc	#0
	b	.Lwait
.Lexit:
	mov	x8, #93			/* exit(0): this thread only */
	mov	x0, #0
	svc	#0
	brk	#0
