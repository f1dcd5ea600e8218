/**
 * mic-broadcast's engine: one {@linkcode LiveStation} (captured and encoded once) served by a
 * udp-server and/or a tls-server radio, whose ordinary listeners (`udp-client --radio`,
 * `tls-client radio`) play it. The servers bring their admission rules (REJECT when full,
 * validated UDP addresses, tokens, heartbeat timeouts, bounded send queues) unchanged.
 *
 * @module
 */

import type { EventLog } from "../cli/event_log.ts";
import type { HostPort } from "../net/host_port.ts";
import { SongCatalog } from "../songs/catalog.ts";
import type { RadioCodec } from "../station/encoder.ts";
import { TlsSongServer } from "../tls/server.ts";
import { UdpServer } from "../udp/server.ts";
import { LiveStation } from "./live_station.ts";
import type { LiveSource } from "./sources.ts";

/** Options of {@linkcode startBroadcast}. */
export interface BroadcastOptions {
  /** What is captured (owned by the broadcast from now on). */
  source: LiveSource;
  /** @default {"opus"} */
  codec?: RadioCodec;
  /** Opus frame (ms). @default {10} */
  frameMs?: 10 | 20;
  /** Opus bitrate (bit/s). */
  bitrate?: number;
  /** Serve UDP listeners here (port 0: any free port). */
  udp?: HostPort;
  /** Serve TLS listeners here, with this certificate and key (PEM). */
  tls?: HostPort & { cert: string; key: string };
  /** Most listeners per server; more get REJECT server_full. @default {32} */
  maxListeners?: number;
  /** Most listeners from one IP per server (0: no limit). @default {16} */
  maxPerIp?: number;
  /** UDP: drop a listener silent this long (ms). @default {10000} */
  heartbeatTimeoutMs?: number;
  /** Event log. */
  log: EventLog;
  /** Stops everything. */
  signal: AbortSignal;
  /** Called once if Opus fell back to PCM. */
  onFallback?: (reason: string) => void;
}

/** A running broadcast. */
export interface Broadcast {
  station: LiveStation;
  udp: UdpServer | undefined;
  tls: TlsSongServer | undefined;
  /** Resolves when the station and the servers have stopped (the source ended, or aborted). */
  finished: Promise<void>;
}

/** A catalog with no songs: a broadcast serves only its live radio. */
async function emptyCatalog(): Promise<SongCatalog> {
  const dir = await Deno.makeTempDir({ prefix: "soundsock-live-" });
  try {
    return await SongCatalog.open(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Starts the station and the servers asked for (at least one).
 *
 * @throws {RangeError} neither `udp` nor `tls`
 * @throws {ListenError} / {@linkcode ServerIdentityError} from the servers
 */
export async function startBroadcast(options: BroadcastOptions): Promise<Broadcast> {
  if (!options.udp && !options.tls) throw new RangeError("Give --udp HOST:PORT and/or --tls");
  const stop = new AbortController();
  const signal = AbortSignal.any([options.signal, stop.signal]);
  const { log } = options;
  const station = new LiveStation({
    source: options.source,
    codec: options.codec,
    frameMs: options.frameMs,
    bitrate: options.bitrate,
    maxPayload: 1200,
    signal,
    onFallback: (reason) => {
      log.event("radio_codec_fallback", { reason });
      options.onFallback?.(reason);
    },
  });
  const catalog = await emptyCatalog();
  const maxClients = options.maxListeners ?? 32;
  const maxClientsPerIp = options.maxPerIp ?? 16;
  let udp: UdpServer | undefined;
  let tls: TlsSongServer | undefined;
  try {
    udp = options.udp && UdpServer.start({
      catalog,
      hostname: options.udp.hostname,
      port: options.udp.port,
      maxClients,
      maxClientsPerIp,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      station,
      log,
      signal,
    });
    tls = options.tls && TlsSongServer.start({
      catalog,
      cert: options.tls.cert,
      key: options.tls.key,
      hostname: options.tls.hostname,
      port: options.tls.port,
      maxClients,
      maxClientsPerIp,
      // Small writes: one live packet (10–20 ms) each.
      radioMaxPayload: 1200,
      station,
      log,
      signal,
    });
  } catch (error) {
    stop.abort();
    await udp?.finished;
    await options.source[Symbol.asyncDispose]();
    throw error;
  }
  log.event("broadcast_start", {
    source: options.source.description,
    codec: options.codec ?? "opus",
    frameMs: options.frameMs ?? 10,
    channels: options.source.channels,
  });
  const finished = (async () => {
    try {
      await station.run();
    } finally {
      // The source ended (or failed): the servers stop too.
      stop.abort();
      await Promise.allSettled([udp?.finished, tls?.finished]);
      log.event("broadcast_stop", { ...station.stats });
    }
  })();
  return { station, udp, tls, finished };
}
