import { describe, expect, it } from 'vitest';
import { createDeployView, redrawsOn } from './deploy-view.js';

function capture(): { write: (text: string) => void; text: () => string } {
  let out = '';
  return { write: (text) => void (out += text), text: () => out };
}

describe('deploy view (plain output)', () => {
  it('shows one line per phase change, without platforms when every image is linux-64', () => {
    const out = capture();
    const view = createDeployView(out, { now: () => 0 });
    view.onEvent({ type: 'resolving', steps: 2 });
    view.onEvent({ type: 'resolved', images: 1, indexes: 0, platforms: ['linux-64'] });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'checking', platform: 'linux-64' });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'built', platform: 'linux-64' });
    view.stop();
    expect(out.text()).toBe(
      'reading the flow and locking its envs…\n1 image (locked in 0.0s)\nenv aaaa  checking registry  0.0s  (start)\nenv aaaa  built  0.0s  (start)\n',
    );
  });

  it('a failure\'s detail and a note (a daemon\'s or registry\'s words) are printed without their escape sequences', () => {
    const out = capture();
    const view = createDeployView(out, { now: () => 0 });
    view.onEvent({ type: 'resolved', images: 1, indexes: 0, platforms: ['linux-64'] });
    view.onEvent({ type: 'note', message: 'registry says \x1b]52;c;cHdu\x07' });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'failed', detail: 'denied\x1b[2J\rall good', platform: 'linux-64' });
    view.stop();
    expect(out.text()).not.toMatch(/[\x1b\x07\r]/);
    expect(out.text()).toContain('failed  0.0s  (start): denied\\x1b[2J\\x0dall good\n');
  });

  it('names each line\'s platform, and the image index, for a multi-platform deploy', () => {
    const out = capture();
    const view = createDeployView(out, { now: () => 0 });
    view.onEvent({ type: 'resolved', images: 2, indexes: 1, platforms: ['linux-64', 'linux-aarch64'] });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'checking', platform: 'linux-64' });
    view.onEvent({ type: 'image', envId: 'bbbb', tag: 't', steps: ['start'], phase: 'failed', detail: 'boom', platform: 'linux-aarch64' });
    view.onEvent({ type: 'image', envId: 'cccc', tag: 't', steps: ['start'], phase: 'pushing', platform: 'linux-64+linux-aarch64' });
    view.stop();
    expect(out.text().split('\n')).toEqual([
      '2 images and 1 image index (linux-64, linux-aarch64) (locked in 0.0s)',
      'env aaaa  linux-64  checking registry  0.0s  (start)',
      'env bbbb  linux-aarch64  failed  0.0s  (start): boom',
      'env cccc  image index  pushing  0.0s  (start)',
      '',
    ]);
  });

  it('says what a waiting image waits for and since when, and prints notes as their own lines', () => {
    const out = capture();
    const view = createDeployView(out, { now: () => 0 });
    view.onEvent({ type: 'resolved', images: 1, indexes: 0, platforms: ['linux-64'] });
    view.onEvent({ type: 'note', message: 'The cached package /c/pkgs/ab (x.conda) does not match the lock: truncated. It was removed and is downloaded again.' });
    const detail = 'another prebuilt process is building this image: pid 7 on host ci-2 (build t), holding it since 20:31:02 UTC, lease renewed 1s ago; waiting since 20:31:05 UTC';
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'waiting', detail, platform: 'linux-64' });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'present', platform: 'linux-64' });
    view.stop();
    expect(out.text().split('\n')).toEqual([
      '1 image (locked in 0.0s)',
      'note: The cached package /c/pkgs/ab (x.conda) does not match the lock: truncated. It was removed and is downloaded again.',
      `env aaaa  waiting: ${detail}  0.0s  (start)`,
      'env aaaa  present  0.0s  (start)',
      '',
    ]);
  });

  it('says why a present image is rebuilt (its layout changed), and in a plan that it would be', () => {
    const out = capture();
    const view = createDeployView(out, { now: () => 0 });
    view.onEvent({ type: 'resolved', images: 2, indexes: 0, platforms: ['linux-64'] });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'checking', platform: 'linux-64' });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'checking', detail: 'built with EROFS layers; the docker build service makes tar layers', platform: 'linux-64' });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'materializing', platform: 'linux-64' });
    view.onEvent({ type: 'image', envId: 'bbbb', tag: 'u', steps: ['end'], phase: 'missing', detail: 'prefetch profile changed', platform: 'linux-64' });
    view.stop();
    expect(out.text().split('\n')).toEqual([
      '2 images (locked in 0.0s)',
      'env aaaa  checking registry  0.0s  (start)',
      'env aaaa  rebuilding: built with EROFS layers; the docker build service makes tar layers  0.0s  (start)',
      'env aaaa  materializing  0.0s  (start)',
      'env bbbb  will rebuild: prefetch profile changed  0.0s  (end)',
      '',
    ]);
  });

  it('an image line stays one line when its detail (what a registry recorded) holds a line break: the live block redraws over exactly what it drew', () => {
    let text = '';
    const view = createDeployView({ isTTY: true, write: (chunk: string) => void (text += chunk) }, { now: () => 0 });
    view.onEvent({ type: 'resolved', images: 1, indexes: 0, platforms: ['linux-64'] });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'checking', detail: 'layout changed\nenv bbbb  built  0.1s  (end)', platform: 'linux-64' });
    view.stop();
    view.stop();
    // Each redraw goes up as many lines as the one before printed.
    const frames = text.split(/\x1b\[(\d+)A\x1b\[0J/);
    expect(frames[1]).toBe(String(frames[0]!.split('\n').length - 2));
    expect(text).toContain('rebuilding: layout changed\\nenv bbbb  built  0.1s  (end)  0.0s  (start)\n');
    expect(text).not.toMatch(/\nenv bbbb/);
  });

  it('on a TTY, a note clears the live block, prints above it and redraws it', () => {
    const out = capture();
    const view = createDeployView({ ...out, isTTY: true }, { now: () => 0 });
    view.onEvent({ type: 'resolved', images: 1, indexes: 0, platforms: ['linux-64'] });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'materializing', platform: 'linux-64' });
    view.onEvent({ type: 'note', message: 'first' });
    view.onEvent({ type: 'note', message: 'second' });
    view.stop();
    const text = out.text();
    expect(text).toContain('note: first\n');
    expect(text.indexOf('note: second')).toBeGreaterThan(text.indexOf('note: first'));
    // The second note first moves up over the one-line block the first note redrew.
    expect(text).toContain('\x1b[1A\x1b[0Jnote: second\n');
    view.stop();
  });
});

