import { packBuildContext } from '@prebuilt/core/backend';

export interface BuildContext {
  /** The whole context as an uncompressed tar, buffered in memory. */
  tar: Buffer;
  /** The name the Dockerfile has inside the tar (pass it as the build's `dockerfile`). */
  dockerfileName: string;
}

/**
 * Packs `contextDir` and the Dockerfile text into one tar, in memory (see `packBuildContext` of
 * @prebuilt/core: the Dockerfile under a random top-level name, entries sorted and owned by root).
 *
 * The context is buffered before it is sent because a rejected build with a streamed tar can
 * crash the process with EPIPE.
 */
export async function createBuildContext(contextDir: string, dockerfile: string): Promise<BuildContext> {
  const { result, dockerfileName } = await packBuildContext(contextDir, dockerfile, async (tar) => {
    const chunks: Buffer[] = [];
    for await (const chunk of tar) chunks.push(chunk);
    return Buffer.concat(chunks);
  });
  return { tar: result, dockerfileName };
}
