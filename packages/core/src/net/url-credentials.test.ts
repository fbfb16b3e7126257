import { describe, expect, it } from 'vitest';
import { hasChannelToken, redactUrl, redactUrls, stripChannelToken, stripUrlCredentials, UrlCredentials, urlCredentialsFromEnv } from './url-credentials.js';

describe('redactUrl / redactUrls', () => {
  it('hides the whole userinfo, user name too: the token may be either part', () => {
    expect(redactUrl('https://alice:s3cr%40t@pypi.example.com/simple')).toBe('https://***@pypi.example.com/simple');
    expect(redactUrl('https://ghp_token123@host/channel')).toBe('https://***@host/channel');
    // GitHub's form (the token as the user), GitLab's (oauth2:<token>, or the token alone).
    expect(redactUrl('https://ghp_s3cr3t:x-oauth-basic@github.com/team/repo.git')).toBe('https://***@github.com/team/repo.git');
    expect(redactUrl('https://oauth2:glpat-s3cr3t@gitlab.com/team/simple')).toBe('https://***@gitlab.com/team/simple');
    expect(redactUrl('https://glpat-s3cr3t@gitlab.com/api/v4/projects/1/packages/pypi/simple')).toBe('https://***@gitlab.com/api/v4/projects/1/packages/pypi/simple');
    expect(redactUrl('https://host/plain')).toBe('https://host/plain');
  });

  it('redacts every URL in a text, such as pip output', () => {
    const text = "Looking in indexes: http://u:tok@127.0.0.1:9/simple\nERROR: Could not fetch URL https://x:y@h/p/: 401 (from 'http://u:tok@127.0.0.1:9/simple')";
    expect(redactUrls(text)).toBe("Looking in indexes: http://***@127.0.0.1:9/simple\nERROR: Could not fetch URL https://***@h/p/: 401 (from 'http://***@127.0.0.1:9/simple')");
  });

  it('hides a userinfo up to its last @, as URL parsers and pip read it: a password with a raw @ or an apostrophe is hidden whole', () => {
    // WHATWG's URL and pip's urlsplit take the last @ before the path as the end of the userinfo: the password is `p@ss`, `it's`.
    expect(new URL('https://alice:p@ss@pypi.example.com/simple').password).toBe('p%40ss');
    expect(redactUrl('https://alice:p@ss@pypi.example.com/simple')).toBe('https://***@pypi.example.com/simple');
    expect(redactUrl('https://alice:p@ss@w@rd@host')).toBe('https://***@host');
    expect(redactUrl("https://alice:it's@host/simple")).toBe('https://***@host/simple');
    expect(redactUrls("pip: https://u:p@ss@h/simple and http://v:it's@h2:9")).toBe('pip: https://***@h/simple and http://***@h2:9');
    // A word character right before the scheme does not hide a URL from it.
    expect(redactUrls('index_https://u:tok@h/simple')).toBe('index_https://***@h/simple');
    // An @ in the path, the query or the fragment is not a userinfo's: the host stays shown.
    expect(redactUrl('https://host/a@b')).toBe('https://host/a@b');
    expect(redactUrl('https://host?from=a@b')).toBe('https://host?from=a@b');
    expect(redactUrl('https://[::1]:8443#me@x')).toBe('https://[::1]:8443#me@x');
    expect(redactUrl('HTTPS://U:P@[::1]:8443/simple')).toBe('HTTPS://***@[::1]:8443/simple');
  });

  it('hides a userinfo with a raw backslash, a quote, < or > whole, as pip reads it (WHATWG refuses or splits it otherwise)', () => {
    // pip's urlsplit ends the authority only at / ? #: the password is `pa\ss`. WHATWG reads `\` as `/` for https and refuses it.
    expect(() => new URL('https://user:pa\\ss@host/')).toThrow();
    expect(redactUrl('https://user:pa\\ss@host/')).toBe('https://***@host/');
    expect(redactUrl('https://user:pa\\\\ss@host/simple')).toBe('https://***@host/simple');
    expect(redactUrl('https://us\\er:tok@host/simple')).toBe('https://***@host/simple');
    expect(redactUrl('https://user:pa"s<s>@host/simple')).toBe('https://***@host/simple');
    // WHATWG takes `host\` for the host and `@evil/` for the path, pip `host\` for the userinfo: hidden either way.
    expect(redactUrl('https://tok\\@evil/simple')).toBe('https://***@evil/simple');
    // Inside a longer message (pip's probe failure quotes the index URL), each URL to its own userinfo.
    const message = "pip could not reach the index 'https://user:pa\\ss@host/simple' (ERROR: 401 for https://user:pa\\\\ss@host/simple/pkg/), and http://u:x\\y@h2:9/";
    expect(redactUrls(message)).toBe("pip could not reach the index 'https://***@host/simple' (ERROR: 401 for https://***@host/simple/pkg/), and http://***@h2:9/");
    expect(redactUrls(message)).not.toMatch(/pa|ss@|x\\y/);
    expect(stripUrlCredentials('https://user:pa\\ss@host/simple')).toBe('https://host/simple');
    // A backslash after the authority (a Windows path quoted beside a URL) hides nothing.
    expect(redactUrls('https://host/simple C:\\Users\\me@corp')).toBe('https://host/simple C:\\Users\\me@corp');
  });

  it('takes linear time on a long text: a log line of 200 000 letters, of dotted words, of one long host', () => {
    for (const text of ['a'.repeat(200_000), 'a.'.repeat(100_000), `https://${'a'.repeat(200_000)}`]) {
      const started = performance.now();
      expect(redactUrls(text)).toBe(text);
      expect(performance.now() - started, text.slice(0, 10)).toBeLessThan(2000);
    }
  });

  it("hides a pre-signed URL's signature and credentials (S3, Google, Azure, CloudFront) and an upload's state token; host, path and parameter names stay", () => {
    const s3 =
      'https://bucket.s3.eu-west-1.amazonaws.com/docker/registry/v2/blobs/sha256/ab/abcd/data?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAXXXXSECRETKEYID%2F20261206%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20261206T205400Z&X-Amz-Expires=1200&X-Amz-Security-Token=IQoJb3JpZ2luX2VjSESSIONTOKEN&X-Amz-SignedHeaders=host&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f0';
    expect(redactUrl(s3)).toBe(
      'https://bucket.s3.eu-west-1.amazonaws.com/docker/registry/v2/blobs/sha256/ab/abcd/data?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&X-Amz-Date=20261206T205400Z&X-Amz-Expires=1200&X-Amz-Security-Token=***&X-Amz-SignedHeaders=host&X-Amz-Signature=***',
    );
    expect(redactUrl('https://storage.googleapis.com/b/o?GoogleAccessId=sa%40p.iam.gserviceaccount.com&Expires=1765054440&Signature=c2lnbmF0dXJl')).toBe(
      'https://storage.googleapis.com/b/o?GoogleAccessId=***&Expires=1765054440&Signature=***',
    );
    expect(redactUrl('https://acct.blob.core.windows.net/c/blob?sv=2021-08-06&se=2026-12-06T22%3A00Z&sr=b&sp=r&sig=QUJDREVGR0g%3D')).toBe('https://acct.blob.core.windows.net/c/blob?sv=***&se=***&sr=***&sp=***&sig=***');
    expect(redactUrl('https://d111.cloudfront.net/blob?Expires=1765054440&Signature=abc~def__&Key-Pair-Id=K2JCJMDEHXQW5F')).toBe('https://d111.cloudfront.net/blob?Expires=1765054440&Signature=***&Key-Pair-Id=***');
    // distribution's upload Location: the session's path stays, its HMAC-signed state does not; the registry's own parameters show.
    expect(redactUrl('http://127.0.0.1:5100/v2/team/app/blobs/uploads/5a2e?_state=eyJOYW1lIjoidGVhbS9hcHAifQ%3D%3D&digest=sha256:ab')).toBe('http://127.0.0.1:5100/v2/team/app/blobs/uploads/5a2e?_state=***&digest=sha256:ab');
    expect(redactUrl('https://h/v2/team/app/tags/list?n=100&last=v1#frag')).toBe('https://h/v2/team/app/tags/list?n=100&last=v1#frag');
    // Case of the names does not matter; a bare token without a name is hidden; an empty value shows nothing to hide.
    expect(redactUrl('https://h/p?x-amz-signature=abc&SIGNATURE=def&opaque-token&empty=')).toBe('https://h/p?x-amz-signature=***&SIGNATURE=***&***&empty=');
  });

  it('hides query secrets in a whole text, with the userinfo, each URL to its own end', () => {
    const text = "GET https://u:tok@h/blob: 307 → https://bucket.s3.amazonaws.com/k?X-Amz-Signature=feedface (another origin) and 'https://x/y?sig=abc'";
    expect(redactUrls(text)).toBe("GET https://***@h/blob: 307 → https://bucket.s3.amazonaws.com/k?X-Amz-Signature=*** (another origin) and 'https://x/y?sig=***'");
    // A shown name's value holding another URL (a URL run into the next) is hidden whole.
    expect(redactUrls('https://a/b?n=1,https://c/d?sig=2')).toBe('https://a/b?n=***');
    expect(redactUrls('no URL here? a=b&c=d')).toBe('no URL here? a=b&c=d');
  });

  it('hides a query value with a raw backslash whole, to the next & or # or the end of the URL', () => {
    expect(redactUrl('https://h/p?token=ab\\cd')).toBe('https://h/p?token=***');
    expect(redactUrl('https://h/p?token=\\abcd&n=2#frag')).toBe('https://h/p?token=***&n=2#frag');
    expect(redactUrl('https://h/p?opaque\\token&last=v1')).toBe('https://h/p?***&last=v1');
    expect(redactUrls('see https://h/p?token=ab\\cd&n=2 and "https://x/y?sig=a\\b"')).toBe('see https://h/p?token=***&n=2 and "https://x/y?sig=***"');
    // A backslash in the path does not end the URL before its query.
    expect(redactUrl('https://h/p\\x?X-Amz-Signature=secret')).toBe('https://h/p\\x?X-Amz-Signature=***');
    // A JSON text's escaped & (Go writes & as \u0026) runs the next parameter into a shown one: hidden whole.
    expect(redactUrls('{"message":"https://b/k?X-Amz-Expires=900\\u0026X-Amz-Signature=secret"}')).toBe('{"message":"https://b/k?X-Amz-Expires=***"}');
    expect(redactUrls('https://b/k?n=1\\u0026sig=secret&last=v1')).toBe('https://b/k?n=***&last=v1');
    // A channel token with a backslash is hidden whole.
    expect(redactUrl('https://conda.example/t/ab\\cd/chan/noarch/repodata.json')).toBe('https://conda.example/t/***/chan/noarch/repodata.json');
  });

  it('hides query values in linear time: a long run of URLs, a long query', () => {
    for (const text of ['a://'.repeat(50_000), `https://h/p?${'a=b&'.repeat(50_000)}`, `x${' https://h?'.repeat(20_000)}`]) {
      const started = performance.now();
      redactUrls(text);
      expect(performance.now() - started, text.slice(0, 12)).toBeLessThan(2000);
    }
  });

  it('strips credentials, leaving the rest of the URL as written', () => {
    expect(stripUrlCredentials('https://alice:p@ss@host/simple')).toBe('https://host/simple');
    expect(stripUrlCredentials("https://alice:it's@host/simple")).toBe('https://host/simple');
    expect(stripUrlCredentials('https://host?from=a@b')).toBe('https://host?from=a@b');
    expect(stripUrlCredentials('https://u:p@host:8443/a/b/')).toBe('https://host:8443/a/b/');
    expect(stripUrlCredentials('file:///tmp/channel')).toBe('file:///tmp/channel');
  });
});

