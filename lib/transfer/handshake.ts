/**
 * The code check at the start of every connection (SPAKE2, RFC 9382): the sender is A, the
 * receiver B; the AAD is the receiver's TLS certificate fingerprint as each side sees it.
 *
 *     sender → receiver   PAKE     pA (65 bytes)
 *     receiver → sender   PAKE     pB (65) || confirmation of B (32)
 *     sender → receiver   CONFIRM  confirmation of A (32)      — or ERROR when B's was wrong
 *
 * A wrong code or a relay that terminates TLS (it must show its own certificate) fails both
 * confirmations, before the sender has sent a single name.
 *
 * @module
 */

import { type Channel, readFrame } from "./channel.ts";
import { encodeFrame, FrameType, jsonFrame, parseJson, peerMessage } from "./frames.ts";
import { CONFIRM_SIZE, macsEqual, passwordScalar, SHARE_SIZE, Spake2 } from "./spake2.ts";
import { TransferError, WrongCodeError } from "./errors.ts";

const IDS = { idA: "file-send sender", idB: "file-send receiver" };

/** The message both sides show for a failed confirmation. */
export const WRONG_CODE_MESSAGE =
  "the code does not match (or something between the two machines altered the connection)";

/** The receiver's message for a sender that left after its share without confirming. */
export const UNCONFIRMED_MESSAGE =
  "the sender left without confirming the code (counted as a wrong code)";

/** Runs the sender's side. @throws {WrongCodeError} */
export async function senderHandshake(
  channel: Channel,
  code: string,
  fingerprint: Uint8Array,
): Promise<void> {
  const spake = new Spake2("A", passwordScalar(code), { ...IDS, aad: fingerprint });
  await channel.write(encodeFrame(FrameType.PAKE, spake.share));
  const reply = await readFrame(channel);
  if (reply.type === FrameType.ERROR) {
    throw new TransferError(
      `the receiver refused: ${peerMessage(parseJson(reply.payload).message)}`,
    );
  }
  if (reply.type !== FrameType.PAKE || reply.payload.length !== SHARE_SIZE + CONFIRM_SIZE) {
    throw new TransferError("the receiver does not speak file-send v1");
  }
  let ok = false;
  let confirm: Uint8Array | undefined;
  try {
    const result = spake.finish(reply.payload.subarray(0, SHARE_SIZE));
    ok = macsEqual(result.expected, reply.payload.subarray(SHARE_SIZE));
    confirm = result.confirm;
  } catch {
    ok = false;
  }
  if (!ok || !confirm) {
    await channel.write(jsonFrame(FrameType.ERROR, { message: WRONG_CODE_MESSAGE }))
      .catch(() => {});
    throw new WrongCodeError(WRONG_CODE_MESSAGE);
  }
  await channel.write(encodeFrame(FrameType.CONFIRM, confirm));
}

/**
 * Runs the receiver's side. `beforeReply` runs after the sender's share arrived and before
 * the answer (the receiver's delay after wrong codes).
 *
 * @throws {WrongCodeError}
 */
export async function receiverHandshake(
  channel: Channel,
  code: string,
  fingerprint: Uint8Array,
  beforeReply?: () => Promise<void>,
): Promise<void> {
  const first = await readFrame(channel);
  if (first.type !== FrameType.PAKE || first.payload.length !== SHARE_SIZE) {
    throw new TransferError("the sender does not speak file-send v1");
  }
  await beforeReply?.();
  const spake = new Spake2("B", passwordScalar(code), { ...IDS, aad: fingerprint });
  let result;
  try {
    result = spake.finish(first.payload);
  } catch {
    await channel.write(jsonFrame(FrameType.ERROR, { message: WRONG_CODE_MESSAGE }))
      .catch(() => {});
    throw new WrongCodeError(WRONG_CODE_MESSAGE);
  }
  const reply = new Uint8Array(SHARE_SIZE + CONFIRM_SIZE);
  reply.set(spake.share);
  reply.set(result.confirm, SHARE_SIZE);
  await channel.write(encodeFrame(FrameType.PAKE, reply));
  // From here the sender holds B's confirmation and can test its guess against it: whatever
  // ends the connection now (a close, a bad frame, a timeout) counts as a wrong code, else a
  // guesser that hangs up instead of confirming would get unlimited, undelayed guesses.
  let answer;
  try {
    answer = await readFrame(channel);
  } catch {
    throw new WrongCodeError(UNCONFIRMED_MESSAGE);
  }
  if (answer.type === FrameType.CONFIRM && macsEqual(answer.payload, result.expected)) return;
  if (answer.type === FrameType.CONFIRM) {
    await channel.write(jsonFrame(FrameType.ERROR, { message: WRONG_CODE_MESSAGE }))
      .catch(() => {});
  }
  throw new WrongCodeError(WRONG_CODE_MESSAGE);
}
