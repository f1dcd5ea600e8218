import { assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import { type CommandSpec, parseCommandLine, renderHelp } from "./flags.ts";
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
    [[], "missing argument"],
    [["x", "y"], `unexpected argument "y"`],
  ];
  for (const [args, message] of cases) {
    const err = assertThrows(() => parseCommandLine(spec, args), UsageError);
    assertEquals(err.message, message, args.join(" "));
    assertEquals(err.exitCode, 2);
  }
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
