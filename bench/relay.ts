/**
 * Relay overlay benchmark (issue #12): server egress with N listeners served directly vs a
 * relay chain (K = 1) vs a tree (K = 3); added latency per hop; recovery after a crash, a hang
 * and a graceful leave. In-process listeners (RelayNode) on loopback, the real defaults
 * (1 s signed windows, 1.5 s silence timeout).
 *
 *   deno run -A bench/relay.ts [--listeners 100] [--seconds 8] [--trials 10]
 *   deno run -A bench/relay.ts --cpu [--listeners 100] [--seconds 8]
 *
 * `--cpu` runs the real tls-server as its own process (direct, --relay-fanout 1, 3) and reports
 * its CPU (/proc) with N listeners in this process.
 *
 * Egress is the stream bytes the server writes into TLS (frame bytes, before TLS overhead), per
 * second of the measurement.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { RelayNode } from "../lib/relay/node.ts";
import { makeSongs, startTestServer, testCerts, type TestServer } from "../tests/_tls_helpers.ts";
import { TlsSongClient } from "../lib/tls/client.ts";
import { Lines, sampleProcess, stopProcess } from "./_proc.ts";

const args = parseArgs(Deno.args, {
  string: ["listeners", "seconds", "trials"],
  boolean: ["cpu"],
});
const N = Number(args.listeners ?? 100);
const SECONDS = Number(args.seconds ?? 8);
const TRIALS = Number(args.trials ?? 10);

/** Every listener comes from 127.0.0.1: no per-address limit. */
const LIMITS = { maxClients: 10_000, maxClientsPerIp: 0 };
const songs = await makeSongs({ "a.wav": [120, 48000, 2], "b.wav": [120, 48000, 2] });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

interface Node {
  node: RelayNode;
  /** performance.now() at which each DATA sequence was played. */
  arrivals: Map<number, number>;
}

