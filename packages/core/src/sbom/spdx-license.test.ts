import { describe, expect, it } from 'vitest';
import { canonicalSpdxExpression, spdxLicense } from './spdx-license.js';

describe('spdxLicense', () => {
  it('keeps SPDX ids and expressions, in their canonical spelling', () => {
    expect(spdxLicense('MIT')).toEqual({ expression: 'MIT' });
    expect(spdxLicense('mit or apache-2.0')).toEqual({ expression: 'MIT OR Apache-2.0' });
    expect(spdxLicense('(BSD-3-Clause AND MIT) OR GPL-2.0-or-later')).toEqual({ expression: '(BSD-3-Clause AND MIT) OR GPL-2.0-or-later' });
    expect(spdxLicense('GPL-2.0-or-later WITH Classpath-exception-2.0')).toEqual({ expression: 'GPL-2.0-or-later WITH Classpath-exception-2.0' });
    expect(spdxLicense('LGPL-2.1+')).toEqual({ expression: 'LGPL-2.1+' });
  });

  it('turns a licence that is not an SPDX expression into a LicenseRef with its text', () => {
    const bsd = spdxLicense('BSD');
    expect(bsd.expression).toMatch(/^LicenseRef-BSD-[0-9a-f]{8}$/);
    expect(bsd.extracted).toEqual({ licenseId: bsd.expression, extractedText: 'BSD', name: 'BSD' });
    expect(spdxLicense('BSD').expression).toBe(bsd.expression);
    expect(spdxLicense('Apache Software License').expression).toMatch(/^LicenseRef-Apache-Software-License-[0-9a-f]{8}$/);
  });

  it('is NOASSERTION when nothing (or UNKNOWN) is declared', () => {
    expect(spdxLicense(undefined)).toEqual({ expression: 'NOASSERTION' });
    expect(spdxLicense('  ')).toEqual({ expression: 'NOASSERTION' });
    expect(spdxLicense('UNKNOWN')).toEqual({ expression: 'NOASSERTION' });
  });

  it('rejects malformed expressions', () => {
    for (const bad of ['MIT AND', 'AND MIT', '(MIT', 'MIT)', 'MIT WITH Nothing-such', 'MIT MIT', 'Not-A-Licence']) {
      expect(canonicalSpdxExpression(bad), bad).toBeUndefined();
    }
  });
});
