/**
 * The program after mode selection: command line → configuration → logging →
 * process life → the event loop.
 *
 * Theory of operation: the command line is parsed once into an immutable Config;
 * any error ends the program with status 1 and one line on stderr before anything
 * is opened. Options whose effect is not built yet are refused here, by name,
 * instead of being accepted and ignored. Then, unless `-f`, the process started by
 * the user becomes the "starter" that spawns the background worker and waits for
 * it to be ready (see process.ts). The worker (or the foreground process) sets up
 * its descriptors, announces readiness and runs the loop until a signal ends it.
 */
import { usage } from "./config/help.ts";
import { type Config, ConfigError, type Mode, type PasstConfig } from "./config/config.ts";
import { parseCommandLine } from "./config/options.ts";
import { EPOLL, SIG } from "./ffi/layout.ts";
import * as sys from "./ffi/sys.ts";
import { log } from "./log.ts";
import { EventLoop } from "./loop.ts";
import {
  announceReady,
  closeInheritedDescriptors,
  ensureLoopSignalsBlocked,
  isBackgroundWorker,
  LOOP_SIGNALS,
  readyDescriptor,
  reapChildren,
  runBackgroundStarter,
} from "./process.ts";
import { openPasstListener, qemuHint, removePasstListener } from "./tap/passt_socket.ts";
import { runPasta } from "./pasta/pasta.ts";
import { VERSION } from "./version.ts";

/** Options with an effect in both modes (long names). */
const COMMON_SUPPORTED = [
  "debug",
  "trace",
  "quiet",
  "foreground",
  "stderr",
  "log-file",
  "log-size",
  "pid",
  "help",
  "version",
];

/**
 * Options that have an effect in this version, per mode (long names). Everything
 * else the parser accepts is refused with "not supported yet" until its feature
 * lands, instead of being accepted and ignored.
 */
export const SUPPORTED_OPTIONS: Readonly<Record<Mode, ReadonlySet<string>>> = {
  passt: new Set([...COMMON_SUPPORTED, "socket"]),
  pasta: new Set([
    ...COMMON_SUPPORTED,
    "mtu",
    "address",
    "netmask",
    "mac-addr",
    "gateway",
    "interface",
    "outbound-if4",
    "outbound-if6",
    "dns",
    "search",
    "dhcp-dns",
    "dhcp-search",
    "no-tcp",
    "no-udp",
    "no-dhcp",
    "no-ndp",
    "no-dhcpv6",
    "no-ra",
    "no-map-gw",
    "dns-forward",
    "tcp-ports",
    "udp-ports",
    "map-host-loopback",
    "map-guest-addr",
    "no-icmp",
    "pcap",
    "outbound",
    "ipv4-only",
    "ipv6-only",
    "ns-ifname",
    "userns",
    "netns",
    "netns-only",
    "no-netns-quit",
    "config-net",
    "no-copy-routes",
    "no-copy-addrs",
    "ns-mac-addr",
  ]),
};

/** Namespace-to-host forwarding: accepted only as "none" until the local path lands. */
const PORT_OPTIONS = ["tcp-ns", "udp-ns"] as const;

/** The first option of `config` without an effect yet, or undefined. */
function unsupportedOption(config: Config): string | undefined {
  for (const name of config.given) {
    if (SUPPORTED_OPTIONS[config.mode].has(name)) continue;
    if (config.mode === "pasta" && (PORT_OPTIONS as readonly string[]).includes(name)) {
      const table = name === "tcp-ns" ? config.tcpOut : config.udpOut;
      if (table.mode === "none") continue;
      return `${name} (port forwarding other than 'none')`;
    }
    return name;
  }
  return undefined;
}

const encoder = new TextEncoder();

function printTo(fd: 1 | 2, text: string): void {
  const bytes = encoder.encode(text.endsWith("\n") ? text : `${text}\n`);
  sys.write(fd, bytes, bytes.length);
}

/** Run `mode` with the command line `args` (argv[0] excluded); returns the exit status. */
export function main(mode: Mode, args: readonly string[]): number {
  log.program = mode;
  let parsed;
  try {
    parsed = parseCommandLine(mode, args);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    printTo(2, `${mode}: ${e.message}`);
    if (e.showUsage) printTo(2, usage(mode));
    return 1;
  }
  if (parsed.action === "help") {
    printTo(1, usage(mode));
    return 0;
  }
  if (parsed.action === "version") {
    printTo(1, `${mode} ${VERSION} (TypeScript on Deno ${Deno.version.deno})`);
    return 0;
  }
  const config = parsed.config;

  const unsupported = unsupportedOption(config);
  if (unsupported !== undefined) {
    printTo(2, `${mode}: --${unsupported}: not supported yet`);
    return 1;
  }

  try {
    log.configure({
      program: mode,
      debug: config.debug,
      trace: config.trace,
      quiet: config.quiet,
      logFile: config.logFile,
      logSize: config.logSize,
    });
  } catch (e) {
    printTo(2, `${mode}: --log-file: ${e instanceof Error ? e.message : e}`);
    return 1;
  }

  const keep = [readyDescriptor(), config.mode === "passt" ? config.fd : undefined];
  closeInheritedDescriptors(keep.filter((fd) => fd !== undefined));
  if (config.mode === "pasta") return runPasta(config);
  if (!config.foreground && !isBackgroundWorker()) return runBackgroundStarter();
  ensureLoopSignalsBlocked();
  return runPasst(config);
}

/** passt: listen for qemu, announce readiness, run the loop until a signal ends it. */
function runPasst(config: PasstConfig): number {
  let listener;
  try {
    listener = openPasstListener(config.socketPath);
  } catch (e) {
    log.err(e instanceof Error ? e.message : String(e));
    return 1;
  }
  const loop = new EventLoop();
  loop.onHandlerError((kind, e) => log.err(`${kind} handler: ${e}`));
  loop.addSignals(LOOP_SIGNALS, (info) => {
    if (info.signo === SIG.CHLD) {
      reapChildren(() => {});
    } else if (info.signo === SIG.HUP) {
      log.debug("SIGHUP ignored");
    } else {
      log.info(`terminating on signal ${info.signo}`);
      loop.stop(0);
    }
  });
  const listenKind = loop.defineKind("passt-listen", (_index, _events, fd) => {
    const client = sys.accept(fd, 0o2000000 /* SOCK_CLOEXEC */);
    if (client < 0) return;
    log.warn("guest connection closed: the guest data path is not implemented in this version");
    sys.close(client);
  });
  const r = loop.add(listener.fd, listenKind, 0, EPOLL.IN);
  if (r < 0) throw new sys.SysError("epoll_ctl", -r);

  for (const line of qemuHint(listener.path)) log.info(line);
  log.warn("this version has no guest data path yet: qemu connections are closed at once");
  try {
    announceReady(config.pidFile);
  } catch (e) {
    log.err(`--pid: ${e instanceof Error ? e.message : e}`);
    removePasstListener(listener);
    return 1;
  }
  const status = loop.run();
  removePasstListener(listener);
  loop.close();
  return status;
}
