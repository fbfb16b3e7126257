import { describe, expect, it } from 'vitest';
import type { StoredImage } from '../contracts.js';
import { planGc, type GcPlan } from './gc-plan.js';
import { collectImageRefs, imageRefTarget, refNamesImage } from './image-refs.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const REPO = 'team/envs';

function image(c: string, tags: string[], more: Partial<StoredImage> = {}): StoredImage {
  return { digest: d(c), tags, mediaType: MANIFEST, blobs: [{ digest: d(c), size: 100 }], size: 100, ...more };
}

/** An index `i` over platform images `a` (amd64) and `b` (arm64), an unrelated image `u` with an SBOM `s` and its referrers index `r`. */
function repository(): StoredImage[] {
  return [
    { digest: d('1'), tags: ['env-i'], mediaType: INDEX, children: [d('a'), d('b')], blobs: [{ digest: d('1'), size: 10 }], size: 10 },
    image('a', ['env-a-amd64'], { blobs: [{ digest: d('a'), size: 5 }, { digest: d('c'), size: 1000 }] }),
    image('b', [], { blobs: [{ digest: d('b'), size: 5 }, { digest: d('e'), size: 2000 }] }),
    image('2', ['env-u-amd64'], { blobs: [{ digest: d('2'), size: 5 }, { digest: d('c'), size: 1000 }, { digest: d('9'), size: 3000 }] }),
    image('3', [], { subject: d('2'), artifactType: 'application/spdx+json', blobs: [{ digest: d('3'), size: 7 }] }),
    { digest: d('4'), tags: [d('2').replace(':', '-')], mediaType: INDEX, children: [d('3')], blobs: [{ digest: d('4'), size: 8 }], size: 8 },
  ];
}

const action = (plan: GcPlan, digest: string): string | undefined => plan.items.find((item) => item.digest === digest)?.action;

