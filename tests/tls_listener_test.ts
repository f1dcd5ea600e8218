/**
 * The native TCP listener of tls-server (lib/tls/tcp_listener.ts) and the acceptor over it
 * (lib/tls/acceptor.ts): a busy port is an error at once, host names fall back to
 * `Deno.listen`, a verified client completes its handshake natively, and a peer that half-closes
 * in the middle of its handshake is dropped at once (not at the handshake timeout).
 *
 * @module
 */

import { assert, assertEquals, assertInstanceOf, assertThrows } from "@std/assert";
import tls from "node:tls";
import { type AcceptStats, acceptTls } from "../lib/tls/acceptor.ts";
import type { ServerConnection } from "../lib/tls/server_conn.ts";
import { listenTcp, NativeTcpListener } from "../lib/tls/tcp_listener.ts";
import { testCerts } from "./_tls_helpers.ts";

async function secureContext(): Promise<{ context: tls.SecureContext; caCert: string }> {
  const certs = await testCerts();
  return {
    context: tls.createSecureContext({
      cert: await Deno.readTextFile(certs.serverCert),
      key: await Deno.readTextFile(certs.serverKey),
    }),
    caCert: await Deno.readTextFile(certs.caCert),
  };
}

Deno.test("tcp listener: an IP address listens natively; a busy port throws AddrInUse", () => {
  const first = listenTcp({ hostname: "127.0.0.1", port: 0 });
  try {
    assertInstanceOf(first, NativeTcpListener);
    assertEquals(first.addr.hostname, "127.0.0.1");
    assert(first.addr.port > 0);
    assertThrows(
      () => listenTcp({ hostname: "127.0.0.1", port: first.addr.port }),
      Deno.errors.AddrInUse,
    );
  } finally {
    first.close();
  }
});

Deno.test("tcp listener: localhost listens natively on 127.0.0.1", () => {
  const l = listenTcp({ hostname: "localhost", port: 0 });
  try {
    assertInstanceOf(l, NativeTcpListener);
    assertEquals(l.addr.hostname, "127.0.0.1");
  } finally {
    l.close();
  }
});

Deno.test(
  "acceptor on the native listener: a verified client is served; a peer that half-closes mid-handshake is dropped at once",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const { context, caCert } = await secureContext();
    const listener = listenTcp({ hostname: "127.0.0.1", port: 0 });
    assertInstanceOf(listener, NativeTcpListener);
    const stop = new AbortController();
    const stats: AcceptStats = { accepted: 0, handshakeFailures: 0, dropped: 0, acceptErrors: 0 };
    const failures: string[] = [];
    let failed!: () => void;
    const failure = new Promise<void>((r) => (failed = r));
    const conns: ServerConnection[] = [];
    const accepting = acceptTls(listener, {
      secureContext: context,
      signal: stop.signal,
      // Only the peer's FIN can end the second handshake before this (then: "no TLS handshake").
      handshakeTimeoutMs: 10_000,
      maxPendingPerIp: 64,
      maxPending: 256,
      log: (event, fields) => {
        if (event === "handshake_failed") {
          failures.push(String(fields.error));
          failed();
        }
      },
      onConnection: (conn) => {
        conns.push(conn);
        void (async () => {
          const buf = new Uint8Array(64);
          const n = await conn.read(buf);
          if (n !== null) await conn.write(buf.slice(0, n)); // echo once
        })();
      },
    }, stats);
    try {
      // A verified client: handshake, echo.
      const client = await Deno.connectTls({
        hostname: "localhost",
        port: listener.addr.port,
        caCerts: [caCert],
      });
      await client.write(new TextEncoder().encode("ping"));
      const buf = new Uint8Array(16);
      const n = await client.read(buf);
      assertEquals(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "ping");
      assertEquals(conns[0]?.protocol, "TLSv1.3");
      client.close();

      // The start of a ClientHello, then FIN.
      const peer = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
      await peer.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]));
      await peer.closeWrite();
      await failure;
      assertEquals(failures, ["the peer closed the connection during the handshake"]);
      // The server closed its socket: the peer reads the end of the stream.
      assertEquals(await peer.read(new Uint8Array(16)), null);
      peer.close();
      assertEquals(stats.accepted, 2);
      assertEquals(stats.handshakeFailures, 1);
    } finally {
      for (const c of conns) c.close();
      stop.abort();
      await accepting;
    }
  },
);
