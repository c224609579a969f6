/**
 * The libc symbol table: every C function the program calls, declared once.
 *
 * Theory of operation: `Deno.dlopen` binds glibc's shared object, one symbol at a
 * time on first use (see `lazyLibc`). Each entry carries the C prototype beside it. Type choices:
 * - Input byte ranges and out-parameters are `"buffer"` (a caller-owned Uint8Array,
 *   preallocated by the caller; nothing here allocates per call).
 * - `ssize_t` results are declared `"i32"`: the low 32 bits of the return register
 *   carry every value we can see (no single transfer here is ≥ 2 GiB), and a 32-bit
 *   result comes back as a JS number instead of a BigInt, which matters per packet.
 * - `size_t` parameters are `"usize"` (accepts a number).
 * - Variadic functions (fcntl, ioctl, open, syscall) are called with a fixed
 *   argument list: on the x86_64 and aarch64 Linux ABIs integer and pointer
 *   variadic arguments travel in the same registers as fixed ones.
 * Typed wrappers that turn -1/errno into errors live in `sys.ts`; nothing outside
 * `src/ffi/` touches `libc` directly.
 */

const LIBC_NAMES = [
  "libc.so.6",
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/aarch64-linux-gnu/libc.so.6",
];

/** The C prototypes, as Deno FFI signatures. */
const symbols = {
  /* int *__errno_location(void) */
  __errno_location: { parameters: [], result: "pointer" },

  // --- sockets -------------------------------------------------------------------
  /* int socket(int domain, int type, int protocol) */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /* int socketpair(int domain, int type, int protocol, int sv[2]) */
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  /* int bind(int fd, const struct sockaddr *addr, socklen_t len) */
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /* int listen(int fd, int backlog) */
  listen: { parameters: ["i32", "i32"], result: "i32" },
  /* int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) */
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  /* int connect(int fd, const struct sockaddr *addr, socklen_t len) */
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /* int getsockname(int fd, struct sockaddr *addr, socklen_t *len) */
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  /* int getpeername(int fd, struct sockaddr *addr, socklen_t *len) */
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  /* int getsockopt(int fd, int level, int name, void *val, socklen_t *len) */
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  /* int setsockopt(int fd, int level, int name, const void *val, socklen_t len) */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  /* int shutdown(int fd, int how) */
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  /* ssize_t recv(int fd, void *buf, size_t len, int flags) */
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  /* ssize_t send(int fd, const void *buf, size_t len, int flags) */
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  /* ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *src, socklen_t *alen) */
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "i32",
  },
  /* ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *dst, socklen_t alen) */
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "i32" },
  /* ssize_t recvmsg(int fd, struct msghdr *msg, int flags) */
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /* ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) */
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /* int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout) */
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "buffer"], result: "i32" },
  /* int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags) */
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },

  // --- files and pipes -----------------------------------------------------------
  /* ssize_t read(int fd, void *buf, size_t count) */
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  /* ssize_t write(int fd, const void *buf, size_t count) */
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  /* ssize_t readv(int fd, const struct iovec *iov, int iovcnt) */
  readv: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /* ssize_t writev(int fd, const struct iovec *iov, int iovcnt) */
  writev: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /* ssize_t splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t len, unsigned int flags) */
  splice: {
    parameters: ["i32", "pointer", "i32", "pointer", "usize", "u32"],
    result: "i32",
  },
  /* int pipe2(int fds[2], int flags) */
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  /* int fcntl(int fd, int cmd, long arg) */
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },
  /* int close(int fd) */
  close: { parameters: ["i32"], result: "i32" },
  /* int open(const char *path, int flags, mode_t mode) */
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  /* int openat(int dirfd, const char *path, int flags, mode_t mode) */
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  /* off_t lseek(int fd, off_t offset, int whence) */
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  /* ssize_t pread(int fd, void *buf, size_t count, off_t offset) */
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "i32" },
  /* int ftruncate(int fd, off_t length) */
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  /* int dup2(int oldfd, int newfd) */
  dup2: { parameters: ["i32", "i32"], result: "i32" },
  /* int unlink(const char *path) */
  unlink: { parameters: ["buffer"], result: "i32" },
  /* int ioctl(int fd, unsigned long req, void *arg) */
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  /* int ioctl(int fd, unsigned long req, long arg) */
  ioctl_int: { name: "ioctl", parameters: ["i32", "u64", "i64"], result: "i32" },
  /* int fallocate(int fd, int mode, off_t offset, off_t len) */
  fallocate: { parameters: ["i32", "i32", "i64", "i64"], result: "i32" },

  // --- event loop ----------------------------------------------------------------
  /* int epoll_create1(int flags) */
  epoll_create1: { parameters: ["i32"], result: "i32" },
  /* int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) */
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  /* int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout_ms) */
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  /* int timerfd_create(int clockid, int flags) */
  timerfd_create: { parameters: ["i32", "i32"], result: "i32" },
  /* int timerfd_settime(int fd, int flags, const struct itimerspec *new, struct itimerspec *old) */
  timerfd_settime: { parameters: ["i32", "i32", "buffer", "pointer"], result: "i32" },
  /* int signalfd(int fd, const sigset_t *mask, int flags) */
  signalfd: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /* int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) */
  pthread_sigmask: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  /* int eventfd(unsigned int initval, int flags) */
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  /* int inotify_init1(int flags) */
  inotify_init1: { parameters: ["i32"], result: "i32" },
  /* int inotify_add_watch(int fd, const char *path, uint32_t mask) */
  inotify_add_watch: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /* int clock_gettime(clockid_t clk, struct timespec *ts) */
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },

  // --- processes, namespaces, credentials -----------------------------------------
  /* pid_t getpid(void) */
  getpid: { parameters: [], result: "i32" },
  /* uid_t getuid(void), geteuid(void); gid_t getgid(void), getegid(void) */
  getuid: { parameters: [], result: "u32" },
  geteuid: { parameters: [], result: "u32" },
  getgid: { parameters: [], result: "u32" },
  getegid: { parameters: [], result: "u32" },
  /* int setns(int fd, int nstype) */
  setns: { parameters: ["i32", "i32"], result: "i32" },
  /* int unshare(int flags) */
  unshare: { parameters: ["i32"], result: "i32" },
  /* int clone(int (*fn)(void *), void *stack, int flags, void *arg, pid_t *ptid, void *tls, pid_t *ctid) */
  clone: {
    parameters: ["pointer", "pointer", "i32", "pointer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  /* pid_t waitpid(pid_t pid, int *status, int options) */
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /* int kill(pid_t pid, int sig) */
  kill: { parameters: ["i32", "i32"], result: "i32" },
  /* int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) */
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  /* int capget(cap_user_header_t hdr, cap_user_data_t data) */
  capget: { parameters: ["buffer", "buffer"], result: "i32" },
  /* int capset(cap_user_header_t hdr, const cap_user_data_t data) */
  capset: { parameters: ["buffer", "buffer"], result: "i32" },
  /* int setresuid(uid_t r, uid_t e, uid_t s), setresgid(gid_t r, gid_t e, gid_t s) */
  setresuid: { parameters: ["u32", "u32", "u32"], result: "i32" },
  setresgid: { parameters: ["u32", "u32", "u32"], result: "i32" },
  /* int setgroups(size_t n, const gid_t *list) */
  setgroups: { parameters: ["usize", "buffer"], result: "i32" },
  /* int getrlimit(int res, struct rlimit *r), setrlimit(int res, const struct rlimit *r) */
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  /* pid_t setsid(void) */
  setsid: { parameters: [], result: "i32" },
  /* int execve(const char *path, char *const argv[], char *const envp[]) */
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  /* int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
   *                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) */
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  /* int posix_spawn_file_actions_init(posix_spawn_file_actions_t *fa) */
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  /* int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *fa) */
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  /* int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa, int fd, int newfd) */
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  /* int posix_spawnattr_init(posix_spawnattr_t *a), posix_spawnattr_destroy(...) */
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  /* int posix_spawnattr_setflags(posix_spawnattr_t *a, short flags) */
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  /* int posix_spawnattr_setsigmask(posix_spawnattr_t *a, const sigset_t *mask) */
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  /* int chown(const char *path, uid_t owner, gid_t group) */
  chown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  /* int tgkill(pid_t tgid, pid_t tid, int sig) */
  tgkill: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /* int sigaction(int sig, const struct sigaction *act, struct sigaction *old) */
  sigaction: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  /* int mount(const char *src, const char *target, const char *fstype, unsigned long flags,
   *           const void *data) */
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
  /* int poll(struct pollfd *fds, nfds_t n, int timeout) */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  /* int umount2(const char *target, int flags) */
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  /* int chroot(const char *path) */
  chroot: { parameters: ["buffer"], result: "i32" },
  /* int chdir(const char *path) */
  chdir: { parameters: ["buffer"], result: "i32" },
  /* ssize_t getdents64(int fd, void *buf, size_t count) */
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "i64" },
  /* int unlinkat(int dirfd, const char *path, int flags) */
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /* long syscall(SYS_pivot_root, const char *new_root, const char *put_old) */
  syscall_pivot_root: { name: "syscall", parameters: ["i64", "buffer", "buffer"], result: "i64" },
  /* long syscall(SYS_pidfd_open, pid_t pid, unsigned int flags) */
  syscall_pidfd_open: { name: "syscall", parameters: ["i64", "i64", "i64"], result: "i64" },
  /* long syscall(SYS_futex, uint32_t *uaddr, int op, uint32_t val, const struct timespec *t) */
  syscall_futex: {
    name: "syscall",
    parameters: ["i64", "buffer", "i64", "i64", "buffer"],
    result: "i32",
  },
  /* long syscall(SYS_seccomp, unsigned int op, unsigned int flags, void *args) */
  syscall_seccomp: { name: "syscall", parameters: ["i64", "i64", "i64", "buffer"], result: "i64" },
  /* void _exit(int status) */
  _exit: { parameters: ["i32"], result: "void" },

  // --- memory (stubs; vhost-user guest memory) --------------------------------------
  /* void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) */
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  /* int madvise(void *addr, size_t len, int advice) */
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  /* int mprotect(void *addr, size_t len, int prot) */
  mprotect: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  /* int munmap(void *addr, size_t len) */
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  /* void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off), address as u64 */
  mmap_addr: {
    name: "mmap",
    parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"],
    result: "usize",
  },
  /* int munmap(void *addr, size_t len), address as u64 */
  munmap_addr: { name: "munmap", parameters: ["usize", "usize"], result: "i32" },
  /* void *memcpy(void *dst, const void *src, size_t n), addresses as u64 (result ignored) */
  memcpy_addr: { name: "memcpy", parameters: ["usize", "usize", "usize"], result: "void" },
  /* int memfd_create(const char *name, unsigned int flags) */
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },

  // --- users, names, system logger ------------------------------------------------
  /* struct passwd *getpwnam(const char *name) */
  getpwnam: { parameters: ["buffer"], result: "pointer" },
  /* struct group *getgrnam(const char *name) */
  getgrnam: { parameters: ["buffer"], result: "pointer" },
  /* unsigned int if_nametoindex(const char *name) */
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  /* char *if_indextoname(unsigned int index, char *buf) */
  if_indextoname: { parameters: ["u32", "buffer"], result: "pointer" },
} as const;

