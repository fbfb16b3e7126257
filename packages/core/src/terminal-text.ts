/** Control characters that are not newline or tab (C0, DEL, C1) and the bidirectional overrides and isolates. */
const UNPRINTABLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text fit to print on a terminal. What people read on stderr quotes text from outside — a
 * daemon's or registry's message, a build's log, the stderr of a package's code, a package's file
 * name in a debug log — and an escape sequence in it would reach the terminal: clear or rewrite the
 * screen, set the title, write the clipboard (OSC 52), a carriage return hide what came before.
 * Each such character is shown as its escape (`\x1b`, `\u202e`) instead; `--json` output needs
 * none of this (JSON escapes them).
 */
export function terminalText(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`;
  });
}
