import { describe, expect, it } from 'vitest';
import { closestName, editDistance } from './closest-name.js';

describe('closestName', () => {
  const services = ['docker', 'buildx', 'kaniko', 'codebuild', 'oci'];

  it('finds the built-in a typo was meant to be (swap, missing letter, case)', () => {
    expect(closestName('dokcer', services)).toBe('docker');
    expect(closestName('dockr', services)).toBe('docker');
    expect(closestName('Kanko', services)).toBe('kaniko');
  });

  it('a name that differs in case alone is that candidate (its exact spelling is not one of them)', () => {
    expect(closestName('OCI', services)).toBe('oci');
    expect(closestName('Docker', services)).toBe('docker');
    expect(closestName('METAFLOW_PREBUILT_Build_Workers', ['METAFLOW_PREBUILT_BUILD_WORKERS'])).toBe('METAFLOW_PREBUILT_BUILD_WORKERS');
  });

  it('nothing for an exact name, or for a name far from every candidate', () => {
    expect(closestName('docker', services)).toBeUndefined();
    expect(closestName('acme', services)).toBeUndefined();
    expect(closestName('@acme/prebuilt-backend-x', services)).toBeUndefined();
  });

  it('editDistance counts a swap of neighbours as one edit', () => {
    expect(editDistance('dokcer', 'docker')).toBe(1);
    expect(editDistance('', 'oci')).toBe(3);
    expect(editDistance('ecr', 'gcr')).toBe(1);
  });
});