async function joinNode(t: TestServer): Promise<Node> {
  const arrivals = new Map<number, number>();
  const node = await RelayNode.start({ hostname: "localhost", port: t.port }, {
    connect: { caCerts: [t.caCert] },
    listenHost: "127.0.0.1",
    onRadio: (e) => {
      if (e.type === "data") arrivals.set(e.sequence, performance.now());
    },
  });
  await node.joined;
  return { node, arrivals };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function direct(): Promise<number> {
  await using t = await startTestServer(songs, LIMITS);
  let bytes = 0;
  let counting = false;
  const clients = [];
  const stop = new AbortController();
  for (let i = 0; i < N; i++) {
    const c = await t.connect();
    clients.push(c);
    void (async () => {
      try {
        for await (const e of c.radio(stop.signal)) {
          if (counting && e.type === "data") bytes += 32 + e.payload.length;
        }
      } catch { /* stopped */ }
    })();
  }
  await sleep(1500);
  counting = true;
  await sleep(SECONDS * 1000);
  counting = false;
  stop.abort();
  for (const c of clients) c.close();
  return bytes / SECONDS;
}

async function overlay(fanout: number) {
  await using t = await startTestServer(songs, { ...LIMITS, relay: { fanout } });
  await t.server.relay!.ready();
  const nodes: Node[] = [];
  for (let i = 0; i < N; i++) nodes.push(await joinNode(t));
  await sleep(2500);
  const hub = t.server.relay!;
  const s0 = hub.stats.streamBytes;
  const fromServer0 = nodes.reduce((n, x) => n + x.node.stats.bytesFromServer, 0);
  await sleep(SECONDS * 1000);
  const egress = (hub.stats.streamBytes - s0) / SECONDS;
  const fromServer = (nodes.reduce((n, x) => n + x.node.stats.bytesFromServer, 0) - fromServer0) /
    SECONDS;
  // Latency by depth: arrival at a node minus arrival at a depth-1 node, for the same DATA.
  const ref = nodes.find((n) => hub.overlay.depth(n.node.node!) === 1)!;
  const byDepth = new Map<number, number[]>();
  for (const n of nodes) {
    const d = hub.overlay.depth(n.node.node!);
    for (const [seq, at] of n.arrivals) {
      const r = ref.arrivals.get(seq);
      if (r === undefined || d === 1) continue;
      (byDepth.get(d) ?? byDepth.set(d, []).get(d)!).push((at - r) / (d - 1));
    }
  }
  const depth = Math.max(...nodes.map((n) => hub.overlay.depth(n.node.node!)));
  const perHop = [...byDepth.values()].flat();
  const lost = nodes.reduce((n, x) => n + x.node.stats.lostFrames, 0);
  for (const n of nodes) n.node.close();
  return {
    egress,
    fromServer,
    depth,
    perHopMs: median(perHop),
    maxPerHopMs: Math.max(...perHop),
    lost,
  };
}

/** Kill / hang / leave the middle node of a chain of 5; the time until its child plays again. */
async function recovery(kind: "crash" | "hang" | "leave") {
  const resume: number[] = [];
  const stall: number[] = [];
  const lostFrames: number[] = [];
  await using t = await startTestServer(songs, { ...LIMITS, relay: { fanout: 1 } });
  for (let trial = 0; trial < TRIALS; trial++) {
    const nodes: Node[] = [];
    for (let i = 0; i < 5; i++) nodes.push(await joinNode(t));
    await sleep(2200 + Math.random() * 1000);
    const victim = nodes[2]!;
    const child = nodes[3]!;
    // The next DATA the child would have got: its parent's newest + 1.
    const before = Math.max(...child.arrivals.keys());
    const lost0 = child.node.stats.lostFrames;
    const t0 = performance.now();
    if (kind === "crash") victim.node.close();
    else if (kind === "hang") victim.node.freeze();
    else void victim.node.leave();
    // Audio resumes when the child has a DATA beyond what it had, from its new parent.
    for (;;) {
      await sleep(5);
      const after = [...child.arrivals].filter(([s, at]) => s > before && at > t0);
      if (after.length && child.node.parent !== victim.node.node) {
        const [seq, at] = after.reduce((m, x) => (x[0] < m[0] ? x : m));
        resume.push(at - t0);
        // How much later than the head of the chain the child got that frame: the stall a
        // listener with no more buffer than one window would hear.
        stall.push(at - (nodes[0]!.arrivals.get(seq) ?? at));
        break;
      }
      if (performance.now() - t0 > 10_000) {
        resume.push(Infinity);
        stall.push(Infinity);
        break;
      }
    }
    await sleep(1200);
    lostFrames.push(child.node.stats.lostFrames - lost0);
    for (const n of nodes) n.node.close();
    await sleep(300);
  }
  return {
    medianMs: Math.round(median(resume)),
    maxMs: Math.round(Math.max(...resume)),
    stallMedianMs: Math.round(median(stall)),
    stallMaxMs: Math.round(Math.max(...stall)),
    lostMedian: median(lostFrames),
    lostMax: Math.max(...lostFrames),
  };
}

const enc = new TextEncoder();
/** One result line on stdout. */
const say = (line: string) => Deno.stdout.writeSync(enc.encode(line + "\n"));
const kbs = (b: number) => `${(b / 1024).toFixed(1)} KiB/s`;

/** Server CPU (% of one core) of the real tls-server with N listeners: direct or relayed. */
async function serverCpu(fanout: number | undefined): Promise<number> {
  const certs = await testCerts();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../cmd/tls_server.ts", import.meta.url).pathname,
      "--port",
      "0",
      "--ready-json",
      "--quiet",
      "--songs",
      songs,
      "--cert",
      certs.serverCert,
      "--key",
      certs.serverKey,
      "--max-clients",
      "10000",
      "--max-per-ip",
      "0",
      ...(fanout === undefined ? [] : ["--relay-fanout", String(fanout)]),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const ready = JSON.parse(
      await new Lines(child.stdout).next((l) => l.includes('"ready"'), 30_000, "ready"),
    );
    const address = { hostname: "localhost", port: ready.port as number };
    const ca = [await Deno.readTextFile(certs.caCert)];
    const stop = new AbortController();
    const nodes: RelayNode[] = [];
    const clients: TlsSongClient[] = [];
    for (let i = 0; i < N; i++) {
      if (fanout === undefined) {
        const c = await TlsSongClient.connect(address, { caCerts: ca });
        clients.push(c);
        void (async () => {
          try {
            for await (const _ of c.radio(stop.signal)) { /* count nothing */ }
          } catch { /* stopped */ }
        })();
      } else {
        const n = await RelayNode.start(address, {
          connect: { caCerts: ca },
          listenHost: "127.0.0.1",
        });
        await n.joined;
        nodes.push(n);
      }
    }
    await sleep(2500);
    const a = sampleProcess(child.pid).cpuS;
    await sleep(SECONDS * 1000);
    const b = sampleProcess(child.pid).cpuS;
    stop.abort();
    for (const c of clients) c.close();
    for (const n of nodes) n.close();
    return (b - a) / SECONDS * 100;
  } finally {
    await stopProcess(child, say);
  }
}

if (args.cpu) {
  say(`relay bench --cpu: N=${N}, ${SECONDS} s measured (server process CPU, % of one core)`);
  for (const [name, k] of [["direct", undefined], ["chain", 1], ["tree K=3", 3]] as const) {
    say(`${name}: tls-server ${(await serverCpu(k)).toFixed(1)} % CPU`);
  }
  Deno.exit(0);
}
say(`relay bench: N=${N}, ${SECONDS} s measured, ${TRIALS} recovery trials`);
const d = await direct();
say(`direct: server egress ${kbs(d)} (${kbs(d / N)} per listener)`);
for (const k of [1, 3]) {
  const r = await overlay(k);
  say(
    `${k === 1 ? "chain" : `tree K=${k}`}: server egress ${kbs(r.egress)} (${
      (r.egress / d * 100).toFixed(2)
    } % of direct; signed stream per direct child ${kbs(r.egress / k)} = ${
      (r.egress / k / (d / N) * 100 - 100).toFixed(2)
    } % over unsigned), depth ${r.depth}, added latency per hop median ${
      r.perHopMs.toFixed(2)
    } ms (max ${r.maxPerHopMs.toFixed(1)}), lost frames ${r.lost}`,
  );
}
for (const kind of ["leave", "crash", "hang"] as const) {
  const r = await recovery(kind);
  say(
    `recovery after ${kind}: next DATA at the child median ${r.medianMs} ms, max ${r.maxMs} ms ` +
      `after the event; it came later than at the chain's head by median ${r.stallMedianMs} ms, ` +
      `max ${r.stallMaxMs} ms; ` +
      `lost DATA frames median ${r.lostMedian}, max ${r.lostMax}`,
  );
}
