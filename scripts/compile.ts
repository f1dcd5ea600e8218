/**
 * `deno task compile`: builds each tool into a single binary with `deno compile`,
 * least-privilege permissions baked in, and the native audio library embedded (unpacked to
 * `$XDG_CACHE_HOME/soundsock/` on first run, then loaded from there with `dlopen`).
 *
 * `deno compile` needs Deno's `denort` runtime for the target, which it downloads; on machines
 * that cannot reach the download, point `DENORT_BIN` at a denort binary of the same Deno
 * version and target. Without either this script stops with that explanation in a few lines —
 * the tools remain usable via `deno task`.
 *
 * The audio library is C, built for this machine by `cc` (lib/audio/build.ts): it is embedded
 * when the target is this machine's (or `--native-lib FILE` gives one built for the target).
 * A binary without it loads the library named by `SOUNDSOCK_MINIAUDIO_LIB` when it plays or
 * decodes; everything else (lists, downloads, WAV/MP3 serving, the servers) works without.
 * libopus and libsoxr are never embedded: they are the system's (Debian `libopus0`,
 * `libsoxr0`), loaded by soname when a tool needs them.
 *
 * Usage: deno task compile [--target TRIPLE] [--native-lib FILE] [--out-dir DIR] [TOOL ...]
 *
 * Output: `dist/TOOL` for this machine, `dist/TRIPLE/TOOL[.exe]` with `--target`. A binary for
 * this machine is run once (`TOOL --help`) before it counts as built.
 *
 * @module
 */

import { fromFileUrl, join } from "@std/path";
import { ensureNativeLibrary } from "../lib/audio/build.ts";
import { type CommandSpec, parseCommandLine, renderHelp, UsageError } from "../lib/cli/mod.ts";

const ROOT = fromFileUrl(new URL("../", import.meta.url));

/** Each tool: its cmd file, and only the permissions it needs. */
const TOOLS: Record<string, { cmd: string; permissions: string[]; audio: boolean }> = {
  "udp-server": {
    cmd: "udp_server.ts",
    permissions: ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi"],
    audio: true, // probing FLAC songs decodes through miniaudio
  },
  "udp-client": {
    cmd: "udp_client.ts",
    permissions: ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi"],
    audio: true,
  },
  "tls-server": {
    cmd: "tls_server.ts",
    // A 1 MiB young generation, as `deno task tls-server` runs it (see deno.json).
    permissions: [
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      "--v8-flags=--max-semi-space-size=1",
    ],
    audio: true,
  },
  "tls-client": {
    cmd: "tls_client.ts",
    permissions: ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi"],
    audio: true,
  },
  "file-send": {
    cmd: "file_send.ts",
    // openssl makes the receiver's ephemeral certificate; df checks free space.
    permissions: [
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-run=openssl,df",
    ],
    audio: false,
  },
  "mic-broadcast": {
    cmd: "mic_broadcast.ts",
    permissions: ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi"],
    audio: true,
  },
};

/** The release targets (`deno compile --target`). */
const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

const SPEC = {
  name: "deno task compile",
  summary: "Build the tools as single binaries with deno compile.",
  usage: ["[--target TRIPLE] [--native-lib FILE] [--out-dir DIR] [TOOL ...]"],
  positionals: { min: 0, max: Object.keys(TOOLS).length },
  flags: {
    target: {
      type: "string",
      choices: TARGETS,
      valueName: "TRIPLE",
      description: "Build for this platform (default: this machine), into dist/TRIPLE/.",
    },
    "out-dir": {
      type: "string",
      valueName: "DIR",
      path: true,
      description: "Write the binaries here instead of dist/ (dist/TRIPLE/ with --target).",
    },
    "native-lib": {
      type: "string",
      valueName: "FILE",
      path: true,
      description: "Embed this audio library (built for the target) instead of building one.",
    },
  },
  examples: [
    ["deno task compile", "every tool for this machine, into dist/"],
    ["DENORT_BIN=/opt/denort deno task compile tls-client", "offline, with a local denort"],
    ["deno task compile --target x86_64-pc-windows-msvc", "Windows binaries (no audio library)"],
  ],
  notes: [`Tools: ${Object.keys(TOOLS).join(", ")}.`],
} as const satisfies CommandSpec;

const say = (text: string): void =>
  void Deno.stderr.writeSync(new TextEncoder().encode(text + "\n"));
let progress = say;

function fail(message: string, code = 1): never {
  say(`error: ${message}`);
  Deno.exit(code);
}

let parsed;
try {
  parsed = parseCommandLine(SPEC, Deno.args);
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  fail(`${error.message} (deno task compile --help)`, 2);
}
const { flags, positionals } = parsed;
if (flags.quiet) progress = () => {};
if (flags.help) {
  say(renderHelp(SPEC));
  Deno.exit(0);
}
const wanted = positionals.length > 0 ? positionals : Object.keys(TOOLS);
for (const name of wanted) {
  if (!TOOLS[name]) fail(`unknown tool "${name}" (one of ${Object.keys(TOOLS).join(", ")})`, 2);
}
const host = Deno.build.target;
const target = flags.target ?? host;
const denort = Deno.env.get("DENORT_BIN");
if (denort !== undefined) {
  try {
    if (!(await Deno.stat(denort)).isFile) fail(`DENORT_BIN=${denort} is not a file`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) fail(`DENORT_BIN=${denort} does not exist`);
    throw error;
  }
}

