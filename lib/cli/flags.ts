/**
 * Strict command-line parsing shared by every tool: flags are declared once (type, default,
 * bounds, help text), unknown flags and bad values are usage errors, and the same declaration
 * renders `--help`. Built on `@std/cli/parse-args`.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { fromFileUrl, isAbsolute, resolve } from "@std/path";
import { UsageError } from "./errors.ts";
import { didYouMean } from "./suggest.ts";

/** One flag's declaration. */
export interface FlagSpec {
  /** Value type. `string` flags may also be validated with `choices` or `parse`. */
  type: "string" | "number" | "boolean";
  /** One line of help text. */
  description: string;
  /** Value when the flag is absent; without one the value is `undefined`. */
  default?: string | number | boolean;
  /** Single-letter alias, e.g. `"p"` for `-p`. */
  short?: string;
  /** Placeholder shown in help, e.g. `MS`. */
  valueName?: string;
  /** For numbers: smallest allowed value. */
  min?: number;
  /** For numbers: largest allowed value. */
  max?: number;
  /** For numbers: reject fractions. @default {true} */
  integer?: boolean;
  /** For strings: the allowed values. */
  choices?: readonly string[];
  /**
   * For strings: the value names a file or folder. A relative value the user gives resolves
   * against the folder the command was started in ({@linkcode userCwd}), which under
   * `deno task` is not the process's cwd; `-` (stdin/stdout) stays. Defaults are left as
   * declared (they name places in the project, e.g. `certs/ca.crt`). @default {false}
   */
  path?: boolean;
  /**
   * Other long names that mean this flag (an old spelling kept working, e.g. `max-seconds`
   * for `seconds`); help shows them after the description.
   */
  aliases?: readonly string[];
}

/** A command's declaration: enough to parse it and to print its help. */
export interface CommandSpec {
  /** Command name as typed, e.g. `udp-server`. */
  name: string;
  /** One sentence saying what it does. */
  summary: string;
  /** Usage lines without the name, e.g. `["HOST:PORT --song NAME [options]"]`. */
  usage: string[];
  /** Flags by long name (kebab-case). Common flags are added by {@linkcode parseCommandLine}. */
  flags: Record<string, FlagSpec>;
  /** Positional arguments allowed. @default {{ min: 0, max: 0 }} */
  positionals?: { min: number; max: number };
  /** Example invocations with a comment each. */
  examples: [command: string, comment: string][];
  /** Extra paragraphs printed after the flags. */
  notes?: string[];
}

/** Flags every tool has. */
export const COMMON_FLAGS = {
  help: { type: "boolean", short: "h", description: "Show this help and exit." },
  log: {
    type: "string",
    valueName: "FILE",
    description: "Append every event to FILE as JSON lines.",
    path: true,
  },
  quiet: { type: "boolean", short: "q", description: "Print only errors." },
  verbose: { type: "boolean", short: "v", description: "Print more detail (and stack traces)." },
} as const satisfies Record<string, FlagSpec>;

type ValueOf<S extends FlagSpec> = S["type"] extends "number" ? number
  : S["type"] extends "boolean" ? boolean
  : string;

/** Parsed flag values, typed from the declaration: flags without a default may be undefined. */
export type FlagValues<F extends Record<string, FlagSpec>> = {
  [K in keyof F]: F[K] extends { type: "boolean" } ? boolean
    : F[K] extends { default: string | number } ? ValueOf<F[K]>
    : ValueOf<F[K]> | undefined;
};

/** Result of {@linkcode parseCommandLine}. */
export interface ParsedCommandLine<F extends Record<string, FlagSpec>> {
  /** Flag values by long name. */
  flags: FlagValues<F & typeof COMMON_FLAGS>;
  /** Positional arguments in order. */
  positionals: string[];
}

/** Options for {@linkcode parseCommandLine}. */
export interface ParseOptions {
  /** Folder that relative `path` flag values resolve against. @default {userCwd()} */
  cwd?: string;
}

/**
 * Parses `args` against `spec` plus {@linkcode COMMON_FLAGS}.
 *
 * @throws {UsageError} for an unknown flag, a missing or malformed value, a value out of
 * range, or the wrong number of positional arguments. `--help` is not an error: check
 * `flags.help`.
 */
