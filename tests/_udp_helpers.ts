/** Helpers for UDP tests: a server on port 0 over songs/, raw sockets, and WAV capture. */
import { EventLog } from "../lib/cli/event_log.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import { UdpServer, type UdpServerOptions } from "../lib/udp/server.ts";
import { decodeDatagram, type Frame, FrameType } from "../lib/wire/frame.ts";
import { encodeControl, readAccept, readChallenge } from "../lib/wire/messages.ts";
import type { UdpAddress } from "../lib/net/udp_socket.ts";
import type { PcmFormat } from "../lib/media/pcm_convert.ts";
import type { PcmOutput } from "../lib/udp/client.ts";

export const SONGS_DIR = new URL("../songs/", import.meta.url).pathname;

let catalog: Promise<SongCatalog> | undefined;
/** The real songs/ catalog, scanned once per test file. */
export function songsCatalog(): Promise<SongCatalog> {
  return catalog ??= SongCatalog.open(SONGS_DIR);
}

/** Starts a UDP server on 127.0.0.1:0; dispose stops it. */
export async function startServer(
  options: Partial<Omit<UdpServerOptions, "signal" | "log">> = {},
): Promise<UdpServer> {
  return UdpServer.start({
    catalog: await songsCatalog(),
    hostname: "127.0.0.1",
    port: 0,
    log: EventLog.none(),
    signal: new AbortController().signal,
    ...options,
  });
}

/**
 * A raw UDP socket for speaking the protocol by hand (or lying in it). Any 127.x.y.z works as
 * `hostname` on Linux loopback: a second source IP for per-IP tests.
 */
