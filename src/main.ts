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
import { type Config, ConfigError, type Mode } from "./config/config.ts";
import { parseCommandLine } from "./config/options.ts";
import * as sys from "./ffi/sys.ts";
import { log } from "./log.ts";
import {
  closeInheritedDescriptors,
  ensureLoopSignalsBlocked,
  isBackgroundWorker,
  readyDescriptor,
  reportExitStatus,
  runBackgroundStarter,
  spawnSandboxedWorker,
  takeStatusDescriptor,
} from "./process/process.ts";
import { claimSandbox } from "./process/sandbox.ts";
import { checkRunAs } from "./process/isolation.ts";
import { runPasst } from "./passt.ts";
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
  "runas",
  "help",
  "version",
];

/** Options of the data path, with an effect in both modes (long names). */
const DATA_PATH_SUPPORTED = [
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
  "hostname",
  "fqdn",
  "dns-host",
  "freebind",
  "chroot-fallback",
  "stats",
];

/**
 * Options that have an effect in this version, per mode (long names). Everything
 * else the parser accepts is refused with "not supported yet" until its feature
 * lands, instead of being accepted and ignored.
 */
export const SUPPORTED_OPTIONS: Readonly<Record<Mode, ReadonlySet<string>>> = {
  passt: new Set([
    ...COMMON_SUPPORTED,
    ...DATA_PATH_SUPPORTED,
    "no-dhcp-dns",
    "no-dhcp-search",
    "socket",
    "socket-path",
    "fd",
    "one-off",
    "vhost-user",
    "print-capabilities",
  ]),
  pasta: new Set([
    ...COMMON_SUPPORTED,
    ...DATA_PATH_SUPPORTED,
    "dhcp-dns",
    "dhcp-search",
    "ns-ifname",
    "userns",
    "netns",
    "netns-only",
    "no-netns-quit",
    "host-lo-to-ns-lo",
    "no-splice",
    "splice-only",
    "config-net",
    "no-copy-routes",
    "no-copy-addrs",
    "ns-mac-addr",
    "tcp-ns",
    "udp-ns",
  ]),
};

/**
 * Options of the 2026 manual that belong to live migration of a vhost-user guest,
 * which this implementation does not have: always refused, with a message saying
 * so, rather than accepted and ignored (a hypervisor would otherwise migrate a guest
 * whose connections could not follow it).
 */
export const REFUSED_OPTIONS: ReadonlySet<string> = new Set([
  "repair-path",
  "migrate-exit",
  "migrate-no-linger",
]);

/** The message for the first option of `config` without an effect, or undefined. */
function unsupportedOption(config: Config): string | undefined {
  for (const name of config.given) {
    if (REFUSED_OPTIONS.has(name)) {
      return `--${name}: not supported (no live migration in this implementation)`;
    }
    if (SUPPORTED_OPTIONS[config.mode].has(name)) continue;
    return `--${name}: not supported yet`;
  }
  return undefined;
}

const encoder = new TextEncoder();

function printTo(fd: 1 | 2, text: string): void {
  const bytes = encoder.encode(text.endsWith("\n") ? text : `${text}\n`);
  sys.write(fd, bytes, bytes.length);
}

/**
 * Run `mode` with the command line `args` (argv[0] excluded); returns the exit
 * status, which a worker also reports to the waiter that waits for it.
 */
export function main(mode: Mode, args: readonly string[]): number {
  takeStatusDescriptor();
  const status = run(mode, args);
  reportExitStatus(status);
  return status;
}

function run(mode: Mode, args: readonly string[]): number {
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
  if (config.given.has("print-capabilities")) {
    // The vhost-user back-end convention (libvirt reads it): a JSON object, then exit.
    printTo(1, '{\n  "type": "net"\n}');
    return 0;
  }

  const unsupported = unsupportedOption(config);
  if (unsupported !== undefined) {
    printTo(2, `${mode}: ${unsupported}`);
    return 1;
  }
  const badRunAs = checkRunAs(config);
  if (badRunAs !== undefined) {
    printTo(2, `${mode}: ${badRunAs}`);
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

  const keep = [
    readyDescriptor(),
    takeStatusDescriptor(),
    config.mode === "passt" ? config.fd : undefined,
  ];
  closeInheritedDescriptors(keep.filter((fd) => fd !== undefined));
  claimSandbox();
  if (config.mode === "pasta") return runPasta(config);
  if (!config.foreground && !isBackgroundWorker()) {
    return runBackgroundStarter((env) => spawnSandboxedWorker(env, { pid: true, user: true }));
  }
  ensureLoopSignalsBlocked();
  return runPasst(config);
}
