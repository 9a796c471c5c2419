// Drives @xmpp/client (a third-party library) through XEP-0388 SASL2, XEP-0386 Bind2 and
// XEP-0484 FAST: a password login over STARTTLS that asks for a token, then a second login
// with the token and a wrong password (so only the token can get it in), from the same user
// agent. Prints "online1 <jid>", "token <mechanism>", "online2 <jid>", then exits 0.
// Usage: node fast.mjs <service xmpp://host:port> <domain> <user> <password>
import { client, xml } from "@xmpp/client";

// The test server's certificate is self-signed, on loopback only.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";

const [service, domain, username, password] = process.argv.slice(2);
const userAgent = () =>
  xml("user-agent", { id: "d6b0e2a4-4f6e-4c1a-9a51-xmppjs-fast" }, xml("software", {}, "fast.mjs"));

function fail(what) {
  return (err) => {
    console.error(`error ${what}: ${err} ${err?.stack}`);
    process.exit(2);
  };
}

let saved = null;

async function login(n, pw, token) {
  // A loaded test machine can take longer than the 2 s default to close a stream.
  const xmpp = client({ service, domain, username, password: pw, resource: "fastjs", userAgent: userAgent(), timeout: 15000 });
  xmpp.on("error", fail(`client ${n}`));
  xmpp.fast.saveToken = async (t) => {
    saved = t;
  };
  xmpp.fast.fetchToken = async () => token;
  const online = new Promise((resolve) => xmpp.on("online", resolve));
  await xmpp.start();
  const address = await online;
  console.log(`online${n} ${address.toString()}`);
  return xmpp;
}

const first = await login(1, password, null);
if (!saved) fail("first login")("no FAST token was issued");
console.log(`token ${saved.mechanism}`);
await first.stop();
const second = await login(2, "not-the-password", saved);
await second.stop();
process.exit(0);