describe('UrlCredentials', () => {
  it('gives Basic auth to the same origin only, the longest configured path winning', () => {
    const credentials = new UrlCredentials();
    expect(credentials.add('https://alice:pw1@host/simple')).toBe('https://host/simple');
    credentials.add('https://bob:pw2@host/conda/private');
    const basic = (user: string, pw: string): string => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;
    expect(credentials.authorizationFor('https://host/simple/pkg/')).toBe(basic('alice', 'pw1'));
    expect(credentials.authorizationFor('https://host/conda/private/noarch/repodata.json')).toBe(basic('bob', 'pw2'));
    // Same origin, another path (a PyPI index's files): the origin's credentials still apply.
    expect(credentials.authorizationFor('https://host/packages/a.whl')).toBeDefined();
    // Another host, another port, another scheme: nothing.
    expect(credentials.authorizationFor('https://files.example.org/simple/x')).toBeUndefined();
    expect(credentials.authorizationFor('https://host:444/simple')).toBeUndefined();
    expect(credentials.authorizationFor('http://host/simple')).toBeUndefined();
  });

  it('takes a password with a raw @ or a raw % whole, and keeps none of it in the URL', () => {
    const credentials = new UrlCredentials();
    expect(credentials.add('https://alice:p@ss@host/simple')).toBe('https://host/simple');
    expect(credentials.authorizationFor('https://host/simple/pkg/')).toBe(`Basic ${Buffer.from('alice:p@ss').toString('base64')}`);
    // A raw % that starts no escape is kept as typed (as pip's unquote does), not a URIError; a valid escape is decoded.
    const percent = urlCredentialsFromEnv({ PIP_INDEX_URL: 'https://bob:100%zz%21@other/simple' });
    expect(percent.authorizationFor('https://other/simple/')).toBe(`Basic ${Buffer.from('bob:100%zz!').toString('base64')}`);
    expect(percent.withCredentials('https://other/simple')).toBe('https://bob:100%25zz!@other/simple');
  });

  it('takes a password with a raw backslash as pip does (WHATWG refuses the URL), and writes it back escaped', () => {
    const credentials = urlCredentialsFromEnv({ PIP_INDEX_URL: 'https://user:pa\\ss@host/simple', PIP_EXTRA_INDEX_URL: 'https://other:a\\\\b@other/simple' });
    expect(credentials.authorizationFor('https://host/simple/pkg/')).toBe(`Basic ${Buffer.from('user:pa\\ss').toString('base64')}`);
    expect(credentials.authorizationFor('https://other/simple/')).toBe(`Basic ${Buffer.from('other:a\\\\b').toString('base64')}`);
    expect(credentials.withCredentials('https://host/simple')).toBe('https://user:pa%5Css@host/simple');
    expect(new URL(credentials.withCredentials('https://host/simple')).password).toBe('pa%5Css');
    // A user name alone (a token) has an empty password, as pip reads it.
    const token = new UrlCredentials();
    expect(token.add('https://tok\\en@host/simple')).toBe('https://host/simple');
    expect(token.authorizationFor('https://host/simple/')).toBe(`Basic ${Buffer.from('tok\\en:').toString('base64')}`);
  });

  it('writes the credentials back for pip, and never shows them when inspected', () => {
    const credentials = urlCredentialsFromEnv({ PIP_INDEX_URL: 'http://u:t%2Fk@127.0.0.1:9/simple', METAFLOW_PREBUILT_CONDA_CHANNELS: 'conda-forge,https://c:d@ch/x' });
    expect(credentials.size).toBe(2);
    expect(credentials.withCredentials('http://127.0.0.1:9/simple')).toBe('http://u:t%2Fk@127.0.0.1:9/simple');
    expect(credentials.withCredentials('http://127.0.0.1:10/simple')).toBe('http://127.0.0.1:10/simple');
    expect(credentials.authorizationFor('http://127.0.0.1:9/simple/a/')).toBe(`Basic ${Buffer.from('u:t/k').toString('base64')}`);
    expect(JSON.stringify(credentials)).not.toContain('t/k');
  });
});

