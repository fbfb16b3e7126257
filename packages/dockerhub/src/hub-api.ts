import {
  AuthError,
  LoginRequiredError,
  CancelledError,
  InputError,
  ListingBound,
  RegistryError,
  Secret,
  checkSignal,
  createLogger,
  errorMessage,
  isImageDigest,
  netFetch,
  parseRetryAfter,
  redactUrls,
  scrubber,
  sleep,
  type RegistryCredentials,
  type StoredImage,
} from '@prebuilt/core/backend';

const debug = createLogger('dockerhub');

export interface HubApiInput {
  /** Base URL of the Hub API, e.g. https://hub.docker.com. */
  api: string;
  /** The registry host, for errors. */
  registry: string;
  namespace: string;
  repository: string;
  /** The user's Docker Hub credentials (user name and password or personal access token), when there are any. */
  credentials(signal: AbortSignal | undefined): Promise<RegistryCredentials | undefined>;
  /** The bytes of tag-listing pages read in all before the listing stops (default core's MAX_LISTING_BYTES). */
  maxListingBytes?: number;
}

/** One tag as the Hub API lists it. */
interface HubTag {
  name?: string;
  digest?: string;
  last_pushed?: string | null;
  full_size?: number | null;
  media_type?: string;
}

/** A logged-in session: the JWT, where the credentials came from, and a scrubber of both secrets. */
interface Session {
  jwt: Secret;
  user: string;
  source: string;
  scrub: (text: string) => string;
}

interface HubAnswer {
  status: number;
  data: Record<string, unknown>;
  /** The size of the body read. */
  bytes: number;
  /** The wait a busy answer asked for (Retry-After in seconds). */
  retryAfterMs?: number;
}

interface CallInit {
  jwt?: Secret;
  body?: string;
  signal: AbortSignal | undefined;
  scrub: (text: string) => string;
}

/** Answers that mean Docker Hub is busy: worth the same request again after a wait. */
const BUSY = new Set([429, 503]);
const ATTEMPTS = 4;
/** The longest wait a Retry-After gets. */
const MAX_RETRY_AFTER_MS = 30_000;

const DELETE_HINT = 'Deleting tags needs a personal access token with the Read, Write, Delete scope (or the account password), of a user who may administer the repository.';
const TROUBLE_HINT = 'Docker Hub may be having trouble: try again later, or run with --verbose for details.';
const PAGE_SIZE = 100;
/** The largest answer of the API read (4 MiB); a listing's pages in all are bounded by MAX_LISTING_BYTES. */
const LIMIT = 4 * 1024 * 1024;

/**
 * Docker Hub's API for `prebuilt gc` (the registry API cannot delete on Docker Hub): a login
 * (`POST /v2/users/login`, the password or personal access token for a JWT), the repository's
 * tags (`GET …/tags`, paged by `next`), one tag (`GET …/tags/<tag>`) and tag deletion
 * (`DELETE …/tags/<tag>`). The JWT and the
 * password go only to the configured API host: never in a redirect to another host, a log or an error.
 */
export class HubApi {
  readonly #input: HubApiInput;
  readonly #base: URL;
  #login: Promise<Session> | undefined;

  constructor(input: HubApiInput) {
    this.#input = input;
    this.#base = new URL(input.api);
  }

