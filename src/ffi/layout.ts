/**
 * Kernel and C library constants, and the byte layouts of the structures we pass
 * to libc, for x86_64 and aarch64 Linux (glibc).
 *
 * Theory of operation: every structure is a plain Uint8Array that the caller
 * preallocates; this module says how big it is and where each field lives, and
 * offers small encoders for the ones built at setup time. Field values are in
 * host byte order (little-endian on both architectures) unless the name says
 * "network order" (ports and addresses inside sockaddr structures).
 *
 * Where the two architectures differ it is said here and nowhere else:
 * `struct epoll_event` is packed on x86_64 (12 bytes, data at offset 4) and
 * naturally aligned on aarch64 (16 bytes, data at offset 8); a few open(2) flags
 * and every syscall number differ.
 */

/** The machine architecture we run on. */
export const ARCH = Deno.build.arch;
const IS_X86_64 = ARCH === "x86_64";

if (Deno.build.os !== "linux" || (ARCH !== "x86_64" && ARCH !== "aarch64")) {
  throw new Error(`unsupported platform ${Deno.build.os}/${ARCH}: Linux x86_64 or aarch64 needed`);
}

/**
 * The values of this module that differ between the architectures (syscall numbers
 * aside: see SYS), for each one; the exports below take this machine's. Both are
 * checked against the C headers by tests/ffi/layout_test.ts.
 */
export const ARCH_SPECIFIC = {
  x86_64: {
    O_DIRECTORY: 0o200000,
    O_NOFOLLOW: 0o400000,
    EPOLL_EVENT_SIZE: 12,
    EPOLL_EVENT_DATA_OFFSET: 4,
    AUDIT_ARCH: 0xc000003e,
  },
  aarch64: {
    O_DIRECTORY: 0o40000,
    O_NOFOLLOW: 0o100000,
    EPOLL_EVENT_SIZE: 16,
    EPOLL_EVENT_DATA_OFFSET: 8,
    AUDIT_ARCH: 0xc00000b7,
  },
} as const;
const THIS_ARCH = ARCH_SPECIFIC[ARCH];

// --- address families, sockets -----------------------------------------------------

/** Address and protocol families. */
export const AF = { UNSPEC: 0, UNIX: 1, INET: 2, INET6: 10, NETLINK: 16, PACKET: 17 } as const;

/** Socket types and socket(2) type flags. */
export const SOCK = {
  STREAM: 1,
  DGRAM: 2,
  RAW: 3,
  SEQPACKET: 5,
  NONBLOCK: 0o4000,
  CLOEXEC: 0o2000000,
} as const;

/** IP protocol numbers. */
export const IPPROTO = { IP: 0, ICMP: 1, TCP: 6, UDP: 17, IPV6: 41, ICMPV6: 58 } as const;

/** Socket option levels. */
export const SOL = { SOCKET: 1, IP: 0, IPV6: 41, TCP: 6, UDP: 17, NETLINK: 270 } as const;

/** SOL_UDP option: send a buffer as datagrams of this many payload bytes (u16). */
export const UDP_SEGMENT = 103;

/** SOL_SOCKET options. */
export const SO = {
  REUSEADDR: 2,
  TYPE: 3,
  ERROR: 4,
  SNDBUF: 7,
  RCVBUF: 8,
  KEEPALIVE: 9,
  LINGER: 13,
  REUSEPORT: 15,
  RCVLOWAT: 18,
  RCVTIMEO: 20,
  SNDBUFFORCE: 32,
  RCVBUFFORCE: 33,
  BINDTODEVICE: 25,
  TIMESTAMP: 29,
  PEEK_OFF: 42,
  MEMINFO: 55,
} as const;

/**
 * SO_MEMINFO: an array of u32 counters of the socket's memory, indexed by these
 * names (linux/sock_diag.h SK_MEMINFO_*). Kernels may return fewer than all.
 */
export const SK_MEMINFO = {
  RMEM_ALLOC: 0,
  RCVBUF: 1,
  WMEM_ALLOC: 2,
  SNDBUF: 3,
  FWD_ALLOC: 4,
  WMEM_QUEUED: 5,
  OPTMEM: 6,
  BACKLOG: 7,
  DROPS: 8,
  COUNT: 9,
} as const;

