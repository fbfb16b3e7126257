import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { Secret } from '../secret.js';
import { checkPushCredentials } from './push-credentials.js';

describe('checkPushCredentials', () => {
  const credentials = { registry: 'index.docker.io', source: 'test', username: 'u', password: new Secret('pw') };

  it('accepts no credentials, and credentials for the same registry under another spelling of it', () => {
    expect(() => checkPushCredentials({ imageTag: 'x', pushCredentials: undefined }, '127.0.0.1:5000')).not.toThrow();
    expect(() => checkPushCredentials({ imageTag: 'docker.io/me/img:t', pushCredentials: credentials }, 'docker.io')).not.toThrow();
  });

  it('refuses credentials for another registry, naming both and the source', () => {
    expect(() => checkPushCredentials({ imageTag: '127.0.0.1:5000/img:t', pushCredentials: credentials }, '127.0.0.1:5000')).toThrow(ConfigError);
    expect(() => checkPushCredentials({ imageTag: '127.0.0.1:5000/img:t', pushCredentials: credentials }, '127.0.0.1:5000')).toThrow(
      'The push credentials are for index.docker.io (test), but 127.0.0.1:5000/img:t goes to 127.0.0.1:5000.',
    );
  });
});
