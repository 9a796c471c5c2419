# XEP-0198 with slixmpp's own stream management plugin (xep_0198), driven by slixmpp_sm.rs.
#
#   python slixmpp_sm.py HOST PORT PASSWORD
#
# alice (stream management with resumption) gets two messages from bob and sends one to bob.
# Then she stops reading: bob's next two messages are written to her socket but never read,
# and her connection is cut (no </stream>): only the server's replay of what she never
# acknowledged can bring them back. bob sends one more while she is away. alice connects
# again and resumes: she must get all five, bob must get hers, and her session must be the
# same one (no second session_start). Prints "ok" on success, or what went wrong.

import asyncio
import ssl
import sys

import slixmpp

HOST, PORT, PASSWORD = sys.argv[1], int(sys.argv[2]), sys.argv[3]
TIMEOUT = 15


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, sm):
        super().__init__(jid, PASSWORD)
        if sm:
            self.register_plugin("xep_0198")
        self.online = asyncio.get_running_loop().create_future()
        self.starts = 0
        self.sm_enabled = asyncio.Event()
        self.resumed = asyncio.Event()
        self.gone = asyncio.Event()
        self.bodies = []
        self.errors = []
        self.add_event_handler("session_start", self.started)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("sm_enabled", lambda _: self.sm_enabled.set())
        self.add_event_handler("session_resumed", lambda _: self.resumed.set())
        self.add_event_handler("disconnected", lambda _: self.gone.set())
        self.add_event_handler("failed_auth", lambda _: self.fail("authentication failed"))
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE

    def fail(self, why):
        if not self.online.done():
            self.online.set_exception(RuntimeError(why))

    async def started(self, _event):
        self.starts += 1
        self.send_presence()
        await self.get_roster()
        if not self.online.done():
            self.online.set_result(True)

    def on_message(self, msg):
        if msg["type"] == "error":
            self.errors.append(str(msg))
        elif msg["body"]:
            self.bodies.append(msg["body"])

    async def login(self):
        self.connect(HOST, PORT)
        await asyncio.wait_for(self.online, TIMEOUT)
        return self


async def wait_bodies(client, wanted, who):
    async def until():
        while not set(wanted) <= set(client.bodies):
            await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(until(), TIMEOUT)
    except asyncio.TimeoutError:
        raise RuntimeError(f"{who} got {client.bodies}, wanted {wanted}")


async def main():
    alice = await Client("alice@localhost/phone", sm=True).login()
    await asyncio.wait_for(alice.sm_enabled.wait(), TIMEOUT)
    if not alice.plugin["xep_0198"].sm_id:
        raise RuntimeError("no resumption id in <enabled/>")
    bob = await Client("bob@localhost/desk", sm=False).login()
    for body in ["m1", "m2"]:
        bob.send_message(mto="alice@localhost/phone", mbody=body, mtype="chat")
    await wait_bodies(alice, ["m1", "m2"], "alice")

    # alice sends, and her connection dies before anything is acknowledged.
    alice.send_message(mto="bob@localhost/desk", mbody="a1", mtype="chat")
    await asyncio.sleep(0.1)
    alice.transport.pause_reading()
    for body in ["m3", "m4"]:
        bob.send_message(mto="alice@localhost/phone", mbody=body, mtype="chat")
    await asyncio.sleep(0.5)
    alice.abort()
    await asyncio.wait_for(alice.gone.wait(), TIMEOUT)
    if "m3" in alice.bodies or "m4" in alice.bodies:
        raise RuntimeError(f"alice read {alice.bodies} before the cut: the test proves nothing")
    bob.send_message(mto="alice@localhost/phone", mbody="m5", mtype="chat")
    await asyncio.sleep(0.5)

    alice.connect(HOST, PORT)
    await asyncio.wait_for(alice.resumed.wait(), TIMEOUT)
    await wait_bodies(alice, ["m1", "m2", "m3", "m4", "m5"], "alice")
    await wait_bodies(bob, ["a1"], "bob")
    if alice.starts != 1:
        raise RuntimeError(f"alice started {alice.starts} sessions: not resumed")
    if bob.errors or alice.errors:
        raise RuntimeError(f"errors: bob {bob.errors} alice {alice.errors}")
    print(f"alice got {alice.bodies}, bob got {bob.bodies}")
    alice.disconnect()
    bob.disconnect()
    print("ok")


try:
    asyncio.run(asyncio.wait_for(main(), 60))
except Exception as e:  # reported to the Rust side
    print(f"failed: {e!r}")
