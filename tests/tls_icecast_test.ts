import { assert, assertEquals } from "@std/assert";
import { fromFileUrl, join } from "@std/path";
import { IcecastSource, parseIcecastUrl } from "../lib/tls/icecast.ts";
import { startTestServer } from "./_tls_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const hasIcecast = await new Deno.Command("sh", {
  args: ["-c", "command -v icecast2 && command -v ffprobe"],
})
  .output().then((o) => o.success, () => false);

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** icecast2 on loopback with a generated config; as root it must drop privileges (changeowner). */
async function startIcecast(dir: string, port: number): Promise<Deno.ChildProcess> {
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

async function statusJson(port: number): Promise<{ icestats: { source?: { listenurl: string } } }> {
  const r = await fetch(`http://127.0.0.1:${port}/status-json.xsl`);
  return await r.json();
}

Deno.test({
  name: "tls radio → Icecast: the mount appears and its bytes decode as MP3",
  ignore: !hasIcecast,
  ...opts,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "soundsock-icecast-" });
    const port = freePort();
    const icecast = await startIcecast(dir, port);
    const stop = new AbortController();
    try {
      // Wait until Icecast answers (event: its HTTP port accepts), bounded.
      for (let i = 0;; i++) {
        try {
          await statusJson(port);
          break;
        } catch (error) {
          if (i > 100) throw error;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const events: string[] = [];
      const source = new IcecastSource(
        parseIcecastUrl(`http://source:hackme@127.0.0.1:${port}/radio.mp3`),
        { signal: stop.signal, log: (e) => events.push(e) },
      );
      await using t = await startTestServer(fromFileUrl(new URL("../songs", import.meta.url)), {
        onStationEvent: (e) => source.onStationEvent(e),
        // Only MP3 songs in the feed: skip to one if the first pick is WAV/FLAC.
        random: () => 0,
      });
      void t;
      let mount;
      for (let i = 0; i < 100 && !mount; i++) {
        mount = (await statusJson(port)).icestats.source;
        if (!mount) await new Promise((r) => setTimeout(r, 50));
      }
      assert(mount, "the /radio.mp3 mount did not appear");
      assertEquals(mount!.listenurl, `http://127.0.0.1:${port}/radio.mp3`);
      // Fetch ~2 s of the stream and let ffprobe decode it.
      const res = await fetch(`http://127.0.0.1:${port}/radio.mp3`);
      const reader = res.body!.getReader();
      const chunks: Uint8Array[] = [];
      let bytes = 0;
      while (bytes < 24_000) {
        const { value, done } = await reader.read();
        if (done) break;
        chunks.push(value);
        bytes += value.length;
      }
      await reader.cancel();
      const file = join(dir, "got.mp3");
      await Deno.writeFile(file, new Uint8Array(chunks.flatMap((c) => [...c])));
      const probe = await new Deno.Command("ffprobe", {
        args: ["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", file],
      }).output();
      assertEquals(new TextDecoder().decode(probe.stdout).trim(), "mp3");
      assert(events.includes("icecast_connected"));
    } finally {
      stop.abort();
      icecast.kill("SIGTERM");
      await icecast.status;
    }
  },
});
