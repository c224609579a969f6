/**
 * src/ffi/layout.ts against the C headers, on x86_64 and on aarch64.
 *
 * Theory of operation: the table below pairs C expressions (a sizeof, an offsetof,
 * a constant's name) with what layout.ts says they are. One small C program made
 * from it prints every expression's value as a JSON object keyed by the expression;
 * it is compiled with gcc and run here, and for the other architecture compiled
 * with that architecture's cross compiler and run under qemu-user. Each run is
 * compared with layout.ts's values for its architecture: ARCH_SPECIFIC where the
 * two differ, the exports elsewhere, which layout.ts promises are the same on
 * both. Syscall numbers (SYS) exist for this machine only and are checked natively.
 * Without a compiler (or qemu) a run is ignored, with the reason on stderr.
 */
import assert from "node:assert/strict";
import * as L from "../../src/ffi/layout.ts";

type Arch = keyof typeof L.ARCH_SPECIFIC;

/** A C expression and the value layout.ts gives it. */
interface Fact {
  c: string;
  expected: number;
  /** Preprocessor condition for the expression to exist: when false, `otherwise`. */
  guard?: string;
  /** C expression used when `guard` fails; without it the fact is left unchecked. */
  otherwise?: string;
}

/** One fact per member of a constants table, the C name made from its key. */
function constants(table: Record<string, number>, cName: (key: string) => string): Fact[] {
  return Object.entries(table).map(([key, expected]) => ({ c: cName(key), expected }));
}

/** `offsetof(type, member)` for each member, against layout.ts's offsets. */
function offsets(type: string, members: Record<string, number>): Fact[] {
  return Object.entries(members).map(([member, expected]) => ({
    c: `offsetof(${type}, ${member})`,
    expected,
  }));
}

