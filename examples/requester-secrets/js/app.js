// Evaluates f(x) = a·x³ + b·x² + c·x + d inside the enclave.
//   a;b;c;d  — the app developer secret (IEXEC_APP_DEVELOPER_SECRET), e.g. "1;1;1;1"
//   x        — requester secret 1 (IEXEC_REQUESTER_SECRET_1), mapped with --secret 1=<name>
// Writes $IEXEC_OUT/result.txt and declares it in $IEXEC_OUT/computed.json.
// Never log a secret: only failures without values are printed.
const fs = require("fs");
const path = require("path");

function coefficients() {
  const raw = process.env.IEXEC_APP_DEVELOPER_SECRET;
  if (!raw) throw new Error("no app developer secret");
  const parts = raw.split(";").map(Number);
  if (parts.length !== 4 || parts.some(Number.isNaN)) throw new Error("the app developer secret is not a;b;c;d");
  return parts;
}

function input() {
  const raw = process.env.IEXEC_REQUESTER_SECRET_1;
  if (!raw) throw new Error("no requester secret 1");
  const x = Number(raw);
  if (Number.isNaN(x)) throw new Error("requester secret 1 is not a number");
  return x;
}

const out = process.env.IEXEC_OUT;
try {
  const [a, b, c, d] = coefficients();
  const x = input();
  const y = a * x ** 3 + b * x ** 2 + c * x + d;
  fs.writeFileSync(path.join(out, "result.txt"), `f(${x}) = ${y}\n`);
} catch (e) {
  console.error(`polynomial app: ${e.message}`);
  fs.writeFileSync(path.join(out, "result.txt"), `error: ${e.message}\n`);
}
fs.writeFileSync(
  path.join(out, "computed.json"),
  JSON.stringify({ "deterministic-output-path": path.join(out, "result.txt") })
);
