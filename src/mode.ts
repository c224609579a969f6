/**
 * Which program to be: passt or pasta, from the invocation name or, in
 * development, from the first argument.
 */
import type { Mode } from "./config/config.ts";

/** The outcome of mode selection: a mode and the remaining arguments, or an error. */
export type ModeSelection =
  | { readonly mode: Mode; readonly args: readonly string[] }
  | { readonly mode: undefined; readonly error: string };

/** The mode a program name stands for ("passt", "pasta", "passt.avx2", "/usr/bin/pasta"…). */
export function modeFromName(name: string): Mode | undefined {
  const base = name.slice(name.lastIndexOf("/") + 1);
  if (base === "passt" || base.startsWith("passt.")) return "passt";
  if (base === "pasta" || base.startsWith("pasta.")) return "pasta";
  return undefined;
}

/** argv[0] of this process, from /proc/self/cmdline. */
export function invocationName(): string {
  const raw = Deno.readFileSync("/proc/self/cmdline");
  const end = raw.indexOf(0);
  return new TextDecoder().decode(end < 0 ? raw : raw.subarray(0, end));
}

/**
 * Choose the mode: by invocation name first (a compiled binary), else by the
 * first argument (`deno run mod.ts pasta …`).
 */
export function selectMode(
  args: readonly string[],
  argv0: string = invocationName(),
): ModeSelection {
  const byName = modeFromName(argv0);
  if (byName !== undefined) return { mode: byName, args };
  const byArgument = args[0] === undefined ? undefined : modeFromName(args[0]);
  if (byArgument !== undefined) return { mode: byArgument, args: args.slice(1) };
  return {
    mode: undefined,
    error: `cannot tell which program to be from the name '${argv0}': ` +
      "invoke as 'passt' or 'pasta' (or give passt|pasta as the first argument in development)",
  };
}
