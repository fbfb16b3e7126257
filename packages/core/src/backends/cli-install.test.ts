import { describe, expect, it } from 'vitest';
import { cliInstallKind, installCommand } from './cli-install.js';

describe('cliInstallKind / installCommand: the npm command that puts a package where the CLI finds it', () => {
  it('a global CLI (npm i -g: <prefix>/lib/node_modules), run from any project: npm i -g', () => {
    for (const cwd of ['/home/ana/flows', '/home/ana/project/sub', '/']) {
      expect(cliInstallKind('/usr/local/lib/node_modules/metaflow-prebuilt', cwd)).toBe('global');
      expect(installCommand('@prebuilt/ecr', '/usr/local/lib/node_modules/metaflow-prebuilt', cwd)).toBe('npm i -g @prebuilt/ecr');
    }
    expect(installCommand('@prebuilt/ecr', '/home/ana/.local/share/pnpm/global/5/node_modules/metaflow-prebuilt', '/home/ana/flows')).toBe('npm i -g @prebuilt/ecr');
  });

  it("a project's CLI, run from the project or any directory below it: npm i -D", () => {
    const cli = '/home/ana/project/node_modules/metaflow-prebuilt';
    for (const cwd of ['/home/ana/project', '/home/ana/project/flows/train']) {
      expect(cliInstallKind(cli, cwd)).toBe('project');
      expect(installCommand('@prebuilt/gcr', cli, cwd)).toBe('npm i -D @prebuilt/gcr');
    }
    // pnpm's store layout: the last node_modules is inside .pnpm, still under the project.
    expect(cliInstallKind('/home/ana/project/node_modules/.pnpm/metaflow-prebuilt@0.1.0/node_modules/metaflow-prebuilt', '/home/ana/project/flows')).toBe('project');
    // A directory whose name only starts like the project's is another directory.
    expect(cliInstallKind(cli, '/home/ana/project-2')).toBe('global');
  });

  it('a clone of the repository (no node_modules) or no CLI directory: npm i -D', () => {
    expect(cliInstallKind('/work/prebuilt/packages/cli', '/tmp/elsewhere')).toBe('project');
    expect(installCommand('@prebuilt/kaniko', undefined, '/tmp')).toBe('npm i -D @prebuilt/kaniko');
  });
});
