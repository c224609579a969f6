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
 * Grammar of one specification (informal):
 *
 *     spec   = "none" | "auto" | "all" | [bind "/"] item *("," item)
 *     bind   = ADDR | ADDR "%" IFNAME | "%" IFNAME      (ADDR may be in [brackets])
 *     item   = range [":" range] | "~" range
 *     range  = PORT ["-" PORT]                         (1 <= PORT <= 65535)
 *
 * "none", "auto" and "all" exclude anything else for the same table; "auto" is pasta's,
 * "all" passt's. Two rules may cover the same port only if they bind distinct, specific
 * scopes and agree on the target: the runtime keeps one target per port, and a wildcard
 * listener would collide with any other on the same port.
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
import { formatIp, ipEquals, isValidIfname, parseIp } from "../addr.ts";

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
  if (tcp.mode === "none" || tcp.mode === "auto") return tcp;
  const rules = tcp.rules.map((r) => ({ ...r, targetFirst: r.first }));
  return freezeTable(tcp.mode, rules, [...tcp.excluded]);
}

function sameScope(a: PortRule, b: PortRule): boolean {
  const addrSame = a.bindAddr === undefined
    ? b.bindAddr === undefined
    : b.bindAddr !== undefined && ipEquals(a.bindAddr, b.bindAddr);
  return addrSame && a.bindIfname === b.bindIfname;
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
      if (spec === "all" && this.#mode !== "passt") {
        throw new ConfigError(
          `'all' port forwarding is only allowed for passt: ${this.option} all`,
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
    this.#kind = "spec";
    this.#addList(spec);
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

  #addList(spec: string): void {
    let bindAddr: Uint8Array | undefined;
    let bindIfname: string | undefined;
    let list = spec;
    const slash = spec.indexOf("/");
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
      if (bind.length > 0 || bindIfname === undefined) {
        const bare = bind.startsWith("[") && bind.endsWith("]") ? bind.slice(1, -1) : bind;
        bindAddr = parseIp(bare);
        if (bindAddr === undefined) throw this.#invalid(spec, `bad address '${bind}'`);
      }
    }

    const includes: { from: PortRange; to: PortRange }[] = [];
    const excludes: PortRange[] = [];
    for (const item of list.split(",")) {
      if (item.length === 0) throw this.#invalid(spec, "empty item");
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
      const to = colon < 0 ? from : this.#parseRange(spec, item.slice(colon + 1));
      if (to.last - to.first !== from.last - from.first) {
        throw this.#invalid(spec, `'${item}' maps ranges of different sizes`);
      }
      includes.push({ from, to });
    }
    const bestEffort = includes.length === 0;
    if (bestEffort) {
      const all = { first: 1, last: PORT_EPHEMERAL_MIN - 1 };
      includes.push({ from: all, to: all });
    }

    excludes.sort((a, b) => a.first - b.first);
    const added: PortRule[] = [];
    for (const { from, to } of includes) {
      const delta = to.first - from.first;
      let next = from.first;
      for (const ex of excludes) {
        if (ex.last < next || ex.first > from.last) continue;
        if (ex.first > next) {
          added.push(this.#rule(next, ex.first - 1, delta, bindAddr, bindIfname, bestEffort));
        }
        next = ex.last + 1;
      }
      if (next <= from.last) {
        added.push(this.#rule(next, from.last, delta, bindAddr, bindIfname, bestEffort));
      }
    }
    for (const rule of added) {
      for (const other of this.#rules) {
        if (rule.first > other.last || other.first > rule.last) continue;
        const clash = sameScope(rule, other) || isWildcard(rule) || isWildcard(other) ||
          rule.targetFirst - rule.first !== other.targetFirst - other.first;
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
  }

  #rule(
    first: number,
    last: number,
    delta: number,
    bindAddr: Uint8Array | undefined,
    bindIfname: string | undefined,
    bestEffort: boolean,
  ): PortRule {
    return { first, last, targetFirst: first + delta, bindAddr, bindIfname, bestEffort };
  }

  /** The finished table; `fallback` is used if the option never appeared. */
  build(fallback: PortForwarding): PortForwarding {
    switch (this.#kind) {
      case undefined:
        return fallback;
      case "none":
        return FORWARD_NONE;
      case "auto":
        return FORWARD_AUTO;
      default:
        return freezeTable(
          this.#kind,
          this.#rules.map((r) => ({ ...r, bindAddr: r.bindAddr?.slice() })),
          [...this.#excluded],
        );
    }
  }
}

/** Human-readable form of a table, for start-up messages and test failures. */
export function describePortForwarding(table: PortForwarding): string {
  if (table.mode !== "spec" && table.mode !== "all") return table.mode;
  return table.rules.map((r) => {
    let s = "";
    if (r.bindAddr !== undefined) s += formatIp(r.bindAddr);
    if (r.bindIfname !== undefined) s += `%${r.bindIfname}`;
    if (s.length > 0) s += "/";
    s += r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`;
    if (r.targetFirst !== r.first) {
      const targetLast = r.targetFirst + r.last - r.first;
      s += r.first === r.last ? `:${r.targetFirst}` : `:${r.targetFirst}-${targetLast}`;
    }
    return s;
  }).join(",");
}
