/**
 * The `--sim-*` flags both udp-server (send side) and udp-client (receive side) take.
 *
 * @module
 */

import type { FlagSpec } from "../cli/flags.ts";
import { UsageError } from "../cli/errors.ts";
import { Impairment, parseDelay } from "./impairment.ts";

const pct = (what: string) =>
  ({
    type: "number",
    integer: false,
    min: 0,
    max: 100,
    default: 0,
    valueName: "PCT",
    description: `Simulate network trouble: ${what} this percentage of packets.`,
  }) as const;

/** Impairment flags. */
export const SIM_FLAGS = {
  "sim-loss": pct("drop"),
  "sim-reorder": {
    ...pct("reorder"),
    description: "Simulate network trouble: reorder this percentage of packets (each is held " +
      "back until the next 1–3 packets, drawn from --sim-seed, have passed it).",
  },
  "sim-dup": pct("duplicate"),
  "sim-delay": {
    type: "string",
    valueName: "MS[±JITTER]",
    description: "Simulate delay: MS fixed plus up to JITTER random ms (e.g. 40±15).",
  },
  "sim-seed": {
    type: "number",
    default: 1,
    min: 0,
    max: 0xffffffff,
    description: "Seed for the simulation's random choices (same seed, same choices).",
  },
} as const satisfies Record<string, FlagSpec>;

/** Builds the impairment the flags ask for, or undefined if none. */
export function impairmentFromFlags(flags: {
  "sim-loss": number;
  "sim-reorder": number;
  "sim-dup": number;
  "sim-delay": string | undefined;
  "sim-seed": number;
}): Impairment | undefined {
  let delay = { delayMs: 0, jitterMs: 0 };
  if (flags["sim-delay"] !== undefined) {
    try {
      delay = parseDelay(flags["sim-delay"]);
    } catch (error) {
      throw new UsageError(`--sim-delay: ${(error as Error).message}`);
    }
  }
  const impairment = new Impairment({
    lossPct: flags["sim-loss"],
    reorderPct: flags["sim-reorder"],
    dupPct: flags["sim-dup"],
    ...delay,
    seed: flags["sim-seed"],
  });
  return impairment.active ? impairment : undefined;
}