/** IPPROTO_TCP options. */
export const TCP_OPT = {
  NODELAY: 1,
  MAXSEG: 2,
  CORK: 3,
  INFO: 11,
  QUICKACK: 12,
  CONGESTION: 13,
  USER_TIMEOUT: 18,
  REPAIR: 19,
} as const;

/** IPPROTO_IP options. */
export const IP_OPT = { TOS: 1, TTL: 2, RECVERR: 11, PKTINFO: 8, FREEBIND: 15 } as const;

/** IPPROTO_IPV6 options. */
export const IPV6_OPT = {
  RECVERR: 25,
  V6ONLY: 26,
  RECVPKTINFO: 49,
  PKTINFO: 50,
  FREEBIND: 78,
} as const;

/** send/recv flags. */
export const MSG = {
  OOB: 0x1,
  PEEK: 0x2,
  DONTROUTE: 0x4,
  TRUNC: 0x20,
  DONTWAIT: 0x40,
  EOR: 0x80,
  WAITALL: 0x100,
  ERRQUEUE: 0x2000,
  NOSIGNAL: 0x4000,
  MORE: 0x8000,
  WAITFORONE: 0x10000,
  CTRUNC: 0x8,
  CMSG_CLOEXEC: 0x40000000,
} as const;

/** shutdown(2) directions. */
export const SHUT = { RD: 0, WR: 1, RDWR: 2 } as const;

// --- files ------------------------------------------------------------------------

/** open(2) flags (O_DIRECTORY and O_NOFOLLOW differ on aarch64). */
export const O = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  CLOEXEC: 0o2000000,
  DIRECTORY: THIS_ARCH.O_DIRECTORY,
  NOFOLLOW: THIS_ARCH.O_NOFOLLOW,
  PATH: 0o10000000,
} as const;

/** fcntl(2) commands and flags. */
export const F = {
  DUPFD_CLOEXEC: 1030,
  GETFD: 1,
  SETFD: 2,
  GETFL: 3,
  SETFL: 4,
  FD_CLOEXEC: 1,
  SETPIPE_SZ: 1031,
  GETPIPE_SZ: 1032,
} as const;

/** splice(2) flags. */
export const SPLICE_F = { MOVE: 1, NONBLOCK: 2, MORE: 4 } as const;

/** fallocate(2) modes. */
export const FALLOC_FL = { KEEP_SIZE: 1, PUNCH_HOLE: 2, COLLAPSE_RANGE: 8 } as const;

// --- epoll, timers, signals, events ---------------------------------------------------

/** epoll event bits and epoll_ctl operations. */
export const EPOLL = {
  IN: 0x001,
  PRI: 0x002,
  OUT: 0x004,
  ERR: 0x008,
  HUP: 0x010,
  RDHUP: 0x2000,
  EXCLUSIVE: 1 << 28,
  ET: 1 << 31,
  CTL_ADD: 1,
  CTL_DEL: 2,
  CTL_MOD: 3,
  CLOEXEC: 0o2000000,
} as const;

/** Size of one struct epoll_event in bytes. */
export const EPOLL_EVENT_SIZE = THIS_ARCH.EPOLL_EVENT_SIZE;
/** Offset of the 64-bit data member inside struct epoll_event. */
export const EPOLL_EVENT_DATA_OFFSET = THIS_ARCH.EPOLL_EVENT_DATA_OFFSET;

/** Clock identifiers. */
export const CLOCK = { REALTIME: 0, MONOTONIC: 1, BOOTTIME: 7 } as const;

/** timerfd_create / timerfd_settime flags. */
export const TFD = { NONBLOCK: 0o4000, CLOEXEC: 0o2000000, TIMER_ABSTIME: 1 } as const;

