/**
 * The live view of a deploy, for people: one line per image (checking → materializing → building →
 * pushing → done/failed), with elapsed time and the steps that use it. On a TTY the block is redrawn
 * in place; otherwise each phase change is one plain line.
 */
import type { DeployEvent, ImagePhase } from '@prebuilt/core';
import type { Writer } from './cli-context.js';
import { errorText, noteLine, oneLineText, quotedText } from './output.js';

interface ImageLine {
  envId: string;
  platform?: string;
  steps: string[];
  phase: ImagePhase;
  started: number;
  ended?: number;
  progress?: string;
  /** What a waiting image waits for (who holds its build lock, since when). */
  detail?: string;
}

const FINAL: ReadonlySet<ImagePhase> = new Set(['present', 'built', 'failed', 'missing']);
const LABEL: Record<ImagePhase, string> = {
  checking: 'checking registry',
  waiting: 'waiting for another prebuilt process building it',
  missing: 'not in registry',
  materializing: 'materializing',
  building: 'building',
  pushing: 'pushing',
  verifying: 'verifying push',
  present: 'present',
  built: 'built',
  failed: 'failed',
};

/**
 * The phases whose label carries the event's detail: who holds the build lock (waiting); why a
 * present image is rebuilt (checking: `rebuilding: prefetch profile changed`) or would be (missing,
 * in a plan: `will rebuild: …`, as the plan's lines below its table say it).
 */
const WITH_DETAIL: Partial<Record<ImagePhase, (detail: string) => string>> = {
  waiting: (detail) => `waiting: ${detail}`,
  checking: (detail) => `rebuilding: ${detail}`,
  missing: (detail) => `will rebuild: ${detail}`,
};

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

export interface DeployView {
  onEvent(event: DeployEvent): void;
  /** Stops redrawing and leaves the final state on screen. */
  stop(): void;
}

interface ViewState {
  tty: boolean;
  now: () => number;
  frame: number;
  /** The platform shows once the deploy builds for more than linux-64. */
  multiPlatform: boolean;
}

function waitText(state: ViewState, wait: { target: string; what: string; since: number }): string {
  return `${state.tty ? '  ' : ''}waiting for ${wait.target} (${wait.what}) — ${Math.round((state.now() - wait.since) / 1000)} s`;
}

function lineText(state: ViewState, line: ImageLine): string {
  const elapsed = formatSeconds((line.ended ?? state.now()) - line.started);
  const mark = line.phase === 'failed' ? '✗' : FINAL.has(line.phase) ? '✓' : SPINNER[state.frame % SPINNER.length];
  const progress = line.progress && !FINAL.has(line.phase) ? ` ${line.progress}` : '';
  // An index line says `image index`.
  const platform = state.multiPlatform && line.platform ? `${line.platform.includes('+') ? 'image index' : line.platform}  ` : '';
  const withDetail = WITH_DETAIL[line.phase];
  const label = line.detail && withDetail ? withDetail(line.detail) : LABEL[line.phase];
  return `${state.tty ? `${mark} ` : ''}env ${line.envId}  ${platform}${label}${progress}  ${elapsed}  (${line.steps.join(', ')})`;
}

/** `3 images`, `4 images and 2 image indexes (linux-64, linux-aarch64)`. */
function resolvedText(event: Extract<DeployEvent, { type: 'resolved' }>): string {
  const indexes = event.indexes > 0 ? ` and ${event.indexes} image index${event.indexes === 1 ? '' : 'es'} (${event.platforms.join(', ')})` : '';
  return `${event.images} image${event.images === 1 ? '' : 's'}${indexes}`;
}

