/** One challenge of a `WWW-Authenticate` header, e.g. `Bearer realm="…",service="…",scope="…"`. */
export interface AuthChallenge {
  /** Lower-cased scheme: `basic`, `bearer`, … */
  scheme: string;
  /** Auth parameters with lower-cased names. */
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header (RFC 7235): one or more challenges, each a scheme followed
 * by comma-separated `name=value` parameters whose values may be quoted strings with `\` escapes.
 */
export function parseWwwAuthenticate(header: string | null | undefined): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  if (!header) return challenges;
  const cursor = new HeaderCursor(header);
  let current: AuthChallenge | undefined;
  while (!cursor.done()) {
    cursor.skipSpace();
    if (cursor.take(',')) continue;
    const token = cursor.readToken();
    if (token === '') {
      cursor.skip(); // a stray character
      continue;
    }
    cursor.skipSpace();
    if (current && cursor.take('=')) {
      cursor.skipSpace();
      current.params[token.toLowerCase()] = cursor.readValue();
    } else {
      current = { scheme: token.toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;
}

/** A position in a header value and the lexical pieces of RFC 7235 read from it. */
class HeaderCursor {
  private readonly text: string;
  private i = 0;

  constructor(text: string) {
    this.text = text;
  }

  done(): boolean {
    return this.i >= this.text.length;
  }

  skip(): void {
    this.i++;
  }

  skipSpace(): void {
    while (this.text[this.i] === ' ' || this.text[this.i] === '\t') this.i++;
  }

  /** Steps over `char` when it comes next, and says whether it did. */
  take(char: string): boolean {
    if (this.text[this.i] !== char) return false;
    this.i++;
    return true;
  }

  readToken(): string {
    const start = this.i;
    while (!this.done() && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(this.text[this.i]!)) this.i++;
    return this.text.slice(start, this.i);
  }

  /** A parameter's value: a quoted string (`\` escapes the next character) or a bare one up to `,` or a space. */
  readValue(): string {
    if (!this.take('"')) {
      const start = this.i;
      while (!this.done() && this.text[this.i] !== ',' && this.text[this.i] !== ' ') this.i++;
      return this.text.slice(start, this.i);
    }
    let value = '';
    while (!this.done() && this.text[this.i] !== '"') {
      if (this.text[this.i] === '\\' && this.i + 1 < this.text.length) this.i++;
      value += this.text[this.i];
      this.i++;
    }
    this.i++; // closing quote
    return value;
  }
}