/** signalfd flags. */
export const SFD = { NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;

/** eventfd flags. */
export const EFD = { NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;

/** inotify flags and events. */
export const IN = {
  NONBLOCK: 0o4000,
  CLOEXEC: 0o2000000,
  DELETE: 0x200,
  DELETE_SELF: 0x400,
  MOVE_SELF: 0x800,
  MOVED_FROM: 0x40,
} as const;

/** mount(2) flags, umount2(2) flags (identical on x86_64 and aarch64). */
export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  REC: 0x4000,
  PRIVATE: 0x40000,
} as const;
export const MNT = { DETACH: 0x2, UMOUNT_NOFOLLOW: 0x8 } as const;

/** struct linux_dirent64: d_ino @0, d_off @8, d_reclen (u16) @16, d_type @18, d_name @19. */
export const DIRENT64 = { reclen: 16, name: 19 } as const;

/** Signal numbers (identical on x86_64 and aarch64). */
export const SIG = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  KILL: 9,
  USR1: 10,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
} as const;

/** pthread_sigmask(3) operations. */
export const SIG_HOW = { BLOCK: 0, UNBLOCK: 1, SETMASK: 2 } as const;

/** Size of glibc's sigset_t, in bytes. */
export const SIGSET_SIZE = 128;
/** Size of the kernel's sigset_t (rt_sigprocmask, rt_sigaction's sigsetsize), in bytes. */
export const KERNEL_SIGSET_SIZE = 8;
/**
 * Size of the kernel's struct sigaction for rt_sigaction(2), in bytes: handler @0,
 * flags @8, restorer @16, mask @24 on both x86_64 and aarch64. All zeros is SIG_DFL.
 */
export const KERNEL_SIGACTION_SIZE = 32;
/** Size of struct signalfd_siginfo, in bytes. */
export const SIGNALFD_SIGINFO_SIZE = 128;
/** Field offsets in struct signalfd_siginfo. */
export const SIGNALFD_SIGINFO = { signo: 0, pid: 12, status: 40 } as const;

/** waitpid(2) options. */
export const WAIT = { NOHANG: 1, UNTRACED: 2, ALL: 0x40000000 } as const;

// --- processes, namespaces, credentials --------------------------------------------