export function rawSocket(hostname = "127.0.0.1"): Deno.DatagramConn & Disposable {
  const conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  return Object.assign(conn, {
    [Symbol.dispose]() {
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  });
}

/** Receives frames on `sock` until `pred` accepts one, or rejects after `ms`. */
export async function receiveFrame(
  sock: Deno.DatagramConn,
  pred: (f: Frame) => boolean,
  ms = 3000,
): Promise<Frame> {
  const deadline = AbortSignal.timeout(ms);
  const buf = new Uint8Array(65536);
  while (!deadline.aborted) {
    const got = await Promise.race([
      sock.receive(buf),
      new Promise<null>((resolve) => deadline.addEventListener("abort", () => resolve(null))),
    ]);
    if (!got) break;
    try {
      const f = decodeDatagram(got[0], { maxPayload: 65000 });
      if (pred(f)) return { ...f, payload: f.payload.slice() };
    } catch {
      // not a frame: keep waiting
    }
  }
  throw new Error(`no matching frame within ${ms} ms`);
}

/** A PCM output that keeps everything in memory (what the listener "heard"). */
export class MemoryOutput implements PcmOutput {
  chunks: Int16Array[] = [];
  format: PcmFormat | undefined;
  write(pcm: Int16Array): Promise<void> {
    this.chunks.push(pcm.slice());
    return Promise.resolve();
  }
  /** All samples written. */
  samples(): Int16Array {
    const out = new Int16Array(this.chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** ffmpeg's decode of a file as interleaved s16le. */
export async function ffmpegDecode(path: string): Promise<Int16Array> {
  const out = await new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-i", path, "-f", "s16le", "-"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return new Int16Array(out.stdout.buffer, out.stdout.byteOffset, out.stdout.byteLength / 2);
}

/** Largest absolute sample difference (lengths must match). */
export function maxDiff(a: Int16Array, b: Int16Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/**
 * The UDP handshake by hand (docs/PROTOCOL.md §5.0): REQUEST, CHALLENGE, REQUEST with the
 * cookie, then the first answer that is not a CHALLENGE (ACCEPT, REJECT, SONG_LIST, ...).
 */
export async function handshake(
  sock: Deno.DatagramConn,
  server: UdpAddress,
  body: Record<string, unknown>,
): Promise<{ answer: Frame; cookie: string; token?: string; streamId: number }> {
  const to = { transport: "udp" as const, ...server };
  await sock.send(encodeControl(FrameType.REQUEST, body), to);
  const challenge = await receiveFrame(sock, (f) => f.type === FrameType.CHALLENGE);
  const { cookie } = readChallenge(challenge);
  await sock.send(encodeControl(FrameType.REQUEST, { ...body, cookie }), to);
  const answer = await receiveFrame(sock, (f) => f.type !== FrameType.CHALLENGE);
  const token = answer.type === FrameType.ACCEPT ? readAccept(answer).token : undefined;
  return { answer, cookie, ...(token ? { token } : {}), streamId: answer.streamId };
}

/** A relay between a client and a UDP server that may rewrite what flows; dispose stops it. */
export interface LyingRelay extends AsyncDisposable {
  /** Where the client sends (the relay's front socket). */
  address: UdpAddress;
}

/**
 * A UDP relay between a client and `server`: `lie` replaces each server datagram with its own
 * list of datagrams for the client (non-frames are forwarded as they are); `onUpstream` sees
 * each datagram the client sends, before it is forwarded.
 */
export function startLyingRelay(
  server: UdpAddress,
  lie: (frame: Frame, raw: Uint8Array) => Uint8Array[] | Promise<Uint8Array[]>,
  onUpstream?: (datagram: Uint8Array) => void,
): LyingRelay {
  const front = rawSocket(); // the client talks to this
  const back = rawSocket(); // the server sees this
  const to = { transport: "udp" as const, ...server };
  let client: Deno.NetAddr | undefined;
  const upstream = (async () => {
    for (;;) {
      const [data, from] = await front.receive();
      client = from as Deno.NetAddr;
      onUpstream?.(data.slice());
      await back.send(data, to);
    }
  })().catch(() => {});
  // Datagrams are taken off the socket at once and queued here, so a `lie` that holds one back
  // (a network pause) delays what follows without the kernel dropping it from a full socket
  // buffer (the server keeps up to its flow window in flight meanwhile).
  const queue: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  const receiving = (async () => {
    for (;;) {
      const [data] = await back.receive();
      queue.push(data.slice());
      wake?.();
    }
  })().catch(() => {
    wake?.();
  });
  const downstream = (async () => {
    for (;;) {
      if (queue.length === 0) {
        await new Promise<void>((resolve) => wake = resolve);
        wake = undefined;
        if (queue.length === 0) break; // the socket closed
        continue;
      }
      const data = queue.shift()!;
      if (!client) continue;
      let out: Uint8Array[] = [data];
      try {
        out = await lie(decodeDatagram(data, { maxPayload: 65000 }), data.slice());
      } catch { /* not a frame: forward as is */ }
      for (const d of out) await front.send(d, client);
    }
  })().catch(() => {});
  const addr = front.addr as Deno.NetAddr;
  return {
    address: { hostname: addr.hostname, port: addr.port },
    async [Symbol.asyncDispose]() {
      front.close();
      back.close();
      await Promise.all([upstream, receiving, downstream]);
    },
  };
}

/** A udp-server process feeding RTP (see {@linkcode startRtpServer}). */
export interface RtpServerProcess extends AsyncDisposable {
  /** The SDP file players open. */
  sdp: string;
}

/**
 * Starts `cmd/udp_server.ts --port 0 --songs SONGS --rtp 127.0.0.1:FREE --sdp DIR/radio.sdp`
 * (plus `extraArgs`); resolves once it says its RTP feed runs. Dispose stops it (SIGTERM).
 */
export async function startRtpServer(
  songs: string,
  dir: string,
  extraArgs: string[] = [],
): Promise<RtpServerProcess> {
  const probe = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const rtpPort = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const sdp = `${dir}/radio.sdp`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../cmd/udp_server.ts", import.meta.url).pathname]
      .concat(["--port", "0", "--songs", songs, "--rtp", `127.0.0.1:${rtpPort}`, "--sdp", sdp])
      .concat(extraArgs),
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* exited */ }
    await reader.cancel().catch(() => {});
    await child.status;
  };
  let text = "";
  while (!/RTP feed/.test(text)) {
    const { value, done } = await reader.read();
    if (done) {
      await stop();
      throw new Error(`udp-server exited: ${text}`);
    }
    text += value;
  }
  return { sdp, [Symbol.asyncDispose]: stop };
}

/** A `cmd/udp_server.ts` process (see {@linkcode spawnUdpServer}). */
export interface UdpServerProcess extends AsyncDisposable {
  port: number;
  /** Its process id (e.g. to stop and continue it). */
  pid: number;
  /** Everything it printed on stderr so far. */
  stderr(): string;
  /** Sends `signal` (default SIGKILL); dispose then only waits for the exit. */
  kill(signal?: Deno.Signal): void;
}

/**
 * Starts `cmd/udp_server.ts --port 0` (plus `args`) as a user runs it, from the repo root, and
 * resolves with its port once it prints "listening on". Dispose stops it with SIGINT and asserts
 * the documented clean stop (exit 0, "udp-server stopped:"), unless it was killed first.
 */
export async function spawnUdpServer(args: string[] = []): Promise<UdpServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../cmd/udp_server.ts", import.meta.url).pathname]
      .concat(["--port", "0"], args),
    cwd: new URL("../", import.meta.url).pathname,
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = AbortSignal.timeout(15_000);
  while (!/listening on [^ ]+:(\d+)/.test(text)) {
    if (deadline.aborted) throw new Error(`udp-server did not start: ${text}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`udp-server exited: ${text}`);
    text += value;
  }
  const port = Number(/listening on [^ ]+:(\d+)/.exec(text)![1]);
  const drain = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
  })();
  let killed = false;
  return {
    port,
    pid: child.pid,
    stderr: () => text,
    kill(signal: Deno.Signal = "SIGKILL") {
      killed = true;
      child.kill(signal);
    },
    async [Symbol.asyncDispose]() {
      if (!killed) child.kill("SIGINT");
      const status = await child.status;
      await drain;
      if (killed) return;
      if (status.code !== 0 || !text.includes("udp-server stopped:")) {
        throw new Error(`udp-server did not stop cleanly (exit ${status.code}): ${text}`);
      }
    },
  };
}
