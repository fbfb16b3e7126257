/**
 * Credentials written into channel and index URLs (`https://user:token@host/simple`): a common way
 * to reach a private index (`PIP_INDEX_URL`). They are taken out of the URL once, where the setting
 * is read; what is kept, logged, locked or cached is the URL without them. A request to the same
 * origin (scheme, host and port) gets them back as HTTP Basic auth, and nothing else ever does.
 * Every place that renders a URL that may still carry them goes through {@link redactUrl} /
 * {@link redactUrls}: `https://***@host/...`, the whole userinfo hidden — the user part is no safer to
 * show than the password: GitHub's form is `https://<token>:x-oauth-basic@github.com/…`, GitLab's
 * `https://oauth2:<token>@…` or `https://<token>@…`.
 *
 * A URL's query can carry secrets too: a registry redirects a blob GET or PUT to a storage host with
 * a pre-signed URL (S3's `X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`; Google's
 * `X-Goog-Signature`, `Signature`; Azure's `sig`; CloudFront's `Signature`, `Policy`), and an upload
 * Location carries the registry's own `_state` token. {@link redactUrls} hides every query value
 * but those of {@link SHOWN_QUERY_PARAMETERS}: `https://bucket.s3…/key?X-Amz-Expires=900&X-Amz-Signature=***`
 * — the host, the path and the parameter names stay, for debugging.
 *
 * A conda channel may carry a token in its path instead, anaconda.org's form
 * (`https://conda.anaconda.org/t/<token>/<channel>`): {@link UrlCredentials.addChannel} takes it out
 * of the channel URL as it does a userinfo, {@link UrlCredentials.requestUrl} writes it back into a
 * request for a URL under that channel (and no other), and {@link redactUrls} shows it as `/t/***`.
 */
import { Secret } from '../secret.js';

/**
 * A token path segment of a conda channel URL (`/t/<token>/` followed by the channel): group 1 is
 * the token. A `/t/` segment not followed by a further one is not taken for a token.
 */