/** clone(2) and setns(2) flags. */
export const CLONE = {
  VM: 0x100,
  FS: 0x200,
  FILES: 0x400,
  SIGHAND: 0x800,
  PIDFD: 0x1000,
  VFORK: 0x4000,
  PARENT: 0x8000,
  THREAD: 0x10000,
  NEWNS: 0x20000,
  SYSVSEM: 0x40000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const;

/** close_range(2) flags (Linux 5.9; CLOEXEC needs 5.11). */
export const CLOSE_RANGE = { UNSHARE: 2, CLOEXEC: 4 } as const;

/** prctl(2) options. */
export const PR = {
  SET_PDEATHSIG: 1,
  SET_DUMPABLE: 4,
  SET_NAME: 15,
  CAPBSET_DROP: 24,
  SET_SECUREBITS: 28,
  SET_NO_NEW_PRIVS: 38,
  SET_CHILD_SUBREAPER: 36,
  CAP_AMBIENT: 47,
  CAP_AMBIENT_CLEAR_ALL: 4,
  SET_SECCOMP: 22,
} as const;

/** getrlimit/setrlimit resources. */
export const RLIMIT = { CORE: 4, NOFILE: 7, NPROC: 6, AS: 9 } as const;

/** posix_spawnattr flags and object sizes (glibc). */
export const POSIX_SPAWN = {
  SETSIGDEF: 0x04,
  SETSIGMASK: 0x08,
  SETSID: 0x80,
  FILE_ACTIONS_SIZE: 80,
  ATTR_SIZE: 336,
} as const;

/** mmap/mprotect constants. */
export const MAP = { SHARED: 0x01, PRIVATE: 0x02, ANONYMOUS: 0x20, STACK: 0x20000 } as const;
/** Memory protection bits. */
export const PROT = { NONE: 0, READ: 1, WRITE: 2, EXEC: 4 } as const;

/** madvise(2) advice. */
export const MADV = { DONTNEED: 4 } as const;

/** Field offsets in glibc's struct passwd and struct group. */
export const PASSWD = { uid: 16, gid: 20 } as const;
/** Field offset of gr_gid in struct group. */
export const GROUP = { gid: 16 } as const;

// --- ioctl: tap devices and interfaces ----------------------------------------------

/** ioctl request numbers (identical on x86_64 and aarch64). */
export const IOCTL = {
  TUNSETIFF: 0x400454ca,
  TUNSETOFFLOAD: 0x400454d0,
  TUNSETVNETHDRSZ: 0x400454d8,
  TUNGETFEATURES: 0x800454cf,
  SIOCGIFFLAGS: 0x8913,
  SIOCSIFFLAGS: 0x8914,
  SIOCGIFHWADDR: 0x8927,
  SIOCSIFHWADDR: 0x8924,
  SIOCGIFINDEX: 0x8933,
  SIOCGIFMTU: 0x8921,
  SIOCSIFMTU: 0x8922,
  FIONREAD: 0x541b,
  TIOCOUTQ: 0x5411,
  SIOCOUTQ: 0x5411,
  SIOCINQ: 0x541b,
} as const;

/** Flags in ifreq.ifr_flags for TUNSETIFF and SIOC[GS]IFFLAGS. */
export const IFF = {
  UP: 0x1,
  RUNNING: 0x40,
  TUN: 0x0001,
  TAP: 0x0002,
  NO_PI: 0x1000,
  VNET_HDR: 0x4000,
  MULTI_QUEUE: 0x0100,
} as const;

/** TUNSETOFFLOAD flags: what the reader of a tap device takes in virtio-net frames. */
export const TUN_F = {
  CSUM: 0x01,
  TSO4: 0x02,
  TSO6: 0x04,
  TSO_ECN: 0x08,
  UFO: 0x10,
  USO4: 0x20,
  USO6: 0x40,
} as const;

/** Size of struct ifreq in bytes; the name occupies the first IFNAMSIZ bytes. */
export const IFREQ_SIZE = 40;
/** Maximum interface name length including the terminating NUL. */
export const IFNAMSIZ = 16;
/** Offset of the union (ifr_flags, ifr_ifindex, ifr_mtu, ifr_hwaddr) in struct ifreq. */
export const IFREQ_UNION_OFFSET = 16;

// --- structure sizes and offsets ----------------------------------------------------

/** struct sockaddr_in: 16 bytes. family (host order) @0, port (network order) @2, addr @4. */
export const SOCKADDR_IN_SIZE = 16;
/** struct sockaddr_in6: 28 bytes. family @0, port (network order) @2, flowinfo @4, addr @8, scope id @24. */
export const SOCKADDR_IN6_SIZE = 28;
/** struct sockaddr_un: 110 bytes. family @0, path @2 (108 bytes). */
export const SOCKADDR_UN_SIZE = 110;
/** Room for any socket address we use (sockaddr_storage is 128 bytes). */
export const SOCKADDR_STORAGE_SIZE = 128;

/** struct iovec: base pointer @0, length @8; 16 bytes. */
export const IOVEC_SIZE = 16;

/** struct msghdr field offsets; 56 bytes in all. */
export const MSGHDR = {
  size: 56,
  name: 0,
  namelen: 8,
  iov: 16,
  iovlen: 24,
  control: 32,
  controllen: 40,
  flags: 48,
} as const;

/** struct cmsghdr: cmsg_len (u64) @0, level @8, type @12, data @16. */
export const CMSGHDR = { len: 0, level: 8, type: 12, data: 16 } as const;
/** SOL_SOCKET control message types. */
export const SCM = { RIGHTS: 1 } as const;
/** memfd_create(2) flags. */
export const MFD = { CLOEXEC: 1 } as const;

/** struct mmsghdr: a msghdr followed by msg_len (u32) @56; 64 bytes. */
export const MMSGHDR = { size: 64, len: 56 } as const;

/** struct timespec: tv_sec @0, tv_nsec @8; 16 bytes. struct itimerspec: interval, value. */
export const TIMESPEC_SIZE = 16;
/** struct itimerspec: it_interval @0, it_value @16; 32 bytes. */
export const ITIMERSPEC_SIZE = 32;

/** struct rlimit: rlim_cur @0, rlim_max @8 (u64 each). */
export const RLIMIT_SIZE = 16;

/**
 * struct tcp_info field offsets (linux/tcp.h). The kernel fills as much as the
 * caller's buffer holds and reports the length; fields past that length are absent
 * on older kernels (tcpi_snd_wnd needs Linux 5.3).
 */
export const TCP_INFO = {
  bufferSize: 256,
  state: 0,
  options: 5,
  wscale: 6,
  rto: 8,
  sndMss: 16,
  rcvMss: 20,
  unacked: 24,
  rtt: 68,
  sndCwnd: 80,
  advmss: 84,
  bytesAcked: 120,
  bytesReceived: 128,
  notsentBytes: 144,
  minRtt: 148,
  sndWnd: 228,
  rcvWnd: 232,
} as const;

/** struct __user_cap_header_struct (8 bytes) + two struct __user_cap_data_struct (12 bytes each). */
export const CAP = {
  VERSION_3: 0x20080522,
  HEADER_SIZE: 8,
  DATA_SIZE: 24,
  NET_BIND_SERVICE: 10,
  NET_ADMIN: 12,
  NET_RAW: 13,
  SYS_ADMIN: 21,
  SETUID: 7,
  SETGID: 6,
  SETPCAP: 8,
  CHOWN: 0,
} as const;

/** Syscall numbers, for code that must issue a raw system call. */
export const SYS = IS_X86_64
  ? {
    read: 0,
    write: 1,
    close: 3,
    dup2: 33,
    dup3: 292,
    execve: 59,
    exit_group: 231,
    setsid: 112,
    setns: 308,
    chdir: 80,
    rt_sigprocmask: 14,
    rt_sigaction: 13,
    prctl: 157,
    ioctl: 16,
    fcntl: 72,
    close_range: 436,
    capset: 126,
    seccomp: 317,
    unshare: 272,
    pivot_root: 155,
    pidfd_open: 434,
    socket: 41,
    openat: 257,
    futex: 202,
    setresuid: 117,
    setresgid: 119,
    setgroups: 116,
    sethostname: 170,
  } as const
  : {
    read: 63,
    write: 64,
    close: 57,
    dup2: -1, // aarch64 has only dup3
    dup3: 24,
    execve: 221,
    exit_group: 94,
    setsid: 157,
    setns: 268,
    chdir: 49,
    rt_sigprocmask: 135,
    rt_sigaction: 134,
    prctl: 167,
    ioctl: 29,
    fcntl: 25,
    close_range: 436,
    capset: 91,
    seccomp: 277,
    unshare: 97,
    pivot_root: 41,
    pidfd_open: 434,
    socket: 198,
    openat: 56,
    futex: 98,
    setresuid: 147,
    setresgid: 149,
    setgroups: 159,
    sethostname: 161,
  } as const;

// --- signal handlers, seccomp ------------------------------------------------------

/**
 * glibc's struct sigaction (same layout on x86_64 and aarch64): handler @0,
 * sa_mask (128 bytes) @8, sa_flags (int) @136, sa_restorer @144; 152 bytes.
 */
export const SIGACTION = { size: 152, handler: 0, mask: 8, flags: 136 } as const;

/** sigaction(2) flags. */
export const SA = { SIGINFO: 0x4, RESTART: 0x10000000 } as const;

/** seccomp(2) operations, flags and filter return values. */
export const SECCOMP = {
  SET_MODE_FILTER: 1,
  FILTER_FLAG_TSYNC: 1,
  RET_ALLOW: 0x7fff0000,
  RET_ERRNO: 0x00050000,
} as const;

/** struct seccomp_data offsets: nr @0 (int), arch @4 (u32). */
export const SECCOMP_DATA = { nr: 0, arch: 4 } as const;

/** struct sock_fprog: len (u16) @0, filter pointer @8; 16 bytes. One sock_filter is 8 bytes. */
export const SOCK_FPROG = { size: 16, len: 0, filter: 8, insnSize: 8 } as const;

/** The AUDIT_ARCH_* value seccomp reports for native system calls on this machine. */
export const AUDIT_ARCH = THIS_ARCH.AUDIT_ARCH;

/** x86_64 only: system call numbers with this bit set are x32 calls (never ours). */
export const X32_SYSCALL_BIT = 0x40000000;