type Symbols = typeof symbols;
/** The bound functions, as `Deno.dlopen(…, symbols).symbols` would give them. */
type Bound = Deno.DynamicLibrary<Symbols>["symbols"];

/** The first name of the C library that loads. */
function libcName(): string {
  let lastError: unknown;
  for (const name of LIBC_NAMES) {
    try {
      Deno.dlopen(name, {});
      return name;
    } catch (e) {
      lastError = e;
    }
  }
  throw new Error(`cannot load the C library: ${lastError}`);
}

/**
 * The table, bound lazily: each symbol is bound (its own `Deno.dlopen`, which
 * builds its call trampoline) the first time it is read, and the getter then
 * replaces itself with the bound function, a plain property from there on.
 * Binding all ~100 at load cost ~15 ms per process, and a run uses about half.
 */
function lazyLibc(): Bound {
  const name = libcName();
  const table = {} as Record<string, unknown>;
  for (const key of Object.keys(symbols) as (keyof Symbols)[]) {
    Object.defineProperty(table, key, {
      configurable: true,
      enumerable: true,
      get() {
        const fn = Deno.dlopen(name, { [key]: symbols[key] }).symbols[key];
        Object.defineProperty(table, key, { value: fn, enumerable: true });
        return fn;
      },
    });
  }
  return table as Bound;
}

/**
 * A byte count for a `size_t` ("usize") parameter. Deno's FFI takes a JS number for
 * 64-bit integer parameters at run time (no BigInt allocated per call), while its
 * type declarations only name bigint; this is the one place that bridges the two.
 */
export function sizeT(n: number): bigint {
  return n as unknown as bigint;
}

/** The bound C library. Only `src/ffi/` uses it; everything else calls `sys.ts`. */
export const c: Bound = lazyLibc();
