/// <reference lib="dom" />
/**
 * Issue #14: the radio page in a real browser (Debian Chromium, headless, playwright-core).
 * The page trusts the server only through `ignoreHTTPSErrors` of this test's browser context.
 */

import { assert, assertEquals } from "@std/assert";
import { join } from "@std/path";
import { makeSongs } from "./_tls_helpers.ts";
import { launchChromium, startWebServer } from "./_web_helpers.ts";
import type { WebStatus } from "../lib/web/status.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "web page (shared port): play advances the audio element 5 s, request updates the queue, a repeat is refused",
  opts,
  async () => {
    const songs = await makeSongs({
      "a-first.wav": [40, 8000, 1],
      "b-second.wav": [40, 8000, 1],
      "c-third.wav": [40, 8000, 1],
    });
    // On the soundsock port itself, as `tls-server --web` does by default.
    await using s = await startWebServer(songs, {}, {}, { shared: true });
    const browser = await launchChromium();
    try {
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(e.message));
      await page.goto(`${s.origin}/`);
      await page.waitForSelector("button.request");
      // Now playing comes from the station.
      await page.waitForFunction(() => document.getElementById("title")!.textContent !== "—");

      await page.click("#play");
      await page.waitForFunction(
        () => {
          const a = document.getElementById("player") as HTMLAudioElement;
          return a.currentTime > 0;
        },
        undefined,
        { timeout: 20_000 },
      );
      const t0 = await page.evaluate(() =>
        (document.getElementById("player") as HTMLAudioElement).currentTime
      );
      await page.waitForFunction(
        (start) => {
          const a = document.getElementById("player") as HTMLAudioElement;
          if (a.error) throw new Error(`media error ${a.error.code}: ${a.error.message}`);
          return a.currentTime >= start + 5;
        },
        t0,
        { timeout: 20_000, polling: 200 },
      );
      const audio = await page.evaluate(() => {
        const a = document.getElementById("player") as HTMLAudioElement;
        return { error: a.error?.code ?? null, paused: a.paused, state: a.readyState };
      });
      assertEquals(audio.error, null);
      assertEquals(audio.paused, false);
      const listeners = await (await fetch(`${s.origin}/status.json`, { client: s.client }))
        .json() as WebStatus;
      assertEquals(listeners.listeners.web, 1);

      // Request a song that is neither playing nor queued.
      const status = await (await fetch(`${s.origin}/status.json`, { client: s.client }))
        .json() as WebStatus;
      const pick = status.songs.find((x) => x.title !== status.nowPlaying?.title)!.title;
      const button = page.locator(`button.request[data-song="${pick}"]`);
      await button.click();
      await page.waitForFunction(
        (t) =>
          [...document.querySelectorAll("#queue li")].some((li) => li.textContent!.startsWith(t)),
        pick,
      );
      await page.waitForFunction(
        (t) => document.getElementById("message")!.textContent === `Song ${t} has been requested!`,
        pick,
      );
      await button.click();
      await page.waitForFunction(() =>
        document.getElementById("message")!.textContent === "Song has already been requested"
      );
      assertEquals(await page.locator("#queue li").count(), 1);

      const dir = await Deno.makeTempDir({ prefix: "soundsock-web-" });
      const shot = join(dir, "page.png");
      await page.screenshot({ path: shot, fullPage: true });
      const png = await Deno.readFile(shot);
      assertEquals([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
      assert(png.length > 5000, `screenshot of ${png.length} bytes`);
      assertEquals(pageErrors, []);
      await context.close();
    } finally {
      await browser.close();
    }
  },
);
