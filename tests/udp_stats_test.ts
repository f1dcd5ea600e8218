/**
 * Command-level tests of udp-client's statistics: the real udp-server and udp-client entry
 * points on port 0, as a user runs them (issue #13 items 8 and 9).
 */
import { assert, assertEquals, assertGreater, assertLessOrEqual } from "@std/assert";
import { join } from "@std/path";
import { EventLog } from "../lib/cli/event_log.ts";
import { playSong } from "../lib/udp/client.ts";
import { statsJson } from "../lib/udp/reception_stats.ts";
import { FrameType } from "../lib/wire/frame.ts";
import { encodeControl, readAccept, readStreamInfo } from "../lib/wire/messages.ts";
import { spawnUdpServer, startLyingRelay, startServer as startUdpServer } from "./_udp_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };

/**
 * Runs udp-client; `interruptAfter` (ms after its "Playing" line) sends it SIGINT and
 * `onPlaying` runs when that line appears.
 */
async function runClient(
  args: string[],
  hooks: { onPlaying?: () => void; interruptAfterMs?: number } = {},
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cmd/udp_client.ts`, ...args, "--stats-json"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const stdout = new Response(child.stdout).text();
  let stderr = "";
  let playing = false;
  for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
    stderr += chunk;
    if (!playing && /^Playing /m.test(stderr)) {
      playing = true;
      hooks.onPlaying?.();
      if (hooks.interruptAfterMs !== undefined) {
        setTimeout(() => child.kill("SIGINT"), hooks.interruptAfterMs);
      }
    }
  }
  const { code } = await child.status;
  const out = await stdout;
  return { code, stderr, json: JSON.parse(out.trim().split("\n").at(-1)!) };
}

/** The row labels of the statistics table on stderr (and the column heads). */
function tableLabels(stderr: string): { rows: string[]; columns: string[] } {
  const lines = stderr.split("\n");
  const start = lines.findIndex((l) => l.startsWith("Reception statistics"));
  assert(start >= 0, stderr);
  const [head, ...body] = lines.slice(start + 1).filter((l) => l.startsWith("  "));
  return {
    columns: head!.trim().split(/\s+/),
    rows: body.map((l) => l.trim().split(/\s+/)[0]!),
  };
}

Deno.test(
  "udp-client --sim-reorder 20 on a real-time MP3 song observes reordering (held for packets, not ms)",
  opts,
  async () => {
    await using server = await spawnUdpServer();
    // ~4 s of song 1 (an MP3 packet every ~104 ms, more than any fixed hold of 50 ms).
    const r = await runClient(
      [`127.0.0.1:${server.port}`, "--song", "1", "--sim-reorder", "20", "--sim-seed", "3"],
      { interruptAfterMs: 4000 },
    );
    assertEquals(r.json.ended_by, "interrupted", r.stderr);
    assertGreater(r.json.injected.reordered, 0, r.stderr);
    assertGreater(r.json.reordered, 0, r.stderr);
    assertLessOrEqual(r.json.reordered, r.json.injected.reordered, r.stderr);
    // JSON keys are the table's labels; "injected" is the table's injected column.
    const { rows, columns } = tableLabels(r.stderr);
    assertEquals(columns, ["observed", "injected"]);
    assertEquals(Object.keys(r.json), [...rows, "injected"]);
    assertEquals(r.json.song, "01-morning-arpeggio.mp3");
    // Nothing unaccounted: every received packet was played, late, or is still buffered.
    assertEquals(
      r.json.received,
      r.json.played + r.json.late + r.json.still_buffered + r.json.overflowed,
    );
  },
);

Deno.test(
  "udp-client --radio --seconds 2 ends by seconds; JSON keys are the table's labels",
  opts,
  async () => {
    await using server = await spawnUdpServer();
    const r = await runClient([`127.0.0.1:${server.port}`, "--radio", "--seconds", "2"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.json.ended_by, "seconds", r.stderr);
    assertGreater(r.json.received, 0);
    assertEquals(Object.keys(r.json), tableLabels(r.stderr).rows);
    assertEquals(typeof r.json.loss_pct, "number");
    assertEquals(typeof r.json.song, "string");
    assert(r.json.song.length > 0, r.stderr);
  },
);

Deno.test(
  "udp-client: a song whose server is killed mid-stream counts the packets never sent as lost",
  opts,
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const log = join(dir, "client.log");
      await using server = await spawnUdpServer();
      const r = await runClient(
        [`127.0.0.1:${server.port}`, "--song", "1", "--timeout", "1", "--log", log],
        { onPlaying: () => setTimeout(() => server.kill(), 1500) },
      );
      assertEquals(r.code, 1, r.stderr);
      assertEquals(r.json.ended_by, "timeout", r.stderr);
      const events = (await Deno.readTextFile(log)).trim().split("\n").map((l) => JSON.parse(l));
      const info = events.find((e) => e.event === "stream_info");
      // expected is what STREAM_INFO announced, not the span of what arrived.
      assertEquals(r.json.expected, info.packets);
      assertGreater(r.json.received, 0);
      assertGreater(r.json.lost, 0);
      assertEquals(r.json.lost, r.json.expected - r.json.received);
      assertEquals(
        r.json.loss_pct,
        Math.round(10_000 * r.json.lost / r.json.expected) / 100,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "udp-client: a BYE from the server (with the session token) ends the song by server_bye with its reason; the rest is lost",
  opts,
  async () => {
    await using server = await startUdpServer({ intervalMs: 0 });
    let token: string | undefined;
    let announced: number | undefined;
    let sentBye = false;
    let forged = false;
    await using relay = startLyingRelay(server.address, (f, raw) => {
      if (f.type === FrameType.ACCEPT) token = readAccept(f).token;
      if (f.type === FrameType.STREAM_INFO) announced = readStreamInfo(f).packets;
      if (f.type !== FrameType.DATA) return sentBye ? [] : [raw];
      if (f.sequence === 10 && !forged) {
        // Without the token: ignored (anyone who saw the stream id could send it).
        forged = true;
        const bye = encodeControl(FrameType.BYE, { reason: "forged" }, { streamId: f.streamId });
        return [bye, raw];
      }
      if (f.sequence < 20) return [raw];
      if (sentBye) return [];
      sentBye = true;
      return [
        encodeControl(FrameType.BYE, { token, reason: "server stopping" }, {
          streamId: f.streamId,
        }),
      ];
    });
    const report = await playSong(relay.address, "1", {
      signal: new AbortController().signal,
      log: EventLog.none(),
      bufferMs: 100,
      timeoutMs: 3000,
    });
    assertEquals(report.ending, "server_bye");
    assertEquals(report.serverReason, "server stopping");
    assertEquals(report.received, 20);
    assertEquals(report.expected, announced);
    assertEquals(report.lost, announced! - 20);
    assertGreater(report.malformed, 0); // the forged BYE
    assertEquals(statsJson(report).ended_by, "server_bye (server stopping)");
  },
);

Deno.test(
  "udp-server stopped with Ctrl+C tells its listeners (BYE): the client ends by server_bye at once",
  opts,
  async () => {
    await using server = await spawnUdpServer();
    const r = await runClient([`127.0.0.1:${server.port}`, "--radio", "--timeout", "10"], {
      onPlaying: () => setTimeout(() => server.kill("SIGINT"), 1000),
    });
    // Told, not guessed: without the BYE this would end by timeout.
    assertEquals(r.json.ended_by, "server_bye (server stopping)", r.stderr);
  },
);
