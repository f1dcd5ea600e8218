/**
 * `tls-client radio --relay`: listens to the radio as a node of the server's relay overlay
 * ({@linkcode RelayNode}), playing the verified frames as `radio` does and passing them on to
 * the listeners the server assigns. Ctrl+C or `--seconds` leave gracefully (children are
 * handed to this node's parent first). At the end it prints the relay statistics.
 *
 * @module
 */

import { ExitCode } from "../cli/errors.ts";
import { announceOutput } from "../cli/audio_flags.ts";
import type { ClientContext } from "../tls/client_commands.ts";
import { formatNowPlaying } from "../tls/client_commands.ts";
import { Playback } from "../tls/playback.ts";
import type { StreamInfo } from "../wire/messages.ts";
import { RelayNode, type RelayNodeStats } from "./node.ts";

/** Options of {@linkcode relayRadioCommand}. */
export interface RelayRadioOptions {
  /** Relay listener port (0: any free one). @default {0} */
  port?: number;
  /** Address to bind and to announce to children. @default bind 0.0.0.0, announce what the server sees */
  host?: string;
}

/** One line summing up what the node did (printed at the end, logged as `relay_stats`). */
export function formatRelayStats(s: RelayNodeStats): string {
  const rec = s.recoveries.map((r) =>
    `${r.reason} #${r.from}→#${r.to === 0 ? "server" : r.to}: ${r.lostFrames} lost` +
    (r.waitMs === undefined ? "" : `, ${r.waitMs} ms between DATA`)
  );
  return `Relay: ${s.frames} frames verified, ${s.lostFrames} lost, ${s.forged} forged, ` +
    `${s.bytesToChildren} bytes forwarded` +
    (rec.length ? `; parent switches: ${rec.join("; ")}` : "; no parent switch");
}

/** Runs the relaying radio until Ctrl+C or `--seconds`; returns the exit status. */
export async function relayRadioCommand(
  ctx: ClientContext,
  options: RelayRadioOptions = {},
): Promise<number> {
  const { out } = ctx;
  const stop = new AbortController();
  const onAbort = () => stop.abort(ctx.signal.reason);
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  if (ctx.signal.aborted) onAbort();
  const a = ctx.audio;
  const limit = a.maxSeconds === undefined ? undefined : setTimeout(() => {
    stop.abort();
  }, a.maxSeconds * 1000);
  await using playback = new Playback({
    output: a.output,
    backend: a.backend,
    device: a.device,
    maxMs: a.maxSeconds === undefined ? undefined : a.maxSeconds * 1000,
    signal: stop.signal,
    onOpen: (description, silent, format) => announceOutput(out, description, silent, format),
  });
  let pendingInfo: StreamInfo | undefined;
  const node = await RelayNode.start(ctx.address, {
    connect: { ...ctx.connect, signal: ctx.signal },
    ...(options.host ? { listenHost: options.host, announceHost: options.host } : {}),
    listenPort: options.port ?? 0,
    onEvent: (event, fields) => {
      ctx.log.event(event, fields);
      if (event === "relay_switch" || event === "relay_forged") {
        out.info(`relay: ${event} ${JSON.stringify(fields)}`);
      }
    },
    onRadio: (event) => {
      if (event.type === "now_playing") {
        out.info(formatNowPlaying(event.nowPlaying));
        ctx.log.event("now_playing", { ...event.nowPlaying });
      } else if (event.type === "stream_info") {
        pendingInfo = event.info;
      } else if (event.type === "data") {
        if (pendingInfo) {
          playback.start(pendingInfo, event.songStart);
          pendingInfo = undefined;
        }
        playback.data(event.payload);
        if (playback.reachedLimit) stop.abort();
      }
    },
  });
  try {
    // A server that refuses (full, or no --relay-fanout) rejects this: exit 3 / 1, one line.
    const assign = await node.joined;
    out.info(
      `Relaying as node #${assign.node} on port ${node.addr.port}; parent ${
        assign.parent
          ? `#${assign.parent.node} ${assign.parent.host}:${assign.parent.port}`
          : "the server"
      }`,
    );
    ctx.log.event("relay_listening", { node: assign.node, port: node.addr.port });
    await Promise.race([
      node.finished,
      new Promise((r) => stop.signal.addEventListener("abort", r, { once: true })),
    ]);
    await node.leave();
  } finally {
    clearTimeout(limit);
    ctx.signal.removeEventListener("abort", onAbort);
    node.close();
  }
  ctx.log.event("relay_stats", {
    ...node.stats,
    recoveries: JSON.stringify(node.stats.recoveries),
  });
  out.info(formatRelayStats(node.stats));
  out.info("Radio stopped.");
  return ExitCode.OK;
}
