/*
 * Syscall program runner: the entry point passed to clone(3) (x86_64).
 *
 * Called as fn(arg) in the new child, rdi = arg = the program block:
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
 * Assemble: as clone_stub_x86_64.s -o x.o && objcopy -O binary -j .text x.o x.bin
 */
	.text
	.globl	clone_stub
clone_stub:
	movq	%rdi, %rbx		/* block base */
	leaq	16(%rdi), %r12		/* current record */
	xorl	%r13d, %r13d		/* step index */
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
	syscall				/* clobbers rcx, r11 only */
	movq	56(%r12), %rcx		/* flags */
	testb	$1, %cl			/* IGNORE */
	jnz	.Lnext
	cmpq	$-4095, %rax		/* unsigned: rax in [-4095, -1] */
	jae	.Lfail
	testb	$2, %cl			/* NONZERO */
	jz	.Lnext
	testq	%rax, %rax
	jz	.Lfail
.Lnext:
	addq	$64, %r12
	incq	%r13
	jmp	.Lloop
.Lfail:
	negq	%rax			/* errno (0 for a NONZERO failure) */
	movq	%r13, (%r12)
	movq	%rax, 8(%r12)
	movl	$1, %eax		/* write(report fd, record, 16) */
	movq	(%rbx), %rdi
	movq	%r12, %rsi
	movl	$16, %edx
	syscall
.Ldone:
	movl	$231, %eax		/* exit_group(127) */
	movl	$127, %edi
	syscall
	ud2