describe('planGc', () => {
  it('keeps an image younger than the minimum age — used by a build on this machine, or pushed — with its SBOM and referrers; an unknown push time does not keep it', () => {
    const now = new Date('2026-12-07T12:00:00Z');
    const ago = (ms: number): Date => new Date(now.getTime() - ms);
    const base = { repository: REPO, keep: [], minAgeMs: 3_600_000, now };
    // env-u-amd64 used 10 minutes ago by a build here: kept, its SBOM and referrers index with it.
    const used = planGc({ ...base, images: repository(), usedAt: new Map([['env-u-amd64', ago(600_000)], ['env-i', ago(7_200_000)]]) });
    expect(used.kept.find((item) => item.digest === d('2'))?.reason).toBe('used by a build on this machine 10m ago (minimum age 1h)');
    expect(action(used, d('3'))).toBe('keep');
    expect(action(used, d('4'))).toBe('keep');
    // env-i was used two hours ago, no push time: it goes with its platform images.
    expect([d('1'), d('a'), d('b')].map((digest) => action(used, digest))).toEqual(['delete', 'delete', 'delete']);
    // Pushed 30 s ago (a registry that records it): kept; pushed two hours ago: not.
    const pushed = repository().map((one) => (one.digest === d('2') ? { ...one, pushedAt: ago(30_000) } : one.digest === d('1') ? { ...one, pushedAt: ago(7_200_000) } : one));
    const byPush = planGc({ ...base, images: pushed });
    expect(byPush.kept.find((item) => item.digest === d('2'))?.reason).toBe('pushed 30s ago (minimum age 1h)');
    expect(action(byPush, d('1'))).toBe('delete');
    // No minimum age: both go.
    expect(action(planGc({ ...base, minAgeMs: 0, images: pushed, usedAt: new Map([['env-u-amd64', ago(1000)]]) }), d('2'))).toBe('delete');
  });

  it('keeps what a kept map names by tag, with the index platform images; deletes the unreferenced image, its SBOM and its referrers tag, SBOMs first', () => {
    const plan = planGc({ images: repository(), repository: REPO, keep: [{ ref: `127.0.0.1:5100/${REPO}:env-i`, reason: 'kept map m.json' }] });
    expect(plan.kept.map((item) => [item.digest, item.reason])).toEqual([
      [d('1'), 'kept map m.json'],
      [d('a'), `listed by kept index ${'1'.repeat(12)}`],
      [d('b'), `listed by kept index ${'1'.repeat(12)}`],
    ]);
    expect(plan.deletions.map((item) => [item.kind, item.digest])).toEqual([
      ['referrers', d('4')],
      ['sbom', d('3')],
      ['image', d('2')],
    ]);
    expect(plan.deletions[2]!.reason).toBe('no keep source names it');
    expect(plan.deletions[1]!.reason).toBe(`refers to deleted image ${'2'.repeat(12)}`);
    // d('c') is shared with kept image a: not reclaimed.
    expect(plan.reclaimedBytes).toBe(8 + 7 + 5 + 3000);
    expect(plan.reclaimedPartial).toBe(false);
  });

  it('a kept image keeps its SBOM and referrers index; a tag in another repository keeps nothing', () => {
    const plan = planGc({
      images: repository(),
      repository: REPO,
      keep: [
        { ref: `other.example/${REPO}:env-u-amd64@${d('2')}`, reason: 'WorkflowTemplate ns/a' },
        { ref: '127.0.0.1:5100/other/repo:env-i', reason: 'elsewhere' },
      ],
    });
    expect(action(plan, d('2'))).toBe('keep');
    expect(action(plan, d('3'))).toBe('keep');
    expect(action(plan, d('4'))).toBe('keep');
    expect(plan.kept.find((item) => item.digest === d('3'))!.reason).toBe(`sbom of kept image ${'2'.repeat(12)}`);
    // The index goes first, then its untagged platform image, then the tagged one nothing names.
    expect(plan.deletions.map((item) => item.digest)).toEqual([d('1'), d('a'), d('b')]);
    expect(plan.deletions.find((item) => item.digest === d('b'))!.reason).toBe(`platform image of deleted index ${'1'.repeat(12)}`);
  });

  it('deleting an index never takes a platform image something else keeps', () => {
    const plan = planGc({ images: repository(), repository: REPO, keep: [{ ref: d('b'), reason: 'kept map m.json' }] });
    expect(action(plan, d('1'))).toBe('delete');
    expect(action(plan, d('b'))).toBe('keep');
    expect(action(plan, d('a'))).toBe('delete');
  });

  it('protected digests (the base image) are kept whatever the keep sources say', () => {
    const plan = planGc({ images: repository(), repository: REPO, keep: [], protect: [{ ref: d('2'), reason: 'base image x' }] });
    expect(plan.kept.find((item) => item.digest === d('2'))!.reason).toBe('base image x');
  });

  it('--keep-days keeps recent images and, when the registry records no push time, every image of unknown age', () => {
    const now = new Date('2026-12-05T00:00:00Z');
    const aged = repository().map((one, i) => ({ ...one, pushedAt: new Date(now.getTime() - i * 10 * 86_400_000) }));
    const plan = planGc({ images: aged, repository: REPO, keep: [], keepDays: 15, now });
    expect(plan.kept.map((item) => item.digest)).toEqual([d('1'), d('a'), d('b')]);
    expect(plan.deletions.find((item) => item.digest === d('2'))!.reason).toBe('no keep source names it, pushed before the last 15 days');
    expect(plan.pushTimeUnknown).toBe(false);
    const unknown = planGc({ images: repository(), repository: REPO, keep: [], keepDays: 15, now });
    expect(unknown.deletions).toEqual([]);
    expect(unknown.pushTimeUnknown).toBe(true);
    expect(unknown.kept[0]!.reason).toBe('push time unknown (--keep-days 15 keeps it)');
  });

  it('keeps every untagged image when the listing does not say what an index lists; blobs unknown make the bytes a lower bound', () => {
    const images: StoredImage[] = [
      { digest: d('1'), tags: ['env-i'], mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json' },
      { digest: d('a'), tags: [], mediaType: MANIFEST },
      { digest: d('2'), tags: ['old'], mediaType: MANIFEST },
    ];
    const plan = planGc({ images, repository: REPO, keep: [] });
    expect(action(plan, d('a'))).toBe('keep');
    expect(plan.deletions.map((item) => [item.kind, item.digest])).toEqual([
      ['index', d('1')],
      ['image', d('2')],
    ]);
    expect(plan.reclaimedPartial).toBe(true);
    // Indexes known, but an untagged image whose manifest the listing did not read (no subject known): kept.
    const unread = planGc({ images: [...repository(), { digest: d('5'), tags: [] }], repository: REPO, keep: [] });
    expect(unread.kept.map((item) => [item.digest, item.reason])).toEqual([[d('5'), "untagged, and the registry's listing does not say what refers to it"]]);
  });
});

describe('image references for the keep set', () => {
  it('collects strings at image keys anywhere, each once', () => {
    const object = { spec: { templates: [{ container: { image: 'a:1' } }, { script: { image: 'b@' + d('1') } }, { steps: [[{ inline: { container: { image: 'a:1' } } }]] }] }, image: 3 };
    expect(collectImageRefs(object, new Set(['image'])).sort()).toEqual(['a:1', `b@${d('1')}`]);
  });

  it('a digest wins over a tag; a bare digest is a digest; junk is nothing', () => {
    expect(imageRefTarget(`127.0.0.1:5100/team/envs:env-x@${d('1')}`)).toEqual({ digest: d('1') });
    expect(imageRefTarget(d('2'))).toEqual({ digest: d('2') });
    expect(imageRefTarget('127.0.0.1:5100/team/envs:env-x')).toEqual({ repository: 'team/envs', tag: 'env-x' });
    expect(imageRefTarget('not an image')).toBeUndefined();
  });

  it('refNamesImage: by digest, or by a tag of the env repository itself (its path, any host); never a same-named tag of a longer path', () => {
    const image = { digest: d('1'), tags: ['env-x'] };
    expect(refNamesImage(`127.0.0.1:5100/team/envs:env-x@${d('1')}`, image, 'team/envs')).toBe(true);
    expect(refNamesImage(d('1'), image, 'team/envs')).toBe(true);
    expect(refNamesImage('127.0.0.1:5100/team/envs:env-x', image, 'team/envs')).toBe(true);
    expect(refNamesImage('pull.example:443/team/envs:env-x', image, 'team/envs')).toBe(true);
    // A pinned ref names its digest alone, whatever its tag now points at.
    expect(refNamesImage(`127.0.0.1:5100/team/envs:env-x@${d('2')}`, image, 'team/envs')).toBe(false);
    // Another repository whose path ends in the env repository's, and one on Docker Hub's default host.
    expect(refNamesImage('127.0.0.1:5100/other/team/envs:env-x', image, 'team/envs')).toBe(false);
    expect(refNamesImage('team/envs:env-x', image, 'team/envs')).toBe(true);
    expect(refNamesImage('not an image', image, 'team/envs')).toBe(false);
  });
});
