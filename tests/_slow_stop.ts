/**
 * A tool for tests/cli_signal_test.ts whose clean stop takes 3 s: long enough to tell whether a
 * signal forced the exit (130) or the clean stop finished ("stopped", 0).
 *
 * @module
 */

import { runMain } from "../lib/cli/run.ts";
import { Output } from "../lib/cli/output.ts";
import { delay } from "@std/async/delay";

const out = new Output();
await runMain(async (_args, signal) => {
  out.info("ready");
  await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
  out.info("stopping");
  await delay(3000);
  out.info("stopped");
  return 0;
}, { name: "slow-stop", summary: "Stops slowly.", usage: [], flags: {}, examples: [] });
