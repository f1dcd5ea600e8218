/**
 * Radio join time: how long from connecting to tls-server (TCP + TLS handshake + `radio`
 * request) until the first DATA frame, and how far behind live that first audio is.
 *
 *   deno run -A bench/tls_radio_join.ts [JOINS=20]
 *
 * Behind live: a joining listener first receives the last `joinBurstMs` (400 ms) of packets
 * already sent, so its first audio is at most 400 ms (plus one packet) behind live, by
 * construction of the Station.
 *
 * @module
 */

import { fromFileUrl, join } from "@std/path";
import { createCertificates } from "../lib/tls/certs.ts";
import { TlsSongClient } from "../lib/tls/client.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import { TlsSongServer } from "../lib/tls/server.ts";

function say(t: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(t + "\n"));
}

const joins = Number(Deno.args[0] ?? 20);
const root = fromFileUrl(new URL("../", import.meta.url));
const tmp = await Deno.makeTempDir({ prefix: "soundsock-bench-" });
const certs = await createCertificates(join(tmp, "certs"));
await using server = TlsSongServer.start({
  catalog: await SongCatalog.open(join(root, "songs")),
  cert: await Deno.readTextFile(certs.serverCert),
  key: await Deno.readTextFile(certs.serverKey),
  port: 0,
});
const ca = [await Deno.readTextFile(certs.caCert)];
const firstData: number[] = [];
await new Promise((r) => setTimeout(r, 1500)); // let the station get into a song
for (let i = 0; i < joins; i++) {
  const t0 = performance.now();
  using c = await TlsSongClient.connect({ hostname: "localhost", port: server.addr.port }, {
    caCerts: ca,
  });
  for await (const ev of c.radio()) {
    if (ev.type === "data") {
      firstData.push(performance.now() - t0);
      break;
    }
  }
  await new Promise((r) => setTimeout(r, 150));
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const max = (a: number[]) => Math.max(...a);
say(`radio join over TLS, ${joins} joins (ms): connect+handshake+request → first DATA`);
say(`  median ${med(firstData).toFixed(1)}, max ${max(firstData).toFixed(1)}`);
say(
  `  first audio is at most the join burst (400 ms, StationOptions.joinBurstMs) behind live`,
);
await Deno.remove(tmp, { recursive: true });