// The audio library to embed: one built for the target, or none.
let library: string | undefined = flags["native-lib"];
if (library === undefined && target === host) {
  library = await ensureNativeLibrary({ onProgress: (line) => progress(`  ${line}`) });
} else if (library === undefined) {
  say(
    `note: no audio library embedded for ${target} (the one cc builds here is for ${host}); ` +
      "the binaries load SOUNDSOCK_MINIAUDIO_LIB to play (--native-lib FILE embeds one)",
  );
}
let libHash = "";
if (library !== undefined) {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(library);
  } catch (error) {
    fail(`Cannot read the audio library "${library}": ${(error as Error).message}`);
  }
  libHash = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>))
      .slice(0, 8),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

const outDir = flags["out-dir"] ??
  (flags.target === undefined ? join(ROOT, "dist") : join(ROOT, "dist", target));
const exe = target.includes("windows") ? ".exe" : "";
await Deno.mkdir(outDir, { recursive: true });
await Deno.mkdir(join(ROOT, ".cache/compile/native"), { recursive: true });
// The embedded copy lives under .cache/compile/ so the entry can name it relative to itself.
if (library !== undefined) {
  await Deno.copyFile(library, join(ROOT, ".cache/compile/native/libsoundsock_audio"));
}

for (const name of wanted) {
  const tool = TOOLS[name]!;
  const embed = tool.audio && library !== undefined;
  // The entry unpacks the embedded library before the tool's modules load FFI.
  const entry = join(ROOT, `.cache/compile/${name}.ts`);
  await Deno.writeTextFile(entry, entrySource(tool.cmd, embed ? libHash : undefined));
  const output = join(outDir, name + exe);
  const args = [
    "compile",
    "--unstable-net",
    ...tool.permissions,
    ...(flags.target === undefined ? [] : ["--target", target]),
    ...(embed ? ["--include", join(ROOT, ".cache/compile/native/libsoundsock_audio")] : []),
    "--output",
    output,
    entry,
  ];
  progress(`compiling ${name} for ${target} …`);
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    const why = new TextDecoder().decode(result.stderr).trim();
    if (/denort|base binary/i.test(why)) {
      // The usual case offline: a clear paragraph, not deno's stack of causes.
      const causes = why.split(/\n\s*Stack backtrace:/)[0]!.split("Caused by:")[1] ?? "";
      const cause = causes.split("\n").map((l) => l.trim()).filter((l) => /^\d+: /.test(l)).pop()
        ?.replace(/^\d+: /, "") ?? why.split("\n").find((l) => /error/i.test(l))?.trim();
      say(
        `error: deno compile could not get Deno's denort runtime for ${target}` +
          (denort ? ` from DENORT_BIN=${denort}` : "") + `: ${cause}`,
      );
      say(
        (denort
          ? "DENORT_BIN must be the denort of this Deno version " +
            `(${Deno.version.deno}) for ${target}.\n`
          : "deno compile downloads it, and this machine cannot reach the download.\n" +
            `Set DENORT_BIN=/path/to/denort (Deno ${Deno.version.deno}, ${target}) and run ` +
            "again, or take the binaries of a release (.github/workflows/release.yml).\n") +
          `Meanwhile the tools run as they are: deno task ${name} --help`,
      );
      if (flags.verbose) say(why);
    } else {
      say(`error: deno compile failed for ${name}:\n${why}`);
    }
    Deno.exit(1);
  }
  if (target === host) {
    // A binary for this machine must run: DENORT_BIN may name something that is not denort.
    const run = await new Deno.Command(output, {
      args: ["--help"],
      stdout: "piped",
      stderr: "null",
    })
      .output().catch((error: Error) => ({
        success: false,
        stdout: new TextEncoder().encode(error.message),
      }));
    const help = new TextDecoder().decode(run.stdout) + "";
    if (!run.success || !help.includes(`${name} —`)) {
      await Deno.remove(output).catch(() => {});
      fail(
        `${output} does not run (\`${name} --help\` printed no help)` +
          (denort ? `: is DENORT_BIN=${denort} the denort of Deno ${Deno.version.deno}?` : ""),
      );
    }
  }
  progress(`  ${output}`);
}

/** The generated entry point of one binary. */
function entrySource(cmd: string, libHash: string | undefined): string {
  const unpack = libHash === undefined ? "" : `
if (!Deno.env.get("SOUNDSOCK_MINIAUDIO_LIB")) {
  const home = Deno.env.get("HOME") ?? Deno.env.get("LOCALAPPDATA") ?? "/tmp";
  const cache = \`\${Deno.env.get("XDG_CACHE_HOME") ?? \`\${home}/.cache\`}/soundsock\`;
  const path = \`\${cache}/libsoundsock_audio-${libHash}.so\`;
  try {
    await Deno.stat(path);
  } catch {
    await Deno.mkdir(cache, { recursive: true });
    const bytes = await Deno.readFile(new URL("./native/libsoundsock_audio", import.meta.url));
    const tmp = \`\${path}.\${Deno.pid}.tmp\`;
    await Deno.writeFile(tmp, bytes, { mode: 0o755 });
    await Deno.rename(tmp, path);
  }
  Deno.env.set("SOUNDSOCK_MINIAUDIO_LIB", path);
}`;
  return `// Generated by scripts/compile.ts — do not edit.${unpack}
const { main, SPEC } = await import("../../cmd/${cmd}");
const { runMain } = await import("../../lib/cli/run.ts");
await runMain(main, SPEC);
`;
}