/** Everything layout.ts says about `arch`; SYS too when `arch` is this machine's. */
function facts(arch: Arch): Fact[] {
  const own = L.ARCH_SPECIFIC[arch];
  const prefixed = (prefix: string) => (key: string) => prefix + key;
  return [
    // Constants that differ between the architectures.
    { c: "O_DIRECTORY", expected: own.O_DIRECTORY },
    { c: "O_NOFOLLOW", expected: own.O_NOFOLLOW },
    { c: "sizeof(struct epoll_event)", expected: own.EPOLL_EVENT_SIZE },
    { c: "offsetof(struct epoll_event, data)", expected: own.EPOLL_EVENT_DATA_OFFSET },
    { c: "AUDIT_ARCH_NATIVE", expected: own.AUDIT_ARCH },
    ...(arch === "x86_64" ? [{ c: "__X32_SYSCALL_BIT", expected: L.X32_SYSCALL_BIT }] : []),

    // Socket addresses, vectors, message headers.
    { c: "sizeof(struct sockaddr_in)", expected: L.SOCKADDR_IN_SIZE },
    ...offsets("struct sockaddr_in", { sin_family: 0, sin_port: 2, sin_addr: 4 }),
    { c: "sizeof(struct sockaddr_in6)", expected: L.SOCKADDR_IN6_SIZE },
    ...offsets("struct sockaddr_in6", {
      sin6_family: 0,
      sin6_port: 2,
      sin6_flowinfo: 4,
      sin6_addr: 8,
      sin6_scope_id: 24,
    }),
    { c: "sizeof(struct sockaddr_un)", expected: L.SOCKADDR_UN_SIZE },
    { c: "offsetof(struct sockaddr_un, sun_path)", expected: 2 },
    { c: "sizeof(struct sockaddr_storage)", expected: L.SOCKADDR_STORAGE_SIZE },
    { c: "sizeof(struct iovec)", expected: L.IOVEC_SIZE },
    ...offsets("struct iovec", { iov_base: 0, iov_len: 8 }),
    { c: "sizeof(struct msghdr)", expected: L.MSGHDR.size },
    ...offsets("struct msghdr", {
      msg_name: L.MSGHDR.name,
      msg_namelen: L.MSGHDR.namelen,
      msg_iov: L.MSGHDR.iov,
      msg_iovlen: L.MSGHDR.iovlen,
      msg_control: L.MSGHDR.control,
      msg_controllen: L.MSGHDR.controllen,
      msg_flags: L.MSGHDR.flags,
    }),
    { c: "sizeof(struct mmsghdr)", expected: L.MMSGHDR.size },
    ...offsets("struct mmsghdr", { msg_hdr: 0, msg_len: L.MMSGHDR.len }),

    // Time, limits, signals.
    { c: "sizeof(struct timespec)", expected: L.TIMESPEC_SIZE },
    ...offsets("struct timespec", { tv_sec: 0, tv_nsec: 8 }),
    { c: "sizeof(struct itimerspec)", expected: L.ITIMERSPEC_SIZE },
    ...offsets("struct itimerspec", { it_interval: 0, it_value: 16 }),
    { c: "sizeof(struct rlimit)", expected: L.RLIMIT_SIZE },
    ...offsets("struct rlimit", { rlim_cur: 0, rlim_max: 8 }),
    { c: "sizeof(sigset_t)", expected: L.SIGSET_SIZE },
    { c: "(_NSIG - 1) / 8", expected: L.KERNEL_SIGSET_SIZE }, // glibc's _NSIG is the kernel's + 1
    { c: "sizeof(struct signalfd_siginfo)", expected: L.SIGNALFD_SIGINFO_SIZE },
    ...offsets("struct signalfd_siginfo", {
      ssi_signo: L.SIGNALFD_SIGINFO.signo,
      ssi_pid: L.SIGNALFD_SIGINFO.pid,
      ssi_status: L.SIGNALFD_SIGINFO.status,
    }),
    { c: "sizeof(struct sigaction)", expected: L.SIGACTION.size },
    ...offsets("struct sigaction", {
      sa_handler: L.SIGACTION.handler,
      sa_mask: L.SIGACTION.mask,
      sa_flags: L.SIGACTION.flags,
      sa_restorer: 144,
    }),

    // struct tcp_info: the fields we read, and room for the whole structure.
    { c: `sizeof(struct tcp_info) <= ${L.TCP_INFO.bufferSize}`, expected: 1 },
    ...offsets("struct tcp_info", {
      tcpi_state: L.TCP_INFO.state,
      tcpi_options: L.TCP_INFO.options,
      tcpi_rto: L.TCP_INFO.rto,
      tcpi_snd_mss: L.TCP_INFO.sndMss,
      tcpi_rcv_mss: L.TCP_INFO.rcvMss,
      tcpi_unacked: L.TCP_INFO.unacked,
      tcpi_rtt: L.TCP_INFO.rtt,
      tcpi_snd_cwnd: L.TCP_INFO.sndCwnd,
      tcpi_advmss: L.TCP_INFO.advmss,
      tcpi_bytes_acked: L.TCP_INFO.bytesAcked,
      tcpi_bytes_received: L.TCP_INFO.bytesReceived,
      tcpi_notsent_bytes: L.TCP_INFO.notsentBytes,
      tcpi_min_rtt: L.TCP_INFO.minRtt,
      tcpi_snd_wnd: L.TCP_INFO.sndWnd,
    }),
    // Bit fields have no offsetof: the byte a field's bits land in.
    { c: "BITFIELD_BYTE(struct tcp_info, tcpi_snd_wscale)", expected: L.TCP_INFO.wscale },
    { c: "BITFIELD_BYTE(struct tcp_info, tcpi_rcv_wscale)", expected: L.TCP_INFO.wscale },
    {
      // Linux 6.2; older headers don't have it.
      c: "offsetof(struct tcp_info, tcpi_rcv_wnd)",
      expected: L.TCP_INFO.rcvWnd,
      guard: "LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)",
    },

    // Interfaces.
    { c: "sizeof(struct ifreq)", expected: L.IFREQ_SIZE },
    { c: "IFNAMSIZ", expected: L.IFNAMSIZ },
    ...offsets("struct ifreq", {
      ifr_name: 0,
      ifr_flags: L.IFREQ_UNION_OFFSET,
      ifr_ifindex: L.IFREQ_UNION_OFFSET,
      ifr_mtu: L.IFREQ_UNION_OFFSET,
      ifr_hwaddr: L.IFREQ_UNION_OFFSET,
    }),

    // Seccomp, capabilities, directory entries, user and group entries, posix_spawn.
    { c: "sizeof(struct sock_fprog)", expected: L.SOCK_FPROG.size },
    ...offsets("struct sock_fprog", { len: L.SOCK_FPROG.len, filter: L.SOCK_FPROG.filter }),
    { c: "sizeof(struct sock_filter)", expected: L.SOCK_FPROG.insnSize },
    ...offsets("struct seccomp_data", { nr: L.SECCOMP_DATA.nr, arch: L.SECCOMP_DATA.arch }),
    { c: "_LINUX_CAPABILITY_VERSION_3", expected: L.CAP.VERSION_3 },
    { c: "sizeof(struct __user_cap_header_struct)", expected: L.CAP.HEADER_SIZE },
    {
      c: "_LINUX_CAPABILITY_U32S_3 * sizeof(struct __user_cap_data_struct)",
      expected: L.CAP.DATA_SIZE,
    },
    ...constants(
      {
        NET_BIND_SERVICE: L.CAP.NET_BIND_SERVICE,
        NET_ADMIN: L.CAP.NET_ADMIN,
        NET_RAW: L.CAP.NET_RAW,
        SYS_ADMIN: L.CAP.SYS_ADMIN,
        SETUID: L.CAP.SETUID,
        SETGID: L.CAP.SETGID,
        SETPCAP: L.CAP.SETPCAP,
        CHOWN: L.CAP.CHOWN,
      },
      prefixed("CAP_"),
    ),
    // glibc's dirent64 is the kernel's linux_dirent64 with room for the longest name.
    ...offsets("struct dirent64", {
      d_ino: 0,
      d_off: 8,
      d_reclen: L.DIRENT64.reclen,
      d_type: 18,
      d_name: L.DIRENT64.name,
    }),
    ...offsets("struct passwd", { pw_uid: L.PASSWD.uid, pw_gid: L.PASSWD.gid }),
    ...offsets("struct group", { gr_gid: L.GROUP.gid }),
    { c: "sizeof(posix_spawn_file_actions_t)", expected: L.POSIX_SPAWN.FILE_ACTIONS_SIZE },
    { c: "sizeof(posix_spawnattr_t)", expected: L.POSIX_SPAWN.ATTR_SIZE },

    // Constants that layout.ts says are the same on both architectures.
    ...constants(L.AF, prefixed("AF_")),
    ...constants(L.SOCK, prefixed("SOCK_")),
    ...constants(L.IPPROTO, prefixed("IPPROTO_")),
    // SOL_TCP is IPPROTO_TCP, and defined only by netinet/tcp.h, whose struct tcp_info is
    // older than linux/tcp.h's.
    ...constants(L.SOL, (k) => k === "TCP" ? "IPPROTO_TCP" : `SOL_${k}`),
    ...constants(L.SO, prefixed("SO_")),
    ...constants(L.SK_MEMINFO, (k) => k === "COUNT" ? "SK_MEMINFO_VARS" : `SK_MEMINFO_${k}`),
    ...constants(L.TCP_OPT, prefixed("TCP_")),
    ...constants(L.IP_OPT, prefixed("IP_")),
    ...constants(L.IPV6_OPT, prefixed("IPV6_")),
    ...constants(L.MSG, prefixed("MSG_")),
    ...constants(L.SHUT, prefixed("SHUT_")),
    ...constants(L.O, prefixed("O_")).filter((f) => f.c !== "O_DIRECTORY" && f.c !== "O_NOFOLLOW"),
    ...constants(L.F, (k) => k.startsWith("FD_") ? k : `F_${k}`),
    ...constants(L.SPLICE_F, prefixed("SPLICE_F_")),
    ...constants(L.FALLOC_FL, prefixed("FALLOC_FL_")),
    // EPOLLET is 1u << 31; layout.ts has it as a (negative) 32-bit int.
    ...constants(
      { ...L.EPOLL, ET: L.EPOLL.ET >>> 0 },
      (k) => k.startsWith("CTL_") || k === "CLOEXEC" ? `EPOLL_${k}` : `EPOLL${k}`,
    ),
    ...constants(L.CLOCK, prefixed("CLOCK_")),
    ...constants(L.TFD, prefixed("TFD_")),
    ...constants(L.SFD, prefixed("SFD_")),
    ...constants(L.EFD, prefixed("EFD_")),
    ...constants(L.IN, prefixed("IN_")),
    ...constants(L.MS, prefixed("MS_")),
    ...constants(L.MNT, (k) => k.startsWith("UMOUNT_") ? k : `MNT_${k}`),
    ...constants(L.SIG, prefixed("SIG")),
    ...constants(L.SIG_HOW, prefixed("SIG_")),
    ...constants(L.WAIT, (k) => k === "ALL" ? "__WALL" : `W${k}`),
    ...constants(L.CLONE, prefixed("CLONE_")),
    ...constants(L.CLOSE_RANGE, prefixed("CLOSE_RANGE_")),
    ...constants(L.PR, prefixed("PR_")),
    ...constants(L.RLIMIT, prefixed("RLIMIT_")),
    ...constants(
      {
        SETSIGDEF: L.POSIX_SPAWN.SETSIGDEF,
        SETSIGMASK: L.POSIX_SPAWN.SETSIGMASK,
        SETSID: L.POSIX_SPAWN.SETSID,
      },
      prefixed("POSIX_SPAWN_"),
    ),
    ...constants(L.MAP, prefixed("MAP_")),
    ...constants(L.PROT, prefixed("PROT_")),
    ...constants(L.IOCTL, (k) => k),
    ...constants(L.IFF, prefixed("IFF_")),
    ...constants(L.SA, prefixed("SA_")),
    ...constants(L.SECCOMP, prefixed("SECCOMP_")),

    // Syscall numbers: layout.ts has this machine's only; -1 means "no such call here".
    ...(arch === L.ARCH
      ? Object.entries(L.SYS).map(([name, expected]) => ({
        c: `__NR_${name}`,
        expected,
        guard: `defined(__NR_${name})`,
        otherwise: "-1",
      }))
      : []),
  ];
}

