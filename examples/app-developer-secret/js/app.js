// Calls the endpoint named by the app developer secret (IEXEC_APP_DEVELOPER_SECRET, a URL
// kept confidential) and records what it answered: {"value": <n>} → "endpoint hit <n> times".
// Uses Node's built-in fetch (Node 18+). Never logs the secret.
const fs = require("fs");
const path = require("path");

async function main() {
  const out = process.env.IEXEC_OUT;
  let text;
  try {
    const endpoint = process.env.IEXEC_APP_DEVELOPER_SECRET;
    if (!endpoint) throw new Error("no app developer secret");
    const response = await fetch(endpoint);
    if (!response.ok) throw new Error(`the endpoint answered HTTP ${response.status}`);
    const body = await response.json();
    text = `endpoint hit ${body.value} times\n`;
  } catch (e) {
    console.error("counter app: the call failed");
    text = "error: the call failed\n";
  }
  fs.writeFileSync(path.join(out, "result.txt"), text);
  fs.writeFileSync(
    path.join(out, "computed.json"),
    JSON.stringify({ "deterministic-output-path": path.join(out, "result.txt") })
  );
}

main();
