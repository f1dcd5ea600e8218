import { assert, assertEquals } from "@std/assert";
import { AF_INET, AF_INET6 } from "./_libc_udp.ts";
import { encodeSockaddr, UdpFanOut } from "./udp_fanout.ts";
import { UdpSocket } from "./udp_socket.ts";

const LINUX = Deno.build.os === "linux";

/** `count` receiving sockets on `hostname`, each collecting what it gets. */
function receivers(hostname: string, count: number) {
  return Array.from({ length: count }, () => {
    const socket = UdpSocket.bind(hostname, 0);
    const got: number[][] = [];
    const done = (async () => {
      const buffer = new Uint8Array(2048);
      for (;;) {
        const r = await socket.receive(buffer);
        if (!r) return;
        got.push([...r.data]);
      }
    })();
    const addr = { transport: "udp" as const, ...socket.address };
    return { socket, got, done, addr, key: `${addr.hostname}:${addr.port}` };
  });
}

/** Waits until `check` holds (at most 3 s). */
async function until(check: () => boolean): Promise<void> {
  const deadline = performance.now() + 3000;
  while (!check() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

async function closeAll(rs: ReturnType<typeof receivers>, sender: UdpSocket) {
  sender.close();
  for (const r of rs) r.socket.close();
  await Promise.all(rs.map((r) => r.done));
}

Deno.test("fan-out: every peer gets every round, byte for byte and in order (300 peers)", async () => {
  const sender = UdpSocket.bind("127.0.0.1", 0);
  const rs = receivers("127.0.0.1", 300);
  const fanOut = new UdpFanOut(sender);
  for (const r of rs) fanOut.add(r.key, r.addr);
  assertEquals(fanOut.size, 300);
  if (LINUX) assert(fanOut.batched, "on Linux rounds go through sendmmsg");
  const rounds = [1, 2, 3].map((n) => Uint8Array.from({ length: 1200 }, (_, i) => (i * n) & 255));
  for (const round of rounds) await fanOut.send(round);
  await until(() => rs.every((r) => r.got.length === 3));
  for (const r of rs) assertEquals(r.got, rounds.map((b) => [...b]));
  assertEquals(sender.sent, 900);
  assertEquals(sender.sendErrors, 0);
  await closeAll(rs, sender);
});

Deno.test("fan-out: a removed peer gets nothing more, and the peer moved into its slot still does", async () => {
  const sender = UdpSocket.bind("127.0.0.1", 0);
  const rs = receivers("127.0.0.1", 5);
  const fanOut = new UdpFanOut(sender);
  for (const r of rs) fanOut.add(r.key, r.addr);
  fanOut.delete(rs[1]!.key); // the last peer (4) moves into slot 1
  fanOut.delete(rs[3]!.key);
  fanOut.delete("not a peer");
  assertEquals(fanOut.size, 3);
  await fanOut.send(Uint8Array.of(7, 7, 7));
  await until(() => [0, 2, 4].every((i) => rs[i]!.got.length === 1));
  await new Promise((r) => setTimeout(r, 100));
  assertEquals(rs.map((r) => r.got.length), [1, 0, 1, 0, 1]);
  // Adding a present peer again does not send to it twice.
  fanOut.add(rs[4]!.key, rs[4]!.addr);
  await fanOut.send(Uint8Array.of(8));
  await until(() => rs[4]!.got.length === 2);
  await new Promise((r) => setTimeout(r, 100));
  assertEquals(rs.map((r) => r.got.length), [2, 0, 2, 0, 2]);
  await closeAll(rs, sender);
});

Deno.test("fan-out: a datagram the kernel refuses is counted and the round goes on", async () => {
  const sender = UdpSocket.bind("127.0.0.1", 0);
  const rs = receivers("127.0.0.1", 2);
  const fanOut = new UdpFanOut(sender);
  fanOut.add(rs[0]!.key, rs[0]!.addr);
  fanOut.add("port zero", { transport: "udp", hostname: "127.0.0.1", port: 0 }); // EINVAL
  fanOut.add(rs[1]!.key, rs[1]!.addr);
  await fanOut.send(Uint8Array.of(1, 2, 3));
  await until(() => rs.every((r) => r.got.length === 1));
  assertEquals(rs.map((r) => r.got), [[[1, 2, 3]], [[1, 2, 3]]]);
  assertEquals(sender.sent, 2);
  assertEquals(sender.sendErrors, 1);
  await closeAll(rs, sender);
});

Deno.test("fan-out: IPv6 peers on an IPv6 socket", async () => {
  let sender: UdpSocket;
  try {
    sender = UdpSocket.bind("::1", 0);
  } catch {
    return; // no IPv6 loopback on this machine
  }
  const rs = receivers("::1", 3);
  const fanOut = new UdpFanOut(sender);
  for (const r of rs) fanOut.add(r.key, r.addr);
  if (LINUX) assert(fanOut.batched);
  await fanOut.send(Uint8Array.of(6));
  await until(() => rs.every((r) => r.got.length === 1));
  assertEquals(rs.map((r) => r.got), [[[6]], [[6]], [[6]]]);
  await closeAll(rs, sender);
});

Deno.test("fan-out: a closed socket has no file descriptor to send on", () => {
  const socket = UdpSocket.bind("127.0.0.1", 0);
  if (LINUX) assert(socket.nativeFd() !== undefined);
  socket.close();
  assertEquals(socket.nativeFd(), undefined);
});

Deno.test("encodeSockaddr: IPv4, IPv6, IPv4-mapped; scoped and mismatched addresses refused", () => {
  const out = new DataView(new ArrayBuffer(28));
  const bytes = () => [...new Uint8Array(out.buffer)];
  const at = (hostname: string, port = 0x2328) => ({ transport: "udp" as const, hostname, port });
  assertEquals(encodeSockaddr(AF_INET, at("127.1.2.3"), out, 0), 16);
  assertEquals(bytes().slice(0, 16), [2, 0, 0x23, 0x28, 127, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
  assertEquals(encodeSockaddr(AF_INET6, at("2001:db8::1"), out, 0), 28);
  assertEquals(bytes().slice(0, 4), [10, 0, 0x23, 0x28]);
  assertEquals(bytes().slice(8, 24), [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  assertEquals(encodeSockaddr(AF_INET6, at("10.0.0.1"), out, 0), 28);
  assertEquals(bytes().slice(8, 24), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
  assertEquals(encodeSockaddr(AF_INET, at("::1"), out, 0), undefined);
  assertEquals(encodeSockaddr(AF_INET6, at("fe80::1%eth0"), out, 0), undefined);
  assertEquals(encodeSockaddr(AF_INET, at("300.1.1.1"), out, 0), undefined);
  assertEquals(encodeSockaddr(AF_INET6, at("1::2::3"), out, 0), undefined);
});

Deno.test("fan-out: without FFI permission every peer still gets every round (send() each)", async () => {
  const module = new URL("./udp_fanout.ts", import.meta.url).href;
  const socketModule = new URL("./udp_socket.ts", import.meta.url).href;
  const rs = receivers("127.0.0.1", 20);
  const script = `
    import { UdpFanOut } from "${module}";
    import { UdpSocket } from "${socketModule}";
    const ports = ${JSON.stringify(rs.map((r) => r.addr.port))};
    const socket = UdpSocket.bind("127.0.0.1", 0);
    const fanOut = new UdpFanOut(socket);
    ports.forEach((port, i) => fanOut.add(String(i), { transport: "udp", hostname: "127.0.0.1", port }));
    await fanOut.send(Uint8Array.of(4, 2));
    console.log(JSON.stringify({ batched: fanOut.batched, sent: socket.sent }));
    socket.close();
  `;
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/no_ffi.ts`;
    await Deno.writeTextFile(file, script);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--unstable-net",
        "--config",
        new URL("../../deno.json", import.meta.url).pathname,
        "--allow-net",
        "--allow-read",
        "--no-check",
        file,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    assertEquals(JSON.parse(new TextDecoder().decode(out.stdout)), { batched: false, sent: 20 });
    await until(() => rs.every((r) => r.got.length === 1));
    for (const r of rs) assertEquals(r.got, [[4, 2]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
    for (const r of rs) r.socket.close();
    await Promise.all(rs.map((r) => r.done));
  }
});
