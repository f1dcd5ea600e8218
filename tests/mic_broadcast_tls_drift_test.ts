/**
 * tls-client radio of a live broadcast keeps its delay although the sender's clock is off
 * (issue #11, docs/PROTOCOL.md §5.4): real processes — mic-broadcast --tone over TLS with
 * --sim-clock-ppm (a capture clock 0.01 % fast or slow against the host's, as the simulated
 * hour of lib/live/playout_control_test.ts has it) → tls-client radio playing to miniaudio's
 * null device, which consumes on this host's clock (its timer ran ~40 ppm slow here, which
 * adds to a fast sender's drift and takes from a slow one's). Over 40 s the drift alone would
 * move the level by 4 ms; the counts show the correction doing it: single frames dropped for a
 * fast sender (inserted for a slow one) at about the drift's rate, and the level at its target.
 */
import { assert, assertEquals, assertGreater, assertLess } from "@std/assert";
import { testCerts } from "./_tls_helpers.ts";
import { spawnBroadcast } from "./_mic_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };
const SECONDS = 40;

/**
 * tls-client radio of a --tone broadcast whose clock is `ppm` off; its --stats-json. A run in
 * which the device ran short (the host stalled a process longer than the buffer: 2 cores
 * shared with other builds) is not a drift measurement — its level jumped and the controller
 * works the jump off at its full rate — so it is repeated, twice at most; the last run's
 * `device_underruns` is asserted by the caller.
 */
async function listen(ppm: number, extra: string[] = []) {
  let run = await listenOnce(ppm, extra);
  const stalls: number[] = [];
  for (let attempt = 2; attempt <= 3 && run.stats.device_underruns !== 0; attempt++) {
    stalls.push(run.stats.device_underruns);
    run = await listenOnce(ppm, extra);
  }
  const note = stalls.length ? ` (after ${stalls.length} stalled run(s): underruns ${stalls})` : "";
  return { stats: run.stats, said: run.said + note };
}

async function listenOnce(ppm: number, extra: string[]) {
  const certs = await testCerts();
  await using mic = await spawnBroadcast([
    "--tone",
    "440",
    "--tls",
    "127.0.0.1:0",
    "--cert",
    certs.serverCert,
    "--key",
    certs.serverKey,
    "--sim-clock-ppm",
    String(ppm),
  ]);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}cmd/tls_client.ts`,
      "radio",
      "--server",
      `127.0.0.1:${mic.ready.tlsPort}`,
      "--ca",
      certs.caCert,
      "--audio-backend",
      "null",
      "--seconds",
      String(SECONDS),
      "--stats-json",
      ...extra,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout((SECONDS + 30) * 1000),
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, stderr);
  const stats = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
  return { stats, said: `${JSON.stringify(stats)}\n${stderr}` };
}

/**
 * Frames the drift moves over the run after the 3 s of settling. The controller does most of
 * that work (its proportional part lets the level sag or swell by about a millisecond, which
 * is 48 frames of it), so the tests ask for an eighth at least and three times at most.
 */
const expectedFrames = (ppm: number) => Math.abs(ppm) * 1e-6 * 48_000 * (SECONDS - 3);

Deno.test(
  "tls-client radio: a sender clock 0.01 % fast — frames dropped at the drift's rate, the level held at its target",
  opts,
  async () => {
    const { stats, said } = await listen(100, ["--buffer", "200"]);
    assertEquals(stats.device_underruns, 0, said);
    assertEquals(stats.live_buffer_ms, 200, said);
    assertEquals(stats.device_period_ms, 100, said);
    assertGreater(stats.live_packets, (SECONDS - 1) * 100, said);
    // The target latched after settling: the 200 ms buffer and the device queue (less its period, DeviceLevel).
    assert(stats.drift_target_ms >= 100 && stats.drift_target_ms <= 420, said);
    assertLess(Math.abs(stats.drift_level_ms - stats.drift_target_ms), 10, said);
    // The correction did the drift's work (≈ 180 frames; none without it), by drops only.
    assertGreater(stats.drift_dropped, expectedFrames(100) / 8, said);
    assertLess(stats.drift_dropped, expectedFrames(100) * 3, said);
    assertLess(stats.drift_inserted, stats.drift_dropped / 4, said);
    assertGreater(stats.drift_ppm, 0, said);
  },
);

Deno.test(
  "tls-client radio: a sender clock 0.01 % slow — frames inserted, no underruns, the level held",
  opts,
  async () => {
    const { stats, said } = await listen(-100, ["--buffer", "200"]);
    assertEquals(stats.device_underruns, 0, said);
    assertEquals(stats.live_buffer_ms, 200, said);
    assertLess(Math.abs(stats.drift_level_ms - stats.drift_target_ms), 10, said);
    assertGreater(stats.drift_inserted, expectedFrames(100) / 8, said);
    assertLess(stats.drift_inserted, expectedFrames(100) * 3, said);
    assertLess(stats.drift_dropped, stats.drift_inserted / 4, said);
    assertLess(stats.drift_ppm, 0, said);
  },
);

Deno.test(
  "tls-client radio --buffer auto: a steady loopback settles on a small buffer, within the cap",
  opts,
  async () => {
    const { stats, said } = await listen(0, ["--buffer", "auto"]);
    assertEquals(stats.device_underruns, 0, said);
    assert(stats.live_buffer_ms >= 5 && stats.live_buffer_ms <= 200, said);
    assertLess(Math.abs(stats.drift_level_ms - stats.drift_target_ms), 10, said);
  },
);

Deno.test(
  "tls-client: --buffer outside radio, or a bad value, is a one-line usage error",
  opts,
  async () => {
    for (
      const [args, text] of [
        [["list", "--buffer", "40"], "--buffer and --stats-json work with radio"],
        [["radio", "--buffer", "soon"], '--buffer: "soon" is neither a number of ms nor auto'],
        [["radio", "--buffer", "-5"], "--buffer: -5 is below the minimum 0"],
      ] as const
    ) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}cmd/tls_client.ts`, ...args, "--server", "127.0.0.1:1"],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 2, stderr);
      assert(stderr.includes(text), stderr);
      assert(!stderr.includes("    at "), stderr);
    }
  },
);
