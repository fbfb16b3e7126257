#!/usr/bin/env node
// Code-shape figures for reviews of the source tree (issue 18's before/after table):
// names exported per package entry, names each package imports from each core entry,
// the largest non-test files, functions over a line budget, the most deeply nested functions,
// functions with the most parameters, and source lines per backend.
// Usage: node scripts/code-metrics.mjs [--json] [--max-function-lines N] [--max-depth N] [--max-params N]
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const asJson = args.includes('--json');
const budgetIndex = args.indexOf('--max-function-lines');
const budget = budgetIndex >= 0 ? Number(args[budgetIndex + 1]) : 80;
const numberOption = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const maxDepth = numberOption('--max-depth', 4);
const maxParams = numberOption('--max-params', 4);

function sourceFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === '__fixtures__' || name === 'node_modules' || name === 'dist') continue;
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

const packagesDir = join(root, 'packages');
const packages = readdirSync(packagesDir)
  .filter((name) => existsSync(join(packagesDir, name, 'package.json')))
  .map((dir) => {
    const manifest = JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8'));
    return { dir, name: manifest.name, manifest, files: sourceFiles(join(packagesDir, dir, 'src')) };
  });

const lineCount = (path) => readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '').length;

// Names exported by each entry in a package's "exports" map, counted through the type checker.
function entryExports(pkg) {
  const entries = [];
  for (const [key, value] of Object.entries(pkg.manifest.exports ?? {})) {
    const types = typeof value === 'object' ? value.types : undefined;
    if (!types) continue;
    const src = join(packagesDir, pkg.dir, types.replace(/^\.\/dist\//, 'src/').replace(/\.d\.ts$/, '.ts'));
    if (!existsSync(src)) continue;
    entries.push({ entry: key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`, src });
  }
  if (entries.length === 0) return [];
  const program = ts.createProgram(entries.map((e) => e.src), {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    noEmit: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  return entries.map(({ entry, src }) => {
    const symbol = checker.getSymbolAtLocation(program.getSourceFile(src));
    return { entry, exports: symbol ? checker.getExportsOfModule(symbol).length : 0 };
  });
}

function parse(path) {
  return ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true);
}

// Distinct names a package imports from each @prebuilt/core entry.
function coreImports(pkg) {
  const byEntry = new Map();
  for (const file of pkg.files) {
    for (const statement of parse(file).statements) {
      if (!ts.isImportDeclaration(statement) && !ts.isExportDeclaration(statement)) continue;
      const spec = statement.moduleSpecifier && ts.isStringLiteral(statement.moduleSpecifier) ? statement.moduleSpecifier.text : '';
      if (!spec.startsWith('@prebuilt/core')) continue;
      const names = byEntry.get(spec) ?? new Set();
      const bindings = ts.isImportDeclaration(statement) ? statement.importClause?.namedBindings : statement.exportClause;
      if (bindings && (ts.isNamedImports(bindings) || ts.isNamedExports(bindings))) {
        for (const element of bindings.elements) names.add((element.propertyName ?? element.name).text);
      }
      byEntry.set(spec, names);
    }
  }
  return Object.fromEntries([...byEntry].map(([entry, names]) => [entry, names.size]));
}

function functionName(node) {
  if (node.name && ts.isIdentifier(node.name)) return node.name.text;
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  if (parent && ts.isPropertyAssignment(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  return '(anonymous)';
}

const isFunction = (node) =>
  ts.isFunctionDeclaration(node) || ts.isFunctionExpression(node) || ts.isArrowFunction(node) || ts.isMethodDeclaration(node);

// Statements that open a level of nesting inside a function body.
const isNesting = (node) =>
  ts.isIfStatement(node) || ts.isForStatement(node) || ts.isForOfStatement(node) || ts.isForInStatement(node) ||
  ts.isWhileStatement(node) || ts.isDoStatement(node) || ts.isSwitchStatement(node) || ts.isTryStatement(node);

// How deep control statements nest in a function's own body (nested functions count apart);
// an `else if` stays at its `if`'s level.
function nestingDepth(body) {
  let deepest = 0;
  const visit = (node, depth) => {
    if (isFunction(node)) return;
    const elseIf = ts.isIfStatement(node) && ts.isIfStatement(node.parent) && node.parent.elseStatement === node;
    const here = isNesting(node) && !elseIf ? depth + 1 : depth;
    deepest = Math.max(deepest, here);
    ts.forEachChild(node, (child) => visit(child, here));
  };
  if (body) ts.forEachChild(body, (child) => visit(child, 0));
  return deepest;
}

// Each function of a file: where it is, its name, its lines, its nesting depth and its parameters.
function functionShapes(file) {
  const source = parse(file);
  const found = [];
  const visit = (node) => {
    if (isFunction(node)) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      found.push({
        file: relative(root, file),
        line: start + 1,
        name: functionName(node),
        lines: end - start + 1,
        depth: nestingDepth(node.body),
        params: node.parameters.length,
      });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const allFiles = packages.flatMap((p) => p.files);
const shapes = allFiles.flatMap(functionShapes);
const report = {
  entries: packages.flatMap(entryExports),
  coreImports: Object.fromEntries(packages.filter((p) => p.name !== '@prebuilt/core').map((p) => [p.name, coreImports(p)])),
  largestFiles: allFiles
    .map((f) => ({ file: relative(root, f), lines: lineCount(f) }))
    .sort((a, b) => b.lines - a.lines)
    .slice(0, 12),
  longFunctions: shapes.filter((f) => f.lines > budget).sort((a, b) => b.lines - a.lines),
  deepFunctions: shapes.filter((f) => f.depth > maxDepth).sort((a, b) => b.depth - a.depth || b.lines - a.lines),
  manyParameters: shapes.filter((f) => f.params > maxParams).sort((a, b) => b.params - a.params || b.lines - a.lines),
  packageLines: Object.fromEntries(packages.map((p) => [p.name, p.files.reduce((sum, f) => sum + lineCount(f), 0)])),
};

if (asJson) {
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} else {
  console.log('Exports per entry');
  for (const e of report.entries) console.log(`  ${String(e.exports).padStart(4)}  ${e.entry}`);
  console.log('\nNames imported from core, per package and entry');
  for (const [name, entries] of Object.entries(report.coreImports)) {
    const text = Object.entries(entries).map(([entry, n]) => `${entry} ${n}`).join(', ');
    if (text) console.log(`  ${name}: ${text}`);
  }
  console.log('\nLargest non-test files (non-blank lines)');
  for (const f of report.largestFiles) console.log(`  ${String(f.lines).padStart(4)}  ${f.file}`);
  console.log(`\nFunctions over ${budget} lines: ${report.longFunctions.length}`);
  for (const f of report.longFunctions) console.log(`  ${String(f.lines).padStart(4)}  ${f.name}  ${f.file}:${f.line}`);
  console.log(`\nFunctions nested deeper than ${maxDepth} levels: ${report.deepFunctions.length}`);
  for (const f of report.deepFunctions) console.log(`  ${String(f.depth).padStart(4)}  ${f.name}  ${f.file}:${f.line}`);
  console.log(`\nFunctions with more than ${maxParams} parameters: ${report.manyParameters.length}`);
  for (const f of report.manyParameters) console.log(`  ${String(f.params).padStart(4)}  ${f.name}  ${f.file}:${f.line}`);
  console.log('\nNon-blank source lines per package (tests excluded)');
  for (const [name, lines] of Object.entries(report.packageLines)) console.log(`  ${String(lines).padStart(5)}  ${name}`);
}
