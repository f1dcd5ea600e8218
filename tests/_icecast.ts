/**
 * Debian's icecast2 for tests: started on loopback with a generated config, and its
 * status-json.xsl.
 *
 * @module
 */

import { join } from "@std/path";

/** icecast2 and ffprobe are installed (the tests that need them are skipped otherwise). */
export const hasIcecast = await new Deno.Command("sh", {
  args: ["-c", "command -v icecast2 && command -v ffprobe"],
})
  .output().then((o) => o.success, () => false);

/** A free TCP port on 127.0.0.1 (closed again: icecast2 binds it). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** icecast2 on loopback with a generated config; as root it must drop privileges (changeowner). */
export async function startIcecast(dir: string, port: number): Promise<Deno.ChildProcess> {
  // After changeowner icecast runs as nobody: it must reach the log folder.
  await Deno.chmod(dir, 0o755);
  await Deno.mkdir(join(dir, "log"), { mode: 0o777 });
  await Deno.chmod(join(dir, "log"), 0o777);
  const root = Deno.uid() === 0;
  await Deno.writeTextFile(
    join(dir, "icecast.xml"),
    `<icecast>
  <location>test</location><admin>test@localhost</admin>
  <limits><sources>2</sources></limits>
  <authentication><source-password>hackme</source-password>
    <admin-user>admin</admin-user><admin-password>admin-pw</admin-password></authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>${port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <paths><basedir>/usr/share/icecast2</basedir><logdir>${dir}/log</logdir>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot></paths>
  <logging><errorlog>error.log</errorlog><loglevel>2</loglevel></logging>
  <security><chroot>0</chroot>${
      root ? "<changeowner><user>nobody</user><group>nogroup</group></changeowner>" : ""
    }</security>
</icecast>`,
  );
  return new Deno.Command("icecast2", {
    args: ["-c", join(dir, "icecast.xml")],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Icecast's status-json.xsl. */
export async function statusJson(
  port: number,
): Promise<{ icestats: { source?: { listenurl: string; title?: string } } }> {
  const r = await fetch(`http://127.0.0.1:${port}/status-json.xsl`);
  return await r.json();
}

/** Waits (bounded, ~10 s) until icecast2 answers status-json; resolves to its mount, if any. */
async function pollStatus<T>(port: number, pick: (s: Awaited<ReturnType<typeof statusJson>>) => T) {
  for (let i = 0; i < 200; i++) {
    try {
      const value = pick(await statusJson(port));
      if (value) return value;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

/** Waits until icecast2 answers at all. */
export async function waitForIcecast(port: number): Promise<void> {
  if (!(await pollStatus(port, () => true))) throw new Error("icecast2 did not come up");
}

/** Waits until icecast2 lists a source mount; returns it. */
export async function waitForMount(port: number): Promise<{ listenurl: string; title?: string }> {
  const mount = await pollStatus(port, (s) => s.icestats.source);
  if (!mount) throw new Error("the source mount did not appear in icecast2's status");
  return mount;
}

/** What one listener of a mount got (see {@linkcode listenToMount}). */
export interface MountListening {
  contentType: string | null;
  bytes: Uint8Array;
  /** The titles status-json showed while listening, in order, each change once. */
  titles: string[];
  /** Longest wait between two reads of the body (ms). */
  maxGapMs: number;
  /** How long the body was read (s). */
  seconds: number;
}

/** Listens to `http://127.0.0.1:PORT/MOUNT` for `ms`, polling the title every 250 ms. */
export async function listenToMount(port: number, mount: string, ms: number) {
  const res = await fetch(`http://127.0.0.1:${port}${mount}`);
  const reader = res.body!.getReader();
  const chunks: Uint8Array[] = [];
  const titles: string[] = [];
  let poll = true;
  const poller = (async () => {
    while (poll) {
      const title = await statusJson(port).then((s) => s.icestats.source?.title, () => "");
      if (title && titles.at(-1) !== title) titles.push(title);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const start = performance.now();
  let last = start;
  let maxGapMs = 0;
  while (performance.now() - start < ms) {
    const { value, done } = await reader.read();
    if (done) break;
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    chunks.push(value);
  }
  const seconds = (performance.now() - start) / 1000;
  await reader.cancel();
  poll = false;
  await poller;
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  const listening: MountListening = {
    contentType: res.headers.get("content-type"),
    bytes,
    titles,
    maxGapMs,
    seconds,
  };
  return listening;
}
