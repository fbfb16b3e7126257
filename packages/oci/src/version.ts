/** Whether `version` ([major, minor]) is `since` or later. */
export function atLeast(version: readonly [number, number], since: readonly [number, number]): boolean {
  return version[0] > since[0] || (version[0] === since[0] && version[1] >= since[1]);
}
