/**
 * Minimal Deno UDP senders and a receiver: the "bare" peers the UDP benchmarks compare the real
 * server with. No soundsock code is used (but
 * the batch send primitive of `fanout --batch 1`): datagrams carry a frame-shaped header (magic `SK`,
 * type DATA at byte 3, sequence at bytes 12–15) so the benchmark's counters treat them exactly
 * like radio DATA, but nothing is checksummed or validated.
 *
 *   fanout  --ports-file F --rate R [--size 1200] [--seconds S]
 *       Every 1/R s, send one `size`-byte datagram to each 127.0.0.1 port listed in F (JSON
 *       array), from one socket — what the radio does, with nothing else.
 *       `--batch 1`: the same, but each round is one `sendmmsg(2)` batch through
 *       lib/net/udp_fanout.ts — the system call udp-server uses on Linux, with nothing else.
 *   flood   --port P --count C [--size 1232]
 *       Send C datagrams to 127.0.0.1:P as fast as `send()` resolves (awaited one by one, like
 *       any sender that respects socket back-pressure), then print a JSON line.
 *   sink    [--seconds S] [--idle-ms 500]
 *       Bind 127.0.0.1:0, print {"port"} and count datagrams and bytes until `idle-ms` of silence
 *       after the first one (or S seconds), then print a JSON line with the count and the
 *       first-to-last-datagram time.
 *
 * Used by bench/udp_fanout.ts and bench/udp_ondemand.ts; runnable alone.
 *
 * @module
 */

const [mode, ...rest] = Deno.args;
const opt = (name: string, dflt?: number): number => {
  const i = rest.indexOf(`--${name}`);
  const v = i >= 0 ? Number(rest[i + 1]) : dflt;
  if (v === undefined || !Number.isFinite(v)) throw new Error(`--${name} NUMBER is required`);
  return v;
};
const optString = (name: string): string => {
  const i = rest.indexOf(`--${name}`);
  if (i < 0 || rest[i + 1] === undefined) throw new Error(`--${name} VALUE is required`);
  return rest[i + 1]!;
};
const say = (obj: unknown) =>
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(obj) + "\n"));

/** A lib/net/udp_fanout.ts fan-out to `addrs` on its own socket (`fanout --batch 1`). */
async function batchSender(addrs: Deno.NetAddr[]) {
  const { UdpSocket } = await import("../lib/net/udp_socket.ts");
  const { UdpFanOut } = await import("../lib/net/udp_fanout.ts");
  const fanOut = new UdpFanOut(UdpSocket.bind("127.0.0.1", 0));
  if (!fanOut.batched) throw new Error("--batch 1: sendmmsg is not available here (Linux, -A)");
  addrs.forEach((a, i) => fanOut.add(String(i), a));
  return fanOut;
}

function datagram(size: number): Uint8Array {
  const d = new Uint8Array(size);
  d[0] = 0x53;
  d[1] = 0x4b;
  d[2] = 1;
  d[3] = 0x05; // DATA
  return d;
}

if (mode === "fanout") {
  const ports: number[] = JSON.parse(await Deno.readTextFile(optString("ports-file")));
  const rate = opt("rate");
  const seconds = opt("seconds", 3600);
  const d = datagram(opt("size", 1200));
  const view = new DataView(d.buffer);
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const addrs = ports.map((port) => ({ transport: "udp" as const, hostname: "127.0.0.1", port }));
  const batch = opt("batch", 0) ? await batchSender(addrs) : undefined;
  say({ event: "ready", listeners: addrs.length, rate, batched: batch !== undefined });
  const start = performance.now();
  let seq = 0;
  while (performance.now() - start < seconds * 1000) {
    view.setUint32(12, seq++);
    if (batch) batch.send(d);
    else for (const a of addrs) conn.send(d, a).catch(() => {});
    const due = start + (seq * 1000) / rate;
    await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
  }
  conn.close();
} else if (mode === "flood") {
  const port = opt("port");
  const count = opt("count");
  const d = datagram(opt("size", 1232));
  const view = new DataView(d.buffer);
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port };
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    view.setUint32(12, i);
    await conn.send(d, to);
  }
  const s = (performance.now() - t0) / 1000;
  say({ event: "sent", sent: count, seconds: s });
  conn.close();
} else if (mode === "sink") {
  const seconds = opt("seconds", 60);
  const idleMs = opt("idle-ms", 500);
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  say({ event: "ready", port: (conn.addr as Deno.NetAddr).port });
  const buf = new Uint8Array(65536);
  let received = 0, bytes = 0, first = 0, last = 0;
  const deadline = performance.now() + seconds * 1000;
  // Stop after `idle-ms` without a datagram (once one came), or at the deadline.
  const watchdog = setInterval(() => {
    const now = performance.now();
    if ((received > 0 && now - last > idleMs) || now > deadline) conn.close();
  }, 50);
  try {
    for (;;) {
      const [data] = await conn.receive(buf);
      last = performance.now();
      if (received === 0) first = last;
      received++;
      bytes += data.length;
    }
  } catch {
    // closed by the idle timer
  }
  clearInterval(watchdog);
  say({ event: "received", received, bytes, seconds: (last - first) / 1000 });
} else {
  throw new Error("usage: _bare_sender.ts fanout|flood|sink [options] (see the file header)");
}
