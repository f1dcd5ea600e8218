/**
 * `tls-server` — serves songs over TLS (downloads with SHA-256) and runs a request radio.
 *
 * @module
 */

import { RADIO_FLAGS, radioSettings } from "../lib/cli/radio_flags.ts";
import {
  type CommandSpec,
  EventLog,
  ExitCode,
  runMain,
  startCommand,
  UsageError,
} from "../lib/cli/mod.ts";
import { accessLogger } from "../lib/cli/access_log.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import { IcecastSource, parseIcecastUrl } from "../lib/icecast/mod.ts";
import { loadServerIdentity } from "../lib/tls/pem_files.ts";
import { TlsSongServer } from "../lib/tls/server.ts";
import { loadNativeTls } from "../lib/tls/native/ffi.ts";
import { WebServer } from "../lib/web/server.ts";
import type { ServerConnection } from "../lib/tls/server_conn.ts";

/** Command-line declaration. */
export const SPEC = {
  name: "tls-server",
  summary: "Serve songs over TLS to many clients, and run a request radio.",
  usage: ["[--host 127.0.0.1] [--port 8443] [--songs songs] [--cert FILE] [--key FILE] [options]"],
  flags: {
    host: {
      type: "string",
      default: "127.0.0.1",
      valueName: "ADDR",
      description: "Listen address.",
    },
    port: {
      type: "number",
      default: 8443,
      min: 0,
      max: 65535,
      valueName: "PORT",
      description: "Listen port (0 = any free port).",
    },
    songs: {
      type: "string",
      default: "songs",
      valueName: "DIR",
      path: true,
      description: "Songs folder.",
    },
    cert: {
      type: "string",
      default: "certs/server.crt",
      valueName: "FILE",
      path: true,
      description: "Server certificate (PEM).",
    },
    key: {
      type: "string",
      default: "certs/server.key",
      valueName: "FILE",
      path: true,
      description: "Server private key (PEM).",
    },
    "max-clients": {
      type: "number",
      default: 64,
      min: 1,
      max: 100000,
      valueName: "N",
      description: "Clients served at once; more get REJECT server_full.",
    },
    "max-per-ip": {
      type: "number",
      default: 16,
      min: 0,
      max: 100000,
      valueName: "N",
      description:
        "Clients served at once from one IP address (0: no limit); more get REJECT busy.",
    },
    "idle-timeout": {
      type: "number",
      default: 30,
      min: 0.05,
      max: 86400,
      integer: false,
      valueName: "S",
      description:
        "Close a connection that sends no request (heartbeats do not count) or stops reading for S seconds.",
    },
    "handshake-timeout": {
      type: "number",
      default: 5,
      min: 0.05,
      max: 3600,
      integer: false,
      valueName: "S",
      description: "Time allowed for the TLS handshake; the socket is closed after it.",
    },
    "send-queue": {
      type: "number",
      default: 1024,
      min: 16,
      max: 1048576,
      valueName: "KIB",
      description: "Per-client send queue; a radio listener that fills it is dropped (too_slow).",
    },
    icecast: {
      type: "string",
      valueName: "URL",
      description: "Also publish the radio to an Icecast mount " +
        "(http://source:PASSWORD@HOST:PORT/MOUNT): a MOUNT ending in .mp3 gets MP3 with each " +
        "song's title, any other Ogg/Opus (needs --radio-codec opus).",
    },
    web: {
      type: "boolean",
      description: "Also serve the radio in a browser over HTTPS (page, /stream Ogg/Opus, " +
        "/status.json) with the same certificate, on the same port (or --web-port); " +
        "--max-clients and --max-per-ip bound its connections too.",
    },
    "web-port": {
      type: "number",
      min: 0,
      max: 65535,
      valueName: "PORT",
      description: "Serve --web on its own port instead of --port's (0 = any free port).",
    },
    "relay-fanout": {
      type: "number",
      min: 1,
      max: 64,
      valueName: "K",
      description: "Relay overlay: stream only to K relaying listeners (tls-client radio " +
        "--relay), each passes it on to up to K more (1: a chain); signed frames; prints who " +
        "relays to whom at each change.",
    },
    "ready-json": {
      type: "boolean",
      description:
        'When listening, print {"event":"ready","host","port","songs"} (and "webPort") on stdout.',
    },
    ...RADIO_FLAGS,
  },
  examples: [
    ["deno task certs && deno task tls-server", "serve songs/ on 127.0.0.1:8443"],
    ["deno task tls-server --host 0.0.0.0 --log server.log", "serve the LAN, log events"],
    [
      "deno task tls-server --icecast http://source:hackme@127.0.0.1:8000/radio.mp3",
      "also feed the radio to Icecast",
    ],
    ["deno task tls-server --relay-fanout 3", "listeners relay the radio (a tree, 3 per node)"],
  ],
  notes: [
    "Ready: once listening it prints 'tls-server listening on HOST:PORT (N songs)' on stderr " +
    "(and the --ready-json line on stdout). SIGINT/SIGTERM stop it cleanly (exit 0).",
  ],
} as const satisfies CommandSpec;

