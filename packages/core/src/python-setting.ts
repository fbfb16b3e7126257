/** The setting that names the host interpreter: it reads the flow and runs pip (the metaflow and conda packages). */
export const PYTHON_SETTING = 'METAFLOW_PREBUILT_PYTHON';

/**
 * The host interpreter {@link PYTHON_SETTING} names, spaces around it dropped; undefined when it is
 * unset or blank (then `python3` on PATH). Read here only, so the flow's reader and pip run the same interpreter.
 */
export function pythonSetting(env: Record<string, string | undefined>): string | undefined {
  const value = env[PYTHON_SETTING]?.trim();
  return value ? value : undefined;
}
