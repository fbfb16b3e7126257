import { describe, expect, it } from 'vitest';
import { failureText } from './build-report.js';

describe('failureText (a failed image for people, on stderr)', () => {
  it('says why, the hint and the log tail; a build log line or a daemon\'s reason with escape sequences is printed inert', () => {
    const text = failureText({
      envId: 'aaaa',
      steps: ['start', 'end'],
      reason: 'The Docker build failed: \x1b]52;c;cHdu\x07',
      hint: 'check \x1b[8mhidden',
      logTail: ['Step 1/2 : FROM x', '\x1b[2J\x1b[Hall good\r'],
    });
    expect(text).not.toMatch(/[\x1b\x07\r]/);
    expect(text).toBe(
      '\nenv aaaa failed (steps start, end): The Docker build failed: \\x1b]52;c;cHdu\\x07\nhint: check \\x1b[8mhidden\n' +
        'last lines of its build log:\n  | Step 1/2 : FROM x\n  | \\x1b[2J\\x1b[Hall good\\x0d\n',
    );
  });
});
