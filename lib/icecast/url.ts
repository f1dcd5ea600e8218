/**
 * The `--icecast` URL of the Icecast source client.
 *
 * @module
 */

import { UsageError } from "../cli/errors.ts";

/** A parsed `--icecast` URL. */
export interface IcecastUrl {
  hostname: string;
  port: number;
  mount: string;
  user: string;
  password: string;
}

/**
 * Parses `http://USER:PASSWORD@HOST:PORT/MOUNT` (user defaults to `source`).
 *
 * @throws {UsageError} for anything else.
 */
export function parseIcecastUrl(text: string): IcecastUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(
      `--icecast: "${text}" is not a URL (http://source:PASSWORD@HOST:PORT/MOUNT)`,
    );
  }
  if (url.protocol !== "http:") throw new UsageError("--icecast: only http:// URLs are supported");
  if (url.pathname.length < 2) {
    throw new UsageError("--icecast: the URL needs a mount, e.g. /radio.opus");
  }
  if (!url.password) throw new UsageError("--icecast: the URL needs the source password");
  return {
    hostname: url.hostname.replace(/^\[|\]$/g, ""),
    port: Number(url.port || 8000),
    mount: url.pathname,
    user: decodeURIComponent(url.username || "source"),
    password: decodeURIComponent(url.password),
  };
}
