// Drives @xmpp/client (a third-party library) for the conformance tests: logs in at the
// service URL, says hello to a peer, answers each message with an echo, and leaves on "bye".
// Prints one line per event on stdout: "online <jid>", "received <from> <body>".
// Usage: node --experimental-websocket chat.mjs <service> <domain> <user> <password> <peer>
import { client, xml } from "@xmpp/client";

const [service, domain, username, password, peer] = process.argv.slice(2);
const xmpp = client({ service, domain, username, password, resource: "xmppjs" });

xmpp.on("error", (err) => {
  console.error(`error ${err}`);
  process.exit(2);
});

xmpp.on("stanza", async (stanza) => {
  if (!stanza.is("message")) return;
  const body = stanza.getChildText("body");
  if (body === null) return;
  console.log(`received ${stanza.attrs.from} ${body}`);
  if (body === "bye") {
    await xmpp.stop();
    process.exit(0);
  }
  await xmpp.send(xml("message", { to: stanza.attrs.from, type: "chat" }, xml("body", {}, `echo: ${body}`)));
});

xmpp.on("online", async (address) => {
  await xmpp.send(xml("presence"));
  await xmpp.send(xml("message", { to: peer, type: "chat" }, xml("body", {}, "hello from @xmpp/client")));
  console.log(`online ${address.toString()}`);
});

await xmpp.start();
