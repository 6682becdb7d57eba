// Pushes a requester secret through the secrets API v2 with ethers v6 (docs/secrets-api-v2.md).
//
//   npm install ethers@6
//   SMS_URL=http://127.0.0.1:13300 PRIVATE_KEY=0x... node secrets-v2-put.cjs <name> <value> [expectedVersion]
//
// Prints the signed request and the SMS's answer as JSON lines. Exits 1 if the SMS refuses.
const { Wallet, keccak256, toUtf8Bytes, hexlify, randomBytes } = require("ethers");

const types = {
  SecretOperation: [
    { name: "operation", type: "string" },
    { name: "kind", type: "string" },
    { name: "owner", type: "address" },
    { name: "name", type: "string" },
    { name: "valueHash", type: "bytes32" },
    { name: "expectedVersion", type: "uint64" },
    { name: "nonce", type: "bytes32" },
    { name: "expiry", type: "uint64" },
  ],
};

async function main() {
  const [name, value, expectedVersion = "0"] = process.argv.slice(2);
  const url = process.env.SMS_URL;
  const wallet = new Wallet(process.env.PRIVATE_KEY);
  // 1. The domain this SMS accepts: {name, version, chainId, verifyingContract}.
  const domain = await (await fetch(`${url}/v2/domain`)).json();
  // 2. The message: what to do, to which secret, the value's hash, a fresh nonce, an expiry.
  const message = {
    operation: "put",
    kind: "requester",
    owner: wallet.address,
    name,
    valueHash: keccak256(toUtf8Bytes(value)),
    expectedVersion: Number(expectedVersion),
    nonce: hexlify(randomBytes(32)),
    expiry: Math.floor(Date.now() / 1000) + 120,
  };
  // 3. Sign the typed data (eth_signTypedData_v4) and send it with the value.
  const signature = await wallet.signTypedData(domain, types, message);
  const request = { domain, message, signer: wallet.address, signature, value };
  console.log(JSON.stringify(request));
  const answer = await fetch(`${url}/v2/secrets/put`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(request),
  });
  console.log(JSON.stringify({ status: answer.status, body: await answer.json() }));
  if (!answer.ok) process.exit(1);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
