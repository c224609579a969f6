/**
 * Port forwarding specifications (-t, -u, -T, -U) and the tables they produce.
 *
 * Theory of operation: each forwarding direction of each protocol gets one
 * `PortTableBuilder`. Every occurrence of the option feeds it one specification string;
 * at the end `build()` returns an immutable `PortForwarding`: a mode plus a list of
 * rules, each a contiguous range of local ports, the first port of the range it maps to,
 * and optionally the address and interface to bind. Exclusions ("~a-b") only affect the
 * ranges of the specification they are written in, so they are applied right away by
 * cutting ranges into pieces; rules never contain an excluded port. A specification
 * made of exclusions only stands for every non-ephemeral port (1..49151) except those.
 *
 * Grammar of one specification (informal; the 2026 manual's):
 *
 *     spec   = "none" | [bind "/"] item *("," item)
 *     bind   = ADDR | ADDR "%" IFNAME | "%" IFNAME | "*" ["%" IFNAME]
 *                                                      (ADDR may be in [brackets])
 *     item   = range [":" target] | "~" range | "all" [":" TOADDR] | "auto"
 *     target = TOADDR "/" range | TOADDR | range      (TOADDR may be in [brackets])
 *     range  = PORT ["-" PORT]                         (1 <= PORT <= 65535)
 *
 * "all" (or exclusions only) stands for every non-ephemeral port, best effort; "auto"
 * (pasta's) makes the table follow the ports bound on the other side, restricted to the
 * ranges given with it, if any ("8000-8010,auto", "::1/auto"). A TOADDR sends the
 * traffic to that address instead of the guest's or namespace's own (not for -T/-U,
 * which always reach the host's loopback). A table given as "none", "auto" or "all"
 * takes no further specification. Two rules may cover the same port only if they bind
 * distinct, specific scopes and agree on the target: the runtime keeps one target per
 * port, and a wildcard listener would collide with any other on the same port.
 *
 * Lookups (`portTarget`) walk the rule list; it is short, and lookups happen when a flow
 * is created, not per packet.
 */

import {
  ConfigError,
  type ForwardMode,
  type Mode,
  type PortForwarding,
  type PortRange,
  type PortRule,
} from "./config.ts";
import { formatIp, ipEquals, isMulticast, isUnspecified, isValidIfname, parseIp } from "../addr.ts";

// The table types are part of the Config shape (config.ts); they are re-exported
// here for the users of the tables, so that config.ts needs nothing from this file.
export type { ForwardMode, PortForwarding, PortRange, PortRule } from "./config.ts";

/** Ports below this are "non-ephemeral": the range "all" and exclusion-only specs cover. */
export const PORT_EPHEMERAL_MIN = 49152;
/** Highest port number. */
export const PORT_MAX = 65535;

function freezeTable(
  mode: ForwardMode,
  rules: PortRule[],
  excluded: PortRange[],
): PortForwarding {
  for (const r of rules) Object.freeze(r);
  for (const r of excluded) Object.freeze(r);
  return Object.freeze({ mode, rules: Object.freeze(rules), excluded: Object.freeze(excluded) });
}

/** Table with no forwarding at all. */
export const FORWARD_NONE: PortForwarding = freezeTable("none", [], []);
/** Table that pasta fills at run time from the ports bound on the other side. */
export const FORWARD_AUTO: PortForwarding = freezeTable("auto", [], []);

/**
 * Target port for local `port` in `table`, or -1 if it is not statically forwarded
 * ("auto" tables answer -1: their ports are only known at run time).
 */
export function portTarget(table: PortForwarding, port: number): number {
  for (const rule of table.rules) {
    if (port >= rule.first && port <= rule.last) return rule.targetFirst + (port - rule.first);
  }
  return -1;
}

/** Every rule covering local `port`, one per listener to open (distinct bind scopes). */
export function portRules(table: PortForwarding, port: number): PortRule[] {
  return table.rules.filter((rule) => port >= rule.first && port <= rule.last);
}

/**
 * The UDP table implied by a TCP one when no UDP option is given: the same local ports
 * and bindings, without port translation.
 */
