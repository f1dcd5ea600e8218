/**
 * Issue #14: `udp-client --report FILE.html` — a seeded lossy session's report has exactly one
 * loss mark per lost packet (the `--stats-json` count), is self-contained (nothing to fetch),
 * and opens in Chromium (screenshot taken).
 */

import { assert, assertEquals, assertGreater, assertMatch } from "@std/assert";
import { join } from "@std/path";
import { makeSongs } from "./_tls_helpers.ts";
import { launchChromium } from "./_web_helpers.ts";
import { spawnUdpServer } from "./_udp_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "udp-client --report: one loss mark per lost packet of a seeded --sim-loss 10 run; opens in Chromium",
  opts,
  async () => {
    const songs = await makeSongs({ "short.wav": [6, 8000, 1] });
    await using server = await spawnUdpServer(["--songs", songs]);
    const dir = await Deno.makeTempDir({ prefix: "soundsock-report-" });
    const report = join(dir, "session.html");
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}cmd/udp_client.ts`,
        `127.0.0.1:${server.port}`,
        "--song",
        "1",
        "--sim-loss",
        "10",
        "--sim-reorder",
        "5",
        "--sim-seed",
        "3",
        "-o",
        join(dir, "out.wav"),
        "--stats-json",
        "--report",
        report,
      ],
      env: { NO_COLOR: "1" },
      stdin: "null",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    const stats = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
    assertEquals(stats.ended_by, "end");
    assertGreater(stats.lost, 0);
    const html = await Deno.readTextFile(report);
    // One mark per lost packet, exactly.
    assertEquals(html.match(/<line class="lost"/g)?.length ?? 0, stats.lost);
    assertEquals(html.match(/<circle class="reordered"/g)?.length ?? 0, stats.reordered);
    assertEquals(html.match(/<rect class="gap"/g)?.length ?? 0, stats.concealed);
    // Self-contained: no URL to fetch (the only http is the SVG namespace).
    assertEquals(html.match(/(src|href)=/g), null);
    assertEquals(html.replaceAll("http://www.w3.org/2000/svg", "").match(/https?:/g), null);
    assertMatch(html, /<th>lost<\/th><td>\d+<\/td>/);

    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const requests: string[] = [];
      page.on("request", (r) => requests.push(r.url()));
      await page.goto(`file://${report}`);
      assertEquals(await page.locator("svg line.lost").count(), stats.lost);
      const box = await page.locator("svg").boundingBox();
      assert(box && box.width > 500 && box.height > 300, JSON.stringify(box));
      const shot = join(dir, "report.png");
      await page.screenshot({ path: shot, fullPage: true });
      const png = await Deno.readFile(shot);
      assertEquals([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
      assertEquals(requests, [`file://${report}`]);
    } finally {
      await browser.close();
    }
  },
);

Deno.test(
  "udp-client --report to a path that cannot be written fails at once with one line",
  opts,
  async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}cmd/udp_client.ts`,
        "127.0.0.1:9",
        "--song",
        "1",
        "--report",
        "/nonexistent-dir/x.html",
      ],
      env: { NO_COLOR: "1" },
      stdin: "null",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 1, stderr);
    assertMatch(stderr, /^error: Cannot write the report to "\/nonexistent-dir\/x\.html": /);
    assertEquals(stderr.trim().split("\n").length, 1, stderr);
  },
);
