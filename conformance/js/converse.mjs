// Drives converse.js (npm, a third-party web client) in Debian's chromium, headless, through
// puppeteer-core: serves converse.html and converse.js's dist/ on a local port, logs in over
// the given transport, says hello to a peer, waits to show its answer, joins a room, waits
// to show a groupchat message, and saves screenshots. One line per step on stdout:
// "online", "sent", "shown <text>", "joined", "screenshot <path>".
// Usage: node converse.mjs <websocket|bosh> <service> <jid> <password> <peer> <room> <png prefix>
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";

const [transport, service, jid, password, peer, room, png] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "node_modules", "converse.js", "dist");
const types = { ".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".json": "application/json",
  ".wasm": "application/wasm", ".svg": "image/svg+xml", ".png": "image/png", ".woff2": "font/woff2", ".woff": "font/woff", ".ttf": "font/ttf" };

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  // converse.js loads some assets (the OMEMO wasm) relative to the page: dist/ serves both.
  const rel = url.pathname.startsWith("/dist/") ? url.pathname.slice(6) : url.pathname.slice(1);
  const file = url.pathname === "/" ? path.join(here, "converse.html") : path.join(dist, path.normalize(rel));
  if (!file.startsWith(here) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const page_url = `http://127.0.0.1:${server.address().port}/?` + new URLSearchParams({ transport, service, jid, password, room });

const browser = await puppeteer.launch({
  executablePath: process.env.SWITCHBOARD_TEST_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Over a pipe, chromium exits with node even when node is killed (the test's kill_on_drop).
  pipe: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let code = 0;
const page = await browser.newPage();
let step = "login";
try {
  page.on("pageerror", (e) => console.error(`page error: ${e}`));
  page.on("console", (m) => { if (m.type() === "error") console.error(`console: ${m.text()}`); });
  await page.setViewport({ width: 1200, height: 800 });
  await page.goto(page_url);
  await page.waitForFunction(() => window.sb && window.sb.connected, { timeout: 30000 });
  console.log("online");
  step = "chat";

  await page.evaluate(async (peer) => {
    const chat = await window.sb.api.chats.open(peer, {}, true);
    await chat.sendMessage({ body: "hello from converse.js" });
  }, peer);
  console.log("sent");
  // The peer's answer is shown in the chat view.
  await page.waitForFunction(() => document.body.innerText.includes("hi converse"), { timeout: 30000 });
  console.log("shown hi converse");
  await page.screenshot({ path: `${png}-chat.png` });
  console.log(`screenshot ${png}-chat.png`);

  step = "join";
  // The room from auto_join_rooms: entered, and a groupchat message shown in it.
  await page.waitForFunction(async (room) => {
    const muc = await window.sb.api.rooms.get(room);
    return muc && muc.session && muc.session.get("connection_status") === 5;
  }, { timeout: 30000 }, room);
  console.log("joined");
  step = "groupchat";
  await page.evaluate(async (room) => window.sb.api.rooms.open(room, {}, true), room);
  await page.waitForFunction(() => document.body.innerText.includes("welcome to the room"), { timeout: 30000 });
  console.log("shown welcome to the room");
  await page.screenshot({ path: `${png}-room.png` });
  console.log(`screenshot ${png}-room.png`);
} catch (e) {
  console.error(`failed at ${step}: ${e}`);
  await page.screenshot({ path: `${png}-failure.png` }).catch(() => {});
  console.error(`failure screenshot ${png}-failure.png`);
  code = 1;
} finally {
  await browser.close();
  server.close();
}
process.exit(code);
