/**
 * /etc/resolv.conf: the host's DNS resolvers and search domains, which passt
 * hands to the guest unless --dns / --search say otherwise.
 *
 * Theory of operation: the file is read once at start-up and parsed as text with
 * the resolver's own rules (resolv.conf(5)), tolerating anything else:
 * - a line whose first character is '#' or ';' is a comment; so is any token
 *   starting with one of them after the keyword (a common habit, harmless here);
 * - "nameserver ADDR": ADDR is IPv4 or IPv6, an IPv6 one possibly carrying a zone
 *   ("fe80::1%eth0"); the order of lines is kept, per family and overall;
 * - "search DOMAIN…" and "domain DOMAIN" set the search list; as in the C
 *   library, whichever of them comes last replaces what came before;
 * - anything else (options, sortlist, unknown keywords, unparsable addresses,
 *   overlong or invalid domain names) is skipped and counted, never an error.
 * Nothing here caps the number of entries: the protocols that send them do.
 */

import { parseIp4, parseIp6 } from "../addr.ts";

/** One "nameserver" line. */
export interface Nameserver {
  /** 4 or 6. */
  readonly family: 4 | 6;
  /** Network order, 4 or 16 bytes. */
  readonly address: Uint8Array;
  /** IPv6 zone (interface name or index) after '%', if given. */
  readonly zone?: string;
}

/** What resolv.conf says. */
export interface ResolvConf {
  /** Every nameserver, in file order. */
  readonly nameservers: readonly Nameserver[];
  /** The IPv4 nameserver addresses, in file order (4 bytes each). */
  readonly nameservers4: readonly Uint8Array[];
  /** The IPv6 nameserver addresses, in file order (16 bytes each; zones dropped). */
  readonly nameservers6: readonly Uint8Array[];
  /** Search domains from the last "search" or "domain" line, without trailing dots. */
  readonly search: readonly string[];
  /** Lines or tokens that could not be used, for a debug message. */
  readonly skipped: number;
}

/** The usual location of the resolver configuration. */
export const RESOLV_CONF_PATH = "/etc/resolv.conf";

/** Longest domain name in text form, in characters (RFC 1035 §2.3.4, no trailing dot). */
const MAX_DOMAIN_LENGTH = 253;

/** A search domain is usable if it is a plausible DNS name: labels of 1..63 characters. */
function normalizeDomain(token: string): string | undefined {
  const name = token.endsWith(".") ? token.slice(0, -1) : token;
  if (name.length === 0 || name.length > MAX_DOMAIN_LENGTH) return undefined;
  for (const label of name.split(".")) {
    if (label.length === 0 || label.length > 63) return undefined;
    // Printable ASCII without white space; the DNS itself allows any byte, but
    // resolv.conf cannot carry those and a guest would not want them.
    if (!/^[\x21-\x7e]+$/.test(label)) return undefined;
  }
  return name;
}

function parseNameserver(token: string): Nameserver | undefined {
  const v4 = parseIp4(token);
  if (v4 !== undefined) return { family: 4, address: v4 };
  const percent = token.indexOf("%");
  const text = percent < 0 ? token : token.slice(0, percent);
  const v6 = parseIp6(text);
  if (v6 === undefined) return undefined;
  const zone = percent < 0 ? "" : token.slice(percent + 1);
  return zone.length > 0 ? { family: 6, address: v6, zone } : { family: 6, address: v6 };
}

/** Parse resolv.conf text. Never throws; unusable content is skipped. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: Nameserver[] = [];
  let search: string[] = [];
  let skipped = 0;
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith("#") || line.startsWith(";")) continue;
    const tokens: string[] = [];
    for (const token of line.split(/[ \t]+/)) {
      if (token.length === 0) continue;
      if (token.startsWith("#") || token.startsWith(";")) break;
      tokens.push(token);
    }
    const keyword = tokens[0];
    if (keyword === undefined) continue;
    switch (keyword) {
      case "nameserver": {
        const server = tokens[1] === undefined ? undefined : parseNameserver(tokens[1]);
        if (server === undefined) skipped++;
        else nameservers.push(server);
        break;
      }
      case "search":
      case "domain": {
        const domains: string[] = [];
        for (const token of tokens.slice(1)) {
          if (token === ".") continue; // "search ." means: no search list
          const domain = normalizeDomain(token);
          if (domain === undefined) skipped++;
          else if (!domains.includes(domain)) domains.push(domain);
        }
        // "domain" names one domain; later tokens are ignored by the C library too.
        search = keyword === "domain" ? domains.slice(0, 1) : domains;
        break;
      }
      case "options":
      case "sortlist":
        break;
      default:
        skipped++;
    }
  }
  return {
    nameservers,
    nameservers4: nameservers.filter((n) => n.family === 4).map((n) => n.address),
    nameservers6: nameservers.filter((n) => n.family === 6).map((n) => n.address),
    search,
    skipped,
  };
}

/**
 * Read and parse resolv.conf at `path`. A missing or unreadable file gives an
 * empty result (no resolvers, no search list), as it does for the C library.
 */
export function readResolvConf(path: string = RESOLV_CONF_PATH): ResolvConf {
  let text = "";
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    text = "";
  }
  return parseResolvConf(text);
}
