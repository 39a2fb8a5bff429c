// Runs the page's script (sloflow/api/ui/ui.js) in Node against a live server, with just enough of
// a DOM for it, and prints what it drew once the run's timeline is there: the browser-free check
// of the /ui page. Usage: node ui_in_node.js BASE_URL RUN_ID SCRIPT
"use strict";
const fs = require("fs");
const vm = require("vm");

const [base, runId, script] = process.argv.slice(2);
const elements = {};
const element = (sel) => (elements[sel] ??= {
  innerHTML: "", textContent: "", value: "", dataset: {}, classList: { toggle() {} }, addEventListener() {},
});
globalThis.document = { querySelector: element, querySelectorAll: () => [] };
globalThis.localStorage = { getItem: () => null, setItem() {} };
globalThis.location = { hash: `#run=${runId}` };
globalThis.history = { replaceState() {} };
const realFetch = globalThis.fetch;
globalThis.fetch = (path, options) => realFetch(base + path, options);
globalThis.setInterval = () => 0;

vm.runInThisContext(fs.readFileSync(script, "utf8"), { filename: script });

const started = Date.now();
const timer = setTimeout(function check() {
  const drawn = element("#timeline").innerHTML;
  const refreshed = element("#status").textContent !== "";
  if ((drawn.includes('data-ended="true"') && refreshed) || Date.now() - started > 15000) {
    console.log(JSON.stringify({
      timeline: drawn, summary: element("#run-summary").textContent, calls: element("#calls tbody").innerHTML, runs: element("#runs tbody").innerHTML,
      workers: element("#workers tbody").innerHTML, status: element("#status").textContent,
    }));
    process.exit(0);
  }
  setTimeout(check, 100);
}, 100);
