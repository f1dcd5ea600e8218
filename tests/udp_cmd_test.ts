/** Command-level tests: the real udp-server and udp-client entry points, as a user runs them. */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { rawSocket, spawnUdpServer } from "./_udp_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const decoder = new TextDecoder();

/** Runs a command file to completion. */
async function run(cmd: string, args: string[], timeoutMs = 20_000) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cmd/${cmd}`, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  return { code: out.code, stdout: out.stdout, stderr: decoder.decode(out.stderr) };
}

Deno.test("udp-client --list prints every song in the aligned table", async () => {
  await using server = await spawnUdpServer();
  const r = await run("udp_client.ts", [`127.0.0.1:${server.port}`, "--list"]);
  assertEquals(r.code, 0, r.stderr);
  const lines = decoder.decode(r.stdout).trimEnd().split("\n");
  assertEquals(lines.length, 7);
  assertEquals(lines[0], "#  Title                    Length  Codec     Size");
  assertMatch(lines[1]!, /^1 {2}01-morning-arpeggio\.mp3 {4}0:23 {2}mp3 {4}\d{3} KiB$/);
});

Deno.test("udp-client exits 3 with a clear message for an unknown song", async () => {
  await using server = await spawnUdpServer();
  const r = await run("udp_client.ts", [`127.0.0.1:${server.port}`, "--song", "nope"]);
  assertEquals(r.code, 3);
  assertEquals(r.stderr.trim(), `error: Song "nope" does not exist`);
});

Deno.test("udp-client --output - writes the song's raw PCM to stdout and statistics to stderr", async () => {
  await using server = await spawnUdpServer(["--interval", "0"]);
  const r = await run("udp_client.ts", [
    `127.0.0.1:${server.port}`,
    "--song",
    "4",
    "--output",
    "-",
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout.length, 904_050 * 4); // 20.5 s of 44.1 kHz stereo s16le, as ffmpeg decodes
  assertMatch(r.stderr, /^ {2}lost +0$/m);
  assertMatch(r.stderr, /^ {2}loss_pct +0\.00 %$/m);
});

Deno.test("udp-client and udp-server refuse bad command lines with exit 2 and usage", async () => {
  const cases: [string, string[], string][] = [
    ["udp_client.ts", ["localhost:1", "--bogus"], "error: unknown flag --bogus"],
    ["udp_client.ts", ["localhost:1"], "error: choose exactly one of --song NAME, --radio, --list"],
    ["udp_client.ts", ["host:99999", "--list"], `error: "host:99999" is not HOST or HOST:PORT`],
    [
      "udp_client.ts",
      ["localhost:1", "--server", "localhost:2", "--list"],
      "error: give the server once",
    ],
    [
      "udp_client.ts",
      ["localhost:1", "--radio", "--buffer", "-5"],
      "error: --buffer: -5 is below the minimum 0",
    ],
    ["udp_server.ts", ["--port", "99999"], "error: --port: 99999 is above the maximum 65535"],
    ["udp_server.ts", ["--sim-delay", "fast"], `error: --sim-delay: "fast" is not MS or MS±JITTER`],
  ];
  for (const [cmd, args, message] of cases) {
    const r = await run(cmd, args);
    assertEquals(r.code, 2, `${cmd} ${args.join(" ")}: ${r.stderr}`);
    assertStringIncludes(r.stderr, message);
    assertStringIncludes(r.stderr, "Usage:");
    assert(!r.stderr.includes("    at "), "no stack trace");
  }
});

Deno.test("udp-server fails with one clear line for a missing songs folder or a busy port", async () => {
  const r = await run("udp_server.ts", ["--songs", "/nonexistent-folder"]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr.trim(),
    `error: Cannot open songs folder "/nonexistent-folder": no such folder`,
  );
  using busy = rawSocket();
  const port = (busy.addr as Deno.NetAddr).port;
  const r2 = await run("udp_server.ts", ["--port", String(port)]);
  assertEquals(r2.code, 1);
  // One line, starting with the cause (a hint may follow on the same line).
  assert(r2.stderr.trim().startsWith(`error: Cannot bind UDP 127.0.0.1:${port}: address in use`));
  assertEquals(r2.stderr.trim().split("\n").length, 1, r2.stderr);
});

Deno.test("udp-client reports a server that does not answer, without a stack trace", async () => {
  using silent = rawSocket();
  const port = (silent.addr as Deno.NetAddr).port;
  const r = await run("udp_client.ts", [`127.0.0.1:${port}`, "--list"]);
  assertEquals(r.code, 1);
  assertStringIncludes(r.stderr, `error: No answer from 127.0.0.1:${port} after 3 tries`);
});

Deno.test("udp-server --rtp feeds standard RTP that ffmpeg decodes through the SDP file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A free UDP port for the RTP receiver (ffmpeg binds it from the SDP).
    const probe = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const rtpPort = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const sdp = `${dir}/radio.sdp`;
    await using _server = await spawnUdpServer([
      "--rtp",
      `127.0.0.1:${rtpPort}`,
      "--sdp",
      sdp,
      "--radio-song",
      "04-nocturne.mp3",
    ]);
    const sdpText = await Deno.readTextFile(sdp);
    // The Opus station (RFC 7587): one stream across every song.
    assertStringIncludes(sdpText, `m=audio ${rtpPort} RTP/AVP 96`);
    assertStringIncludes(sdpText, "a=rtpmap:96 opus/48000/2");
    const out = await new Deno.Command("ffmpeg", {
      args: [
        "-v",
        "error",
        "-protocol_whitelist",
        "file,udp,rtp",
        "-i",
        sdp,
        "-t",
        "3",
        "-f",
        "s16le",
        "-ac",
        "2",
        "-ar",
        "44100",
        "-",
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output();
    const errors = decoder.decode(out.stderr);
    assert(out.success, errors);
    assertEquals(errors.trim(), "");
    // 3 s of 44.1 kHz stereo s16le (ffmpeg's -t may overshoot by part of one frame), and real
    // sound rather than silence.
    const frames = out.stdout.length / 4;
    assert(frames >= 3 * 44_100 && frames <= 3 * 44_100 + 1152, `${frames} frames`);
    const pcm = new Int16Array(out.stdout.buffer, 0, out.stdout.length / 2);
    const rms = Math.sqrt(pcm.reduce((s, v) => s + v * v, 0) / pcm.length);
    assert(rms > 300, `rms ${rms}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
