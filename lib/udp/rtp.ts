/**
 * Standard RTP output of the radio (`udp-server --rtp HOST:PORT`), so ffplay, ffmpeg and VLC
 * can listen without soundsock: RTP (RFC 3550) carrying the station stream itself, continuous
 * across every song whatever its file format:
 *
 * - the Opus station: Opus per RFC 7587 — one 20 ms Opus packet per RTP packet, dynamic payload
 *   type 96, 48 kHz RTP clock, SDP `a=rtpmap:96 opus/48000/2`;
 * - the PCM station: L16 (RFC 3551 §4.5.11, big-endian 16-bit), dynamic payload type 97,
 *   `a=rtpmap:97 L16/48000/2`.
 *
 * MPA (payload type 14, RFC 2250 — a 4-byte header, then whole MP3 frames, 90 kHz clock) is kept
 * for {@linkcode encodeRtpMpa} / {@linkcode mpaSdp}, the format the radio used when it relayed
 * MP3 files' own frames.
 *
 * @module
 */

import type { StationPacket } from "../media/station.ts";
import type { UdpAddress, UdpSocket } from "../net/udp_socket.ts";
import { type RadioCodec, splitOpusPayload } from "../station/encoder.ts";

/** RTP static payload type for MPEG audio (RFC 3551 table 4). */
export const RTP_PAYLOAD_MPA = 14;
/** RTP clock rate for MPA (RFC 3551). */
export const MPA_CLOCK_RATE = 90_000;
/** Dynamic payload type of the Opus feed (RFC 7587). */
export const RTP_PAYLOAD_OPUS = 96;
/** Dynamic payload type of the L16 stereo feed (PCM station). */
export const RTP_PAYLOAD_L16 = 97;
/** RTP clock of Opus (always 48 kHz, RFC 7587 §4.1) and of the 48 kHz L16 feed. */
export const STATION_CLOCK_RATE = 48_000;
const RTP_HEADER_SIZE = 12;
const MPA_HEADER_SIZE = 4;

/** Builds one RTP packet: the 12-byte header, then `payload` as is. */
export function encodeRtp(
  payloadType: number,
  sequence: number,
  timestamp: number,
  ssrc: number,
  payload: Uint8Array,
  marker = false,
): Uint8Array {
  const out = new Uint8Array(RTP_HEADER_SIZE + payload.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, 0x80); // V=2, P=0, X=0, CC=0
  view.setUint8(1, (marker ? 0x80 : 0) | payloadType);
  view.setUint16(2, sequence & 0xffff);
  view.setUint32(4, timestamp >>> 0);
  view.setUint32(8, ssrc >>> 0);
  out.set(payload, RTP_HEADER_SIZE);
  return out;
}

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

/**
 * The SDP of the station feed, for `ffplay -protocol_whitelist file,udp,rtp -i x.sdp`: Opus
 * (RFC 7587 §7: `opus/48000/2`, `stereo=1; sprop-stereo=1`) or L16 stereo at 48 kHz.
 */
export function stationSdp(destination: UdpAddress, sessionId: number, codec: RadioCodec): string {
  const ipv6 = destination.hostname.includes(":");
  const ip = ipv6 ? "IP6" : "IP4";
  const pt = codec === "opus" ? RTP_PAYLOAD_OPUS : RTP_PAYLOAD_L16;
  return [
    "v=0",
    `o=- ${sessionId} 1 IN ${ip} ${destination.hostname}`,
    "s=soundsock radio",
    `c=IN ${ip} ${destination.hostname}`,
    "t=0 0",
    `m=audio ${destination.port} RTP/AVP ${pt}`,
    codec === "opus" ? `a=rtpmap:${pt} opus/48000/2` : `a=rtpmap:${pt} L16/48000/2`,
    ...(codec === "opus" ? [`a=fmtp:${pt} stereo=1; sprop-stereo=1`, "a=ptime:20"] : []),
    "a=recvonly",
    "",
  ].join("\r\n");
}

/** Sends the station stream as RTP (Opus or L16) to one address. */
export class RtpSender {
  readonly #socket: UdpSocket;
  readonly #to: UdpAddress;
  readonly ssrc = crypto.getRandomValues(new Uint32Array(1))[0]!;
  #sequence = crypto.getRandomValues(new Uint16Array(1))[0]!;
  #base = crypto.getRandomValues(new Uint32Array(1))[0]!;
  /** RTP packets sent. */
  sent = 0;

  /** Creates a sender that uses `socket` (the server's) to reach `to`. */
  constructor(socket: UdpSocket, to: UdpAddress) {
    this.#socket = socket;
    this.#to = to;
  }

  /**
   * Sends one station packet: each Opus frame as its own RTP packet (RFC 7587), or the PCM as
   * L16 (byte-swapped to network order). The marker bit is set on the feed's first packet only
   * (the start of one continuous "talkspurt", RFC 7587 §4.2, RFC 3551 §4.1).
   */
  packet(p: StationPacket, codec: RadioCodec): void {
    // Station time (µs) → 48 kHz RTP clock from a random base (RFC 3550 §5.1); exact, since
    // station timestamps are floor(samples × 125 / 6).
    const start = Math.round(p.timestampUs * 6 / 125);
    if (codec === "opus") {
      let frames: Uint8Array[];
      try {
        frames = splitOpusPayload(p.payload);
      } catch {
        return;
      }
      frames.forEach((frame, i) => this.#send(RTP_PAYLOAD_OPUS, start + i * 960, frame));
      return;
    }
    const be = new Uint8Array(p.payload.length & ~1);
    for (let i = 0; i < be.length; i += 2) {
      be[i] = p.payload[i + 1]!;
      be[i + 1] = p.payload[i]!;
    }
    this.#send(RTP_PAYLOAD_L16, start, be);
  }

  #send(pt: number, samples: number, payload: Uint8Array): void {
    const first = this.sent === 0;
    const bytes = encodeRtp(pt, this.#sequence, this.#base + samples, this.ssrc, payload, first);
    this.#sequence = (this.#sequence + 1) & 0xffff;
    this.sent++;
    void this.#socket.send(bytes, this.#to);
  }
}
