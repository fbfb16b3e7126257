import { isImageDigest, lastLines } from '@prebuilt/core/backend';
import { CONTAINER_NAME } from './kaniko-manifests.js';

/** How a kaniko Job ended, as far as prebuilt saw it. */
export type JobOutcome =
  | { kind: 'succeeded'; digest: string }
  | { kind: 'failed'; reason: string }
  | { kind: 'timeout' }
  | { kind: 'cancelled' };

type Condition = { type?: string; status?: string; reason?: string; message?: string };

/** The parts of a pod the build looks at. */
export interface PodObject {
  metadata?: { name?: string };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: Condition[];
    containerStatuses?: {
      name?: string;
      state?: {
        waiting?: { reason?: string; message?: string };
        running?: unknown;
        terminated?: { exitCode?: number; reason?: string; message?: string };
      };
    }[];
  };
}

/** Waiting reasons that will not fix themselves: the build fails instead of waiting for the timeout. */
const STUCK = new Set(['ImagePullBackOff', 'ErrImageNeverPull', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError']);

/** What one look at the executor pod tells. */
export interface PodState {
  name: string;
  /** A line for the build log while the pod waits for a node. */
  note: string | undefined;
  /** The executor container runs or ran: its log can be followed. */
  hasLog: boolean;
  /** The executor container has terminated. */
  terminated: boolean;
  /** The build's end, when the pod shows it. */
  outcome: Extract<JobOutcome, { kind: 'succeeded' | 'failed' }> | undefined;
}

export function readPod(pod: PodObject): PodState {
  const name = pod.metadata?.name ?? '(unnamed pod)';
  const unscheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  const note = unscheduled
    ? `prebuilt: pod ${name} is not scheduled yet: ${[unscheduled.reason, unscheduled.message].filter(Boolean).join(': ')}`
    : undefined;
  const state = pod.status?.containerStatuses?.find((status) => status.name === CONTAINER_NAME)?.state;
  return { name, note, hasLog: Boolean(state?.running || state?.terminated), terminated: Boolean(state?.terminated), outcome: podOutcome(pod, name) };
}

function podOutcome(pod: PodObject, name: string): PodState['outcome'] {
  const state = pod.status?.containerStatuses?.find((status) => status.name === CONTAINER_NAME)?.state;
  if (state?.waiting?.reason && STUCK.has(state.waiting.reason)) {
    const message = state.waiting.message ? `: ${state.waiting.message}` : '';
    return { kind: 'failed', reason: `the executor pod ${name} cannot start (${state.waiting.reason}${message})` };
  }
  if (state?.terminated) {
    const { exitCode, reason, message } = state.terminated;
    const text = (message ?? '').trim();
    if (exitCode === 0) {
      if (isImageDigest(text)) return { kind: 'succeeded', digest: text };
      return { kind: 'failed', reason: `the executor finished without writing a digest to its termination log (got '${text.slice(0, 100)}')` };
    }
    const lastLine = lastLines(text, 1);
    return {
      kind: 'failed',
      reason: `the executor exited with code ${exitCode}${reason ? ` (${reason})` : ''}${lastLine ? `: ${lastLine.trim()}` : ''}`,
    };
  }
  if (pod.status?.phase === 'Failed') {
    return { kind: 'failed', reason: `the executor pod ${name} failed: ${pod.status.reason ?? ''} ${pod.status.message ?? ''}`.trim() };
  }
  return undefined;
}