describe('a conda channel token (/t/<token>/<channel>)', () => {
  const TOKEN = 'ab-0123-4567-89ab-cdef';

  it('is taken out of the channel URL, and shown as /t/*** wherever a URL is shown', () => {
    expect(hasChannelToken(`https://conda.anaconda.org/t/${TOKEN}/private`)).toBe(true);
    expect(stripChannelToken(`https://conda.anaconda.org/t/${TOKEN}/private`)).toBe('https://conda.anaconda.org/private');
    expect(stripChannelToken(`https://host:8443/mirror/t/${TOKEN}/team/label/dev`)).toBe('https://host:8443/mirror/team/label/dev');
    // A `t` segment that ends the path (a channel named t) is no token; nor is anything in a file URL.
    expect(hasChannelToken('https://host/channels/t/x')).toBe(false);
    expect(hasChannelToken('https://host/channels/t')).toBe(false);
    expect(hasChannelToken('https://host/t/')).toBe(false);
    expect(hasChannelToken(`file:///srv/t/${TOKEN}/private`)).toBe(false);
    expect(redactUrls(`could not fetch https://u:p@conda.anaconda.org/t/${TOKEN}/private/noarch/a.conda?sig=1 (403)`)).toBe(
      'could not fetch https://***@conda.anaconda.org/t/***/private/noarch/a.conda?sig=*** (403)',
    );
    expect(redactUrl('https://host/channels/t')).toBe('https://host/channels/t');
  });

  it('goes back only into requests under the channel it was configured with', () => {
    const credentials = new UrlCredentials();
    expect(credentials.addChannel(`https://conda.anaconda.org/t/${TOKEN}/private/`)).toBe('https://conda.anaconda.org/private/');
    expect(credentials.size).toBe(1);
    expect(credentials.requestUrl('https://conda.anaconda.org/private/linux-64/repodata.json')).toBe(`https://conda.anaconda.org/t/${TOKEN}/private/linux-64/repodata.json`);
    // conda-forge on the same host, a channel whose name starts alike, another origin: unchanged.
    for (const url of ['https://conda.anaconda.org/conda-forge/noarch/repodata.json', 'https://conda.anaconda.org/private-2/noarch/x.conda', 'http://conda.anaconda.org/private/noarch/x.conda', 'https://mirror.example/private/noarch/x.conda']) {
      expect(credentials.requestUrl(url)).toBe(url);
    }
    // A path before /t/ (a self-hosted server under a prefix) stays before it.
    credentials.addChannel(`https://host/conda/t/${TOKEN}/team`);
    expect(credentials.requestUrl('https://host/conda/team/noarch/x.conda')).toBe(`https://host/conda/t/${TOKEN}/team/noarch/x.conda`);
    expect(JSON.stringify(credentials)).not.toContain(TOKEN);
  });

  it('is read from METAFLOW_PREBUILT_CONDA_CHANNELS only: an index URL with a /t/ segment is left as it is', () => {
    const credentials = urlCredentialsFromEnv({ METAFLOW_PREBUILT_CONDA_CHANNELS: `conda-forge,https://conda.anaconda.org/t/${TOKEN}/private`, PIP_INDEX_URL: 'https://host/t/team/simple' });
    expect(credentials.size).toBe(1);
    expect(credentials.requestUrl('https://conda.anaconda.org/private/noarch/x.conda')).toContain(`/t/${TOKEN}/`);
    expect(credentials.requestUrl('https://host/t/team/simple/pkg/')).toBe('https://host/t/team/simple/pkg/');
  });
});
