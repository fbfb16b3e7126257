import { describe, expect, it } from 'vitest';
import { lastLines, oneLineText, terminalText } from './terminal-text.js';

describe('terminalText (text from outside, printed on a terminal)', () => {
  it('shows escape sequences, carriage returns, C1 controls and bidirectional overrides as their escapes; newlines, tabs and other text stay', () => {
    const hostile = '\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\rall good \u202egnp.exe\x9b31m';
    expect(terminalText(hostile)).toBe('\\x1b]52;c;ZWNobyBwd25lZA==\\x07\\x1b[2J\\x0dall good \\u202egnp.exe\\x9b31m');
    expect(terminalText('line 1\n\tline 2 — ünïcode ✓')).toBe('line 1\n\tline 2 — ünïcode ✓');
  });

  it('shows the invisible bidirectional marks (LRM, RLM, ALM), the embeddings, overrides and isolates, and the line and paragraph separators as their escapes', () => {
    // A file name that reads `exe.txt` in a terminal that applies bidi, or whose U+2028 starts a new line in one that breaks on it.
    const hostile = 'a\u200eb\u200fc\u061cd\u2028e\u2029f\u202ag\u202bh\u202ci\u202dj\u202ek\u2066l\u2067m\u2068n\u2069o';
    expect(terminalText(hostile)).toBe('a\\u200eb\\u200fc\\u061cd\\u2028e\\u2029f\\u202ag\\u202bh\\u202ci\\u202dj\\u202ek\\u2066l\\u2067m\\u2068n\\u2069o');
    // Joiners and other letters stay: an emoji sequence, Arabic and Hebrew text.
    expect(terminalText('👩\u200d💻 مرحبا שלום')).toBe('👩\u200d💻 مرحبا שלום');
  });
});

describe('oneLineText (text from outside that must stay on one line)', () => {
  it('shows a newline and a tab as their escapes besides what terminalText escapes', () => {
    expect(oneLineText('row\nfake row\tcell\x1b[2J')).toBe('row\\nfake row\\tcell\\x1b[2J');
  });

  it('cuts text longer than maxChars to its first maxChars characters and an ellipsis, before escaping', () => {
    expect(oneLineText('a'.repeat(201), 200)).toBe(`${'a'.repeat(200)}…`);
    expect(oneLineText('a'.repeat(200), 200)).toBe('a'.repeat(200));
    // The cut counts the text's characters, not its escapes: the escape of a kept control character is whole.
    expect(oneLineText(`${'a'.repeat(9)}\x1bbbb`, 10)).toBe(`${'a'.repeat(9)}\\x1b…`);
  });
});

describe("lastLines (the end of a program's output, for a message)", () => {
  it('keeps the last count lines that are not blank, without their trailing white space, joined with the separator', () => {
    const output = 'Collecting foo\r\n\n  building wheel   \nERROR: no matching distribution\n\n\t\n';
    expect(lastLines(output, 2)).toBe('  building wheel\nERROR: no matching distribution');
    expect(lastLines(output, 2, ' | ')).toBe('  building wheel | ERROR: no matching distribution');
    expect(lastLines(output, 10, ' ')).toBe('Collecting foo   building wheel ERROR: no matching distribution');
  });

  it('is empty for output without a line that is not blank, and for a count of 0', () => {
    expect(lastLines('', 5)).toBe('');
    expect(lastLines(' \n\t\r\n', 5)).toBe('');
    expect(lastLines('a\nb', 0)).toBe('');
  });
});