export function udpFromTcp(tcp: PortForwarding): PortForwarding {
  if (tcp.mode === "none") return tcp;
  const rules = tcp.rules.map((r) => ({ ...r, targetFirst: r.first }));
  if (tcp.mode === "auto" && rules.length === 0) return tcp;
  return freezeTable(tcp.mode, rules, [...tcp.excluded]);
}

function sameScope(a: PortRule, b: PortRule): boolean {
  const addrSame = a.bindAddr === undefined
    ? b.bindAddr === undefined
    : b.bindAddr !== undefined && ipEquals(a.bindAddr, b.bindAddr);
  return addrSame && a.bindIfname === b.bindIfname;
}

function sameTarget(a: PortRule, b: PortRule): boolean {
  const addrSame = a.targetAddr === undefined
    ? b.targetAddr === undefined
    : b.targetAddr !== undefined && ipEquals(a.targetAddr, b.targetAddr);
  return addrSame && a.targetFirst - a.first === b.targetFirst - b.first;
}

function isWildcard(rule: PortRule): boolean {
  return rule.bindAddr === undefined && rule.bindIfname === undefined;
}

const RANGE_RE = /^([0-9]+)(?:-([0-9]+))?$/;

/** Accumulates the specifications given to one option (e.g. every -t) into a table. */
export class PortTableBuilder {
  /** Long option name with dashes, e.g. "--tcp-ports", used in error messages. */
  readonly option: string;
  readonly #mode: Mode;
  readonly #allowBind: boolean;
  #kind: ForwardMode | undefined;
  readonly #rules: PortRule[] = [];
  readonly #excluded: PortRange[] = [];

  /**
   * `option` names the option in messages; `mode` decides whether "auto" or "all" is
   * allowed; `allowBind` whether "ADDR/" and "%IF/" prefixes are (not for -T/-U, whose
   * listeners live in the namespace).
   */
  constructor(option: string, mode: Mode, allowBind: boolean) {
    this.option = option;
    this.#mode = mode;
    this.#allowBind = allowBind;
  }

  /** True once any specification was added. */
  get given(): boolean {
    return this.#kind !== undefined;
  }

