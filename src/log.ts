/**
 * Logging: stderr in the foreground, the system logger in the background, or a
 * size-capped log file.
 *
 * Theory of operation: one process-wide logger with four levels (error, warning,
 * info, debug) plus trace, which is debug for single packets. Where a line goes:
 * - `-l FILE`: appended to FILE, which never grows past `--log-size` bytes: when
 *   the next line would not fit, the oldest lines are dropped from the beginning
 *   (a quarter of the cap at a time, cut at a line boundary, so compaction is rare).
 * - otherwise stderr while it is attached (foreground, before going to background,
 *   and always with `--debug`), and the system logger (`/dev/log`, RFC 3164,
 *   facility daemon) once the process runs in the background.
 * Every line carries the program name (`passt:` / `pasta:`); with `--debug`,
 * stderr and file lines also carry the seconds elapsed since start.
 * Debug and trace strings must not be built when those levels are off: call
 * sites test `log.debugging` / `log.tracing` first.
 * Writes never throw: a logger that fails must not take the loop down.
 */
import { AF, O, SOCK } from "./ffi/layout.ts";
import * as sys from "./ffi/sys.ts";

/** Severities, numbered as syslog numbers them. */
export const Level = { ERROR: 3, WARNING: 4, INFO: 6, DEBUG: 7 } as const;
/** A severity. */
export type Level = typeof Level[keyof typeof Level];

/** What the logger needs to know from the configuration. */
export interface LogSettings {
  /** Program name put on every line ("passt" or "pasta"). */
  readonly program: string;
  /** Debug messages on (also implied by trace). */
  readonly debug: boolean;
  /** Per-packet trace messages on. */
  readonly trace: boolean;
  /** Informational messages off. */
  readonly quiet: boolean;
  /** Log file path, if any. */
  readonly logFile?: string | undefined;
  /** Log file size cap in bytes. */
  readonly logSize: number;
}

const encoder = new TextEncoder();
const SYSLOG_FACILITY_DAEMON = 3;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** The process-wide logger. */
export class Logger {
  #program = "passt";
  #debug = false;
  #trace = false;
  #quiet = false;
  #useStderr = true;
  #syslogFd = -1;
  #fileFd = -1;
  #fileSize = 0;
  #fileCap = 1 << 20;
  readonly #start = performance.now();
  /** Lines that could not be written anywhere. */
  lost = 0;

  /** Whether debug messages are on: test it before building a debug string. */
  get debugging(): boolean {
    return this.#debug;
  }

  /** Whether per-packet trace messages are on. */
  get tracing(): boolean {
    return this.#trace;
  }

  /** Apply the configuration; opens the log file if one is given. Throws if it can't. */
  configure(settings: LogSettings): void {
    this.#program = settings.program;
    this.#trace = settings.trace;
    this.#debug = settings.debug || settings.trace;
    this.#quiet = settings.quiet;
    this.#fileCap = settings.logSize;
    if (settings.logFile !== undefined) {
      this.#closeFile();
      const fd = sys.open(settings.logFile, O.WRONLY | O.CREAT | O.CLOEXEC, 0o600);
      sys.ftruncate(fd, 0);
      this.#fileFd = fd;
      this.#fileSize = 0;
    }
  }

  /** The program name used on every line. */
  set program(name: string) {
    this.#program = name;
  }

