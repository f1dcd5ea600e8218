/**
 * UDP amplification before return-address validation (issue 8 item 5, PROTOCOL.md §5.0): how
 * many bytes the real udp-server sends to an address that never echoes a cookie, per byte it
 * received from that address. Target: ≤ 3× (RFC 9000 §8.1).
 *
 *   deno run -A bench/udp_amplification.ts [--requests 30] [--rate 10] [--flood 2000]
 *
 * How: `deno run -A cmd/udp_server.ts --port 0` is spawned. For each attack, a fresh socket
 * sends `--requests` REQUESTs at `--rate` per second (well inside the 20/s per-IP budget, so
 * each one is answered), then listens 2 s more; what that socket receives is what a victim whose
 * address was forged would receive. A source address cannot be forged on loopback without raw
 * sockets, so the attacker's own socket stands in for the victim: the server cannot tell the
 * difference, because it sees only the claimed address. The flood row sends `--flood` REQUESTs
 * as fast as the server reads them (the per-IP budget answers 20 a second). The last row is the
 * reference: a client that does echo the cookie and joins the radio, over the same 3 s window,
 * which is what one forged REQUEST got a victim before soundsock/2 (issue: 106–848 KB).
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { encodeControl } from "../lib/wire/messages.ts";
import { encodeFrame, FrameType, frameTypeName } from "../lib/wire/frame.ts";
import { Lines, machineBusy, stopProcess } from "./_proc.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const args = parseArgs(Deno.args, { string: ["requests", "rate", "flood"] });
const REQUESTS = Number(args.requests ?? 30);
const RATE = Number(args.rate ?? 10);
const FLOOD = Number(args.flood ?? 2000);
/** The report on stdout (progress goes to stderr). */
const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
const progress = (line: string) => Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));

interface Row {
  attack: string;
  sent: number;
  bytesOut: number;
  received: number;
  bytesIn: number;
  types: Map<string, number>;
}

/** Receives everything on `conn` until `stop` resolves; returns the tally. */
function tally(conn: Deno.DatagramConn, row: Row, onFrame?: (d: Uint8Array) => void) {
  return (async () => {
    const buf = new Uint8Array(65536);
    for (;;) {
      let d: Uint8Array;
      try {
        [d] = await conn.receive(buf);
      } catch {
        return; // closed
      }
      row.received++;
      row.bytesIn += d.length;
      const name = d.length >= 4 ? frameTypeName(d[3]!) : "?";
      row.types.set(name, (row.types.get(name) ?? 0) + 1);
      onFrame?.(d);
    }
  })();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function attack(
  port: number,
  attack: string,
  frames: () => Uint8Array,
  count = REQUESTS,
  rate = RATE,
): Promise<Row> {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port };
  const row: Row = { attack, sent: 0, bytesOut: 0, received: 0, bytesIn: 0, types: new Map() };
  const done = tally(conn, row);
  for (let i = 0; i < count; i++) {
    const f = frames();
    await conn.send(f, to);
    row.sent++;
    row.bytesOut += f.length;
    if (rate > 0) await sleep(1000 / rate);
    else if (i % 50 === 49) await sleep(1); // let the server read, or the kernel drops them
  }
  await sleep(2000);
  conn.close();
  await done;
  return row;
}

/** A client that echoes the cookie and joins the radio: bytes it receives in 3 s. */
async function validatedJoin(port: number): Promise<Row> {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port };
  const row: Row = {
    attack: "reference: validated radio join (echoes the cookie), 3 s",
    sent: 0,
    bytesOut: 0,
    received: 0,
    bytesIn: 0,
    types: new Map(),
  };
  const send = async (f: Uint8Array) => {
    await conn.send(f, to);
    row.sent++;
    row.bytesOut += f.length;
  };
  const done = tally(conn, row, (d) => {
    if (d[3] === FrameType.CHALLENGE) {
      const { cookie } = JSON.parse(new TextDecoder().decode(d.subarray(32)));
      void send(encodeControl(FrameType.REQUEST, { op: "radio", cookie }));
    }
  });
  await send(encodeControl(FrameType.REQUEST, { op: "radio" }));
  await sleep(3000);
  conn.close();
  await done;
  return row;
}

