# XEP-0313 with slixmpp's own MAM plugin (xep_0313, paging through xep_0059), driven by
# slixmpp_mam.rs.
#
#   python slixmpp_mam.py HOST PORT PASSWORD COUNT
#
# alice sends COUNT chat messages to bob; bob iterates his whole archive forwards (pages of
# 10), reads its last page backwards (empty <before/>), and alice reads hers filtered on bob. Prints "ok" on
# success, or what went wrong.

import asyncio
import ssl
import sys

import slixmpp

HOST, PORT, PASSWORD, COUNT = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
TIMEOUT = 15


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid):
        super().__init__(jid, PASSWORD)
        for plugin in ["xep_0004", "xep_0059", "xep_0297", "xep_0313", "xep_0359"]:
            self.register_plugin(plugin)
        self.online = asyncio.get_running_loop().create_future()
        self.received = []
        self.add_event_handler("session_start", self.started)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("failed_auth", lambda _: self.fail("authentication failed"))
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE

    def fail(self, why):
        if not self.online.done():
            self.online.set_exception(RuntimeError(why))

    async def started(self, _event):
        self.send_presence()
        await self.get_roster()
        self.online.set_result(True)

    def on_message(self, msg):
        if msg["body"]:
            self.received.append(msg)

    async def login(self):
        self.connect(HOST, PORT)
        await asyncio.wait_for(self.online, TIMEOUT)
        return self


async def collect(client, **kwargs):
    out = []
    async for msg in client.plugin["xep_0313"].iterate(**kwargs):
        out.append(msg)
    return out


async def main():
    alice = await Client("alice@localhost/slix").login()
    bob = await Client("bob@localhost/slix").login()
    sent = ["message %d" % i for i in range(COUNT)]
    for body in sent:
        alice.send_message(mto="bob@localhost", mbody=body, mtype="chat")
    for _ in range(TIMEOUT * 10):
        if len(bob.received) >= COUNT:
            break
        await asyncio.sleep(0.1)
    assert len(bob.received) == COUNT, "bob received %d of %d" % (len(bob.received), COUNT)
    live_ids = [m["stanza_id"]["id"] for m in bob.received]
    assert all(live_ids), "a live message without stanza-id"

    forwards = await collect(bob, rsm={"max": 10})
    bodies = [m["mam_result"]["forwarded"]["stanza"]["body"] for m in forwards]
    assert bodies == sent, "forwards: %s" % bodies
    ids = [m["mam_result"]["id"] for m in forwards]
    assert ids == live_ids, "archive ids %s differ from live stanza-ids %s" % (ids, live_ids)

    # Backwards: the first request is an empty <before/> (the last page). slixmpp then stops,
    # since its rule (first index + page size == count) is the forward one's end.
    backwards = await collect(bob, rsm={"max": 7}, reverse=True)
    bodies = [m["mam_result"]["forwarded"]["stanza"]["body"] for m in backwards]
    assert bodies == list(reversed(sent))[:7], "backwards: %s" % bodies

    outgoing = await collect(alice, with_jid=slixmpp.JID("bob@localhost"), rsm={"max": 25})
    bodies = [m["mam_result"]["forwarded"]["stanza"]["body"] for m in outgoing]
    assert bodies == sent, "alice's outgoing: %s" % bodies
    alice.disconnect()
    bob.disconnect()


asyncio.run(asyncio.wait_for(main(), 90))
print("ok", flush=True)
