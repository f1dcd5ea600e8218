/**
 * The servers' access log: one line on stderr per client event, in the spirit of icecast's
 * access log — time, peer address, what happened:
 *
 * ```
 * 12:00:01 127.0.0.1:5555 join
 * 12:00:01 127.0.0.1:5555 request get "nocturne"
 * 12:00:02 127.0.0.1:5555 sent "Nocturne" 412345 bytes in 80 ms
 * 12:00:02 127.0.0.1:5556 request play "x.mp3" requested
 * 12:00:03 127.0.0.1:5557 refused busy
 * 12:00:09 127.0.0.1:5555 leave
 * ```
 *
 * It maps the events the servers already record for `--log` (see {@linkcode EventLog}) to
 * those lines; events that are not about one client (start, stop, song changes) print
 * nothing, and so do events without a peer address. Everything a peer chose (song names, error texts) is escaped with
 * {@linkcode escapePeerText}. `--quiet` silences it (it prints through {@linkcode Output.info}).
 *
 * @module
 */

import type { EventFields } from "./event_log.ts";
import { escapePeerText, type Output } from "./output.ts";

/** `"text"` with the peer's characters escaped and quotes inside shown as `\"`. */
function quoted(value: unknown): string {
  return `"${escapePeerText(String(value)).replaceAll('"', '\\"')}"`;
}

/** A bare word the server chose (an op, a code), escaped all the same. */
function word(value: unknown): string {
  return escapePeerText(String(value ?? "?"));
}

function requestLine(f: EventFields): string | undefined {
  switch (f.op) {
    case "play":
      return undefined; // the play_request event says it, with the result
    case "list":
      return f.offset ? `request list from ${word(f.offset)}` : "request list";
    case "song":
    case "get":
      return `request ${word(f.op)} ${quoted(f.song)}${f.offset ? ` from ${word(f.offset)}` : ""}`;
    default:
      return `request ${word(f.op)}`;
  }
}

/** ` (N so far)` for an event the server logs only now and then (first 100, every 1000th). */
function total(n: unknown): string {
  return typeof n === "number" && n > 1 ? ` (${n} so far)` : "";
}

/** Why a connection ended: the TLS server's close events (ERROR codes and close reasons). */
const TLS_ENDINGS: Record<string, string> = {
  timeout: "leave timeout",
  too_slow: "leave too_slow",
  shutdown: "leave shutdown",
  internal: "leave internal error",
  write_failed: "leave write failed",
  write_stalled: "leave stopped reading",
};

/**
 * The access-log text for one event (without time and peer), or `undefined` when the event
 * is not about a client. Covers the event names of lib/tls (session, acceptor) and lib/udp.
 */
export function describeAccessEvent(event: string, f: EventFields): string | undefined {
  const reason = f.reason === undefined ? "" : ` (${word(f.reason)})`;
  switch (event) {
    // Both servers.
    case "request":
      return requestLine(f);
    case "reject":
      return `refused ${word(f.code ?? f.reason)}`;
    case "not_found":
      return `not found ${quoted(f.song)}`;
    // TLS.
    case "connect":
      return "join";
    case "disconnect":
      return "leave";
    case "radio_join":
      return "join radio";
    case "radio_leave":
      return "leave radio";
    case "play_request":
      return `request play ${quoted(f.song)} ${word(f.result)}`;
    case "get_done":
      return `sent ${quoted(f.title)} ${word(f.bytes)} bytes in ${word(f.ms)} ms`;
    case "get_failed":
      return `error sending ${quoted(f.title)}: ${escapePeerText(String(f.error))}`;
    case "bad_request":
    case "bad_frame":
    case "read_failed":
    case "handshake_failed":
      return `error ${event.replace("_", " ")}: ${escapePeerText(String(f.error ?? f.message))}`;
    case "drop_connection":
      return `refused ${escapePeerText(String(f.reason))}`;
    // UDP.
    case "listener_join":
      return "join radio";
    case "listener_leave":
      return `leave radio${reason}`;
    case "stream_start":
      return `join song ${quoted(f.song)}`;
    case "stream_end":
      return `sent ${quoted(f.song)} ${word(f.packets)} packets, ${word(f.bytes)} bytes`;
    case "stream_stop":
      return `leave${reason}`;
    case "stream_error":
      return `error streaming ${quoted(f.song)}: ${escapePeerText(String(f.error))}`;
    case "forged":
      return `error forged ${word(f.type)}${reason}${total(f.total)}`;
    case "malformed":
      return `error malformed datagram${reason}${total(f.total)}`;
    default:
      return TLS_ENDINGS[event];
  }
}

/** `HH:MM:SS` in local time. */
function clock(date: Date): string {
  return [date.getHours(), date.getMinutes(), date.getSeconds()]
    .map((n) => String(n).padStart(2, "0"))
    .join(":");
}

/**
 * One whole access-log line for an event, or `undefined` when the event is not about a
 * client: `HH:MM:SS PEER TEXT`.
 */
export function formatAccessLine(
  event: string,
  fields: EventFields,
  now: Date = new Date(),
): string | undefined {
  // Events without a peer are the server's own (listening, shutdown, accept_failed).
  const peer = fields.remote ?? fields.from;
  if (peer === undefined) return undefined;
  const text = describeAccessEvent(event, fields);
  if (text === undefined) return undefined;
  // Throttled TLS events carry their running count.
  const count = fields.total === undefined ? total(fields.count) : "";
  return `${clock(now)} ${escapePeerText(String(peer))} ${text}${count}`;
}

/**
 * An event observer that prints the access log through `out` (nothing with `--quiet`):
 * pass it to `EventLog.observe` or a server's `onEvent`.
 */
export function accessLogger(out: Output): (event: string, fields: EventFields) => void {
  return (event, fields) => {
    const line = formatAccessLine(event, fields);
    if (line !== undefined) out.info(line);
  };
}
