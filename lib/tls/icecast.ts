/**
 * Moved to lib/icecast/ (the Icecast output serves any transport); re-exported here.
 *
 * @module
 */

export { IcecastSource, type IcecastSourceOptions } from "../icecast/source.ts";
export { type IcecastUrl, parseIcecastUrl } from "../icecast/url.ts";