  /** Adds one specification string; throws ConfigError naming the option if invalid. */
  add(spec: string): void {
    if (spec === "none" || spec === "auto" || spec === "all") {
      if (this.#kind !== undefined) {
        throw new ConfigError(
          `Port forwarding mode '${spec}' conflicts with previous ${this.option}: ${spec}`,
        );
      }
      if (spec === "auto" && this.#mode !== "pasta") {
        throw new ConfigError(
          `'auto' port forwarding is only allowed for pasta: ${this.option} auto`,
        );
      }
      this.#kind = spec;
      if (spec === "all") {
        this.#rules.push({
          first: 1,
          last: PORT_EPHEMERAL_MIN - 1,
          targetFirst: 1,
          bindAddr: undefined,
          bindIfname: undefined,
          targetAddr: undefined,
          bestEffort: true,
        });
      }
      return;
    }
    if (this.#kind !== undefined && this.#kind !== "spec") {
      throw new ConfigError(
        `Specific ports cannot be combined with all, none or auto: ${this.option} ${spec}`,
      );
    }
    this.#kind = this.#addList(spec);
  }

  #invalid(spec: string, reason: string): ConfigError {
    return new ConfigError(`Invalid port specifier for ${this.option}: ${spec} (${reason})`);
  }

  #parseRange(spec: string, text: string): PortRange {
    const m = RANGE_RE.exec(text);
    if (!m) throw this.#invalid(spec, `bad range '${text}'`);
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    for (const port of [first, last]) {
      if (port < 1 || port > PORT_MAX) {
        throw this.#invalid(spec, `port ${port} out of range 1-${PORT_MAX}`);
      }
    }
    if (last < first) throw this.#invalid(spec, `range '${text}' is reversed`);
    return { first, last };
  }

  /** A target address (":TOADDR"), checked against the listening address. */
  #parseTargetAddr(spec: string, text: string, bindAddr: Uint8Array | undefined): Uint8Array {
    if (!this.#allowBind) {
      throw this.#invalid(spec, `no target address allowed for ${this.option}`);
    }
    const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
    const addr = parseIp(bare);
    if (addr === undefined) throw this.#invalid(spec, `bad target address '${text}'`);
    if (isUnspecified(addr) || isMulticast(addr)) {
      throw this.#invalid(spec, `target address '${text}' is not a unicast address`);
    }
    if (bindAddr !== undefined && bindAddr.length !== addr.length) {
      throw this.#invalid(spec, `target '${text}' is not of the listening address's family`);
    }
    return addr;
  }

  /** Adds one list of items; returns the table's kind it implies. */
  #addList(spec: string): ForwardMode {
    let bindAddr: Uint8Array | undefined;
    let bindIfname: string | undefined;
    let list = spec;
    // "ADDR[%IF]/", "%IF/" or "*[%IF]/" in front; in "5000:192.0.2.5/6000" the first
    // '/' is the target's: what precedes it has a ':' and is no address.
    let slash = spec.indexOf("/");
    if (slash >= 0) {
      const head = spec.slice(0, slash);
      const addr = head.split("%")[0]!;
      const bare = addr.startsWith("[") && addr.endsWith("]") ? addr.slice(1, -1) : addr;
      const target = head.includes(":") && !head.startsWith("[") && addr !== "*";
      if (target && parseIp(bare) === undefined) slash = -1;
    }
    if (slash >= 0) {
      if (!this.#allowBind) {
        throw this.#invalid(spec, `no bind address or interface allowed for ${this.option}`);
      }
      let bind = spec.slice(0, slash);
      list = spec.slice(slash + 1);
      const percent = bind.indexOf("%");
      if (percent >= 0) {
        bindIfname = bind.slice(percent + 1);
        bind = bind.slice(0, percent);
        if (!isValidIfname(bindIfname)) {
          throw this.#invalid(spec, `bad interface name '${bindIfname}'`);
        }
      }
      if (bind === "*") {
        // any address, as an empty one
      } else if (bind.length > 0 || bindIfname === undefined) {
        const bare = bind.startsWith("[") && bind.endsWith("]") ? bind.slice(1, -1) : bind;
        bindAddr = parseIp(bare);
        if (bindAddr === undefined) throw this.#invalid(spec, `bad address '${bind}'`);
      }
    }

    const includes: { from: PortRange; to: PortRange; addr: Uint8Array | undefined }[] = [];
    const excludes: PortRange[] = [];
    let auto = false;
    let all = false;
    let allAddr: Uint8Array | undefined;
    for (const item of list.split(",")) {
      if (item.length === 0) throw this.#invalid(spec, "empty item");
      if (item === "auto") {
        if (this.#mode !== "pasta") {
          throw new ConfigError(
            `'auto' port forwarding is only allowed for pasta: ${this.option} ${spec}`,
          );
        }
        auto = true;
        continue;
      }
      if (item === "all" || item.startsWith("all:")) {
        all = true;
        if (item !== "all") allAddr = this.#parseTargetAddr(spec, item.slice(4), bindAddr);
        continue;
      }
      if (item.startsWith("~")) {
        const ex = this.#parseRange(spec, item.slice(1));
        for (const other of excludes) {
          if (ex.first <= other.last && other.first <= ex.last) {
            throw new ConfigError(`Overlapping excluded ranges for ${this.option}: ${spec}`);
          }
        }
        excludes.push(ex);
        continue;
      }
      const colon = item.indexOf(":");
      const from = this.#parseRange(spec, colon < 0 ? item : item.slice(0, colon));
      let to = from;
      let addr: Uint8Array | undefined;
      if (colon >= 0) {
        const target = item.slice(colon + 1);
        const slashAt = target.lastIndexOf("/");
        if (slashAt >= 0) {
          addr = this.#parseTargetAddr(spec, target.slice(0, slashAt), bindAddr);
          to = this.#parseRange(spec, target.slice(slashAt + 1));
        } else if (parseIp(target.replace(/^\[(.*)\]$/, "$1")) !== undefined) {
          addr = this.#parseTargetAddr(spec, target, bindAddr);
        } else {
          to = this.#parseRange(spec, target);
        }
      }
      if (to.last - to.first !== from.last - from.first) {
        throw this.#invalid(spec, `'${item}' maps ranges of different sizes`);
      }
      includes.push({ from, to, addr });
    }
    const bestEffort = includes.length === 0;
    if (bestEffort) {
      // "auto" alone follows every port (up to 65535, as the scan reports them).
      const range = { first: 1, last: auto ? PORT_MAX : PORT_EPHEMERAL_MIN - 1 };
      includes.push({ from: range, to: range, addr: allAddr });
    }
    const kind: ForwardMode = auto ? "auto" : all ? "all" : "spec";
    if (auto && bestEffort && bindAddr === undefined && bindIfname === undefined) {
      // Plain "auto" (maybe with exclusions): any port, any address.
      if (excludes.length === 0) return kind;
    }

    excludes.sort((a, b) => a.first - b.first);
    const added: PortRule[] = [];
    for (const { from, to, addr } of includes) {
      const delta = to.first - from.first;
      let next = from.first;
      for (const ex of excludes) {
        if (ex.last < next || ex.first > from.last) continue;
        if (ex.first > next) {
          added.push(this.#rule(next, ex.first - 1, delta, bindAddr, bindIfname, addr, bestEffort));
        }
        next = ex.last + 1;
      }
      if (next <= from.last) {
        added.push(this.#rule(next, from.last, delta, bindAddr, bindIfname, addr, bestEffort));
      }
    }
    for (const rule of added) {
      for (const other of this.#rules) {
        if (rule.first > other.last || other.first > rule.last) continue;
        const clash = sameScope(rule, other) || isWildcard(rule) || isWildcard(other) ||
          !sameTarget(rule, other);
        if (clash) {
          const port = Math.max(rule.first, other.first);
          throw new ConfigError(
            `Overlapping port specifier for ${this.option}: ${spec} (port ${port} given twice)`,
          );
        }
      }
      this.#rules.push(rule);
    }
    this.#excluded.push(...excludes);
    return kind;
  }

  #rule(
    first: number,
    last: number,
    delta: number,
    bindAddr: Uint8Array | undefined,
    bindIfname: string | undefined,
    targetAddr: Uint8Array | undefined,
    bestEffort: boolean,
  ): PortRule {
    return {
      first,
      last,
      targetFirst: first + delta,
      bindAddr,
      bindIfname,
      targetAddr,
      bestEffort,
    };
  }

  /** The finished table; `fallback` is used if the option never appeared. */
  build(fallback: PortForwarding): PortForwarding {
    switch (this.#kind) {
      case undefined:
        return fallback;
      case "none":
        return FORWARD_NONE;
      case "auto":
      default:
        // "auto" restricted to the rules given with it, or plain
        if (this.#kind === "auto" && this.#rules.length === 0) return FORWARD_AUTO;
        return freezeTable(
          this.#kind,
          this.#rules.map((r) => ({
            ...r,
            bindAddr: r.bindAddr?.slice(),
            targetAddr: r.targetAddr?.slice(),
          })),
          [...this.#excluded],
        );
    }
  }
}

/** Human-readable form of a table, for start-up messages and test failures. */
export function describePortForwarding(table: PortForwarding): string {
  if (table.mode !== "spec" && table.mode !== "all" && table.rules.length === 0) return table.mode;
  const rules = table.rules.map((r) => {
    let s = "";
    if (r.bindAddr !== undefined) s += formatIp(r.bindAddr);
    if (r.bindIfname !== undefined) s += `%${r.bindIfname}`;
    if (s.length > 0) s += "/";
    s += r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`;
    if (r.targetAddr !== undefined) {
      const a = formatIp(r.targetAddr);
      s += `:${r.targetAddr.length === 16 ? `[${a}]` : a}/`;
    } else if (r.targetFirst !== r.first) s += ":";
    if (r.targetAddr !== undefined || r.targetFirst !== r.first) {
      const targetLast = r.targetFirst + r.last - r.first;
      s += r.first === r.last ? `${r.targetFirst}` : `${r.targetFirst}-${targetLast}`;
    }
    return s;
  }).join(",");
  return table.mode === "auto" ? `${rules},auto` : rules;
}
