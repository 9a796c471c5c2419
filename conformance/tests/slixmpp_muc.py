# XEP-0045 with slixmpp's own MUC plugin (xep_0045), driven by slixmpp_muc.rs.
#
#   python slixmpp_muc.py PHASE HOST PORT ROOM PASSWORD
#
# phase "before": alice creates a persistent room, bob joins and talks, alice kicks bob
#   (307), bob comes back, alice bans him (301).
# phase "after" (the server was restarted): bob is turned away (forbidden), alice re-enters
#   and gets bob's message back as history.
# Prints "ok <phase>" on success, or what went wrong.

import asyncio
import re
import ssl
import sys

import slixmpp
from slixmpp.exceptions import PresenceError

PHASE, HOST, PORT, ROOM, PASSWORD = sys.argv[1:6]
TIMEOUT = 15


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid):
        super().__init__(jid, PASSWORD)
        self.register_plugin("xep_0004")
        self.register_plugin("xep_0045")
        self.online = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start", self.started)
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

    async def login(self):
        self.connect(HOST, int(PORT))
        await asyncio.wait_for(self.online, TIMEOUT)
        return self

    def muc(self):
        return self.plugin["xep_0045"]

    def next_event(self, name, pred=lambda _: True):
        """A future for the next `name` event satisfying `pred`."""
        fut = asyncio.get_running_loop().create_future()

        def handler(stanza):
            if not fut.done() and pred(stanza):
                fut.set_result(stanza)

        self.add_event_handler(name, handler)
        fut.add_done_callback(lambda _: self.del_event_handler(name, handler))
        return fut


def has_status(stanza, code):
    return re.search(r"code=['\"]%d['\"]" % code, str(stanza)) is not None


async def before():
    alice = await Client("alice@localhost/slix").login()
    bob = await Client("bob@localhost/slix").login()
    # Alice creates the room (locked, 201) and makes it persistent (§10.1, §10.2).
    pres, _subject, _occ, _hist = await alice.muc().join_muc_wait(ROOM, "Alice", timeout=TIMEOUT)
    assert has_status(pres, 201), "no 201 on creation: %s" % pres
    form = alice.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/muc#roomconfig")
    form.add_field(var="muc#roomconfig_persistentroom", ftype="boolean", value=True)
    form.add_field(var="muc#roomconfig_roomname", ftype="text-single", value="Slixmpp room")
    await alice.muc().set_room_config(ROOM, form, timeout=TIMEOUT)
    # Bob enters and talks (§7.2, §7.4).
    got = alice.next_event("groupchat_message", lambda m: m["body"] == "hello from bob")
    await bob.muc().join_muc_wait(ROOM, "Bob", maxstanzas=0, timeout=TIMEOUT)
    bob.send_message(mto=ROOM, mbody="hello from bob", mtype="groupchat")
    msg = await asyncio.wait_for(got, TIMEOUT)
    assert str(msg["from"]) == ROOM + "/Bob", msg
    # Alice kicks Bob (§8.2): he learns it with 307.
    kicked = bob.next_event("muc::%s::presence" % ROOM,
                            lambda p: p["type"] == "unavailable" and has_status(p, 307))
    await alice.muc().set_role(ROOM, "Bob", "none", reason="cool down", timeout=TIMEOUT)
    await asyncio.wait_for(kicked, TIMEOUT)
    # Bob comes back; Alice bans him (§9.1): 301.
    await bob.muc().join_muc_wait(ROOM, "Bob", maxstanzas=0, timeout=TIMEOUT)
    banned = bob.next_event("muc::%s::presence" % ROOM,
                            lambda p: p["type"] == "unavailable" and has_status(p, 301))
    await alice.muc().set_affiliation(ROOM, "outcast", jid="bob@localhost", reason="spam",
                                      timeout=TIMEOUT)
    await asyncio.wait_for(banned, TIMEOUT)
    alice.disconnect()
    bob.disconnect()


async def after():
    alice = await Client("alice@localhost/slix").login()
    bob = await Client("bob@localhost/slix").login()
    # The ban survived the restart (§7.2.7: forbidden).
    try:
        await bob.muc().join_muc_wait(ROOM, "Bob", timeout=TIMEOUT)
        raise AssertionError("banned bob entered the room after the restart")
    except PresenceError as e:
        assert e.condition == "forbidden", "expected forbidden, got %s" % e.condition
    # So did the room and its history (§7.2.13: delayed, from the room).
    pres, _subject, _occ, history = await alice.muc().join_muc_wait(ROOM, "Alice", timeout=TIMEOUT)
    assert not has_status(pres, 201), "the room was created anew: %s" % pres
    bodies = [m["body"] for m in history]
    assert "hello from bob" in bodies, "history after restart: %s" % bodies
    alice.disconnect()
    bob.disconnect()


async def main():
    await asyncio.wait_for({"before": before, "after": after}[PHASE](), 60)
    print("ok " + PHASE, flush=True)


asyncio.run(main())