  /**
   * Stop writing to stderr (it is about to point at /dev/null): from now on lines
   * go to the log file if there is one, else to the system logger. With debug on,
   * stderr stays, as `--debug` asks.
   */
  /**
   * Connect to the system logger now if lines will go there once we are in the
   * background (no log file, no --debug): for a process about to lose the
   * filesystem. `pid` is the PID to tag lines with (the one the system knows,
   * in case ours is 1 in a PID namespace of our own). Also settles the local time
   * zone, read from /etc/localtime on first use.
   */
  prepareSyslog(pid: number): void {
    this.#syslogPid = pid;
    new Date().getHours();
    if (!this.#debug && this.#fileFd < 0) this.#openSyslog();
  }

  detachFromStderr(): void {
    if (this.#debug) return;
    this.#useStderr = false;
    if (this.#fileFd < 0) this.#openSyslog();
  }

  /** Log an error. */
  err(message: string): void {
    this.#emit(Level.ERROR, message);
  }

  /** Log a warning. */
  warn(message: string): void {
    this.#emit(Level.WARNING, message);
  }

  /** Log an informational message (suppressed by --quiet). */
  info(message: string): void {
    if (!this.#quiet) this.#emit(Level.INFO, message);
  }

  /** Log a debug message. Build the string only when `debugging` is true. */
  debug(message: string): void {
    if (this.#debug) this.#emit(Level.DEBUG, message);
  }

  /** Log a per-packet trace message. Build the string only when `tracing` is true. */
  trace(message: string): void {
    if (this.#trace) this.#emit(Level.DEBUG, message);
  }

  /** Close the log file and the syslog socket. */
  close(): void {
    this.#closeFile();
    if (this.#syslogFd >= 0) sys.close(this.#syslogFd);
    this.#syslogFd = -1;
  }

  #emit(level: Level, message: string): void {
    const elapsed = this.#debug ? `${((performance.now() - this.#start) / 1000).toFixed(4)}: ` : "";
    const line = `${this.#program}: ${elapsed}${message}\n`;
    let written = false;
    if (this.#fileFd >= 0) written = this.#writeFile(encoder.encode(line));
    else if (this.#useStderr) written = writeAll(2, encoder.encode(line));
    else written = this.#writeSyslog(level, message);
    if (!written) this.lost++;
  }

  #syslogPid: number | undefined;

  #openSyslog(): void {
    if (this.#syslogFd >= 0) return;
    try {
      const fd = sys.socket(AF.UNIX, SOCK.DGRAM | SOCK.CLOEXEC, 0);
      const addr = sys.sockaddrUn("/dev/log");
      if (sys.connect(fd, addr, addr.length) < 0) {
        sys.close(fd);
        return;
      }
      this.#syslogFd = fd;
    } catch {
      // No system logger: lines are counted as lost.
    }
  }

  #writeSyslog(level: Level, message: string): boolean {
    if (this.#syslogFd < 0) return false;
    const now = new Date();
    const stamp = `${MONTHS[now.getMonth()]} ${String(now.getDate()).padStart(2, " ")} ` +
      `${String(now.getHours()).padStart(2, "0")}:${String(now.getMinutes()).padStart(2, "0")}:` +
      `${String(now.getSeconds()).padStart(2, "0")}`;
    const pri = SYSLOG_FACILITY_DAEMON * 8 + level;
    const pid = this.#syslogPid ?? sys.getpid();
    const bytes = encoder.encode(`<${pri}>${stamp} ${this.#program}[${pid}]: ${message}`);
    return sys.send(this.#syslogFd, bytes, bytes.length, 0) === bytes.length;
  }

  #writeFile(bytes: Uint8Array<ArrayBuffer>): boolean {
    const cap = this.#fileCap;
    if (bytes.length > cap) return false;
    if (this.#fileSize + bytes.length > cap) this.#compactFile(bytes.length);
    if (!writeAll(this.#fileFd, bytes)) return false;
    this.#fileSize += bytes.length;
    return true;
  }

  /** Drop the oldest lines so that `incoming` more bytes fit with room to spare. */
  #compactFile(incoming: number): void {
    const fd = this.#fileFd;
    const keepAtMost = Math.max(0, this.#fileCap - incoming - Math.floor(this.#fileCap / 4));
    const kept = new Uint8Array(Math.min(keepAtMost, this.#fileSize));
    const from = this.#fileSize - kept.length;
    const got = sys.pread(fd, kept, kept.length, from);
    let tail = got > 0 ? kept.subarray(0, got) : kept.subarray(0, 0);
    if (from > 0) {
      // Start at a line boundary so that no line is cut in half.
      const newline = tail.indexOf(0x0a);
      tail = newline < 0 ? tail.subarray(tail.length) : tail.subarray(newline + 1);
    }
    sys.ftruncate(fd, 0);
    sys.lseek(fd, 0, 0);
    this.#fileSize = 0;
    if (tail.length > 0 && writeAll(fd, tail)) this.#fileSize = tail.length;
  }

  #closeFile(): void {
    if (this.#fileFd >= 0) sys.close(this.#fileFd);
    this.#fileFd = -1;
  }
}

function writeAll(fd: number, bytes: Uint8Array<ArrayBuffer>): boolean {
  let off = 0;
  for (let tries = 0; off < bytes.length && tries < 16; tries++) {
    const n = sys.write(fd, off === 0 ? bytes : bytes.subarray(off), bytes.length - off);
    if (n < 0) {
      if (n === -sys.Errno.EINTR || n === -sys.Errno.EAGAIN) continue;
      return false;
    }
    off += n;
  }
  return off === bytes.length;
}

/** The process-wide logger. */
export const log = new Logger();
