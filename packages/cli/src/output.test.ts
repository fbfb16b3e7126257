import { describe, expect, it } from 'vitest';
import { renderTable } from './output.js';

describe('renderTable', () => {
  it('aligns columns by their widest cell, two spaces apart, without trailing spaces', () => {
    const text = renderTable(
      [
        { a: 'docker', b: 'yes' },
        { a: 'x', b: '' },
      ],
      [
        { header: 'NAME', value: (r) => r.a },
        { header: 'OK', value: (r) => r.b },
      ],
    );
    expect(text).toBe('NAME    OK\ndocker  yes\nx\n');
  });
});
