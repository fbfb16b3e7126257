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
 * node endpoint FAKE_DOCKER_ENDPOINT (default `default`). With the `docker` driver a build that gets
 * to its export stores the image in the fake daemon (a JSON file of tag → image ID, the ID from the
 * digest) before it pushes; `docker [--context c] image inspect --format '{{.Id}}' <tag>`,
 * `image rm <tag>` and `image tag <id> <tag>` read and change that file. Like a daemon, it keeps an
 * image whose last tag a build or `image tag` moved away (untagged, still taggable by ID), and
 * `image rm` of an image's last tag deletes the image. With FAKE_DOCKER_CONTAINERD_STORE=1 a build
 * that takes an image's last tag drops that image, as BuildKit does on Docker Engine 26.1 and 28.5
 * with the containerd image store. `image rm` fails with the message
 * FAKE_DOCKER_RM_ERROR, `image inspect` with FAKE_DOCKER_INSPECT_ERROR, `image tag` with
 * FAKE_DOCKER_TAG_ERROR, when set. Every command but `buildx version` is recorded (only builds with
 * a dockerfile and DOCKER_CONFIG).
 *
 * Env switches: FAKE_DOCKER_NO_BUILDX=1 (the plugin is missing), FAKE_DOCKER_IGNORE_SIGINT=1 (the
 * build ignores SIGINT, so only SIGKILL stops it), FAKE_DOCKER_NO_METADATA=1 (exit 0 without a
 * digest), FAKE_DOCKER_PUSH_ERROR=<message> (the push fails after the export, like a registry that
 * refuses it), FAKE_DOCKER_PUSH_SLEEP=<seconds> (after the export, a `pushing layers` line and a wait
 * before the push ends: a build to cancel mid-push).
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
const imageArgs = args[0] === '--context' ? args.slice(2) : args;
if (imageArgs[0] === 'image') imageCommand(imageArgs);
if (args[0] !== 'buildx') { out("docker: '" + args[0] + "' is not supported by this fake"); process.exit(1); }
if (process.env.FAKE_DOCKER_NO_BUILDX) {
  out("docker: 'buildx' is not a docker command.");
  out("See 'docker --help'");
  process.exit(1);
}
if (args[1] === 'version') { process.stdout.write('github.com/docker/buildx v0.0.0-fake fake\n'); process.exit(0); }
if (args[1] === 'inspect') {
  recordCommand();
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
function recordCommand() {
  if (process.env.FAKE_DOCKER_RECORD) fs.appendFileSync(process.env.FAKE_DOCKER_RECORD, JSON.stringify({ pid: process.pid, argv: args, env: {} }) + '\n');
}
/** The fake daemon: tags (tag → image ID) and untagged images (IDs no tag names). */
function readDaemon() {
  try { return JSON.parse(fs.readFileSync(process.env.FAKE_DOCKER_IMAGES, 'utf8')); } catch { return { tags: {}, untagged: [] }; }
}
function writeDaemon(daemon) {
  fs.writeFileSync(process.env.FAKE_DOCKER_IMAGES + '.tmp', JSON.stringify(daemon));
  fs.renameSync(process.env.FAKE_DOCKER_IMAGES + '.tmp', process.env.FAKE_DOCKER_IMAGES);
}
/** Points the tag at the image; the image it named before stays, untagged, when no other tag names it (unless drop). */
function setTag(daemon, tag, id, drop = false) {
  const old = daemon.tags[tag];
  daemon.tags[tag] = id;
  daemon.untagged = daemon.untagged.filter((u) => u !== id);
  if (!drop && old && old !== id && !Object.values(daemon.tags).includes(old)) daemon.untagged.push(old);
}
function imageCommand(argv) {
  recordCommand();
  const IMAGE_ERRORS = { rm: 'FAKE_DOCKER_RM_ERROR', inspect: 'FAKE_DOCKER_INSPECT_ERROR', tag: 'FAKE_DOCKER_TAG_ERROR' };
  if (!(argv[1] in IMAGE_ERRORS)) { out('unsupported: ' + args.join(' ')); process.exit(1); }
  const error = process.env[IMAGE_ERRORS[argv[1]]];
  if (error) { out(error); process.exit(1); }
  const daemon = readDaemon();
  if (argv[1] === 'tag') {
    const [id, tag] = argv.slice(2);
    if (!Object.values(daemon.tags).includes(id) && !daemon.untagged.includes(id)) { out('Error response from daemon: No such image: ' + id); process.exit(1); }
    setTag(daemon, tag, id);
    writeDaemon(daemon);
    process.exit(0);
  }
  const tag = argv[argv.length - 1];
  if (!(tag in daemon.tags)) { out('Error response from daemon: No such image: ' + tag); process.exit(1); }
  if (argv[1] === 'inspect') { process.stdout.write(daemon.tags[tag] + '\n'); process.exit(0); }
  // The image goes with its last tag (an untagged image is not kept, unlike one a tag moved away from).
  delete daemon.tags[tag];
  writeDaemon(daemon);
  process.stdout.write('Untagged: ' + tag + '\n');
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
  if (process.env.FAKE_DOCKER_DRIVER === 'docker') {
    const daemon = readDaemon();
    setTag(daemon, tag, 'sha256:' + crypto.createHash('sha256').update(digest).digest('hex'), Boolean(process.env.FAKE_DOCKER_CONTAINERD_STORE));
    writeDaemon(daemon);
  }
  if (process.env.FAKE_DOCKER_PUSH_SLEEP) {
    out('#' + (step + 1) + ' pushing layers');
    await new Promise((r) => setTimeout(r, Number(process.env.FAKE_DOCKER_PUSH_SLEEP) * 1000));
  }
  if (process.env.FAKE_DOCKER_PUSH_ERROR) {
    out('#' + (step + 1) + ' ERROR: ' + process.env.FAKE_DOCKER_PUSH_ERROR);
    out('ERROR: failed to solve: failed to push ' + tag + ': ' + process.env.FAKE_DOCKER_PUSH_ERROR);
    process.exit(1);
  }
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
  /** Every docker command the fake saw but `buildx version`, oldest first. */
  records(): Promise<FakeDockerRecord[]>;
  /** The fake daemon's tags: tag → image ID. */
  images(): Promise<Record<string, string>>;
  /** The IDs of the fake daemon's untagged images (kept when a tag moved to another image). */
  untaggedImages(): Promise<string[]>;
  /** Stores an image in the fake daemon under `tag` (as if the user had built or pulled it). */
  setImage(tag: string, id: string): Promise<void>;
  remove(): Promise<void>;
}

export async function createFakeDocker(): Promise<FakeDocker> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-fake-docker-'));
  const script = join(dir, 'docker');
  await writeFile(script, `#!${process.execPath}\n${SCRIPT}`);
  await chmod(script, 0o755);
  const recordFile = join(dir, 'records.jsonl');
  const imagesFile = join(dir, 'images.json');
  type Daemon = { tags: Record<string, string>; untagged: string[] };
  const daemon = async () => JSON.parse(await readFile(imagesFile, 'utf8').catch(() => '{"tags":{},"untagged":[]}')) as Daemon;
  const writeDaemon = (d: Daemon) => writeFile(imagesFile, JSON.stringify(d));
  return {
    dir,
    env: (extra = {}) => ({
      ...process.env,
      PATH: `${dir}:${process.env['PATH'] ?? ''}`,
      FAKE_DOCKER_RECORD: recordFile,
      FAKE_DOCKER_IMAGES: imagesFile,
      ...extra,
    }),
    images: async () => (await daemon()).tags,
    untaggedImages: async () => (await daemon()).untagged,
    setImage: async (tag, id) => {
      const d = await daemon();
      await writeDaemon({ ...d, tags: { ...d.tags, [tag]: id } });
    },
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
