import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkEntry, forgetEntry, recordVerified, verifiedRecordPath } from './verified-entry.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const GOOD = Buffer.from('the locked package bytes');
const GOOD_MD5 = createHash('md5').update(GOOD).digest('hex');
const locked = { sha256: sha(GOOD), size: GOOD.length };

async function entry(): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'prebuilt-verified-')), locked.sha256);
  await writeFile(path, GOOD);
  return path;
}

describe('checkEntry', () => {
  it('is missing when there is no file, and hashes a file without a record once', async () => {
    const path = await entry();
    expect(await checkEntry(`${path}-none`, locked)).toEqual({ state: 'missing' });
    expect(await checkEntry(path, locked)).toEqual({ state: 'ok', hashed: true, md5: GOOD_MD5 });
    expect(await checkEntry(path, locked)).toEqual({ state: 'ok', hashed: false, md5: GOOD_MD5 });
  });

  it('trusts a recorded md5 only while the metadata is unchanged, and never one of a file that changed', async () => {
    const path = await entry();
    const forged = 'f'.repeat(32);
    await recordVerified(path, locked.sha256, forged);
    // Same metadata: the record is the answer (no hash).
    expect(await checkEntry(path, locked)).toEqual({ state: 'ok', hashed: false, md5: forged });
    // The same bytes written again (mtime and ctime move): hashed, the real md5 recorded.
    await writeFile(path, GOOD);
    expect(await checkEntry(path, locked)).toEqual({ state: 'ok', hashed: true, md5: GOOD_MD5 });
    expect(JSON.parse(await readFile(verifiedRecordPath(path), 'utf8'))).toMatchObject({ md5: GOOD_MD5 });
    // A malformed md5 in the record is no md5: hashed.
    await recordVerified(path, locked.sha256, 'not-an-md5');
    expect(await checkEntry(path, locked)).toEqual({ state: 'ok', hashed: true, md5: GOOD_MD5 });
  });

  it('catches other bytes of the same size even with size and mtime restored (the ctime moved)', async () => {
    const path = await entry();
    await recordVerified(path, locked.sha256, GOOD_MD5);
    // The attacker keeps the exact (nanosecond) mtime on a reference file and restores it after writing.
    const before = await stat(path, { bigint: true });
    execFileSync('touch', ['-r', path, `${path}.ref`]);
    await writeFile(path, Buffer.from('the tampered package byte'.slice(0, GOOD.length)));
    execFileSync('touch', ['-r', `${path}.ref`, path]);
    const after = await stat(path, { bigint: true });
    expect([after.size, after.mtimeNs, after.ino]).toEqual([before.size, before.mtimeNs, before.ino]);
    expect(after.ctimeNs).not.toBe(before.ctimeNs);
    const check = await checkEntry(path, locked);
    expect(check.state).toBe('mismatch');
    expect(check.state === 'mismatch' && check.problem).toMatch(/^its sha256 is [0-9a-f]{64}, the lock says /);
  });

  it('catches a replacement by rename (new inode) and a truncation, and refuses a symlink', async () => {
    const path = await entry();
    await recordVerified(path, locked.sha256, GOOD_MD5);
    const other = `${path}.other`;
    await writeFile(other, Buffer.alloc(GOOD.length, 0x42));
    await rename(other, path);
    expect((await checkEntry(path, locked)).state).toBe('mismatch');
    await writeFile(path, GOOD.subarray(0, 5));
    expect(await checkEntry(path, locked)).toEqual({ state: 'mismatch', problem: `it has 5 bytes, the lock says ${GOOD.length} (truncated or replaced)` });
    const target = await entry();
    const link = `${target}.link`;
    await symlink(target, link);
    expect(await checkEntry(link, locked)).toEqual({ state: 'mismatch', problem: 'it is not a regular file' });
  });

  it('a forged record for other content is not trusted when the file changed after it was written', async () => {
    const path = await entry();
    await writeFile(verifiedRecordPath(path), JSON.stringify({ sha256: locked.sha256, size: locked.size, ino: '1', mtimeNs: '0', ctimeNs: '0' }));
    await writeFile(path, Buffer.alloc(GOOD.length, 0x43));
    expect((await checkEntry(path, locked)).state).toBe('mismatch');
    await forgetEntry(path);
    await expect(readFile(path)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(readFile(verifiedRecordPath(path))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
