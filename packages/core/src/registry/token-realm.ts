import { BlockList, isIP } from 'node:net';
import { RegistryError } from '../errors.js';
import { isLoopbackHost } from './image-ref.js';

/** Link-local addresses: where cloud metadata services answer (169.254.169.254, AWS's fd00:ec2::254 apart). */
const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4');
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6');
// 169.254.0.0/16 through the NAT64 prefix.
LINK_LOCAL.addSubnet('64:ff9b::a9fe:0', 112, 'ipv6');

/** The EC2 instance metadata service over IPv6 (Nitro instances): a unique-local address, named alone. */
const METADATA_V6 = new BlockList();
METADATA_V6.addAddress('fd00:ec2::254', 'ipv6');

/** "This host" addresses: a connection to one reaches this machine (Linux connects 0.0.0.0 to it). */
const UNSPECIFIED = new BlockList();
UNSPECIFIED.addSubnet('0.0.0.0', 8, 'ipv4');
UNSPECIFIED.addAddress('::', 'ipv6');

/**
 * Why a token realm (or a redirect of the token request) on `url` is not fetched for `registry`,
 * or undefined when it may be. A registry's 401 can name any URL as its realm, and prebuilt GETs it
 * with the registry's credentials: refused are link-local hosts (169.254.0.0/16, fe80::/10 — cloud
 * metadata services, which hand out the machine's own cloud credentials), AWS's fd00:ec2::254,
 * unspecified addresses (0.0.0.0/8, ::), and loopback (127.0.0.0/8, ::1, `localhost`) unless the
 * registry itself is on loopback. Only literal addresses and `localhost` are checked: names are
 * not resolved (no DNS lookup here), so a name that resolves to such an address is not caught.
 */
export function realmRefusal(url: URL, registry: string): string | undefined {
  const why = metadataAddress(url);
  if (why !== undefined) return why;
  if (isLoopbackHost(url.host) && !isLoopbackHost(registry)) return `a loopback address (this machine), while the registry ${registry} is not on this machine`;
  return undefined;
}

/**
 * Why no request of prebuilt's should be sent to `url` when something from outside named it (a
 * token realm, a redirect): a link-local host (169.254.0.0/16, fe80::/10 — cloud metadata services,
 * which hand out the machine's own cloud credentials), AWS's fd00:ec2::254, or an unspecified
 * address (0.0.0.0/8, ::); undefined otherwise. Literal addresses only: names are not resolved.
 */
export function metadataAddress(url: URL): string | undefined {
  const host = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  const family = isIP(host);
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (family !== 0 && LINK_LOCAL.check(host, type)) return 'a link-local address (169.254.0.0/16, fe80::/10), where cloud metadata services answer';
  if (family === 6 && METADATA_V6.check(host, type)) return "the EC2 instance metadata service's IPv6 address";
  if (family !== 0 && UNSPECIFIED.check(host, type)) return 'an unspecified address (0.0.0.0/8, ::), which reaches this machine';
  return undefined;
}

/** A RegistryError when the token server at `url` (the realm, or where it redirected) is refused for `registry` (see {@link realmRefusal}). */
export function checkTokenRealm(url: URL, registry: string, redirectedFrom?: URL): void {
  const why = realmRefusal(url, registry);
  if (why === undefined) return;
  const named = redirectedFrom ? `the token server ${redirectedFrom.origin}${redirectedFrom.pathname} of registry ${registry} redirected the token request to ${url.host}` : `registry ${registry} named the token server ${url.host}`;
  throw new RegistryError(`${named}, ${why}; prebuilt does not ask it for a token`, { registry }, {
    hint:
      `A registry's token realm (WWW-Authenticate: Bearer realm="…") must be its own token service. If ${registry} is yours, set its realm (auth.token.realm in distribution) ` +
      `to that service's host; otherwise stop using it: the realm would have had prebuilt send a request${redirectedFrom ? '' : ' with the registry\'s credentials'} to ${url.host}. ` +
      'Host names are not resolved for this check, only literal addresses and localhost.',
  });
}
