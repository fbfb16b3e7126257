import { isAbsolute, relative, resolve, sep } from 'node:path';

/**
 * A file as messages name it: relative to the current directory when it is inside it
 * (`examples/.prebuilt/HelloFlow/images.json`), else absolute (`/srv/maps/prod.json`, not
 * `../../srv/maps/prod.json`, which says little about where the file is).
 */
export function shownPath(cwd: string, file: string): string {
  const absolute = resolve(cwd, file);
  const inside = relative(cwd, absolute);
  if (inside === '' || inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) return absolute;
  return inside;
}
