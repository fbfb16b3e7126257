/**
 * A scripted stand-in for the `docker` command (a FAKE, not Docker): a small node script put on
 * PATH as `docker`. `docker buildx version` answers like the plugin; `docker buildx build` records
 * its arguments and its DOCKER_CONFIG (path, config.json content and mode), reads the Dockerfile
 * from stdin, "builds" it against the context directory and writes a real metadata file:
 *
 * - `COPY <src> …` fails like BuildKit when `<src>` is not in the context;
 * - `RUN sleep <n>` sleeps (a hanging build), `RUN exit <n>` fails with that code;
 * - otherwise it prints plain progress lines and writes `containerimage.digest` (a sha256 of the
 *   Dockerfile, tag and context) to the `--metadata-file`.
 *
 * `docker buildx inspect` names the driver FAKE_DOCKER_DRIVER (default `docker-container`) and the
 * node endpoint FAKE_DOCKER_ENDPOINT (default `default`); `docker [--context c] image rm <tag>` is
 * recorded (no dockerfile) and fails with the message FAKE_DOCKER_RM_ERROR when that is set.
 *
 * Env switches: FAKE_DOCKER_NO_BUILDX=1 (the plugin is missing), FAKE_DOCKER_IGNORE_SIGINT=1 (the
 * build ignores SIGINT, so only SIGKILL stops it), FAKE_DOCKER_NO_METADATA=1 (exit 0 without a digest).
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SCRIPT = String.raw`
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const args = process.argv.slice(2);
const out = (line) => process.stderr.write(line + '\n');
if (args[0] === '--context' || (args[0] === 'image' && args[1] === 'rm')) removeImage();
if (args[0] !== 'buildx') { out("docker: '" + args[0] + "' is not supported by this fake"); process.exit(1); }
if (process.env.FAKE_DOCKER_NO_BUILDX) {
  out("docker: 'buildx' is not a docker command.");
  out("See 'docker --help'");
  process.exit(1);
}
if (args[1] === 'version') { process.stdout.write('github.com/docker/buildx v0.0.0-fake fake\n'); process.exit(0); }
if (args[1] === 'inspect') {
  process.stdout.write('Name:          fake\nDriver:        ' + (process.env.FAKE_DOCKER_DRIVER || 'docker-container') + '\n\nNodes:\nName:      fake0\nEndpoint:  ' + (process.env.FAKE_DOCKER_ENDPOINT || 'default') + '\n');
  process.exit(0);
}
if (args[1] !== 'build') { out('unsupported: ' + args.join(' ')); process.exit(1); }
const option = (name) => { const i = args.indexOf(name); return i === -1 ? undefined : args[i + 1]; };
const contextDir = args[args.length - 1];
const record = { pid: process.pid, argv: args, env: {} };
for (const [k, v] of Object.entries(process.env)) if (k === 'DOCKER_CONFIG') record.env[k] = v;
if (process.env.DOCKER_CONFIG) {
  const file = path.join(process.env.DOCKER_CONFIG, 'config.json');
  try {
    record.config = JSON.parse(fs.readFileSync(file, 'utf8'));
    record.configMode = (fs.statSync(file).mode & 0o777).toString(8);
    record.dirMode = (fs.statSync(process.env.DOCKER_CONFIG).mode & 0o777).toString(8);
  } catch (e) { record.configError = String(e); }
}
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const dockerfile = option('-f') === '-' ? Buffer.concat(chunks).toString('utf8') : fs.readFileSync(option('-f'), 'utf8');
  record.dockerfile = dockerfile;
  if (process.env.FAKE_DOCKER_RECORD) fs.appendFileSync(process.env.FAKE_DOCKER_RECORD, JSON.stringify(record) + '\n');
  if (process.env.FAKE_DOCKER_IGNORE_SIGINT) process.on('SIGINT', () => out('fake: SIGINT ignored'));
  build(dockerfile);
});
function removeImage() {
  if (process.env.FAKE_DOCKER_RECORD) fs.appendFileSync(process.env.FAKE_DOCKER_RECORD, JSON.stringify({ pid: process.pid, argv: args, env: {} }) + '\n');
  if (process.env.FAKE_DOCKER_RM_ERROR) { out(process.env.FAKE_DOCKER_RM_ERROR); process.exit(1); }
  process.stdout.write('Untagged: ' + args[args.length - 1] + '\n');
  process.exit(0);
}
async function build(dockerfile) {
  const tag = option('--tag');
  const hash = crypto.createHash('sha256').update(dockerfile).update(tag);
  out('#0 building with "fake" instance using fake driver');
  const lines = dockerfile.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  let step = 0;
  for (const line of lines) {
    step++;
    const [instruction, ...rest] = line.split(/\s+/);
    out('#' + step + ' [' + step + '/' + lines.length + '] ' + line);
    if (/^COPY$/i.test(instruction)) {
      const src = rest[0];
      const file = path.join(contextDir, src);
      if (!fs.existsSync(file)) {
        out('#' + step + ' ERROR: failed to calculate checksum of ref fake::' + step + ': "/' + src + '": not found');
        out('ERROR: failed to solve: failed to compute cache key: failed to calculate checksum of ref fake::' + step + ': "/' + src + '": not found');
        process.exit(1);
      }
      hash.update(fs.readFileSync(file));
    } else if (/^RUN$/i.test(instruction) && rest[0] === 'sleep') {
      out('#' + step + ' sleeping ' + rest[1] + ' s');
      await new Promise((r) => setTimeout(r, Number(rest[1]) * 1000));
    } else if (/^RUN$/i.test(instruction) && rest[0] === 'exit') {
      out('#' + step + ' ERROR: process "/bin/sh -c exit ' + rest[1] + '" did not complete successfully: exit code: ' + rest[1]);
      out('ERROR: failed to solve: process "/bin/sh -c exit ' + rest[1] + '" did not complete successfully: exit code: ' + rest[1]);
      process.exit(Number(rest[1]) || 1);
    }
    out('#' + step + ' DONE 0.0s');
  }
  const digest = 'sha256:' + hash.digest('hex');
  out('#' + (step + 1) + ' exporting to image');
  out('#' + (step + 1) + ' pushing manifest for ' + tag + '@' + digest + ' done');
  if (!process.env.FAKE_DOCKER_NO_METADATA) {
    fs.writeFileSync(option('--metadata-file'), JSON.stringify({ 'containerimage.digest': digest, 'image.name': tag }));
  }
  process.exit(0);
}
`;

export interface FakeDockerRecord {
  pid: number;
  argv: string[];
  env: { DOCKER_CONFIG?: string };
  config?: { auths?: Record<string, Record<string, string>>; [key: string]: unknown };
  configMode?: string;
  dirMode?: string;
  dockerfile: string;
}

export interface FakeDocker {
  /** The directory holding the fake `docker`; put it first on PATH. */
  dir: string;
  /** An environment that runs the fake: PATH first, the record file set, plus `extra`. */
  env(extra?: Record<string, string>): Record<string, string | undefined>;
  /** Every `docker buildx build` and `docker image rm` the fake saw, oldest first. */
  records(): Promise<FakeDockerRecord[]>;
  remove(): Promise<void>;
}

export async function createFakeDocker(): Promise<FakeDocker> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-fake-docker-'));
  const script = join(dir, 'docker');
  await writeFile(script, `#!${process.execPath}\n${SCRIPT}`);
  await chmod(script, 0o755);
  const recordFile = join(dir, 'records.jsonl');
  return {
    dir,
    env: (extra = {}) => ({ ...process.env, PATH: `${dir}:${process.env['PATH'] ?? ''}`, FAKE_DOCKER_RECORD: recordFile, ...extra }),
    async records() {
      const text = await readFile(recordFile, 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as FakeDockerRecord);
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
