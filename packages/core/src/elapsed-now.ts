/**
 * Elapsed time in ms, on a monotonic clock, for the timeouts of a request in flight: a step of the
 * wall clock (NTP, `date -s`) moves `Date.now()` — forward it failed every request in flight as idle
 * or past its deadline, back it let a stalled one (a hung registry or daemon) hang for as long as
 * the step.
 */
export function elapsedNow(): number {
  return performance.now();
}
