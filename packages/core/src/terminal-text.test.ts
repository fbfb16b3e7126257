import { describe, expect, it } from 'vitest';
import { terminalText } from './terminal-text.js';

describe('terminalText (text from outside, printed on a terminal)', () => {
  it('shows escape sequences, carriage returns, C1 controls and bidirectional overrides as their escapes; newlines, tabs and other text stay', () => {
    const hostile = '\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\rall good \u202egnp.exe\x9b31m';
    expect(terminalText(hostile)).toBe('\\x1b]52;c;ZWNobyBwd25lZA==\\x07\\x1b[2J\\x0dall good \\u202egnp.exe\\x9b31m');
    expect(terminalText('line 1\n\tline 2 — ünïcode ✓')).toBe('line 1\n\tline 2 — ünïcode ✓');
  });
});