/** Entry point. */
export async function main(args: string[], signal: AbortSignal): Promise<number> {
  const { flags, out, helped } = startCommand(SPEC, args);
  if (helped) return ExitCode.OK;
  if (flags["web-port"] !== undefined && !flags.web) throw new UsageError("--web-port needs --web");
  const icecastUrl = flags.icecast === undefined ? undefined : parseIcecastUrl(flags.icecast);
  const radio = radioSettings(flags);
  const { cert, key } = await loadServerIdentity(flags.cert, flags.key);
  const catalog = await SongCatalog.open(flags.songs, { signal });
  for (const s of catalog.skipped) out.warn(`skipping ${s.name}: ${s.reason}`);
  if (catalog.songs.length === 0) {
    throw new Error(`No songs to serve in "${flags.songs}" (mp3, wav or flac files)`);
  }
  using log = await EventLog.openOptional(flags.log);
  log.observe(accessLogger(out));
  const icecast = icecastUrl &&
    new IcecastSource(icecastUrl, {
      signal,
      log: (event, fields) => log.event(event, fields),
      preSkip: () => server.station.lookahead,
    });
  // OpenSSL through our native library, else node:tls (printed after "listening", and in the log).
  const nativeTls = await loadNativeTls();
  const server = TlsSongServer.start({
    catalog,
    cert,
    key,
    nativeTls,
    hostname: flags.host,
    port: flags.port,
    maxClients: flags["max-clients"],
    maxClientsPerIp: flags["max-per-ip"],
    idleTimeoutMs: flags["idle-timeout"] * 1000,
    handshakeTimeoutMs: flags["handshake-timeout"] * 1000,
    sendQueueBytes: flags["send-queue"] * 1024,
    radioCodec: radio.radioCodec,
    bitrate: radio.bitrate,
    log,
    signal,
    // --web without --web-port: HTTPS on this port (what is not a soundsock frame is HTTP).
    ...(flags.web && flags["web-port"] === undefined
      ? { onHttp: (conn: ServerConnection) => web ? web.handle(conn) : conn.close() }
      : {}),
    ...(flags["relay-fanout"] === undefined ? {} : {
      relay: {
        fanout: flags["relay-fanout"],
        onOverlay: (lines: string[]) => out.info(lines.join("\n")),
      },
    }),
  });
  if (icecast) server.station.subscribe((event) => icecast.onStationEvent(event));
  const web = flags.web
    ? WebServer.start({
      station: server.station,
      program: server.program,
      catalog,
      tlsListeners: () => server.listeners,
      cert,
      key,
      nativeTls,
      hostname: flags.host,
      ...(flags["web-port"] === undefined ? { shared: server.addr } : { port: flags["web-port"] }),
      maxConnections: flags["max-clients"],
      maxConnectionsPerIp: flags["max-per-ip"],
      signal,
      log: (event, fields) => log.event(event, fields),
    })
    : undefined;
  const { hostname, port } = server.addr;
  if (radio.warning) out.warn(radio.warning);
  out.info(`tls-server listening on ${hostname}:${port} (${catalog.songs.length} songs)`);
  out.info(
    nativeTls.ok
      ? `tls-server: TLS by ${nativeTls.version}`
      : `tls-server: TLS by Deno's node:tls (OpenSSL not loaded: ${nativeTls.reason}); ` +
        "about twice the CPU per listener",
  );
  if (flags["ready-json"]) {
    out.stdout(
      JSON.stringify({
        event: "ready",
        host: hostname,
        port,
        songs: catalog.songs.length,
        ...(web ? { webPort: web.addr.port } : {}),
      }),
    );
  }
  if (icecast) out.info(`tls-server: publishing the radio to ${icecast.description}`);
  if (web) out.info(`tls-server: radio page on https://${hostname}:${web.addr.port}/`);
  await server.finished;
  await web?.finished;
  await icecast?.closed;
  out.info("tls-server stopped");
  return ExitCode.OK;
}

if (import.meta.main) await runMain(main, SPEC);
