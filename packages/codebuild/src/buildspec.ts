import { CONTEXT_TARBALL } from './context-zip.js';

/** The line the buildspec prints with the pushed digest, and the variable it exports. */
export const DIGEST_VARIABLE = 'PREBUILT_DIGEST';
export const DIGEST_LINE = /^PREBUILT_DIGEST=(sha256:[a-f0-9]{64})\s*$/;

/** How the build logs in to the registry before it pulls and pushes. */
export type RegistryLogin =
  | { kind: 'none' }
  /** ECR with the project's service role. */
  | { kind: 'ecr'; registry: string; region: string }
  /** A password from Parameter Store or Secrets Manager, given to the build as a reference. */
  | { kind: 'stored-password'; registry: string };

/** `123456789012.dkr.ecr.us-east-1.amazonaws.com` → its region; undefined for other registries. */
export function ecrRegion(registry: string): string | undefined {
  return /^\d{12}\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/.exec(registry)?.[1];
}

/**
 * The buildspec (JSON, which CodeBuild reads as YAML): unpack the context tarball, log in, build
 * for the platform, push, and print and export the pushed digest. Every value comes in through
 * environment variables, so nothing here needs quoting; no credential appears in it.
 */
export function buildspec(login: RegistryLogin): string {
  const loginCommands =
    login.kind === 'ecr'
      ? [`aws ecr get-login-password --region "${login.region}" | docker login --username AWS --password-stdin "$PREBUILT_REGISTRY"`]
      : login.kind === 'stored-password'
        ? ['printf "%s" "$PREBUILT_REGISTRY_PASSWORD" | docker login --username "$PREBUILT_REGISTRY_USERNAME" --password-stdin "$PREBUILT_REGISTRY"']
        : [];
  const spec = {
    version: '0.2',
    env: { shell: 'bash', 'exported-variables': [DIGEST_VARIABLE] },
    phases: {
      pre_build: {
        commands: [`mkdir -p prebuilt-context && tar -xzf ${CONTEXT_TARBALL} -C prebuilt-context`, ...loginCommands],
      },
      build: {
        commands: [
          'docker build --platform "$PREBUILT_PLATFORM" --file "prebuilt-context/$PREBUILT_DOCKERFILE" --tag "$PREBUILT_IMAGE_TAG" prebuilt-context',
          'set -o pipefail && docker push "$PREBUILT_IMAGE_TAG" | tee prebuilt-push.log',
          `${DIGEST_VARIABLE}=$(grep -oE 'digest: sha256:[a-f0-9]{64}' prebuilt-push.log | tail -n 1 | cut -d ' ' -f 2) && test -n "$${DIGEST_VARIABLE}" && echo "${DIGEST_VARIABLE}=$${DIGEST_VARIABLE}"`,
        ],
      },
    },
  };
  return `${JSON.stringify(spec, null, 2)}\n`;
}