export function parseCommandLine<F extends Record<string, FlagSpec>>(
  spec: CommandSpec & { flags: F },
  args: string[],
  options: ParseOptions = {},
): ParsedCommandLine<F> {
  const cwd = options.cwd ?? userCwd();
  const all: Record<string, FlagSpec> = { ...COMMON_FLAGS, ...spec.flags };
  const strings = Object.keys(all).filter((k) => all[k]!.type !== "boolean");
  const booleans = Object.keys(all).filter((k) => all[k]!.type === "boolean");
  const alias: Record<string, string[]> = {};
  for (const [name, flag] of Object.entries(all)) {
    const others = [...(flag.short ? [flag.short] : []), ...(flag.aliases ?? [])];
    if (others.length > 0) alias[name] = others;
  }
  args = bindDashValues(args, all);
  const unknown: string[] = [];
  const raw = parseArgs(args, {
    string: strings,
    boolean: booleans,
    alias,
    "--": true,
    unknown: (arg: string, key?: string) => {
      if (key !== undefined) unknown.push(arg);
      return key === undefined; // keep positionals
    },
  }) as Record<string, unknown> & { _: unknown[]; "--"?: string[] };
  if (unknown.length > 0) {
    const name = unknown[0]!.split("=")[0]!;
    const known = Object.entries(all).flatMap(([k, f]) => [k, ...(f.aliases ?? [])]);
    throw new UsageError(
      `unknown flag ${name}${didYouMean(name.replace(/^-+/, ""), known, (n) => `--${n}`)}`,
    );
  }
  const flags: Record<string, unknown> = {};
  for (const [name, flag] of Object.entries(all)) {
    let value = raw[name];
    if (flag.type !== "boolean" && countOccurrences(args, name, flag) > 1) {
      throw new UsageError(`--${name} was given more than once`);
    }
    if (flag.type === "boolean") {
      flags[name] = value === true;
      continue;
    }
    if (value === undefined) {
      flags[name] = flag.default;
      continue;
    }
    value = String(value);
    if (value === "" && !args.some((a) => spellings(name, flag).some((n) => a === `--${n}=`))) {
      throw new UsageError(
        `--${name} needs a value${flag.valueName ? ` (${flag.valueName})` : ""}`,
      );
    }
    flags[name] = flag.type === "number"
      ? parseNumber(name, value as string, flag)
      : flag.path
      ? resolveUserPath(value as string, cwd)
      : checkChoice(name, value as string, flag);
  }
  const positionals = [...raw._.map(String), ...(raw["--"] ?? [])];
  const { min, max } = spec.positionals ?? { min: 0, max: 0 };
  if (!flags.help) {
    if (positionals.length > max) {
      throw new UsageError(`unexpected argument "${positionals[max]}"`);
    }
    if (positionals.length < min) throw new UsageError("missing argument");
  }
  return { flags: flags as FlagValues<F & typeof COMMON_FLAGS>, positionals };
}

/** The repository root when running from source (where deno.json and its tasks are). */
const PROJECT_ROOT = import.meta.url.startsWith("file:")
  ? fromFileUrl(new URL("../../", import.meta.url))
  : undefined;

/** Where {@linkcode userCwd} looks. */
export interface UserCwdSources {
  /** `INIT_CWD`: the folder `deno task` (or `npm run`) was started in. */
  initCwd?: string | undefined;
  /** The process's working directory. */
  cwd: string;
  /** The folder `deno task` runs its commands in: the folder of deno.json. */
  projectRoot?: string | undefined;
}

/**
 * The folder the user ran the command in. `deno task` runs every task in the folder of
 * deno.json and passes the user's folder as `INIT_CWD`; that is honoured only while the
 * process still runs in the project root (a program that started the tool elsewhere, with
 * its own `cwd`, meant that folder — `INIT_CWD` is inherited and may be stale).
 */
export function userCwd(
  sources: UserCwdSources = {
    initCwd: Deno.env.get("INIT_CWD"),
    cwd: Deno.cwd(),
    projectRoot: PROJECT_ROOT,
  },
): string {
  const { initCwd, cwd, projectRoot } = sources;
  if (!initCwd || !isAbsolute(initCwd) || projectRoot === undefined) return cwd;
  return samePlace(cwd, projectRoot) ? initCwd : cwd;
}

function samePlace(a: string, b: string): boolean {
  const real = (p: string) => {
    try {
      return Deno.realPathSync(p);
    } catch {
      return resolve(p);
    }
  };
  return resolve(a) === resolve(b) || real(a) === real(b);
}

