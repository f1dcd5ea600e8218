/**
 * `deno task demo` — the whole TLS story on one machine, in about 20 seconds: certificates,
 * the native audio library, a tls-server on a free port, a song played through tls-client,
 * the request radio (request, queue, now playing, listening), and a clean stop.
 *
 * Works without a sound card: tls-client falls back to the null audio device and says so.
 *
 * @module
 */

import { fromFileUrl, join } from "@std/path";
import { ensureNativeLibrary } from "../lib/audio/build.ts";
import { createCertificates } from "../lib/tls/certs.ts";

const ROOT = fromFileUrl(new URL("../", import.meta.url));
const enc = new TextEncoder();

function say(text: string): void {
  Deno.stdout.writeSync(enc.encode(`${text}\n`));
}

function step(n: number, text: string): void {
  say(`\n── ${n}. ${text}`);
}

/** Runs `cmd/tls_client.ts` with `args`, its output shown indented; returns the exit status. */
async function client(port: number, args: string[]): Promise<number> {
  say(`   $ tls-client ${args.join(" ")}`);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "cmd/tls_client.ts"),
      ...args,
      "--server",
      `localhost:${port}`,
      "--ca",
      join(ROOT, "certs/ca.crt"),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    cwd: ROOT,
  }).spawn();
  const indent = async (stream: ReadableStream<Uint8Array<ArrayBuffer>>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      for (const line of chunk.split("\n")) if (line) say(`     ${line}`);
    }
  };
  await Promise.all([indent(child.stdout), indent(child.stderr)]);
  const { code } = await child.status;
  if (code !== 0) say(`     (exit status ${code})`);
  return code;
}

async function main(): Promise<number> {
  say("soundsock demo: songs over TLS, and a request radio.");

  step(1, "Certificates (a local CA and a server certificate for localhost)");
  const certs = await createCertificates(join(ROOT, "certs"));
  say(
    certs.created
      ? `   created certs/ca.crt and certs/server.crt (${certs.names.join(", ")})`
      : "   certs/ already has them (deno task certs --force makes new ones)",
  );

  step(2, "Native audio library (miniaudio)");
  const lib = await ensureNativeLibrary({ onProgress: (l) => say(`   ${l}`) });
  say(`   ready: ${lib.replace(ROOT, "")}`);

  step(3, "Start tls-server on songs/, on a free port");
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "cmd/tls_server.ts"),
      "--port",
      "0",
      "--ready-json",
      "--songs",
      join(ROOT, "songs"),
      "--cert",
      certs.serverCert,
      "--key",
      certs.serverKey,
      "--log",
      join(ROOT, ".cache/demo-server.log"),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    cwd: ROOT,
  }).spawn();
  const started = performance.now();
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let ready = "";
  while (!ready.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("tls-server exited before it was ready");
    ready += value;
  }
  const { port, songs } = JSON.parse(ready.split("\n")[0]!) as { port: number; songs: number };
  say(
    `   listening on localhost:${port} with ${songs} songs ` +
      `(ready ${Math.round(performance.now() - started)} ms after spawn; its event log: ` +
      ".cache/demo-server.log)",
  );
  // Keep reading stdout so the server never blocks on a full pipe.
  void (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();

  let failures = 0;
  try {
    step(4, "The song list");
    failures += await client(port, ["list"]) === 0 ? 0 : 1;

    step(5, "Play a song while it downloads (6 s of it), saving it with a SHA-256 check");
    await Deno.mkdir(join(ROOT, ".cache"), { recursive: true });
    failures += await client(port, [
        "play",
        "04-nocturne",
        "--seconds",
        "6",
        "--save",
        join(ROOT, ".cache/demo-nocturne.mp3"),
      ]) === 0
      ? 0
      : 1;

    step(6, "The request radio: it has been playing since the server started");
    failures += await client(port, ["now"]) === 0 ? 0 : 1;
    failures += await client(port, ["request", "01-morning-arpeggio"]) === 0 ? 0 : 1;
    failures += await client(port, ["request", "03-tin-drum-groove"]) === 0 ? 0 : 1;
    say("   asking again for the same song:");
    failures += await client(port, ["request", "3"]) === 0 ? 0 : 1;
    say("   asking for a song that does not exist (exit status 3 is expected):");
    failures += await client(port, ["request", "no-such-song"]) === 3 ? 0 : 1;
    failures += await client(port, ["queue"]) === 0 ? 0 : 1;

    step(7, "Listen to the radio for 5 s");
    failures += await client(port, ["radio", "--seconds", "5"]) === 0 ? 0 : 1;
  } finally {
    step(8, "Stop the server (SIGTERM)");
    server.kill("SIGTERM");
    const status = await server.status;
    say(`   tls-server exited with status ${status.code}`);
    if (status.code !== 0) failures++;
  }
  say(
    failures === 0
      ? "\nDemo finished: everything worked."
      : `\nDemo finished with ${failures} failed step(s).`,
  );
  return failures === 0 ? 0 : 1;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (error) {
    Deno.stderr.writeSync(enc.encode(`demo: ${(error as Error).message}\n`));
    Deno.exit(1);
  }
}