const PRELUDE = `#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/seccomp.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <linux/sockios.h>
#include <linux/version.h>

#if defined(__x86_64__)
#define AUDIT_ARCH_NATIVE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_NATIVE AUDIT_ARCH_AARCH64
#endif

/* The offset of the first byte that setting a bit field to 1 changes. */
static long long first_nonzero(const void *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (((const unsigned char *)p)[i] != 0) return (long long)i;
  return -1;
}
#define BITFIELD_BYTE(type, field) \\
  ({ type v_; memset(&v_, 0, sizeof(v_)); v_.field = 1; first_nonzero(&v_, sizeof(v_)); })

static const char *sep = "{";
static void emit(const char *key, long long value) {
  printf("%s\\n  \\"%s\\": %lld", sep, key, value);
  sep = ",";
}
static void unknown(const char *key) {
  printf("%s\\n  \\"%s\\": null", sep, key);
  sep = ",";
}
`;

/** The C program printing every fact's value, keyed by its expression. */
function program(list: Fact[]): string {
  const body = list.map(({ c, guard, otherwise }) => {
    assert.ok(!/["\\\n]/.test(c), `expression ${c} would need escaping`);
    const value = (expr: string) => `  emit("${c}", (long long)(${expr}));`;
    if (guard === undefined) return value(c);
    const missing = otherwise === undefined ? `  unknown("${c}");` : value(otherwise);
    return `#if ${guard}\n${value(c)}\n#else\n${missing}\n#endif`;
  });
  return `${PRELUDE}\nint main(void) {\n${body.join("\n")}\n  printf("\\n}\\n");\n  return 0;\n}\n`;
}

/** How to build and run for `arch` here: this machine's gcc, or a cross gcc and qemu. */
function toolchain(arch: Arch): { cc: string; flags: string[]; run: string[] } {
  if (arch === L.ARCH) return { cc: "gcc", flags: [], run: [] };
  return arch === "aarch64"
    ? { cc: "aarch64-linux-gnu-gcc", flags: ["-static"], run: ["qemu-aarch64-static"] }
    : { cc: "x86_64-linux-gnu-gcc", flags: ["-static"], run: ["qemu-x86_64-static"] };
}

function onPath(tool: string): boolean {
  return (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":").some((dir) => {
    try {
      return Deno.statSync(`${dir}/${tool}`).isFile;
    } catch {
      return false;
    }
  });
}

/** Why the run for `arch` can't happen here, or undefined. */
function unavailable(arch: Arch): string | undefined {
  const { cc, run } = toolchain(arch);
  const missing = [cc, ...run].filter((tool) => !onPath(tool));
  return missing.length > 0 ? `no ${missing.join(", ")} (installed by .ci/run)` : undefined;
}

async function output(argv: string[], timeoutMs: number): Promise<string> {
  const [cmd = "", ...args] = argv;
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const dec = new TextDecoder();
  assert.equal(out.code, 0, `${argv.join(" ")}:\n${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

/** Compile and run the facts program for `arch`: each expression's value (null: unknown). */
async function measure(arch: Arch, list: Fact[]): Promise<Record<string, number | null>> {
  const { cc, flags, run } = toolchain(arch);
  const dir = Deno.makeTempDirSync({ prefix: "layout_test_" });
  try {
    Deno.writeTextFileSync(`${dir}/facts.c`, program(list));
    await output([cc, ...flags, "-O0", "-w", "-o", `${dir}/facts`, `${dir}/facts.c`], 60_000);
    return JSON.parse(await output([...run, `${dir}/facts`], 30_000));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

for (const arch of [L.ARCH, L.ARCH === "x86_64" ? "aarch64" : "x86_64"] as const) {
  const reason = unavailable(arch);
  if (reason !== undefined) console.error(`tests/ffi/layout_test.ts (${arch}) ignored: ${reason}`);
  const how = arch === L.ARCH ? "natively" : "under qemu";
  Deno.test({
    name: `layout.ts matches the C headers on ${arch} (run ${how})`,
    ignore: reason !== undefined,
    async fn() {
      const list = facts(arch);
      const values = await measure(arch, list);
      const wrong: string[] = [];
      const unchecked: string[] = [];
      for (const { c, expected } of list) {
        const actual = values[c];
        if (actual === null) unchecked.push(c);
        else if (actual !== expected) wrong.push(`${c}: C says ${actual}, layout.ts ${expected}`);
      }
      if (unchecked.length > 0) {
        console.error(`${arch}: not in these headers, unchecked: ${unchecked.join(", ")}`);
      }
      assert.deepEqual(wrong, []);
    },
  });
}
