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
