import { assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import {
  type CommandSpec,
  parseCommandLine,
  renderHelp,
  resolveUserPath,
  userCwd,
} from "./flags.ts";
import { UsageError } from "./errors.ts";

const spec = {
  name: "demo-tool",
  summary: "Demonstrates flags.",
  usage: ["HOST:PORT [options]"],
  positionals: { min: 1, max: 1 },
  flags: {
    port: { type: "number", default: 9000, min: 0, max: 65535, description: "Port." },
    mode: { type: "string", choices: ["a", "b"], description: "Mode." },
    fast: { type: "boolean", description: "Go fast." },
    seconds: {
      type: "number",
      integer: false,
      aliases: ["max-seconds"],
      description: "Stop after S seconds.",
    },
  },
  examples: [["demo-tool localhost:1 --mode a", "run in mode a"]],
} as const satisfies CommandSpec;

Deno.test("parseCommandLine returns typed values, defaults and positionals", () => {
  const { flags, positionals } = parseCommandLine(spec, ["h:1", "--mode=b", "--fast", "-q"]);
  assertEquals(flags.port, 9000);
  assertEquals(flags.mode, "b");
  assertEquals(flags.fast, true);
  assertEquals(flags.quiet, true);
  assertEquals(flags.verbose, false);
  assertEquals(flags.log, undefined);
  assertEquals(positionals, ["h:1"]);
  assertEquals(parseCommandLine(spec, ["x", "--port", "0"]).flags.port, 0);
});

Deno.test("parseCommandLine turns every bad command line into a one-line UsageError", () => {
  const cases: [string[], string][] = [
    [["x", "--bogus"], "unknown flag --bogus"],
    [["x", "--por=1"], "unknown flag --por (did you mean --port?)"],
    [["x", "--port", "abc"], `--port: "abc" is not a number`],
    [["x", "--port", "1.5"], `--port: "1.5" is not a whole number`],
    [["x", "--port", "70000"], "--port: 70000 is above the maximum 65535"],
    [["x", "--mode", "c"], `--mode: "c" is not one of a, b`],
    [["x", "--mode"], "--mode needs a value"],
    [["x", "--port", "1", "--port", "2"], "--port was given more than once"],
    [["x", "--seconds", "1", "--max-seconds", "2"], "--seconds was given more than once"],
    [["x", "--secnods", "1"], "unknown flag --secnods (did you mean --seconds?)"],
    [["x", "--max-secs", "1"], "unknown flag --max-secs (did you mean --max-seconds?)"],
    [[], "missing argument"],
    [["x", "y"], `unexpected argument "y"`],
  ];
  for (const [args, message] of cases) {
    const err = assertThrows(() => parseCommandLine(spec, args), UsageError);
    assertEquals(err.message, message, args.join(" "));
    assertEquals(err.exitCode, 2);
  }
});

Deno.test("an alias is the same flag under its old name, and help names it", () => {
  assertEquals(parseCommandLine(spec, ["x", "--max-seconds", "2.5"]).flags.seconds, 2.5);
  assertEquals(parseCommandLine(spec, ["x", "--max-seconds=3"]).flags.seconds, 3);
  assertEquals(parseCommandLine(spec, ["x", "--seconds", "4"]).flags.seconds, 4);
  assertStringIncludes(renderHelp(spec), "(also --max-seconds)");
});

Deno.test("--help is not an error even without positionals, and help lists every flag", () => {
  assertEquals(parseCommandLine(spec, ["--help"]).flags.help, true);
  const help = renderHelp(spec);
  for (const text of ["--port", "[default: 9000]", "(a|b)", "--log FILE", "Examples:"]) {
    assertStringIncludes(help, text);
  }
});

Deno.test("parseCommandLine takes - and negative numbers as values of flags that need one", () => {
  const s = {
    ...spec,
    flags: {
      ...spec.flags,
      out: { type: "string", description: "Out." },
      gain: { type: "number", min: -20, description: "Gain." },
    },
  } as const satisfies CommandSpec;
  const { flags } = parseCommandLine(s, ["x", "--out", "-", "--gain", "-5"]);
  assertEquals(flags.out, "-");
  assertEquals(flags.gain, -5);
  assertEquals(parseCommandLine(s, ["x", "--out=-"]).flags.out, "-");
});

Deno.test("path flags the user gives resolve against the folder the command was run in", () => {
  const s = {
    ...spec,
    flags: {
      ...spec.flags,
      songs: { type: "string", default: "songs", path: true, description: "Songs." },
      output: { type: "string", path: true, description: "Out." },
      name: { type: "string", description: "Not a path." },
    },
  } as const satisfies CommandSpec;
  const cwd = "/home/ada/music"; // not this process's cwd
  const parsed = parseCommandLine(s, [
    "x",
    "--songs",
    ".",
    "--output",
    "out/x.wav",
    "--log",
    "../run.jsonl",
    "--name",
    "a/b",
  ], { cwd });
  assertEquals(parsed.flags.songs, "/home/ada/music");
  assertEquals(parsed.flags.output, "/home/ada/music/out/x.wav");
  assertEquals(parsed.flags.log, "/home/ada/run.jsonl");
  assertEquals(parsed.flags.name, "a/b");
  // Defaults name places in the project and stay; "-" and absolute paths stay.
  const other = parseCommandLine(s, ["x", "--output", "-", "--log", "/tmp/l"], { cwd });
  assertEquals(other.flags.songs, "songs");
  assertEquals(other.flags.output, "-");
  assertEquals(other.flags.log, "/tmp/l");
  // Run where the user is (no deno task): the path is kept as typed.
  assertEquals(
    parseCommandLine(s, ["x", "--output", "a.wav"], { cwd: Deno.cwd() }).flags.output,
    "a.wav",
  );
});

Deno.test("userCwd honours INIT_CWD only while the process runs in the project root", () => {
  const projectRoot = "/repo";
  assertEquals(userCwd({ initCwd: "/repo/songs", cwd: "/repo", projectRoot }), "/repo/songs");
  // Started elsewhere by a program (e.g. a test with its own cwd): INIT_CWD is inherited.
  assertEquals(userCwd({ initCwd: "/repo", cwd: "/tmp/t", projectRoot }), "/tmp/t");
  assertEquals(userCwd({ initCwd: undefined, cwd: "/repo", projectRoot }), "/repo");
  assertEquals(userCwd({ initCwd: "rel", cwd: "/repo", projectRoot }), "/repo");
  assertEquals(userCwd({ initCwd: "/x", cwd: "/repo", projectRoot: undefined }), "/repo");
  assertEquals(resolveUserPath("a.wav", "/home/ada"), "/home/ada/a.wav");
  assertEquals(resolveUserPath("-", "/home/ada"), "-");
});
