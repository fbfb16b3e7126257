import { describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { formatImageRef, isLoopbackHost, parseImageRef, registryApiHost } from './image-ref.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseImageRef', () => {
  it.each([
    ['python', 'docker.io', 'library/python', undefined, undefined, 'latest'],
    ['python:3.11-slim', 'docker.io', 'library/python', '3.11-slim', undefined, '3.11-slim'],
    ['bitnami/redis:7', 'docker.io', 'bitnami/redis', '7', undefined, '7'],
    ['docker.io/python', 'docker.io', 'library/python', undefined, undefined, 'latest'],
    ['index.docker.io/library/python:3', 'docker.io', 'library/python', '3', undefined, '3'],
    ['docker.io/a/b/c:x', 'docker.io', 'a/b/c', 'x', undefined, 'x'],
    ['localhost/app', 'localhost', 'app', undefined, undefined, 'latest'],
    ['localhost:5000/team/app:1.0', 'localhost:5000', 'team/app', '1.0', undefined, '1.0'],
    ['127.0.0.1:5000/app:v1', '127.0.0.1:5000', 'app', 'v1', undefined, 'v1'],
    ['ghcr.io/org/app', 'ghcr.io', 'org/app', undefined, undefined, 'latest'],
    [`python@${D}`, 'docker.io', 'library/python', undefined, D, D],
    [`127.0.0.1:5000/app:v1@${D}`, '127.0.0.1:5000', 'app', 'v1', D, D],
    ['[::1]:5000/app:v1', '[::1]:5000', 'app', 'v1', undefined, 'v1'],
    ['my-host.local:8080/a__b/c-d.e', 'my-host.local:8080', 'a__b/c-d.e', undefined, undefined, 'latest'],
  ])('%s', (input, registry, repository, tag, digest, reference) => {
    expect(parseImageRef(input)).toEqual({ registry, repository, tag, digest, reference });
  });

  it.each([
    ['', 'empty'],
    ['Python', "'Python' has capital letters, and repository names are lowercase"],
    ['team/a+b', "'a+b' is not a valid repository name component"],
    ['127.0.0.1:5000/team//app', "empty part (a doubled '/'"],
    ['127.0.0.1:99999/app', "the port 99999 of '127.0.0.1:99999' is not between 1 and 65535"],
    ['127.0.0.1:0/app', "the port 0 of '127.0.0.1:0' is not between 1 and 65535"],
    ['app:', 'not a valid tag'],
    ['app:-x', 'not a valid tag'],
    ['app@sha256:abc', 'sha256 digest'],
    ['app@nodigest', 'not a digest'],
    ['127.0.0.1:5000/', 'repository name is missing'],
    ['a b', 'whitespace'],
    ['host:port:x/app', "is not a registry host"],
  ])('rejects %j with InputError naming the problem', (input, why) => {
    let error: unknown;
    try {
      parseImageRef(input);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toContain(why);
    expect((error as InputError).message).toContain(`'${input}'`);
    expect((error as InputError).hint).toMatch(/repository\[:tag\]/);
  });
});

describe('formatImageRef', () => {
  it('round-trips to the fully qualified form', () => {
    expect(formatImageRef(parseImageRef('python'))).toBe('docker.io/library/python:latest');
    expect(formatImageRef(parseImageRef(`python@${D}`))).toBe(`docker.io/library/python@${D}`);
    expect(formatImageRef(parseImageRef('127.0.0.1:5000/a:b'))).toBe('127.0.0.1:5000/a:b');
  });
});

describe('registryApiHost / isLoopbackHost', () => {
  it('maps docker.io to index.docker.io and leaves others alone', () => {
    expect(registryApiHost('docker.io')).toBe('index.docker.io');
    expect(registryApiHost('127.0.0.1:5000')).toBe('127.0.0.1:5000');
  });
  it.each([
    ['localhost', true],
    ['localhost:5000', true],
    ['127.0.0.1:5000', true],
    ['127.1.2.3', true],
    ['[::1]:5000', true],
    ['docker.io', false],
    ['10.0.0.1:5000', false],
    ['127.example.com', false],
    ['localhost.:5000', true],
    // 127.0.0.0/8 mapped into IPv6, in both spellings (the URL parser writes the second).
    ['[::ffff:127.0.0.1]:5000', true],
    ['[::FFFF:7F00:1]:5000', true],
    ['[::ffff:127.1.2.3]', true],
    ['::ffff:7f00:1', true],
    // Other mapped addresses are not this machine.
    ['[::ffff:8.8.8.8]:5000', false],
    ['[::ffff:808:808]:5000', false],
    ['[::ffff:8000:1]:5000', false],
    ['[::ffff:7f00:1:1]:5000', false],
    ['[::127.0.0.1]:5000', false],
    ['[2001:db8::1]:5000', false],
  ])('%s → %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});