  get #tagsPath(): string {
    const { namespace, repository } = this.#input;
    return `/v2/namespaces/${encodeURIComponent(namespace)}/repositories/${encodeURIComponent(repository)}/tags`;
  }

  /**
   * One Hub API request, sent again after a wait when Docker Hub is busy (429 or 503: its
   * Retry-After, at most 30 s, else 1, 2, 4 s), up to four times in all.
   */
  async #call(method: string, url: URL, init: CallInit): Promise<HubAnswer> {
    for (let attempt = 1; ; attempt++) {
      const answer = await this.#send(method, url, init);
      if (!BUSY.has(answer.status) || attempt >= ATTEMPTS) return answer;
      const waitMs = answer.retryAfterMs ?? 1000 * 2 ** (attempt - 1);
      debug('the Docker Hub API answered %d to %s %s: trying again in %d ms', answer.status, method, url.pathname, waitMs);
      try {
        await sleep(waitMs, init.signal);
      } catch (error) {
        throw new CancelledError(`Docker Hub API ${method} ${url.pathname} was cancelled.`, { cause: error });
      }
    }
  }

  /** One HTTP exchange: JSON in and out, the Authorization header only for the API's own origin, the body never to another origin. */
  async #send(method: string, url: URL, init: CallInit): Promise<HubAnswer> {
    checkSignal(init.signal);
    const authorization = init.jwt ? `Bearer ${init.jwt.reveal()}` : undefined;
    try {
      const res = await netFetch(url.href, {
        method,
        headers: { accept: 'application/json', ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(init.body === undefined ? {} : { body: init.body }),
        what: `Docker Hub API ${method} ${url.pathname}`,
        bodyToOtherOrigins: false,
        // The API's own origin only: another host, or its own over http:// after an https:// base, gets no JWT.
        ...(authorization ? { authorize: (hop: URL) => (hop.origin === this.#base.origin ? authorization : undefined) } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
      });
      const ok = res.status >= 200 && res.status < 300;
      const body = Buffer.from(ok ? await res.bytes(LIMIT) : await res.prefix(64 * 1024));
      const text = body.toString('utf8');
      let data: Record<string, unknown> = {};
      try {
        data = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      } catch {
        if (ok) throw new RegistryError(`Docker Hub API ${this.#base.origin} answered ${method} ${url.pathname} with something that is not JSON`, { registry: this.#input.registry });
      }
      const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
      return { status: res.status, data, bytes: body.length, ...(retryAfter === undefined ? {} : { retryAfterMs: Math.min(retryAfter, MAX_RETRY_AFTER_MS) }) };
    } catch (error) {
      if (init.signal?.aborted) throw new CancelledError(`Docker Hub API ${method} ${url.pathname} was cancelled.`, { cause: init.signal.reason });
      if (error instanceof RegistryError || error instanceof CancelledError) throw error;
      throw new RegistryError(`Docker Hub API ${method} ${this.#base.origin}${url.pathname} failed: ${init.scrub(errorMessage(error))}`, { registry: this.#input.registry }, {
        hint: `Check the network and ${this.#base.origin} (setting METAFLOW_PREBUILT_DOCKERHUB_API); run with --verbose for details.`,
      });
    }
  }

  /**
   * What the Hub said, for a message (its `detail` or `message`), with every secret taken out (a
   * URL's too: {@link redactUrls}), on one line: a line break in it could print a line of its own
   * below the error (a fake `hint:`).
   */
  #detail(answer: HubAnswer, scrub: (text: string) => string): string {
    const said = answer.data['detail'] ?? answer.data['message'] ?? answer.data['errinfo'];
    return typeof said === 'string' && said ? `: ${redactUrls(scrub(said)).replace(/\s+/g, ' ').trim().slice(0, 300)}` : '';
  }

  /** Logs in once: the user name and password (or personal access token) for a JWT. */
  #session(signal: AbortSignal | undefined): Promise<Session> {
    this.#login ??= this.#logIn(signal).catch((error: unknown) => {
      this.#login = undefined;
      throw error;
    });
    return this.#login;
  }

  async #logIn(signal: AbortSignal | undefined): Promise<Session> {
    const { registry } = this.#input;
    const credentials = await this.#input.credentials(signal);
    if (!credentials?.username || credentials.username === '<token>' || credentials.password === undefined) {
      throw new LoginRequiredError(`The Docker Hub API needs a user name and a password or personal access token, and ${credentials ? `${credentials.source} has none` : 'none were found'}.`, {
        registry,
        source: credentials?.source ?? 'no credentials',
      }, { hint: 'Set METAFLOW_PREBUILT_DOCKERHUB_USERNAME and METAFLOW_PREBUILT_DOCKERHUB_PASSWORD (a personal access token with the Read, Write, Delete scope), or docker login with a user name and token.' });
    }
    const scrubPassword = scrubber(credentials);
    const body = JSON.stringify({ username: credentials.username, password: credentials.password.reveal() });
    const answer = await this.#call('POST', new URL('/v2/users/login', this.#base), { body, signal, scrub: scrubPassword });
    const token = answer.data['token'];
    if (answer.status < 200 || answer.status >= 300 || typeof token !== 'string' || !token) {
      const refused = answer.status === 401 || answer.status === 403;
      const message = `Docker Hub (${this.#base.origin}) ${refused ? 'refused the login of' : `answered ${answer.status} to the login of`} user '${credentials.username}'${this.#detail(answer, scrubPassword)}`;
      if (!refused) throw new RegistryError(message, { registry, status: answer.status }, { hint: TROUBLE_HINT });
      throw new AuthError(message, { registry, source: credentials.source }, { hint: `Check the user name and the password or personal access token in ${credentials.source}.` });
    }
    const jwt = new Secret(token);
    debug('logged in to the Docker Hub API %s as %s', this.#base.origin, credentials.username);
    return { jwt, user: credentials.username, source: credentials.source, scrub: scrubber({ ...credentials, registryToken: jwt }) };
  }

  /** A request with the session's JWT; a 401 (the JWT expired during a long run) logs in again once. */
  async #authorized(method: string, url: URL, signal: AbortSignal | undefined): Promise<{ answer: HubAnswer; session: Session }> {
    const login = this.#session(signal);
    let session = await login;
    let answer = await this.#call(method, url, { jwt: session.jwt, signal, scrub: session.scrub });
    if (answer.status === 401) {
      debug('the Docker Hub API answered 401 to %s %s: logging in again', method, url.pathname);
      if (this.#login === login) this.#login = undefined;
      session = await this.#session(signal);
      answer = await this.#call(method, url, { jwt: session.jwt, signal, scrub: session.scrub });
    }
    return { answer, session };
  }

  #url(path: string): URL {
    return new URL(`${this.#input.api}${path}`);
  }

  /** The next page a listing names, on the API's own origin only (credentials go nowhere else, nor over http:// from https://). */
  #next(next: unknown): URL | undefined {
    if (typeof next !== 'string' || !next) return undefined;
    const url = new URL(next, this.#base);
    if (url.origin !== this.#base.origin) {
      const where = url.host === this.#base.host ? `over ${url.protocol.slice(0, -1)}` : `on another host (${url.host})`;
      throw new RegistryError(`Docker Hub API ${this.#base.origin} named the next page of tags ${where}; prebuilt sends its Docker Hub credentials to ${this.#base.origin} only`, { registry: this.#input.registry }, { hint: TROUBLE_HINT });
    }
    return url;
  }

  /** A non-2xx answer as a typed error: refused (401/403) is an AuthError with `hint`, anything else a RegistryError. */
  #failure(answer: HubAnswer, what: string, session: Session, hint: string): Error {
    const { registry, namespace, repository } = this.#input;
    const message = `Docker Hub (${this.#base.origin}) answered ${answer.status} when user '${session.user}' tried to ${what} ${namespace}/${repository}${this.#detail(answer, session.scrub)}`;
    if (answer.status === 401 || answer.status === 403) return new AuthError(message, { registry, source: session.source }, { hint });
    return new RegistryError(message, { registry, status: answer.status }, { hint: TROUBLE_HINT });
  }

  /** Every tag of the repository, page by page along `next`; none when the repository does not exist. */
  async #tags(signal: AbortSignal | undefined): Promise<HubTag[]> {
    const tags: HubTag[] = [];
    // An API naming a page it already gave (or pages without end) would be asked forever.
    const bound = new ListingBound(`Docker Hub API ${this.#base.origin} listed the tags of ${this.#input.namespace}/${this.#input.repository}`, this.#input.registry, {
      hint: TROUBLE_HINT,
      ...(this.#input.maxListingBytes === undefined ? {} : { maxBytes: this.#input.maxListingBytes }),
    });
    for (let url: URL | undefined = this.#url(`${this.#tagsPath}?page_size=${PAGE_SIZE}`); url !== undefined; ) {
      bound.page(url.href);
      const { answer, session } = await this.#authorized('GET', url, signal);
      if (answer.status === 404) return [];
      if (answer.status < 200 || answer.status >= 300) throw this.#failure(answer, 'list the tags of', session, 'Check that the user may read the repository (a private one needs a token with at least the Read scope).');
      bound.read(answer.bytes);
      const results = answer.data['results'];
      if (!Array.isArray(results)) throw new RegistryError(`Docker Hub API ${this.#base.origin} listed the tags of ${this.#input.namespace}/${this.#input.repository} without results`, { registry: this.#input.registry });
      tags.push(...(results as HubTag[]));
      url = this.#next(answer.data['next']);
    }
    return tags;
  }

  /**
   * Every image of the repository, from its tags grouped by digest: the tags, the latest push of
   * any of them, the size Hub reports (`full_size`) and the media type. Docker Hub lists tagged
   * images only (it removes an image once no tag points at it).
   */
  async listImages(signal: AbortSignal | undefined): Promise<StoredImage[]> {
    const images = new Map<string, StoredImage>();
    for (const tag of await this.#tags(signal)) {
      if (typeof tag.digest !== 'string' || typeof tag.name !== 'string') continue;
      const pushed = tag.last_pushed ? new Date(tag.last_pushed) : undefined;
      const seen = images.get(tag.digest) ?? { digest: tag.digest, tags: [] };
      seen.tags.push(tag.name);
      if (pushed && !Number.isNaN(pushed.getTime()) && !(seen.pushedAt && seen.pushedAt >= pushed)) seen.pushedAt = pushed;
      if (typeof tag.full_size === 'number') seen.size = tag.full_size;
      if (typeof tag.media_type === 'string' && tag.media_type) seen.mediaType = tag.media_type;
      images.set(tag.digest, seen);
    }
    debug('%s/%s holds %d tagged images', this.#input.namespace, this.#input.repository, images.size);
    return [...images.values()];
  }

  /** The digest the tag points at now (`GET …/tags/<tag>`); undefined when the tag is gone. */
  async #tagDigest(name: string, signal: AbortSignal | undefined): Promise<string | undefined> {
    const { answer, session } = await this.#authorized('GET', this.#url(`${this.#tagsPath}/${encodeURIComponent(name)}`), signal);
    if (answer.status === 404) return undefined;
    if (answer.status < 200 || answer.status >= 300) throw this.#failure(answer, `read the tag ${name} of`, session, 'Check that the user may read the repository (a private one needs a token with at least the Read scope).');
    const digest = answer.data['digest'];
    return typeof digest === 'string' ? digest : undefined;
  }

  /**
   * Deletes one image by deleting every tag that points at it (`DELETE …/tags/<tag>`): Docker Hub
   * removes the manifest once no tag points at it. `listedTags` are its tags as the caller's
   * listing gave them (gc passes them: no listing per image), each read again (`GET …/tags/<tag>`)
   * and deleted only while it still points at the digest; without them the tags are listed. Either
   * way a tag moved since the listing is not touched; an image (or tag) already gone is no error.
   */
  async deleteImage(digest: string, signal: AbortSignal | undefined, listedTags?: readonly string[]): Promise<void> {
    if (!isImageDigest(digest)) throw new InputError(`'${digest}' is not an image digest (sha256:<64 hex digits>)`);
    const names: string[] = [];
    if (listedTags) {
      for (const name of listedTags) if ((await this.#tagDigest(name, signal)) === digest) names.push(name);
    } else {
      names.push(...(await this.#tags(signal)).filter((tag) => tag.digest === digest && typeof tag.name === 'string').map((tag) => tag.name!));
    }
    for (const name of names) {
      const { answer, session } = await this.#authorized('DELETE', this.#url(`${this.#tagsPath}/${encodeURIComponent(name)}`), signal);
      if (answer.status === 404) debug('tag %s was already gone', name);
      else if (answer.status < 200 || answer.status >= 300) throw this.#failure(answer, `delete the tag ${name} of`, session, DELETE_HINT);
    }
    debug('deleted %s (tags %s) from %s/%s', digest, names.join(', ') || 'none', this.#input.namespace, this.#input.repository);
  }
}
