/**
 * The key that per-address limits count under, for every server (UDP request budgets and
 * admission, TLS connection and handshake caps).
 *
 * @module
 */

/**
 * The key that request budgets and admission count under: the source IP, never its port (one
 * host can open any number of ports). IPv4 as dotted quad (`::ffff:a.b.c.d` mapped addresses
 * count as `a.b.c.d`); IPv6 as its /64 prefix, `2001:db8:0:1::/64`, since one host is usually
 * given a whole /64. Text that is not an IP address is returned as is.
 */
export function sourceKey(hostname: string): string {
  const host = hostname.replace(/%.*$/, "").toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  if (mapped) return mapped[1]!;
  if (!host.includes(":")) return host;
  const groups = expandIpv6(host);
  if (!groups) return host;
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/**
 * The eight 16-bit groups of an IPv6 address (`::`-compressed, an IPv4 tail allowed, no zone),
 * or undefined if it is not one.
 */
export function expandIpv6(host: string): number[] | undefined {
  let text = host;
  // An embedded IPv4 tail (::ffff:1.2.3.4 forms other than the mapped one above).
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const b = v4.slice(1).map(Number);
    if (b.some((x) => x > 255)) return undefined;
    text = text.slice(0, v4.index) +
      `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (s: string) => (s === "" ? [] : s.split(":"));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (fill < 0 || (halves.length === 1 && head.length !== 8)) return undefined;
  const all = [...head, ...Array(fill).fill("0"), ...tail];
  if (all.length !== 8 || all.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return all.map((g) => parseInt(g, 16));
}
