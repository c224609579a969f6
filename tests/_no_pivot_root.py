#!/usr/bin/env python3
"""Runs a program with pivot_root(2) failing with EINVAL, as on an initramfs root.

A seccomp filter (inherited through clone and execve) answers pivot_root with
EINVAL and lets every other system call through. For tests of --chroot-fallback.
Usage: _no_pivot_root.py PROGRAM [ARG]...
"""
import ctypes
import os
import platform
import struct
import sys

ARCH = {"x86_64": (0xC000003E, 155), "aarch64": (0xC00000B7, 41)}
audit_arch, nr_pivot_root = ARCH[platform.machine()]
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06
RET_ALLOW, RET_ERRNO, EINVAL = 0x7FFF0000, 0x00050000, 22
program = [
    (LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
    (JEQ_K, 0, 3, audit_arch),
    (LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    (JEQ_K, 0, 1, nr_pivot_root),
    (RET_K, 0, 0, RET_ERRNO | EINVAL),
    (RET_K, 0, 0, RET_ALLOW),
]
filters = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *i) for i in program))
fprog = struct.pack("=HxxxxxxQ", len(program), ctypes.addressof(filters))
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
    sys.exit(f"PR_SET_NO_NEW_PRIVS: {os.strerror(ctypes.get_errno())}")
fprog_buf = ctypes.create_string_buffer(fprog)
if libc.prctl(22, 2, ctypes.addressof(fprog_buf), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
    sys.exit(f"PR_SET_SECCOMP: {os.strerror(ctypes.get_errno())}")
os.execv(sys.argv[1], sys.argv[1:])
