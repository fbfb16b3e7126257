import type { RegistryCredentials } from '../contracts.js';
import { ConfigError } from '../errors.js';
import { loadOptionalSetting, orOption } from '../load-setting.js';
import { Secret } from '../secret.js';

/**
 * Credentials a registry gets anew from its cloud (an ECR token, a Google access token). `token()`
 * returns the same object while the token holds and a new one when it changed: the registry's
 * client is renewed with it (core's client keeps credentials and bearer tokens for its lifetime).
 */
export interface RegistryTokenSource {
  /** The hosts the token is good for (normalised Docker config keys); default: the registry's own host. */
  serves?(host: string): boolean;
  token(signal: AbortSignal | undefined): Promise<RegistryCredentials>;
}

export interface ExplicitCredentialsInput {
  /** The registry host the credentials are for. */
  registry: string;
  /** What the registry is called in messages, e.g. `Docker Hub`, `local registry`. */
  label: string;
  username: string | undefined;
  password: string | Secret | undefined;
  envVars: { username: string; password: string };
  env: Record<string, string | undefined>;
}

/**
 * A user name and password from options or env vars (`envVars`), or undefined when neither is set
 * (the registry then falls back to the Docker config). Half a pair is a ConfigError naming the
 * missing half; the password is a `Secret`, and the source names where the pair came from.
 */
export function explicitCredentials(input: ExplicitCredentialsInput): RegistryCredentials | undefined {
  const { registry, label, envVars, env } = input;
  const setting = (value: string | undefined, envVar: string, option: string) =>
    loadOptionalSetting({ value, envVar, option, description: `The ${label} ${option}`, env });
  const username = setting(input.username, envVars.username, 'username');
  const password = setting(input.password instanceof Secret ? input.password.reveal() : input.password, envVars.password, 'password');
  if ((username === undefined) !== (password === undefined)) {
    const [given, absent] = username === undefined ? ['password', 'username'] : ['username', 'password'];
    const absentEnv = absent === 'username' ? envVars.username : envVars.password;
    throw new ConfigError(`The ${label} ${given} is set but its ${absent}, ${absentEnv}${orOption(absent)}, is not.`, {
      setting: absentEnv,
      hint: `Set both ${envVars.username} and ${envVars.password}${orOption('username', 'password')}, or neither to use your Docker config (docker login).`,
    });
  }
  if (username === undefined || password === undefined) return undefined;
  const fromOptions = input.username !== undefined;
  const source = fromOptions ? "the options 'username'/'password'" : `env ${envVars.username}/${envVars.password}`;
  // These win over the Docker config: logging in again would change nothing.
  const refusedHint = fromOptions
    ? `Pass a user name and password ${registry} accepts in the options 'username' and 'password'.`
    : `Set ${envVars.username} and ${envVars.password} to a user name and password ${registry} accepts, or unset both to use your Docker config ('docker login ${registry}'), which they override.`;
  return { registry, username, password: new Secret(password), source, refusedHint };
}
