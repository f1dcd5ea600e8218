/**
 * Standard RTP output of the radio (`udp-server --rtp HOST:PORT`), so ffplay, ffmpeg and VLC
 * can listen without soundsock: RTP (RFC 3550) carrying MPEG audio (payload type 14, RFC 2250
 * §3.5 — a 4-byte header, then whole MP3 frames) on a 90 kHz clock. PCM songs (from WAV or
 * FLAC files) are not sent on this feed: one RTP session carries one codec, and players
 * expect MPA from an MPA SDP; the log says when a song is left out.
 *
 * @module
 */

import type { EventLog } from "../cli/event_log.ts";
import type { StationPacket } from "../media/station.ts";
import type { StreamInfo } from "../wire/messages.ts";
import { formatAddress, type UdpAddress, type UdpSocket } from "../net/udp_socket.ts";

/** RTP static payload type for MPEG audio (RFC 3551 table 4). */
export const RTP_PAYLOAD_MPA = 14;
/** RTP clock rate for MPA (RFC 3551). */
export const MPA_CLOCK_RATE = 90_000;
const RTP_HEADER_SIZE = 12;
const MPA_HEADER_SIZE = 4;

/** Builds one RTP packet: 12-byte header, 4-byte MPA header (MBZ + fragment offset 0), frames. */
export function encodeRtpMpa(
  sequence: number,
  timestamp90k: number,
  ssrc: number,
  mp3Frames: Uint8Array,
  marker = false,
): Uint8Array {
  const out = new Uint8Array(RTP_HEADER_SIZE + MPA_HEADER_SIZE + mp3Frames.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, 0x80); // V=2, P=0, X=0, CC=0
  view.setUint8(1, (marker ? 0x80 : 0) | RTP_PAYLOAD_MPA);
  view.setUint16(2, sequence & 0xffff);
  view.setUint32(4, timestamp90k >>> 0);
  view.setUint32(8, ssrc >>> 0);
  // Bytes 12..15: MBZ (16 bits) and Frag_offset (16 bits) = 0: whole frames only.
  out.set(mp3Frames, RTP_HEADER_SIZE + MPA_HEADER_SIZE);
  return out;
}

/** The SDP that describes the feed, for `ffplay -protocol_whitelist file,udp,rtp -i x.sdp`. */
export function mpaSdp(destination: UdpAddress, sessionId: number): string {
  const ipv6 = destination.hostname.includes(":");
  const ip = ipv6 ? "IP6" : "IP4";
  return [
    "v=0",
    `o=- ${sessionId} 1 IN ${ip} ${destination.hostname}`,
    "s=soundsock radio",
    `c=IN ${ip} ${destination.hostname}`,
    "t=0 0",
    `m=audio ${destination.port} RTP/AVP ${RTP_PAYLOAD_MPA}`,
    `a=rtpmap:${RTP_PAYLOAD_MPA} MPA/${MPA_CLOCK_RATE}`,
    "a=recvonly",
    "",
  ].join("\r\n");
}

/** Sends the station's MP3 packets as RTP to one address. */
export class RtpSender {
  readonly #socket: UdpSocket;
  readonly #to: UdpAddress;
  readonly #log: EventLog;
  readonly ssrc = crypto.getRandomValues(new Uint32Array(1))[0]!;
  #sequence = crypto.getRandomValues(new Uint16Array(1))[0]!;
  #base = crypto.getRandomValues(new Uint32Array(1))[0]!;
  #enabled = false;
  /** RTP packets sent. */
  sent = 0;

  /** Creates a sender that uses `socket` (the server's) to reach `to`. */
  constructor(socket: UdpSocket, to: UdpAddress, log: EventLog) {
    this.#socket = socket;
    this.#to = to;
    this.#log = log;
  }

  /** A new song starts: only MP3 songs go out on the MPA feed. */
  songStart(info: StreamInfo): void {
    this.#enabled = info.codec === "mp3";
    if (!this.#enabled) {
      this.#log.event("rtp_skip", {
        song: info.title,
        codec: info.codec,
        to: formatAddress(this.#to),
      });
    }
  }

  /** Sends one station packet (whole MP3 frames). */
  packet(p: StationPacket): void {
    if (!this.#enabled) return;
    // Station time (µs) → 90 kHz RTP clock, from a random base (RFC 3550 §5.1).
    const ts = (this.#base + Math.round(p.timestampUs * 0.09)) >>> 0;
    const bytes = encodeRtpMpa(this.#sequence, ts, this.ssrc, p.payload, p.songStart);
    this.#sequence = (this.#sequence + 1) & 0xffff;
    this.sent++;
    void this.#socket.send(bytes, this.#to);
  }
}
