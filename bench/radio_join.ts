/**
 * Radio join → first sound, and distance behind live, for UDP and TLS (issue #9 targets:
 * < 300 ms to sound, < 500 ms behind live).
 *
 *   deno run -A bench/radio_join.ts [--joins 10] [--seconds 3]
 *
 * In-process servers on loopback (the Opus station over songs/), real clients:
 *
 * - UDP: `listenRadio` (the code of `udp-client --radio`, default --buffer 200) into a simulated
 *   real-time device with miniaudio's 500 ms ring: "first sound" is when the device starts
 *   (first write); "behind live" is the station's live edge (`Station.clock.samplesDue(now)`)
 *   minus the media time the device has played (first packet's timestamp + audio consumed),
 *   median over the session after its first second.
 * - TLS: `TlsSongClient.radio` (what `tls-client radio` reads), whose playout starts at the first
 *   DATA (no jitter buffer on TCP): "first sound" is the first DATA; "behind live" is the live
 *   edge then minus that packet's timestamp, kept from there on by real-time playout.
 *
 * Neither includes the audio device's own queue (PulseAudio adds its latency on top).
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { fromFileUrl, join } from "@std/path";
import { EventLog } from "../lib/cli/event_log.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import { UdpServer } from "../lib/udp/server.ts";
import { listenRadio, type PcmOutput } from "../lib/udp/client.ts";
import { createCertificates } from "../lib/tls/certs.ts";
import { TlsSongClient } from "../lib/tls/client.ts";
import { TlsSongServer } from "../lib/tls/server.ts";

const say = (t: string) => Deno.stdout.writeSync(new TextEncoder().encode(t + "\n"));
const args = parseArgs(Deno.args, { string: ["joins", "seconds"] });
const joins = Number(args.joins ?? 10);
const seconds = Number(args.seconds ?? 3);
const root = fromFileUrl(new URL("../", import.meta.url));
const catalog = await SongCatalog.open(join(root, "songs"));

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const max = (a: number[]) => Math.max(...a);
const row = (name: string, a: number[]) =>
  `| ${name} | ${median(a).toFixed(0)} | ${max(a).toFixed(0)} |`;

/**
 * A 48 kHz stereo device that starts at the first write and plays in real time from a 500 ms
 * ring (miniaudio's default here): a write waits while the ring is full, a short ring underruns.
 */
class SimulatedDevice implements PcmOutput {
  startedAt: number | undefined;
  #written = 0;
  #consumed = 0;
  #last = 0;

  #advance(now: number): void {
    if (this.startedAt === undefined) return;
    this.#consumed = Math.min(this.#written, this.#consumed + (now - this.#last) * 48);
    this.#last = now;
  }

  /** Media milliseconds heard so far. */
  heardMs(): number {
    this.#advance(performance.now());
    return this.#consumed / 48;
  }

  async write(pcm: Int16Array): Promise<void> {
    const frames = pcm.length / 2;
    const now = performance.now();
    if (this.startedAt === undefined) this.startedAt = this.#last = now;
    this.#advance(now);
    while (this.#written + frames - this.#consumed > 500 * 48) {
      await new Promise((r) => setTimeout(r, 5));
      this.#advance(performance.now());
    }
    this.#written += frames;
  }
}

// ---- UDP ----
const udpFirst: number[] = [];
const udpBehind: number[] = [];
{
  await using udp = UdpServer.start({
    catalog,
    hostname: "127.0.0.1",
    port: 0,
    log: EventLog.none(),
    signal: new AbortController().signal,
  });
  await new Promise((r) => setTimeout(r, 1500)); // into a song
  for (let i = 0; i < joins; i++) {
    const t0 = performance.now();
    const device = new SimulatedDevice();
    let firstTsMs: number | undefined;
    const behind: number[] = [];
    await listenRadio(udp.address, {
      signal: new AbortController().signal,
      log: EventLog.none(),
      maxSeconds: seconds,
      openOutput: () => Promise.resolve(device),
      onNotice: (n) => {
        if (n.type !== "progress") return;
        firstTsMs ??= n.progress.timestampUs / 1000;
        if (performance.now() - t0 < 1000) return;
        const liveMs = udp.station.clock!.samplesDue(performance.now()) / 48;
        behind.push(liveMs - (firstTsMs + device.heardMs()));
      },
    });
    const first = device.startedAt === undefined ? undefined : device.startedAt - t0;
    if (first !== undefined) udpFirst.push(first);
    if (behind.length > 0) udpBehind.push(median(behind));
  }
}

// ---- TLS ----
const tlsFirst: number[] = [];
const tlsBehind: number[] = [];
{
  const tmp = await Deno.makeTempDir({ prefix: "soundsock-bench-" });
  const certs = await createCertificates(join(tmp, "certs"));
  await using server = TlsSongServer.start({
    catalog,
    cert: await Deno.readTextFile(certs.serverCert),
    key: await Deno.readTextFile(certs.serverKey),
    port: 0,
  });
  const ca = [await Deno.readTextFile(certs.caCert)];
  await new Promise((r) => setTimeout(r, 1500));
  for (let i = 0; i < joins; i++) {
    const t0 = performance.now();
    using c = await TlsSongClient.connect({ hostname: "localhost", port: server.addr.port }, {
      caCerts: ca,
    });
    for await (const ev of c.radio()) {
      if (ev.type !== "data") continue;
      const now = performance.now();
      tlsFirst.push(now - t0);
      tlsBehind.push(server.station.clock!.samplesDue(now) / 48 - ev.timestampUs / 1000);
      break;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  await Deno.remove(tmp, { recursive: true });
}

say(`radio join, ${joins} joins each, Opus station, loopback (ms)`);
say("");
say("| measure | median | max |");
say("|---|---:|---:|");
say(row("UDP join → first sound (listenRadio, --buffer 200, device starts)", udpFirst));
say(row("UDP behind live, heard from a 500 ms-ring device", udpBehind));
say(row("TLS join → first sound (connect + TLS + request → first DATA)", tlsFirst));
say(row("TLS behind live (first DATA's timestamp vs the live edge)", tlsBehind));
