/**
 * GET throughput of tls-server vs `openssl s_server -WWW` + `openssl s_client`, same file, same
 * certificate, loopback. Not a `deno bench` file: a report with the commands.
 *
 *   deno run -A bench/tls_get_throughput.ts [SIZE_MIB=1024]
 *
 * @module
 */

import { join } from "@std/path";
import { createCertificates } from "../lib/tls/certs.ts";
import { TlsSongClient } from "../lib/tls/client.ts";
import { wavHeader } from "../lib/audio/wav.ts";

function say(t: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(t + "\n"));
}
const sizeMiB = Number(Deno.args[0] ?? 1024);
const root = new URL("../", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "soundsock-bench-" });
const certs = await createCertificates(join(tmp, "certs"));
const songs = join(tmp, "songs");
await Deno.mkdir(songs);
const file = join(songs, "big.wav");
{
  // A valid WAV (so the catalog accepts it) of SIZE MiB, written in 16 MiB blocks.
  const dataBytes = sizeMiB * 1024 * 1024 - 44;
  using f = await Deno.open(file, { write: true, create: true });
  await f.write(wavHeader(48000, 2, dataBytes));
  const block = crypto.getRandomValues(new Uint8Array(65536));
  const big = new Uint8Array(16 * 1024 * 1024);
  for (let i = 0; i < big.length; i += block.length) big.set(block, i);
  let left = dataBytes;
  while (left > 0) {
    const n = Math.min(left, big.length);
    let at = 0;
    while (at < n) at += await f.write(big.subarray(at, n));
    left -= n;
  }
}
const total = (await Deno.stat(file)).size;

// soundsock tls-server in its own process.
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    join(root, "cmd/tls_server.ts"),
    "--port",
    "0",
    "--ready-json",
    "-q",
    "--songs",
    songs,
    "--cert",
    certs.serverCert,
    "--key",
    certs.serverKey,
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
const { port } = JSON.parse((await reader.read()).value!) as { port: number };
const ca = [await Deno.readTextFile(certs.caCert)];
{
  // Wait for the server's hash of the file (computed once, in the background at start).
  using c = await TlsSongClient.connect({ hostname: "localhost", port }, {
    caCerts: ca,
    timeoutMs: 60_000,
  });
  await c.download("big.wav", { offset: total });
}
say("tls-server ready, hash done");
const runs: number[] = [];
for (let i = 0; i < 3; i++) {
  using c = await TlsSongClient.connect({ hostname: "localhost", port }, { caCerts: ca });
  const t0 = performance.now();
  let bytes = 0;
  await c.download("big.wav", { onData: (p) => void (bytes += p.length) });
  runs.push(bytes / 1048576 / ((performance.now() - t0) / 1000));
}
say(`soundsock runs done: ${runs}`);
server.kill("SIGTERM");
await server.status;

// openssl: s_server -WWW serves files relative to its cwd.
const s = new Deno.Command("openssl", {
  args: [
    "s_server",
    "-WWW",
    "-accept",
    "0",
    "-cert",
    certs.serverCert,
    "-key",
    certs.serverKey,
  ],
  cwd: songs,
  stdout: "piped",
  stderr: "piped",
}).spawn();
// s_server prints "ACCEPT 0.0.0.0:PORT" — find the port in its output.
const sReader = s.stdout.pipeThrough(new TextDecoderStream()).getReader();
let line = "";
while (!/ACCEPT .*:(\d+)/.test(line)) line += (await sReader.read()).value ?? "";
const oport = Number(line.match(/ACCEPT .*:(\d+)/)![1]);
void (async () => {
  while (!(await sReader.read()).done) { /* drain */ }
})();
const oruns: number[] = [];
for (let i = 0; i < 3; i++) {
  const t0 = performance.now();
  const c = new Deno.Command("openssl", {
    args: ["s_client", "-quiet", "-connect", `localhost:${oport}`, "-CAfile", certs.caCert],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const w = c.stdin.getWriter();
  await w.write(new TextEncoder().encode("GET /big.wav HTTP/1.0\r\n\r\n"));
  let bytes = 0;
  for await (const chunk of c.stdout) bytes += chunk.length;
  await w.close().catch(() => {});
  await c.status;
  oruns.push(bytes / 1048576 / ((performance.now() - t0) / 1000));
}
s.kill("SIGTERM");
await s.status;
await Deno.remove(tmp, { recursive: true });

const best = (a: number[]) => Math.max(...a).toFixed(0);

say(`GET of a ${sizeMiB} MiB file over TLS on loopback (best of 3, MiB/s):`);
say(
  `  soundsock tls-server → TlsSongClient: ${best(runs)}  (runs: ${
    runs.map((r) => r.toFixed(0)).join(", ")
  })`,
);
say(
  `  openssl s_server -WWW → s_client:     ${best(oruns)}  (runs: ${
    oruns.map((r) => r.toFixed(0)).join(", ")
  })`,
);
say(`  ratio: ${(Math.max(...runs) / Math.max(...oruns)).toFixed(2)}×`);
