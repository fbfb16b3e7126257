import { describe, expect, it } from 'vitest';
import { InputError } from '@prebuilt/core';
import { parseDecospec, unknownDecospecAttributes } from './decospec.js';

describe('--with decorator specs, read as Metaflow 2.19 reads them', () => {
  // Each expectation is what Metaflow 2.19.38's Decorator.extract_args_kwargs_from_decorator_spec
  // (decorators.py) returns for the same text — checked by running it on the vendored source.
  it.each([
    ['kubernetes:gpu=1,cpu=2.5,memory=1_024', { gpu: 1, cpu: 2.5, memory: 1024 }],
    // re.split(r",(?=[\s\w]+=)"): a comma before "node.kubernetes.io/…=" does not split (the dot is not \w).
    [
      'kubernetes:node_selector=kubernetes.io/arch=amd64,node.kubernetes.io/instance-type=g5,compute_pool=p1',
      { node_selector: 'kubernetes.io/arch=amd64,node.kubernetes.io/instance-type=g5', compute_pool: 'p1' },
    ],
    // …but one before "zone=" does: Metaflow reads an attribute 'zone'.
    ['kubernetes:node_selector=pool=gpu,zone=a', { node_selector: 'pool=gpu', zone: 'a' }],
    [
      'kubernetes:node_selector={"pool": "gpu", "zone": "a"},tolerations=[{"key": "gpu", "operator": "Exists"}]',
      { node_selector: { pool: 'gpu', zone: 'a' }, tolerations: [{ key: 'gpu', operator: 'Exists' }] },
    ],
    ['kubernetes:image=repo/img:1.0 , gpu_vendor= amd ', { image: 'repo/img:1.0', gpu_vendor: 'amd' }],
    ['kubernetes:gpu=1,gpu=2', { gpu: 2 }],
    // make_decorator_spec writes JSON with \" (what --with gets back from Argo's and Step Functions' task commands).
    ['kubernetes:labels={\\"a\\": \\"b\\"}', { labels: { a: 'b' } }],
    ['kubernetes:tmpfs_size=1e3,use_tmpfs=true,secrets=null,x=inf', { tmpfs_size: 1000, use_tmpfs: true, secrets: null, x: Infinity }],
    ['kubernetes', {}],
    ['kubernetes:', {}],
  ])('%s', (text, attributes) => {
    expect(parseDecospec(text)).toEqual({ name: 'kubernetes', attributes, text });
  });

  it('an attribute without = is an InputError (exit 2) naming the source and the form (Metaflow stops with a traceback)', () => {
    const error = (() => { try { parseDecospec('kubernetes:gpu', 'METAFLOW_DEFAULT_DECOSPECS'); } catch (e) { return e; } return undefined; })() as InputError;
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toBe("METAFLOW_DEFAULT_DECOSPECS kubernetes:gpu: 'gpu' is not an attribute=value, so Metaflow cannot read the spec.");
    expect(error.hint).toMatch(/kubernetes:attribute=value,attribute2=value2/);
    expect(error.exitCode).toBe(2);
  });

  it("names the attributes @kubernetes / @resources do not take (KubernetesDecorator.defaults, ResourcesDecorator.defaults); another decorator's are not checked", () => {
    expect(unknownDecospecAttributes(parseDecospec('kubernetes:node_selector=pool=gpu,zone=a,compute_pool=x'))).toEqual(['zone']);
    expect(unknownDecospecAttributes(parseDecospec('resources:gpu=1,node_selector=x'))).toEqual(['node_selector']);
    expect(unknownDecospecAttributes(parseDecospec('retry:times=3'))).toEqual([]);
  });

  it("takes an attribute named __proto__ or constructor as an attribute (Metaflow refuses it), never as the attributes' prototype", () => {
    const spec = parseDecospec('kubernetes:__proto__={"node_selector": {"pool": "gpu"}, "gpu": 4},constructor=1');
    expect(unknownDecospecAttributes(spec)).toEqual(['__proto__', 'constructor']);
    expect(spec.attributes.node_selector).toBeUndefined();
    expect(spec.attributes.gpu).toBeUndefined();
    expect(Object.getPrototypeOf(spec.attributes)).toBe(Object.prototype);
    // A decorator named as an Object property has no list of attributes (it failed with a TypeError).
    expect(unknownDecospecAttributes(parseDecospec('constructor:x=1'))).toEqual([]);
  });
});