/** An image event applied to its line (made on its first event); `changed`: what a line shows moved. */
function imageLine(lines: Map<string, ImageLine>, event: Extract<DeployEvent, { type: 'image' }>, now: () => number): { line: ImageLine; changed: boolean } {
  const line = lines.get(event.envId) ?? { envId: event.envId, steps: event.steps, phase: event.phase, started: now(), ...(event.platform ? { platform: event.platform } : {}) };
  // One line: the live block redraws over as many lines as it drew.
  const detail = WITH_DETAIL[event.phase] && event.detail ? oneLineText(event.detail) : undefined;
  const changed = line.phase !== event.phase || !lines.has(event.envId) || line.detail !== detail;
  if (line.phase !== event.phase) delete line.progress;
  line.phase = event.phase;
  if (detail) line.detail = detail;
  else delete line.detail;
  if (FINAL.has(event.phase)) line.ended = now();
  lines.set(event.envId, line);
  return { line, changed };
}

/**
 * Whether the live view may redraw its lines in place on `out` (cursor movement): a terminal, but
 * not one that says it cannot move the cursor (`TERM=dumb`: Emacs' shell, some CI log viewers),
 * which gets the plain line per phase change a pipe gets.
 */
export function redrawsOn(out: { isTTY?: boolean }, env: Record<string, string | undefined>): boolean {
  return out.isTTY === true && env['TERM'] !== 'dumb';
}

/** The live view of a build on `out`; `tty` (default: `out.isTTY`, see {@link redrawsOn}) redraws its lines in place. */
export function createDeployView(out: Writer & { isTTY?: boolean }, options: { now?: () => number; tty?: boolean } = {}): DeployView {
  const now = options.now ?? Date.now;
  const started = now();
  const lines = new Map<string, ImageLine>();
  const state: ViewState = { tty: options.tty ?? out.isTTY === true, now, frame: 0, multiPlatform: false };
  const tty = state.tty;
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;
  let resolvingShown = false;
  /** Network reads that stall now: `target what` → since when. */
  const waits = new Map<string, { target: string; what: string; since: number }>();
  const waitLine = (wait: { target: string; what: string; since: number }): string => waitText(state, wait);
  const render = (line: ImageLine): string => lineText(state, line);
  const redraw = (): void => {
    state.frame++;
    const text = [...[...lines.values()].map(render), ...[...waits.values()].map(waitLine)];
    out.write(`${drawn > 0 ? `\x1b[${drawn}A\x1b[0J` : ''}${text.join('\n')}${text.length > 0 ? '\n' : ''}`);
    drawn = text.length;
  };

  return {
    onEvent(event) {
      switch (event.type) {
        case 'resolving':
          if (!resolvingShown) out.write('reading the flow and locking its envs…\n');
          resolvingShown = true;
          return;
        case 'resolved':
          state.multiPlatform = event.platforms.some((platform) => platform !== 'linux-64');
          out.write(`${resolvedText(event)} (locked in ${formatSeconds(now() - started)})\n`);
          if (tty && !timer) timer = setInterval(redraw, 120).unref();
          return;
        case 'progress': {
          const line = lines.get(event.envId);
          if (line) line.progress = `${event.phase} ${event.done}/${event.total}`;
          return;
        }
        case 'log':
          return;
        case 'note':
          // Above the live block: clear it, print the note, draw the block again below.
          out.write(`${tty && drawn > 0 ? `\x1b[${drawn}A\x1b[0J` : ''}${noteLine(event.message)}`);
          drawn = 0;
          if (tty) redraw();
          return;
        case 'waiting': {
          const key = `${event.target} ${event.what}`;
          if (event.seconds <= 0) {
            waits.delete(key);
            return;
          }
          // What is read may name a file from outside (`download of <file>`): shown escaped, as everywhere.
          const wait = { target: oneLineText(event.target), what: oneLineText(event.what), since: now() - event.seconds * 1000 };
          waits.set(key, wait);
          // On a TTY the redraw shows it live; elsewhere (and before the block is drawn) one line per report.
          if (!tty || !timer) out.write(`${waitLine(wait)}\n`);
          return;
        }
        case 'image': {
          const { line, changed } = imageLine(lines, event, now);
          if (!tty && changed) out.write(`${render(line)}${event.phase === 'failed' && event.detail ? `: ${quotedText(errorText(event.detail))}` : ''}\n`);
          return;
        }
      }
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      if (tty) redraw();
    },
  };
}
