/**
 * Device-level latency of a live broadcast (`bench/mic_latency.ts --device-click`): a click fed
 * into a PulseAudio virtual microphone → the sender (mic-broadcast over UDP or TLS, or Debian's
 * `trx tx`) capturing it → the listener (udp-client --radio, tls-client radio, `trx rx`)
 * playing it → a PulseAudio virtual speaker. Latency = when the click was heard − when it was
 * fed.
 *
 * One recording, one clock: a stereo null sink `bus` whose left channel is the microphone's
 * input and whose right channel is the speaker's output —
 *
 *   paplay clicks.wav → clickfeed (remap-sink → bus left)  → clickmic (remap-source of
 *   bus.monitor left) → sender … listener → clickspeaker (remap-sink → bus right)
 *
 * — and one `parec` of `bus.monitor` in stereo. Both channels are mixed by the same sink
 * thread at the same sample clock, so the offset between a click's onset on the left and on
 * the right is exactly the time from the microphone's input to the speaker's output: capture
 * (device period + ring), encode, network, buffer, decode, the listener's ring and the
 * output device's queue. The onset is where the envelope first exceeds a quarter of the
 * click's peak (Opus smears a click by a few ms; the same detector on both channels).
 *
 * @module
 */

import { WavWriter } from "../lib/audio/mod.ts";
import { startPulse } from "../tests/_pulse.ts";

const RATE = 48_000;

/** One configuration's result. */
export interface ClickResult {
  name: string;
  /** Click latencies (ms), in click order; clicks not heard are left out. */
  latenciesMs: number[];
  fed: number;
  /** What the listener's own statistics said (latency_device_median_ms etc.), if any. */
  listenerSays?: string;
  /** Why it could not run (trx missing, …). */
  error?: string;
}

/** A listener/sender pair to measure; started after the recording, stopped at the end. */
export interface ClickPath {
  name: string;
  /** Starts the sender and listener on the virtual devices; resolves once they run. */
  start(env: Record<string, string>): Promise<{ stop(): Promise<string | undefined> }>;
}

/** Clicks: a 1 kHz burst of 4 ms under a Hann window, amplitude 0.8, every `everyMs`. */
function clickTrain(count: number, everyMs: number, leadMs: number): Int16Array {
  const total = Math.round((leadMs + count * everyMs + 500) * RATE / 1000);
  const x = new Int16Array(total);
  const len = Math.round(0.004 * RATE);
  for (let c = 0; c < count; c++) {
    const at = Math.round((leadMs + c * everyMs) * RATE / 1000);
    for (let i = 0; i < len; i++) {
      const w = 0.5 - 0.5 * Math.cos(2 * Math.PI * i / (len - 1));
      x[at + i] = Math.round(0.8 * 32767 * w * Math.sin(2 * Math.PI * 1000 * i / RATE));
    }
  }
  return x;
}

/** Onsets (sample index) of clicks in one channel: above `threshold` after `quietMs` of less. */
function onsets(x: Int16Array, channel: number, quietMs: number): number[] {
  let peak = 0;
  for (let i = channel; i < x.length; i += 2) peak = Math.max(peak, Math.abs(x[i]!));
  if (peak < 1000) return [];
  const threshold = peak / 4;
  const quiet = Math.round(quietMs * RATE / 1000);
  const out: number[] = [];
  let last = -Infinity;
  for (let f = 0; f < x.length / 2; f++) {
    if (Math.abs(x[2 * f + channel]!) >= threshold) {
      if (f - last > quiet) out.push(f);
      last = f;
    }
  }
  return out;
}

/**
 * Runs every path in turn on one PulseAudio daemon: `count` clicks `everyMs` apart each.
 */
export async function measureClicks(
  paths: ClickPath[],
  options: { count?: number; everyMs?: number } = {},
): Promise<ClickResult[]> {
  const count = options.count ?? 12;
  const everyMs = options.everyMs ?? 1000;
  await using pulse = await startPulse();
  await pulse.pactl(
    "load-module",
    "module-null-sink",
    "sink_name=bus",
    "channels=2",
    "channel_map=front-left,front-right",
    "sink_properties=device.description=ClickBus",
  );
  for (
    const [kind, name, channel, description] of [
      ["sink", "clickfeed", "front-left", "ClickFeed"],
      ["sink", "clickspeaker", "front-right", "ClickSpeaker"],
      ["source", "clickmic", "front-left", "ClickMic"],
    ] as const
  ) {
    await pulse.pactl(
      "load-module",
      kind === "sink" ? "module-remap-sink" : "module-remap-source",
      `${kind}_name=${name}`,
      kind === "sink" ? "master=bus" : "master=bus.monitor",
      "channels=1",
      `master_channel_map=${channel}`,
      "channel_map=mono",
      "remix=no",
      `${kind}_properties=device.description=${description}`,
    );
  }
  const wav = `${pulse.runtimeDir}/clicks.wav`;
  {
    await using w = await WavWriter.create(wav, { sampleRate: RATE, channels: 1 });
    await w.write(clickTrain(count, everyMs, 300));
  }
  const results: ClickResult[] = [];
  for (const path of paths) {
    let running: { stop(): Promise<string | undefined> } | undefined;
    try {
      running = await path.start(pulse.env);
    } catch (error) {
      results.push({ name: path.name, latenciesMs: [], fed: 0, error: (error as Error).message });
      continue;
    }
    const rec = new Deno.Command("parec", {
      args: [
        "--device=bus.monitor",
        "--format=s16le",
        `--rate=${RATE}`,
        "--channels=2",
        "--raw",
        "--latency-msec=20",
      ],
      env: pulse.env,
      clearEnv: true,
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const chunks: Uint8Array[] = [];
    const pump = (async () => {
      for await (const c of rec.stdout) chunks.push(c);
    })();
    await new Promise((r) => setTimeout(r, 300));
    const fed = await new Deno.Command("paplay", {
      args: ["--device=clickfeed", wav],
      env: pulse.env,
      clearEnv: true,
    }).output();
    await new Promise((r) => setTimeout(r, 1500)); // the last click through the slowest path
    rec.kill("SIGTERM");
    await pump;
    await rec.status;
    const listenerSays = await running.stop();
    const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let o = 0;
    for (const c of chunks) {
      bytes.set(c, o);
      o += c.length;
    }
    const x = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
    const left = onsets(x, 0, everyMs / 2);
    const right = onsets(x, 1, everyMs / 2);
    // Pair each fed click with the first heard one after it, before the next fed click
    // (+ half the spacing: a latency above that would be a different click).
    const latenciesMs: number[] = [];
    for (let i = 0; i < left.length; i++) {
      const heard = right.find((r) => r > left[i]! && r - left[i]! < everyMs * RATE / 1000);
      if (heard !== undefined) latenciesMs.push((heard - left[i]!) * 1000 / RATE);
    }
    results.push({
      name: path.name,
      latenciesMs,
      fed: left.length,
      ...(listenerSays ? { listenerSays } : {}),
      ...(fed.success ? {} : { error: `paplay: ${new TextDecoder().decode(fed.stderr)}` }),
    });
  }
  return results;
}

/** Median and p95 of a list (nearest rank). */
export function percentiles(values: number[]): { median: number; p95: number } {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { median: at(0.5), p95: at(0.95) };
}
