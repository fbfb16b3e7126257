import { inspect } from 'node:util';

const REDACTED = '<redacted>';

/**
 * A secret value (password, token, key). It prints as `<redacted>` in logs, JSON, `util.inspect`
 * and string templates; only `reveal()` gives the value, at the one place that sends it.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
  static from(value: string | Secret | undefined): Secret | undefined {
    if (value === undefined) return undefined;
    return value instanceof Secret ? value : new Secret(value);
  }
}
