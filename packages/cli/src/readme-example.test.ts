/**
 * The root README opens with a build's output: its live-view lines are what the deploy view draws
 * on a terminal, and its table is what `summaryTable` prints, character for character.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import type { DeployImage } from '@prebuilt/core';
import { summaryTable } from './build-report.js';
import { createDeployView } from './deploy-view.js';

const README = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
/** The README's first code block, without the command line. */
const example = /```\n\$ prebuilt build [^\n]+\n([\s\S]*?)```/.exec(README)![1]!;
const [live, , table] = example.split('\n\n');
/** What a terminal shows after `text`: each `ESC[nA ESC[0J` (up n lines, clear below) removes the last n lines. */
function screen(text: string): string {
  let shown = '';
  for (const part of text.split(/(\x1b\[\d+A\x1b\[0J)/)) {
    const up = /^\x1b\[(\d+)A/.exec(part);
    shown = up ? shown.split('\n').slice(0, -1 - Number(up[1])).concat('').join('\n') : shown + part;
  }
  return shown;
}

const viewLine = /^✓ env (\S+)  (\w+)  ([\d.]+)s  \((.*)\)$/;

it("the README's live view is what the deploy view leaves on a terminal", () => {
  const images = live!.split('\n').slice(2).map((line) => viewLine.exec(line)!);
  expect(images.length).toBeGreaterThan(0);
  let clock = 0;
  let out = '';
  const view = createDeployView({ write: (text) => void (out += text), isTTY: true }, { now: () => clock });
  view.onEvent({ type: 'resolving', steps: 4 });
  clock = Number(/locked in ([\d.]+)s/.exec(live!)![1]) * 1000;
  view.onEvent({ type: 'resolved', images: images.length, indexes: 0, platforms: ['linux-64'] });
  const start = clock;
  for (const [, envId, , , steps] of images) view.onEvent({ type: 'image', envId: envId!, tag: 't', steps: steps!.split(', '), phase: 'checking' });
  for (const [, envId, phase, seconds, steps] of images) {
    clock = start + Number(seconds) * 1000;
    view.onEvent({ type: 'image', envId: envId!, tag: 't', steps: steps!.split(', '), phase: phase as 'built' });
  }
  view.stop();
  expect(screen(out)).toBe(`${live}\n`);
});

it("the README's table is what the build prints", () => {
  const rows = table!.split('\n').slice(1).map((row) => row.split(/ {2,}/));
  const images = rows.map(([envId, status, time, digest, pullTag, steps]) => ({
    envId: envId!,
    status: status as DeployImage['status'],
    elapsedMs: Number(time!.replace('s', '')) * 1000,
    digest: `${digest!}${'0'.repeat(52)}`,
    pullTag: pullTag!,
    steps: steps!.split(', '),
    platform: 'linux-64',
  })) as DeployImage[];
  expect(summaryTable(images)).toBe(`${table}\n`);
});