/**
 * A path the user typed, made to mean what they meant: relative to `base` (the folder they
 * ran the command in). Absolute paths and `-` (stdin/stdout) are returned unchanged, and so
 * is every path when `base` is the process's own cwd (messages then show what was typed).
 */
export function resolveUserPath(path: string, base: string = userCwd()): string {
  if (path === "-" || path === "" || isAbsolute(path)) return path;
  if (samePlace(base, Deno.cwd())) return path;
  return resolve(base, path);
}

/**
 * `--output -` and `--gain -5` would be read as flags by parseArgs: bind such a value to a
 * flag that takes one (`--output=-`), so `-` (stdout) and negative numbers work as values.
 */
function bindDashValues(args: string[], all: Record<string, FlagSpec>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const long = arg.startsWith("--") ? arg.slice(2) : undefined;
    const name = long === undefined
      ? Object.keys(all).find((k) => all[k]!.short && arg === `-${all[k]!.short}`)
      : Object.keys(all).find((k) => spellings(k, all[k]!).includes(long));
    if (
      name !== undefined && all[name] && all[name].type !== "boolean" && !arg.includes("=") &&
      next !== undefined && (next === "-" || /^-\d/.test(next))
    ) {
      out.push(`--${name}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
    if (arg === "--") {
      out.push(...args.slice(i + 1));
      break;
    }
  }
  return out;
}

/** The long names of a flag: its own and its aliases. */
function spellings(name: string, flag: FlagSpec): string[] {
  return [name, ...(flag.aliases ?? [])];
}

function countOccurrences(args: string[], name: string, flag: FlagSpec): number {
  const end = args.indexOf("--");
  const names = spellings(name, flag);
  return (end === -1 ? args : args.slice(0, end)).filter((a) =>
    names.some((n) => a === `--${n}` || a.startsWith(`--${n}=`)) ||
    (flag.short !== undefined && a === `-${flag.short}`)
  ).length;
}

function parseNumber(name: string, text: string, flag: FlagSpec): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value)) {
    throw new UsageError(`--${name}: "${text}" is not a number`);
  }
  if ((flag.integer ?? true) && !Number.isInteger(value)) {
    throw new UsageError(`--${name}: "${text}" is not a whole number`);
  }
  if (flag.min !== undefined && value < flag.min) {
    throw new UsageError(`--${name}: ${value} is below the minimum ${flag.min}`);
  }
  if (flag.max !== undefined && value > flag.max) {
    throw new UsageError(`--${name}: ${value} is above the maximum ${flag.max}`);
  }
  return value;
}

function checkChoice(name: string, value: string, flag: FlagSpec): string {
  if (flag.choices && !flag.choices.includes(value)) {
    throw new UsageError(`--${name}: "${value}" is not one of ${flag.choices.join(", ")}`);
  }
  return value;
}

/** Renders `--help` for `spec`. */
export function renderHelp(spec: CommandSpec): string {
  const all: Record<string, FlagSpec> = { ...spec.flags, ...COMMON_FLAGS };
  const rows = Object.entries(all).map(([name, f]) => {
    const left = `${f.short ? `-${f.short}, ` : "    "}--${name}${
      f.type === "boolean" ? "" : ` ${f.valueName ?? f.type.toUpperCase()}`
    }`;
    const def = f.default !== undefined && f.type !== "boolean" ? ` [default: ${f.default}]` : "";
    const choices = f.choices ? ` (${f.choices.join("|")})` : "";
    const aliases = f.aliases ? ` (also ${f.aliases.map((a) => `--${a}`).join(", ")})` : "";
    return [left, `${f.description}${choices}${def}${aliases}`] as const;
  });
  const width = Math.min(34, Math.max(...rows.map(([l]) => l.length)) + 2);
  const lines = [
    `${spec.name} — ${spec.summary}`,
    "",
    "Usage:",
    ...spec.usage.map((u) => `  ${spec.name} ${u}`),
    "",
    "Options:",
    ...rows.map(([l, r]) =>
      l.length + 2 > width ? `  ${l}\n  ${" ".repeat(width)}${r}` : `  ${l.padEnd(width)}${r}`
    ),
    "",
    "Examples:",
    ...spec.examples.flatMap(([cmd, comment]) => [`  # ${comment}`, `  ${cmd}`]),
    ...(spec.notes ? ["", ...spec.notes] : []),
    "",
    "Exit status: 0 success, 1 error, 2 usage error, 3 refused by the peer, 130 interrupted.",
  ];
  return lines.join("\n");
}
