/**
 * `HOST[:PORT]` as every tool takes it: `localhost`, `localhost:9000`, `192.168.1.5`,
 * `[::1]:9000`, `[::1]` or a bare IPv6 `::1`. The port may be left out where the tool has a
 * default (9000 for UDP, 8443 for TLS), so the tools read addresses the same way.
 *
 * @module
 */

/** A host name or address and a port. */
export interface HostPort {
  hostname: string;
  port: number;
}

/** A malformed `HOST[:PORT]`; the message says what was expected. */
export class HostPortError extends TypeError {
  /** Creates the error for the text given. */
  constructor(text: string, defaultPort?: number) {
    super(
      defaultPort === undefined
        ? `"${text}" is not HOST:PORT (for example localhost:9000 or [::1]:9000)`
        : `"${text}" is not HOST or HOST:PORT (for example localhost, localhost:${defaultPort} ` +
          `or [::1]:${defaultPort})`,
    );
    this.name = "HostPortError";
  }
}

/**
 * Parses `HOST[:PORT]`. Without a port, `defaultPort` is used; with no default the port is
 * required. Ports are 1–65535 (0 only when `allowPortZero`, for listening).
 *
 * @throws {HostPortError} when the text is not an address of that form.
 */
export function parseHostPort(
  text: string,
  defaultPort?: number,
  options: { allowPortZero?: boolean } = {},
): HostPort {
  const trimmed = text.trim();
  let hostname: string | undefined;
  let port: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(trimmed);
  if (bracket) [, hostname, port] = bracket;
  else if (/^[0-9a-f:.]+(%[\w.-]+)?$/i.test(trimmed) && (trimmed.match(/:/g) ?? []).length > 1) {
    hostname = trimmed; // a bare IPv6 address: no port (its colons would make one ambiguous)
  } else {
    const plain = /^([^:\[\]\s]+)(?::(\d{1,5}))?$/.exec(trimmed);
    if (plain) [, hostname, port] = plain;
  }
  const number = port === undefined ? defaultPort : Number(port);
  const lowest = options.allowPortZero ? 0 : 1;
  if (!hostname || number === undefined || number < lowest || number > 65535) {
    throw new HostPortError(text, defaultPort);
  }
  return { hostname, port: number };
}