const hex32 = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0"))
    .join("");

const server = new Deno.Command("deno", {
  args: ["run", "-A", "cmd/udp_server.ts", "--port", "0"],
  cwd: ROOT,
  stdin: "null",
  stdout: "null",
  stderr: "piped",
}).spawn();
const err = new Lines(server.stderr);
const rows: Row[] = [];
const m0 = machineBusy();
try {
  const line = await err.next((l) => l.includes("listening on"), 30_000, "udp-server to listen");
  const port = Number(/:(\d+) /.exec(line)?.[1]);
  await sleep(1000);
  const req = (body: object) => () => encodeControl(FrameType.REQUEST, body);
  const cases: [string, () => Uint8Array][] = [
    ["REQUEST radio, no cookie", req({ op: "radio" })],
    ["REQUEST song 1, no cookie", req({ op: "song", song: "1" })],
    ["REQUEST list, no cookie", req({ op: "list" })],
    ["REQUEST now_playing, no cookie", req({ op: "now_playing" })],
    ["REQUEST play (TLS-only op), no cookie", req({ op: "play", song: "1" })],
    ["REQUEST radio, forged cookie", () => req({ op: "radio", cookie: hex32() })()],
    [
      "REQUEST, invalid JSON",
      () => encodeFrame({ type: FrameType.REQUEST, payload: new TextEncoder().encode("{op") }),
    ],
    [
      "REQUEST, unknown op",
      () =>
        encodeFrame({ type: FrameType.REQUEST, payload: new TextEncoder().encode('{"op":"x"}') }),
    ],
    [
      "BYE / HEARTBEAT, no token",
      () => encodeFrame({ type: Math.random() < 0.5 ? FrameType.BYE : FrameType.HEARTBEAT }),
    ],
  ];
  for (const [name, make] of cases) {
    progress(`${name}…`);
    rows.push(await attack(port, name, make));
  }
  progress("flood…");
  rows.push(
    await attack(
      port,
      `flood: ${FLOOD} REQUEST radio, no cookie, at full speed`,
      req({ op: "radio" }),
      FLOOD,
      0,
    ),
  );
  progress("reference…");
  rows.push(await validatedJoin(port));
} finally {
  await stopProcess(server, progress);
}
const m1 = machineBusy();

const fmtTypes = (t: Map<string, number>) =>
  t.size === 0 ? "nothing" : [...t].map(([k, v]) => `${v} ${k}`).join(", ");
out(
  `Reproduce: deno run -A bench/udp_amplification.ts --requests ${REQUESTS} --rate ${RATE} --flood ${FLOOD}`,
);
out(
  `Machine busy during the run: ${Math.round((100 * (m1[0]! - m0[0]!)) / (m1[1]! - m0[1]!))} %\n`,
);
out(
  "| attack (from one address that never echoes a cookie) | sent | bytes sent | received | bytes received | factor | ≤ 3× |",
);
out("|---|---:|---:|---:|---:|---:|---|");
for (const r of rows) {
  const factor = r.bytesIn / r.bytesOut;
  const reference = r.attack.startsWith("reference");
  out(
    `| ${r.attack} | ${r.sent} | ${r.bytesOut} | ${fmtTypes(r.types)} | ${r.bytesIn} | ${
      factor.toFixed(2)
    }× | ${reference ? "(validated)" : factor <= 3 ? "met" : "MISSED"} |`,
  );
}
const attacks = rows.filter((r) => !r.attack.startsWith("reference"));
const all = attacks.reduce((a, r) => ({ i: a.i + r.bytesIn, o: a.o + r.bytesOut }), { i: 0, o: 0 });
out(
  `\nAll unvalidated traffic: ${all.i} bytes received for ${all.o} sent = ${
    (all.i / all.o).toFixed(2)
  }×; ` +
    `worst row ${Math.max(...attacks.map((r) => r.bytesIn / r.bytesOut)).toFixed(2)}×.`,
);
