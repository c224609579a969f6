/**
 * A getopt_long(3) work-alike, as glibc behaves with an option string starting with "+".
 *
 * Theory of operation: a `Getopt` walks the arguments left to right and hands out one
 * recognised option per `next()` call, then the operands. Behaviour follows glibc's
 * because scripts and other programs rely on it:
 *
 * - short options cluster ("-fd"); one taking an argument takes the rest of the word
 *   ("-t22") or else the next word ("-t 22"), even if that word starts with '-';
 * - long options take "--opt=val" or "--opt val"; "--flag=val" on a flag is an error;
 * - a long option may be abbreviated to any unambiguous prefix; an exact name always
 *   wins over longer names it is a prefix of ("--netns" vs "--netns-only");
 * - "--" ends the options and is dropped; a lone "-" is an operand;
 * - parsing stops at the first operand (POSIXLY_CORRECT / "+"), so pasta keeps the
 *   options of the command it runs: in "pasta cmd -x" the "-x" belongs to cmd.
 *
 * Errors carry glibc's exact wording (without the "prog: " prefix, which the caller adds
 * as glibc does with argv[0]); tools such as Podman match on it.
 */

import { ConfigError } from "./config.ts";

/** One long option: name without dashes, whether it takes an argument, and its key. */
export interface LongOption {
  /** Name without the leading "--". */
  readonly name: string;
  /** True if it requires an argument (getopt's required_argument). */
  readonly hasArg: boolean;
  /** What the caller gets back in `ParsedOption.key` when this option matches. */
  readonly key: string;
}

/** One short option letter and what it maps to. */
export interface ShortOption {
  /** True if it requires an argument. */
  readonly hasArg: boolean;
  /** What the caller gets back in `ParsedOption.key`. */
  readonly key: string;
}

/** What getoptLong() recognised. */
export interface ParsedOption {
  /** Key of the matching option (same for its short and long spelling). */
  readonly key: string;
  /** Argument, for options that take one. */
  readonly value: string | undefined;
}

/**
 * Iterates over the options of `args` (without argv[0]) one at a time, so that the
 * caller acts on each before the next is even looked at, as a getopt_long() loop does:
 * "--help --bogus" shows the help, "--bogus --help" fails. `shortOptions` maps single
 * characters; the order of `longOptions` matters only for the list printed for an
 * ambiguous abbreviation. After `next()` returns undefined, `operands` holds every word
 * from the first non-option (or after "--") on.
 */
export class Getopt {
  readonly #args: readonly string[];
  readonly #shortOptions: ReadonlyMap<string, ShortOption>;
  readonly #longOptions: readonly LongOption[];
  #index = 0; // next word to look at
  #cluster = 0; // position inside a word of short options, 0 if none pending
  #done = false;

  /** Prepares to parse `args`; nothing is examined until `next()`. */
  constructor(
    args: readonly string[],
    shortOptions: ReadonlyMap<string, ShortOption>,
    longOptions: readonly LongOption[],
  ) {
    this.#args = args;
    this.#shortOptions = shortOptions;
    this.#longOptions = longOptions;
  }

  /** Words left after the options; meaningful once `next()` has returned undefined. */
  get operands(): readonly string[] {
    return this.#args.slice(this.#index);
  }

  /**
   * The next option, or undefined at the end of the options. Throws a ConfigError with
   * `showUsage` set and glibc's message for an unknown, ambiguous or incomplete option.
   */
  next(): ParsedOption | undefined {
    const args = this.#args;
    if (this.#cluster > 0) return this.#nextShort();
    if (this.#done || this.#index >= args.length) return undefined;
    const word = args[this.#index]!;
    if (word === "--") {
      this.#index++;
      this.#done = true;
      return undefined;
    }
    if (word.length < 2 || word[0] !== "-") {
      this.#done = true; // first operand: stop, as with "+" in the option string
      return undefined;
    }
    if (word[1] !== "-") {
      this.#cluster = 1;
      return this.#nextShort();
    }
    this.#index++;
    const body = word.slice(2);
    const eq = body.indexOf("=");
    const opt = matchLong(body, eq < 0 ? body : body.slice(0, eq), this.#longOptions);
    if (eq >= 0) {
      if (!opt.hasArg) {
        throw new ConfigError(`option '--${opt.name}' doesn't allow an argument`, true);
      }
      return { key: opt.key, value: body.slice(eq + 1) };
    }
    if (!opt.hasArg) return { key: opt.key, value: undefined };
    if (this.#index >= args.length) {
      throw new ConfigError(`option '--${opt.name}' requires an argument`, true);
    }
    return { key: opt.key, value: args[this.#index++]! };
  }

  /** The next letter of the short option cluster at #index, position #cluster. */
  #nextShort(): ParsedOption {
    const word = this.#args[this.#index]!;
    const ch = word[this.#cluster]!;
    this.#cluster++;
    const atEnd = this.#cluster >= word.length;
    const opt = this.#shortOptions.get(ch);
    if (opt === undefined || !opt.hasArg) {
      if (atEnd) {
        this.#cluster = 0;
        this.#index++;
      }
      if (opt === undefined) throw new ConfigError(`invalid option -- '${ch}'`, true);
      return { key: opt.key, value: undefined };
    }
    // The argument is the rest of this word ("-t22"), or else the next word ("-t 22").
    const rest = word.slice(this.#cluster);
    this.#cluster = 0;
    this.#index++;
    if (!atEnd) return { key: opt.key, value: rest };
    if (this.#index >= this.#args.length) {
      throw new ConfigError(`option requires an argument -- '${ch}'`, true);
    }
    return { key: opt.key, value: this.#args[this.#index++]! };
  }
}

/** Runs a Getopt to the end: every option in order, then the operands. */
export function getoptLong(
  args: readonly string[],
  shortOptions: ReadonlyMap<string, ShortOption>,
  longOptions: readonly LongOption[],
): { options: ParsedOption[]; operands: readonly string[] } {
  const getopt = new Getopt(args, shortOptions, longOptions);
  const options: ParsedOption[] = [];
  for (let opt = getopt.next(); opt !== undefined; opt = getopt.next()) options.push(opt);
  return { options, operands: getopt.operands };
}

/** Finds the long option `name` stands for: exact match, else the unique prefix match. */
function matchLong(body: string, name: string, longOptions: readonly LongOption[]): LongOption {
  const exact = longOptions.find((o) => o.name === name);
  if (exact) return exact;
  // As in glibc, an empty name ("--=x") is a prefix of every option.
  const candidates = longOptions.filter((o) => o.name.startsWith(name));
  const first = candidates[0];
  if (first === undefined) throw new ConfigError(`unrecognized option '--${body}'`, true);
  // glibc treats matches with identical properties as the same option.
  const distinct = candidates.filter((o) => o.key !== first.key || o.hasArg !== first.hasArg);
  if (distinct.length > 0) {
    const list = candidates.map((o) => ` '--${o.name}'`).join("");
    throw new ConfigError(`option '--${body}' is ambiguous; possibilities:${list}`, true);
  }
  return first;
}
