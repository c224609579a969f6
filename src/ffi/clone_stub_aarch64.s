/*
 * Syscall program runner: the entry point passed to clone(3) (aarch64).
 *
 * Called as fn(arg) in the new child, x0 = arg = the program block:
 *   +0   u64 report fd
 *   +8   u64 reserved
 *   +16  records of 8 little-endian u64: nr, a0, a1, a2, a3, a4, a5, flags
 *        nr = -1 ends the list
 * flags bit 0 (IGNORE): a failure of this step is not reported.
 * flags bit 1 (NONZERO): a return of 0 also counts as failure (errno 0).
 * On a failed step: store (step index, errno) over the record's first 16
 * bytes, write those 16 bytes to the report fd, exit_group(127).
 * After the list: exit_group(127) (a successful execve never comes back).
 * Uses no stack, no libc; only relative branches (position independent).
 * Assemble: aarch64-linux-gnu-as clone_stub_aarch64.s -o a.o &&
 *           aarch64-linux-gnu-objcopy -O binary -j .text a.o a.bin
 */
	.text
	.globl	clone_stub
clone_stub:
	mov	x19, x0			/* block base */
	add	x20, x0, #16		/* current record */
	mov	x21, #0			/* step index */
.Lloop:
	ldr	x8, [x20]		/* syscall number */
	cmn	x8, #1
	b.eq	.Ldone
	ldp	x0, x1, [x20, #8]
	ldp	x2, x3, [x20, #24]
	ldp	x4, x5, [x20, #40]
	svc	#0
	ldr	x9, [x20, #56]		/* flags */
	tbnz	x9, #0, .Lnext		/* IGNORE */
	cmn	x0, #4095		/* carry set: x0 in [-4095, -1] */
	b.cs	.Lfail
	tbz	x9, #1, .Lnext		/* NONZERO */
	cbz	x0, .Lfail
.Lnext:
	add	x20, x20, #64
	add	x21, x21, #1
	b	.Lloop
.Lfail:
	neg	x0, x0			/* errno (0 for a NONZERO failure) */
	stp	x21, x0, [x20]
	mov	x8, #64			/* write(report fd, record, 16) */
	ldr	x0, [x19]
	mov	x1, x20
	mov	x2, #16
	svc	#0
.Ldone:
	mov	x8, #94			/* exit_group(127) */
	mov	x0, #127
	svc	#0
	udf	#0
