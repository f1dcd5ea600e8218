/**
 * Start-up time: from spawn to ready, median of `--runs` (default 10) runs each.
 *
 *   deno run -A bench/startup.ts [--runs 10]
 *
 * Ready means: udp-server and tls-server printed their "listening on" line on stderr (then they
 * are stopped); `udp-client --help` exited. Reference rows: an empty script, and one that only
 * imports node:crypto, node:process and node:zlib (the cost of the node: compatibility layer), both
 * in a temp dir with no deno.json. Module graphs are cached before timing (one untimed run each),
 * so this is warm start-up: type checking and downloads are not counted. tls-server needs
 * certs/ (`deno task certs`); if it fails to start it is reported and skipped.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";

const ROOT = new URL("../", import.meta.url).pathname;
const args = parseArgs(Deno.args, { string: ["runs"] });
const runs = Number(args.runs ?? 10);
const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));

interface Target {
  name: string;
  argv: string[];
  cwd: string;
  /** Ready when this appears on stderr; undefined: ready when the process exits. */
  readyOn?: string;
}

/** Milliseconds from spawn to ready. */
async function once(t: Target): Promise<number> {
  const t0 = performance.now();
  const child = new Deno.Command("deno", {
    args: t.argv,
    cwd: t.cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let readyAt: number | undefined;
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 20_000);
  try {
    if (t.readyOn) {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
        if (text.includes(t.readyOn)) {
          readyAt = performance.now();
          break;
        }
      }
      try {
        child.kill("SIGTERM");
      } catch { /* already exited */ }
      // Drain stderr so the child is never blocked on it while stopping.
      (async () => {
        try {
          while (!(await reader.read()).done) { /* drain */ }
        } catch { /* closed */ }
      })();
      await child.status;
    } else {
      const status = await child.status;
      readyAt = performance.now();
      while (!(await reader.read()).done) { /* drain */ }
      if (!status.success) throw new Error(`${t.name} exited with ${status.code}`);
    }
  } finally {
    clearTimeout(timer);
  }
  if (readyAt === undefined) {
    throw new Error(`${t.name} never printed "${t.readyOn}": ${text.trim().slice(0, 300)}`);
  }
  return readyAt - t0;
}

const tmp = await Deno.makeTempDir({ prefix: "soundsock-startup-" });
try {
  await Deno.writeTextFile(`${tmp}/empty.ts`, "// nothing\n");
  await Deno.writeTextFile(
    `${tmp}/node_imports.ts`,
    'import "node:crypto";\nimport "node:process";\nimport "node:zlib";\n',
  );
  const targets: Target[] = [
    {
      name: "udp-server (to 'listening on')",
      argv: ["run", "-A", "cmd/udp_server.ts", "--port", "0"],
      cwd: ROOT,
      readyOn: "listening on",
    },
    {
      name: "udp-client --help (to exit)",
      argv: ["run", "-A", "cmd/udp_client.ts", "--help"],
      cwd: ROOT,
    },
    {
      name: "tls-server (to 'listening on')",
      argv: ["run", "-A", "cmd/tls_server.ts", "--port", "0"],
      cwd: ROOT,
      readyOn: "listening on",
    },
    { name: "reference: empty script", argv: ["run", "-A", `${tmp}/empty.ts`], cwd: tmp },
    {
      name: "reference: script importing node:crypto/process/zlib",
      argv: ["run", "-A", `${tmp}/node_imports.ts`],
      cwd: tmp,
    },
  ];
  const rows: string[] = [];
  for (const t of targets) {
    try {
      await once(t); // warm: module graph cached, not timed
      const times: number[] = [];
      for (let i = 0; i < runs; i++) times.push(await once(t));
      times.sort((a, b) => a - b);
      const median = times.length % 2
        ? times[(times.length - 1) / 2]!
        : (times[times.length / 2 - 1]! + times[times.length / 2]!) / 2;
      const verdict = t.name.startsWith("reference") ? "—" : median <= 100 ? "met" : "MISSED";
      rows.push(
        `| ${t.name} | ${runs} | ${median.toFixed(0)} | ${times[0]!.toFixed(0)} | ` +
          `${times[times.length - 1]!.toFixed(0)} | ${verdict} |`,
      );
    } catch (error) {
      rows.push(
        `| ${t.name} | — | skipped: ${(error as Error).message.replace(/\n/g, " ")} | | | |`,
      );
    }
  }
  out(`Reproduce: deno run -A bench/startup.ts --runs ${runs}`);
  out("");
  out("| target | runs | median ms | min ms | max ms | ready ≤ 100 ms |");
  out("|---|---:|---:|---:|---:|---|");
  for (const r of rows) out(r);
} finally {
  await Deno.remove(tmp, { recursive: true });
}
