import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A licence as an SBOM states it: an SPDX expression, or a `LicenseRef-…` with the text it stands for. */
export interface SpdxLicense {
  /** What goes into `licenseDeclared`: an SPDX expression, a `LicenseRef-…` id, or `NOASSERTION`. */
  expression: string;
  /** Set for a `LicenseRef-…`: the licence text the package declared. */
  extracted?: { licenseId: string; extractedText: string; name: string };
}

let licenseIds: Map<string, string> | undefined;
let exceptionIds: Map<string, string> | undefined;

/** The SPDX licence list (current and deprecated ids), lower-cased → canonical spelling. */
function spdxIds(): { licenses: Map<string, string>; exceptions: Map<string, string> } {
  if (!licenseIds || !exceptionIds) {
    const ids = [...(require('spdx-license-ids') as string[]), ...(require('spdx-license-ids/deprecated.json') as string[])];
    const exceptions = [...(require('spdx-exceptions') as string[]), ...(require('spdx-exceptions/deprecated.json') as string[])];
    licenseIds = new Map(ids.map((id) => [id.toLowerCase(), id]));
    exceptionIds = new Map(exceptions.map((id) => [id.toLowerCase(), id]));
  }
  return { licenses: licenseIds, exceptions: exceptionIds };
}

const OPERATORS = new Map([
  ['and', 'AND'],
  ['or', 'OR'],
  ['with', 'WITH'],
]);

/**
 * The canonical form of an SPDX licence expression (`mit or Apache-2.0` → `MIT OR Apache-2.0`),
 * or undefined when it is not one: every term must be a listed licence id (with an optional `+`),
 * a listed exception after `WITH`, or a `LicenseRef-`; operators and parentheses must alternate
 * with terms and balance.
 */
export function canonicalSpdxExpression(text: string): string | undefined {
  const tokens = text.trim().split(/\s+|(?=[()])|(?<=[()])/).filter((t) => t !== '');
  if (tokens.length === 0) return undefined;
  const { licenses, exceptions } = spdxIds();
  const out: string[] = [];
  let depth = 0;
  let expectTerm = true;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const operator = OPERATORS.get(token.toLowerCase());
    if (token === '(' && expectTerm) depth += 1;
    else if (token === ')' && !expectTerm && depth > 0) depth -= 1;
    else if (operator && !expectTerm) {
      expectTerm = true;
      if (operator === 'WITH') {
        const exception = exceptions.get((tokens[++i] ?? '').toLowerCase());
        if (!exception) return undefined;
        out.push(operator, exception);
        expectTerm = false;
        continue;
      }
    } else if (expectTerm && !operator && token !== '(' && token !== ')') {
      const term = licenseTerm(token, licenses);
      if (!term) return undefined;
      out.push(term);
      expectTerm = false;
      continue;
    } else return undefined;
    out.push(operator ?? token);
  }
  if (expectTerm || depth !== 0) return undefined;
  return out.join(' ').replace(/\( /g, '(').replace(/ \)/g, ')');
}

function licenseTerm(token: string, licenses: Map<string, string>): string | undefined {
  if (/^(DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+$/.test(token)) return token;
  const plus = token.endsWith('+');
  const id = licenses.get((plus ? token.slice(0, -1) : token).toLowerCase());
  return id ? `${id}${plus ? '+' : ''}` : undefined;
}

/**
 * The SBOM form of a package's declared licence: an SPDX expression as it is; anything else
 * (`BSD`, `PSF`, a licence's full text) a `LicenseRef-` named after its text's hash, with the
 * text kept for `hasExtractedLicensingInfos`; nothing declared is `NOASSERTION`.
 */
export function spdxLicense(declared: string | undefined): SpdxLicense {
  const text = declared?.trim();
  if (!text || /^(unknown|none|noassertion)$/i.test(text)) return { expression: 'NOASSERTION' };
  const expression = canonicalSpdxExpression(text);
  if (expression) return { expression };
  const slug = text.slice(0, 40).replace(/[^A-Za-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '');
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 8);
  const licenseId = `LicenseRef-${slug ? `${slug}-` : ''}${hash}`;
  return { expression: licenseId, extracted: { licenseId, extractedText: text, name: text.split('\n')[0]!.slice(0, 80) } };
}
