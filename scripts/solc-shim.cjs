#!/usr/bin/env node
// A `solc` command-line stand-in over npm's solcjs (WebAssembly), for machines that can reach the npm
// registry but not the solc binary downloads. It answers the two calls py-solc-x (and so ape-solidity)
// makes: `--version` and `--standard-json` with `--base-path` / `--include-path` / `--allow-paths`.
"use strict";
const fs = require("fs");
const path = require("path");

// The shim is installed as a symlink named solc-v<version>; resolve node_modules from the real file.
const projectRoot = path.resolve(path.dirname(fs.realpathSync(__filename)), "..");
const solc = require(require.resolve("solc", { paths: [projectRoot] }));

function parseArgs(argv) {
  const opts = { basePath: null, includePaths: [], standardJson: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => argv[++i];
    if (arg === "--version") opts.version = true;
    else if (arg === "--standard-json") opts.standardJson = true;
    else if (arg === "--base-path") opts.basePath = next();
    else if (arg === "--include-path") opts.includePaths.push(next());
    else if (arg === "--allow-paths") next(); // solcjs reads only through the callback below
    else if (arg.startsWith("--")) {
      // Flags with a value that solcjs ignores in standard-json mode.
      if (argv[i + 1] !== undefined && !argv[i + 1].startsWith("--")) i++;
    }
  }
  return opts;
}

function makeImportCallback(opts) {
  const roots = [opts.basePath || process.cwd(), ...opts.includePaths, path.join(projectRoot, "node_modules")];
  return (importPath) => {
    const candidates = path.isAbsolute(importPath) ? [importPath] : roots.map((r) => path.resolve(r, importPath));
    for (const candidate of candidates) {
      if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(", ")})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    // py-solc-x parses "Version: X.Y.Z+commit..." from this line.
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return 0;
  }
  if (!opts.standardJson) {
    process.stderr.write("solc-shim supports only --version and --standard-json\n");
    return 2;
  }
  const input = fs.readFileSync(0, "utf8");
  process.stdout.write(solc.compile(input, { import: makeImportCallback(opts) }));
  return 0;
}

process.exitCode = main();