describe('deploy view: what a stalled network read waits on', () => {
  it('prints a line per report on a plain stream, and nothing once the wait is over', () => {
    const out = capture();
    const view = createDeployView(out, { now: () => 20_000 });
    view.onEvent({ type: 'waiting', target: '127.0.0.1:5100', what: 'blob upload', seconds: 12 });
    view.onEvent({ type: 'waiting', target: '127.0.0.1:5100', what: 'blob upload', seconds: 0 });
    view.stop();
    expect(out.text()).toBe('waiting for 127.0.0.1:5100 (blob upload) — 12 s\n');
  });

  it('a wait naming a file from outside (a PyPI wheel whose URL hides escape sequences) is shown without them, on a plain stream and on a TTY', () => {
    // pip's report gives the wheel's URL; its file name, URL-decoded, is what a download waits on.
    const what = `download of ${decodeURIComponent('x-1.0-1%1b%5b1A%1b%5b2K%0denv%20aaaa%20%20built-py3-none-any.whl')}`;
    const plain = capture();
    const view = createDeployView(plain, { now: () => 20_000 });
    view.onEvent({ type: 'waiting', target: 'files.example:443', what, seconds: 12 });
    view.stop();
    expect(plain.text()).toBe('waiting for files.example:443 (download of x-1.0-1\\x1b[1A\\x1b[2K\\x0denv aaaa  built-py3-none-any.whl) — 12 s\n');
    let text = '';
    const tty = createDeployView({ isTTY: true, write: (chunk: string) => void (text += chunk) }, { now: () => 20_000 });
    tty.onEvent({ type: 'resolved', images: 1, indexes: 0, platforms: ['linux-64'] });
    tty.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'materializing' });
    tty.onEvent({ type: 'waiting', target: 'files.example:443', what, seconds: 5 });
    tty.stop();
    // Only the view's own redraw sequences (cursor up, erase below) reach the terminal.
    expect(text.replace(/\x1b\[\d+A\x1b\[0J/g, '')).not.toMatch(/[\x1b\r]/);
    expect(text).toContain('  waiting for files.example:443 (download of x-1.0-1\\x1b[1A');
  });

  it('TERM=dumb (a terminal that cannot move the cursor): no redraw, the plain line per phase change a pipe gets', () => {
    expect(redrawsOn({ isTTY: true }, {})).toBe(true);
    expect(redrawsOn({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(redrawsOn({ isTTY: false }, { TERM: 'xterm' })).toBe(false);
    let text = '';
    const view = createDeployView({ isTTY: true, write: (chunk: string) => void (text += chunk) }, { now: () => 0, tty: redrawsOn({ isTTY: true }, { TERM: 'dumb' }) });
    view.onEvent({ type: 'resolved', images: 1, indexes: 0, platforms: ['linux-64'] });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'building' });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'built' });
    view.stop();
    expect(text).not.toContain('\x1b');
    expect(text).toContain('env aaaa  building  0.0s  (start)\n');
    expect(text).toContain('env aaaa  built  0.0s  (start)\n');
  });

  it('shows the wait live under the images on a TTY, counting from when it began, until it is over', () => {
    let text = '';
    let clock = 10_000;
    const out = { isTTY: true, write: (chunk: string) => void (text += chunk) };
    const view = createDeployView(out, { now: () => clock });
    view.onEvent({ type: 'resolved', images: 1, indexes: 0, platforms: ['linux-64'] });
    view.onEvent({ type: 'image', envId: 'aaaa', tag: 't', steps: ['start'], phase: 'pushing' });
    view.onEvent({ type: 'waiting', target: '127.0.0.1:5100', what: 'blob upload', seconds: 5 });
    clock += 7000;
    view.stop();
    expect(text).toContain('  waiting for 127.0.0.1:5100 (blob upload) — 12 s\n');
    text = '';
    view.onEvent({ type: 'waiting', target: '127.0.0.1:5100', what: 'blob upload', seconds: 0 });
    view.stop();
    expect(text).not.toContain('waiting for');
  });
});
