import { describe, expect, it } from 'vitest';
import { InputError } from '@prebuilt/core/backend';
import { baseImageReferences, failedBaseImage, parseTaggedReference, pullParts, registryHost } from './image-reference.js';

describe('image references', () => {
  it('splits a push tag into repository, tag and registry', () => {
    expect(parseTaggedReference('127.0.0.1:5000/metaflow-prebuilt:env-ab-amd64')).toEqual({
      repository: '127.0.0.1:5000/metaflow-prebuilt',
      tag: 'env-ab-amd64',
      registry: '127.0.0.1:5000',
    });
    expect(parseTaggedReference('acme/app:1').registry).toBe('docker.io');
    expect(() => parseTaggedReference('127.0.0.1:5000/app')).toThrow(InputError);
    expect(() => parseTaggedReference('app@sha256:abc')).toThrow(InputError);
  });

  it('finds the registry host the way Docker does', () => {
    expect(registryHost('localhost/x')).toBe('localhost');
    expect(registryHost('gcr.io/p/x')).toBe('gcr.io');
    expect(registryHost('library/python')).toBe('docker.io');
    expect(registryHost('python')).toBe('docker.io');
  });

  it('names the first base image and the registries of every pulled base', () => {
    const dockerfile = [
      'ARG X=1',
      'FROM --platform=linux/amd64 127.0.0.1:5000/base:1 AS build',
      'RUN true',
      'FROM build AS again',
      'FROM scratch',
      'FROM python:3.11@sha256:' + 'a'.repeat(64),
      'FROM ${BASE}',
    ].join('\n');
    expect(baseImageReferences(dockerfile)).toEqual(['127.0.0.1:5000/base:1', 'python:3.11@sha256:' + 'a'.repeat(64)]);
    expect(baseImageReferences('FROM 127.0.0.1:5000/a:1 AS a\nFROM a\n')).toEqual(['127.0.0.1:5000/a:1']);
  });

  it('finds the FROM image a builder named as failing: as written, or as BuildKit normalizes it; else the only one', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const dockerfile = `FROM mambaorg/micromamba:1.5.10 AS micromamba\nFROM python@${digest}\nCOPY --from=micromamba /bin/micromamba /usr/local/bin/micromamba\n`;
    expect(failedBaseImage(dockerfile, 'mambaorg/micromamba:1.5.10')).toBe('mambaorg/micromamba:1.5.10');
    expect(failedBaseImage(dockerfile, 'docker.io/mambaorg/micromamba:1.5.10')).toBe('mambaorg/micromamba:1.5.10');
    expect(failedBaseImage(dockerfile, `docker.io/library/python@${digest}`)).toBe(`python@${digest}`);
    expect(failedBaseImage('FROM 127.0.0.1:5000/a AS micromamba\nFROM ubuntu\n', 'docker.io/library/ubuntu:latest')).toBe('ubuntu');
    expect(failedBaseImage('FROM 127.0.0.1:5000/a:1 AS micromamba\nFROM ubuntu\n', `127.0.0.1:5000/a:1@${digest}`)).toBe('127.0.0.1:5000/a:1');
    // Not named, or named otherwise: the only FROM image, else none (a message then names none rather than the wrong one).
    expect(failedBaseImage('FROM python:3.11\n', undefined)).toBe('python:3.11');
    expect(failedBaseImage(dockerfile, undefined)).toBeUndefined();
    expect(failedBaseImage(dockerfile, 'docker.io/library/other:1')).toBeUndefined();
  });

  it('splits a reference for a pull', () => {
    expect(pullParts('127.0.0.1:5000/a/b:1')).toEqual({ fromImage: '127.0.0.1:5000/a/b', tag: '1' });
    expect(pullParts('127.0.0.1:5000/a/b')).toEqual({ fromImage: '127.0.0.1:5000/a/b', tag: 'latest' });
    expect(pullParts('127.0.0.1:5000/a@sha256:' + 'b'.repeat(64))).toEqual({ fromImage: '127.0.0.1:5000/a', tag: 'sha256:' + 'b'.repeat(64) });
    expect(pullParts('a:1@sha256:' + 'b'.repeat(64)).fromImage).toBe('a');
  });
});
