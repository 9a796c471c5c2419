# XEP-0352 client state indication with slixmpp's xep_0352 plugin, driven by slixmpp_csi.rs.
#
#   python slixmpp_csi.py HOST PORT PASSWORD
#
# alice's plugin finds the csi stream feature and sends <inactive/>; bob's chat state
# (xep_0085) then stays held (alice sees nothing) until bob's message with a body, which alice gets after
# the chat state. After <active/>, a chat state arrives on its own. Prints "ok" on success,
# or what went wrong.

import asyncio
import ssl
import sys

import slixmpp

HOST, PORT, PASSWORD = sys.argv[1:4]
TIMEOUT = 15
HELD = 0.8
PHONE = "alice@localhost/slix"


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid):
        super().__init__(jid, PASSWORD)
        for p in ["xep_0030", "xep_0085", "xep_0199", "xep_0352"]:
            self.register_plugin(p)
        self.online = asyncio.get_running_loop().create_future()
        self.from_bob = []
        self.arrived = asyncio.Event()
        self.add_event_handler("session_start", self.started)
        # slixmpp's "message" is for messages with a body; xep_0085's "chatstate" for states.
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("chatstate", self.on_message)
        self.add_event_handler("failed_auth", lambda _: self.fail("authentication failed"))
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE

    def fail(self, why):
        if not self.online.done():
            self.online.set_exception(RuntimeError(why))

    def on_message(self, msg):
        if msg["from"].bare == "bob@localhost":
            self.from_bob.append(msg["id"])
            self.arrived.set()

    async def started(self, _event):
        self.send_presence()
        self.online.set_result(True)

    async def login(self):
        self.connect(HOST, int(PORT))
        await asyncio.wait_for(self.online, TIMEOUT)
        return self

    async def barrier(self):
        # Answered in order: everything sent before was handled by the server.
        await self.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT)

    async def wait_for(self, count):
        while len(self.from_bob) < count:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), TIMEOUT)
            except asyncio.TimeoutError:
                raise AssertionError(f"waited for {count} messages from bob, got {self.from_bob}")


def chat_state(bob, mid):
    msg = bob.make_message(mto=PHONE, mtype="chat")
    msg["id"] = mid
    msg["chat_state"] = "composing"
    msg.send()


async def main():
    alice = await Client(PHONE).login()
    bob = await Client("bob@localhost/slix").login()
    assert alice.plugin["xep_0352"].enabled, "the csi stream feature was not found"

    alice.plugin["xep_0352"].send_inactive()
    await alice.barrier()
    chat_state(bob, "cs1")
    await bob.barrier()
    await asyncio.sleep(HELD)
    assert alice.from_bob == [], f"held while inactive, got {alice.from_bob}"

    body = bob.make_message(mto=PHONE, mbody="wake up", mtype="chat")
    body["id"] = "m1"
    body.send()
    await alice.wait_for(2)
    assert alice.from_bob == ["cs1", "m1"], f"order {alice.from_bob}"

    alice.plugin["xep_0352"].send_active()
    await alice.barrier()
    chat_state(bob, "cs2")
    await alice.wait_for(3)
    assert alice.from_bob[2] == "cs2", alice.from_bob

    for c in (alice, bob):
        c.disconnect()
    print("ok")


asyncio.run(main())