const CHANNEL_TOKEN = /\/t\/([^/?#\s]+)(?=\/[^/?#\s])/;
/** The same, anywhere in a URL run (for redaction). */
const CHANNEL_TOKENS = new RegExp(CHANNEL_TOKEN.source, 'g');

/**
 * `scheme://` + userinfo + `@`, anywhere in a text. The userinfo ends at the last `@` before the
 * authority's end as pip's urlsplit reads it — whitespace, `/`, `?` or `#`, nothing else: a password
 * typed with a raw `@` (`user:p@ss@host`), an apostrophe, a quote, `<`, `>` or a backslash
 * (`user:pa\ss@host`: pip sends the password `pa\ss`) is hidden whole, and an `@` in a path, query
 * or fragment is not taken for one. WHATWG's URL parser ends a special scheme's authority at a
 * backslash too (it reads `\` as `/`, and refuses `https://user:pa\ss@host/`); hiding up to the
 * `@` pip would read hides more than WHATWG's userinfo, never less. A scheme starts where no scheme
 * character comes before it (`index_https://…` is redacted too): one try per run of such
 * characters, and a try scans no further than the next `/`, so a long text (a log line of hashes)
 * takes linear time — a try at every letter took quadratic time.
 */
const USERINFO = /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi;
/** The userinfo (group 1) of a URL that starts with one, read as {@link USERINFO} reads it. */
const LEADING_USERINFO = /^[a-z][a-z0-9+.-]*:\/\/([^\s/?#]*)@/i;

/**
 * Query parameters whose values are shown (names compared without case): a registry's paging and
 * upload parameters, the token protocol's service and scope, and a signed URL's algorithm, date and
 * lifetime (what an expired URL is debugged with). Any other value may be a signature, a credential
 * or a token — those of a kind not known here too — and is hidden.
 */
const SHOWN_QUERY_PARAMETERS: ReadonlySet<string> = new Set([
  'n',
  'last',
  'digest',
  'mount',
  'from',
  'service',
  'scope',
  'page',
  'page_size',
  'x-amz-algorithm',
  'x-amz-date',
  'x-amz-expires',
  'x-amz-signedheaders',
  'x-goog-algorithm',
  'x-goog-date',
  'x-goog-expires',
  'x-goog-signedheaders',
  'expires',
]);

/**
 * A URL from its scheme to the end of its run of URL characters (whitespace, a quote, `<`, `>` or a
 * backtick ends it: what a text quotes a URL with). A backslash does not: a query value typed or
 * pasted with one (`?token=ab\cd`), a JSON text's escaped `&` (`?n=1\u0026sig=…`, as Go writes it)
 * or a `\` in the path before the query (`/p\x?sig=…`) would otherwise end the run there and show
 * the rest of the value, or the whole query. A scheme starts where no scheme character comes before
 * it: a match takes its whole run, so a long text takes linear time.
 */
const URL_RUN = /(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]*/gi;

function parameterName(name: string): string {
  try {
    return decodeURIComponent(name).toLowerCase();
  } catch {
    return name.toLowerCase();
  }
}

/**
 * One `name=value` of a query, its value (up to the next `&`, `#` or the URL run's end) hidden
 * unless the name is shown and the value holds no other URL and no backslash: a shown name's value
 * never has one, and `n=1\u0026X-Amz-Signature=…` is a JSON text's next parameter run into it.
 */
function redactParameter(part: string): string {
  const eq = part.indexOf('=');
  if (eq === -1) return part === '' || SHOWN_QUERY_PARAMETERS.has(parameterName(part)) ? part : '***';
  const value = part.slice(eq + 1);
  if (value === '' || (SHOWN_QUERY_PARAMETERS.has(parameterName(part.slice(0, eq))) && !value.includes('://') && !value.includes('\\'))) return part;
  return `${part.slice(0, eq)}=***`;
}

/** A URL with its query values hidden (see {@link SHOWN_QUERY_PARAMETERS}); the fragment stays. */
function redactQuery(url: string): string {
  const start = url.indexOf('?');
  if (start === -1) return redactChannelToken(url);
  const hash = url.indexOf('#', start);
  const end = hash === -1 ? url.length : hash;
  const query = url.slice(start + 1, end).split('&').map(redactParameter).join('&');
  return `${redactChannelToken(url.slice(0, start))}?${query}${url.slice(end)}`;
}

/** A URL (up to its query) with a conda channel token shown as `/t/***`. */
function redactChannelToken(url: string): string {
  return url.replace(CHANNEL_TOKENS, '/t/***');
}

/**
 * A text (a message, pip's output, a log line) with every URL's userinfo (user name and password)
 * replaced by `***`, every query value but those of {@link SHOWN_QUERY_PARAMETERS} too
 * (`?X-Amz-Signature=***`): a pre-signed URL's signature and credentials, an upload's state token,
 * and a conda channel token (`/t/***`).
 */
export function redactUrls(text: string): string {
  return text.replace(USERINFO, (_all, scheme: string) => `${scheme}***@`).replace(URL_RUN, redactQuery);
}

/** A URL fit to print: `https://***@host/path?X-Amz-Signature=***`, a channel token as `/t/***` (user name, password, channel token and query secrets hidden: any may be the token). */
export function redactUrl(url: string): string {
  return redactUrls(url);
}

/** Whether a URL carries a user name or password. */
export function hasUrlCredentials(url: string): boolean {
  USERINFO.lastIndex = 0;
  const found = USERINFO.test(url);
  USERINFO.lastIndex = 0;
  return found;
}

/** The URL without its userinfo (unchanged when it has none or is not a URL). */
export function stripUrlCredentials(url: string): string {
  if (!hasUrlCredentials(url)) return url;
  return url.replace(USERINFO, (_all, scheme: string) => scheme);
}

/** Whether a conda channel URL carries a token in its path (`/t/<token>/<channel>`). */
export function hasChannelToken(url: string): boolean {
  return splitChannelToken(url) !== undefined;
}

/** The channel URL without its token path segment (unchanged when it has none). */
export function stripChannelToken(url: string): string {
  return splitChannelToken(url)?.url ?? url;
}

/** A channel URL's token and the URL without it; undefined when it has none (or is no http(s) URL). */
function splitChannelToken(url: string): { url: string; token: string } | undefined {
  const parsed = parse(url);
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) return undefined;
  const match = CHANNEL_TOKEN.exec(parsed.pathname);
  if (!match) return undefined;
  parsed.pathname = parsed.pathname.slice(0, match.index) + parsed.pathname.slice(match.index + match[0].length);
  return { url: parsed.href, token: match[1]! };
}

/** A conda channel's token: written back into requests for URLs under `origin` + `scope`. */
interface ChannelToken {
  origin: string;
  /** The path before `/t/<token>` (usually empty). */
  base: string;
  /** The channel's path without the token (base included), no trailing slash. */
  scope: string;
  token: Secret;
}

interface Entry {
  origin: string;
  path: string;
  username: string;
  password: Secret;
}

/**
 * A userinfo part percent-decoded as pip's `unquote` does: each valid `%XX` run decoded, a `%` that
 * starts none (a password typed as `100%sure`) kept as it is — decodeURIComponent threw on it.
 */
function percentDecoded(part: string): string {
  return part.replace(/(?:%[0-9a-f]{2})+/gi, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

function parse(url: string | URL): URL | undefined {
  if (url instanceof URL) return url;
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

/**
 * The credentials of configured URLs, by origin. {@link add} takes them out of a URL;
 * {@link authorizationFor} gives the Basic Authorization header for a URL of the same origin
 * (the entry with the longest matching path wins), and nothing for any other origin.
 */
export class UrlCredentials {
  readonly #entries: Entry[] = [];
  readonly #tokens: ChannelToken[] = [];

  /** Remembers the credentials of `url`, if any; returns the URL without them. */
  add(url: string): string {
    const stripped = stripUrlCredentials(url);
    if (stripped === url) return url;
    // The URL without them is parsed (WHATWG refuses `https://user:pa\ss@host/`, which pip takes);
    // the userinfo is split as pip splits it: at its first `:`, each part percent-decoded.
    const parsed = parse(stripped);
    const userinfo = LEADING_USERINFO.exec(url)?.[1];
    if (!parsed || userinfo === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) return stripped;
    const colon = userinfo.indexOf(':');
    const entry: Entry = {
      origin: parsed.origin,
      path: parsed.pathname.replace(/\/+$/, ''),
      username: percentDecoded(colon === -1 ? userinfo : userinfo.slice(0, colon)),
      password: new Secret(colon === -1 ? '' : percentDecoded(userinfo.slice(colon + 1))),
    };
    const same = this.#entries.findIndex((e) => e.origin === entry.origin && e.path === entry.path);
    if (same === -1) this.#entries.push(entry);
    else this.#entries[same] = entry;
    return stripped;
  }

  /**
   * Remembers the credentials of a conda channel URL: its userinfo as {@link add} does, and a token
   * in its path (`https://host/t/<token>/<channel>`); returns the URL without either.
   */
  addChannel(url: string): string {
    const withoutUserinfo = this.add(url);
    const split = splitChannelToken(withoutUserinfo);
    if (!split) return withoutUserinfo;
    const parsed = new URL(split.url);
    const before = new URL(withoutUserinfo).pathname;
    const entry: ChannelToken = {
      origin: parsed.origin,
      base: before.slice(0, CHANNEL_TOKEN.exec(before)!.index),
      scope: parsed.pathname.replace(/\/+$/, ''),
      token: new Secret(split.token),
    };
    const same = this.#tokens.findIndex((t) => t.origin === entry.origin && t.scope === entry.scope);
    if (same === -1) this.#tokens.push(entry);
    else this.#tokens[same] = entry;
    return split.url;
  }

  get size(): number {
    return this.#entries.length + this.#tokens.length;
  }

  /**
   * The URL to request for `url`: with the token of the configured channel it lies under written
   * back into its path (`https://host/t/<token>/<channel>/…`), unchanged for any other URL. Never
   * log the result; log {@link redactUrl} of it (or the URL given).
   */
  requestUrl(url: string): string {
    const parsed = parse(url);
    if (!parsed) return url;
    const path = parsed.pathname;
    const matching = this.#tokens.filter((t) => t.origin === parsed.origin && (path === t.scope || path.startsWith(`${t.scope}/`)));
    if (matching.length === 0) return url;
    const entry = matching.reduce((best, t) => (t.scope.length > best.scope.length ? t : best));
    parsed.pathname = `${entry.base}/t/${entry.token.reveal()}${path.slice(entry.base.length)}`;
    return parsed.href;
  }

  #entryFor(url: string | URL): Entry | undefined {
    const parsed = parse(url);
    if (!parsed) return undefined;
    const candidates = this.#entries.filter((e) => e.origin === parsed.origin);
    if (candidates.length === 0) return undefined;
    const path = parsed.pathname;
    const matching = candidates.filter((e) => path === e.path || path.startsWith(`${e.path}/`));
    const pool = matching.length > 0 ? matching : candidates;
    return pool.reduce((best, e) => (e.path.length > best.path.length ? e : best));
  }

  /** `Basic …` for a URL of a configured origin; undefined for every other URL. */
  authorizationFor(url: string | URL): string | undefined {
    const entry = this.#entryFor(url);
    if (!entry) return undefined;
    return basicAuthorization(entry.username, entry.password.reveal());
  }

  /**
   * The URL with the credentials of its origin written back in (for a tool such as pip that only
   * takes them that way). Never log the result; log {@link redactUrl} of it.
   */
  withCredentials(url: string): string {
    const entry = this.#entryFor(url);
    const parsed = parse(url);
    if (!entry || !parsed || parsed.username !== '') return url;
    const userinfo = `${encodeURIComponent(entry.username)}:${encodeURIComponent(entry.password.reveal())}@`;
    return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)/i, (scheme: string) => `${scheme}${userinfo}`);
  }
}

/** Settings whose URLs may carry credentials: conda channels, and the PyPI index (pip's own variables too). */
const URL_CREDENTIAL_SETTINGS = ['METAFLOW_PREBUILT_CONDA_CHANNELS', 'METAFLOW_PREBUILT_PYPI_INDEX_URL', 'PIP_INDEX_URL', 'PIP_EXTRA_INDEX_URL'] as const;

/** The credentials in the channel and index URLs of an environment (see {@link URL_CREDENTIAL_SETTINGS}). */
export function urlCredentialsFromEnv(env: Record<string, string | undefined> = process.env, extra: readonly string[] = []): UrlCredentials {
  const credentials = new UrlCredentials();
  for (const name of URL_CREDENTIAL_SETTINGS) {
    const add = name === 'METAFLOW_PREBUILT_CONDA_CHANNELS' ? (url: string) => credentials.addChannel(url) : (url: string) => credentials.add(url);
    for (const one of (env[name] ?? '').split(/[\s,]+/)) if (one.includes('://')) add(one.trim());
  }
  for (const one of extra) credentials.add(one);
  return credentials;
}

/** The `Authorization` value of HTTP Basic auth (RFC 7617) for a user name and password. Holds the secret: never log it. */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}
