/**
 * Hostile-input tests against a real tls-server process: descriptor exhaustion (accept
 * errors), slowloris floods of sockets that never finish the TLS handshake, and the per-address
 * connection cap. The server runs as its own process so its file descriptors can be counted
 * in /proc/PID/fd and limited with prlimit.
 *
 * @module
 */

import { assert, assertEquals, assertRejects } from "@std/assert";
import { delay } from "@std/async/delay";
import { join } from "@std/path";
import net from "node:net";
import { ServerRefusedError, TlsSongClient } from "../lib/tls/client.ts";
import {
  makeSongs,
  spawnTlsServer,
  startTestServer,
  testCerts,
  type TlsServerProcess,
} from "./_tls_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface ServerProcess extends TlsServerProcess, AsyncDisposable {
  log: string;
  /** A verified client. */
  connect(): Promise<TlsSongClient>;
}

async function spawnServer(args: string[], prlimit?: string[]): Promise<ServerProcess> {
  const songs = await makeSongs({ "a.wav": [1], "b.wav": [1] });
  const log = join(await Deno.makeTempDir({ prefix: "soundsock-flood-" }), "server.log");
  const server = await spawnTlsServer(songs, ["--log", log, ...args], { prlimit });
  const caCert = await Deno.readTextFile((await testCerts()).caCert);
  return {
    ...server,
    log,
    connect: () =>
      TlsSongClient.connect({ hostname: "localhost", port: server.port }, {
        caCerts: [caCert],
        timeoutMs: 5000,
      }),
    async [Symbol.asyncDispose]() {
      try {
        server.child.kill("SIGTERM");
      } catch { /* gone */ }
      await server.child.status;
    },
  };
}

/** Opens `n` TCP sockets from `localAddress` that send `prefix` (maybe nothing) and then wait. */
async function silentSockets(
  port: number,
  n: number,
  localAddress: string,
  prefix?: Uint8Array,
): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<void>((resolve) => {
        const s = net.connect({ host: "127.0.0.1", port, localAddress }, () => {
          if (prefix) s.write(prefix);
          resolve();
        });
        s.on("error", () => resolve());
        sockets.push(s);
      })),
  );
  return sockets;
}

/** Whether a client is served (connect + list) within `ms`, retrying every 100 ms. */
async function servedWithin(server: ServerProcess, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    try {
      using c = await server.connect();
      if ((await c.list()).length === 2) return true;
    } catch {
      await delay(100);
    }
  }
  return false;
}

async function logEvents(path: string): Promise<string[]> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l).event as string);
}

Deno.test(
  "hostile: accept errors (descriptors exhausted) do not stop tls-server; it serves again after the flood",
  opts,
  async () => {
    // The server waits 30 s for handshakes, so the flood really holds its descriptors.
    await using server = await spawnServer(["--handshake-timeout", "30"], ["--nofile=96"]);
    {
      using c = await server.connect();
      assertEquals((await c.list()).length, 2);
    }
    const flood = await silentSockets(server.port, 150, "127.0.0.2");
    let failed = false;
    for (let i = 0; i < 50 && !failed; i++) {
      await delay(100);
      failed = (await logEvents(server.log)).includes("accept_failed");
    }
    assert(failed, "the flood did not exhaust the server's descriptors (no accept_failed)");
    for (const s of flood) s.destroy();
    // Served again once the attacker is gone (accept backs off at most 1 s).
    assert(await servedWithin(server, 5000), "tls-server did not serve a client after the flood");
  },
);

Deno.test(
  "hostile: 300 sockets that never finish the TLS handshake: FDs back to baseline, a client connects during the flood",
  opts,
  async () => {
    const handshakeTimeoutS = 1;
    await using server = await spawnServer(["--handshake-timeout", String(handshakeTimeoutS)]);
    {
      using c = await server.connect();
      assertEquals((await c.list()).length, 2);
    }
    await delay(200);
    const baseline = server.fds();
    // Half never speak; half send the start of a TLS record and stall inside the ClientHello.
    const partial = new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]);
    const flood = [
      ...await silentSockets(server.port, 150, "127.0.0.2"),
      ...await silentSockets(server.port, 150, "127.0.0.3", partial),
    ];
    try {
      const started = performance.now();
      {
        using c = await server.connect();
        assertEquals((await c.list()).length, 2, "a legit client is served during the flood");
      }
      const connectMs = performance.now() - started;
      assert(connectMs < handshakeTimeoutS * 1000 * 5, `connect took ${connectMs} ms`);
      // Every flood socket is closed by the server within the handshake timeout + 2 s.
      let fds = server.fds();
      const deadline = performance.now() + handshakeTimeoutS * 1000 + 2000;
      while (fds > baseline && performance.now() < deadline) {
        await delay(100);
        fds = server.fds();
      }
      assert(fds <= baseline, `server holds ${fds} FDs, baseline ${baseline}`);
      // And the attacker's sockets really were closed by the server (EOF on this side).
      const closed = flood.filter((s) => s.readableEnded || s.destroyed).length;
      assertEquals(closed, flood.length);
    } finally {
      for (const s of flood) s.destroy();
    }
  },
);

Deno.test(
  "hostile: connections per IP are capped (REJECT busy); a freed slot is usable again",
  opts,
  async () => {
    await using server = await spawnServer(["--max-per-ip", "2"]);
    using a = await server.connect();
    using b = await server.connect();
    await a.list();
    await b.list();
    const refused = await assertRejects(async () => {
      using c = await server.connect();
      await c.list();
    }, ServerRefusedError);
    assertEquals(refused.code, "busy");
    assert(refused.message.includes("Too many connections from your address"), refused.message);
    a.close();
    assert(await servedWithin(server, 2000), "a slot freed by a leaving client is not usable");
  },
);

Deno.test(
  "hostile: handshakes over the per-IP cap are dropped oldest first, counted once as dropped",
  opts,
  async () => {
    const songs = await makeSongs({ "a.wav": [1] });
    await using t = await startTestServer(songs, {
      maxHandshakesPerIp: 2,
      handshakeTimeoutMs: 30_000,
    });
    // One at a time, so the server accepts them in this order.
    const flood: net.Socket[] = [];
    for (let i = 0; i < 5; i++) {
      flood.push(...await silentSockets(t.port, 1, "127.0.0.2"));
      for (let j = 0; j < 50 && t.server.stats.accepted < i + 1; j++) await delay(10);
    }
    try {
      for (let i = 0; i < 50 && t.server.stats.dropped < 3; i++) await delay(20);
      assertEquals(t.server.stats.dropped, 3);
      assertEquals(t.server.stats.handshakeFailures, 0, "a drop is not also a failed handshake");
      const drops = t.events.filter((e) => e.event === "drop_connection");
      assertEquals(drops.length, 3);
      assertEquals(t.events.filter((e) => e.event === "handshake_failed").length, 0);
      // The three oldest sockets were closed by the server; the two newest still wait.
      await delay(100);
      assertEquals(flood.map((s) => s.readableEnded || s.destroyed), [
        true,
        true,
        true,
        false,
        false,
      ]);
    } finally {
      for (const s of flood) s.destroy();
    }
  },
);
