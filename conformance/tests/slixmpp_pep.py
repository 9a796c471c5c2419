# XEP-0163 PEP with slixmpp's own plugins, driven by slixmpp_pep.rs.
#
#   python slixmpp_pep.py HOST PORT PASSWORD
#
# alice and bob become contacts (slixmpp's subscription handling); bob's plugins announce
# +notify interest through XEP-0115 caps (xep_0115 answers the server's disco#info query).
# alice publishes a tune (xep_0118), a nickname (xep_0172) and an avatar (xep_0084 data and
# metadata); bob gets each notification and fetches the avatar data (xep_0060 get_item).
# alice stores private data (xep_0223: whitelist, persistent) and reads it back; bob is
# refused it. Bookmarks: set through xep_0048 in private storage (xep_0049) they are
# XEP-0402 items (xep_0402 stanzas); published as XEP-0402 items they are in xep_0048's
# private storage. Prints "ok" on success, or what went wrong.

import asyncio
import ssl
import sys

import slixmpp
from slixmpp.exceptions import IqError

HOST, PORT, PASSWORD = sys.argv[1:4]
TIMEOUT = 15
PLUGINS = ["xep_0004", "xep_0030", "xep_0060", "xep_0115", "xep_0163", "xep_0118",
           "xep_0172", "xep_0084", "xep_0223", "xep_0049", "xep_0048", "xep_0402"]


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid):
        super().__init__(jid, PASSWORD)
        for p in PLUGINS:
            self.register_plugin(p)
        self.online = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start", self.started)
        self.add_event_handler("failed_auth", lambda _: self.fail("authentication failed"))
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE

    def fail(self, why):
        if not self.online.done():
            self.online.set_exception(RuntimeError(why))

    async def started(self, _event):
        await self.get_roster()
        self.send_presence()
        self.online.set_result(True)

    async def login(self):
        self.connect(HOST, int(PORT))
        await asyncio.wait_for(self.online, TIMEOUT)
        return self

    def next_event(self, name, pred=lambda _: True):
        fut = asyncio.get_running_loop().create_future()

        def handler(stanza):
            if not fut.done() and pred(stanza):
                fut.set_result(stanza)

        self.add_event_handler(name, handler)
        fut.add_done_callback(lambda _: self.del_event_handler(name, handler))
        return fut


async def main():
    alice = await Client("alice@localhost/slix").login()
    bob = await Client("bob@localhost/slix").login()
    # Mutual subscription: slixmpp authorizes and subscribes back by default.
    subscribed = alice.next_event("roster_subscription_authorized")
    alice.send_presence_subscription(pto="bob@localhost")
    await asyncio.wait_for(subscribed, TIMEOUT)
    for c in (alice, bob):
        c.client_roster  # noqa: B018 (roster kept by slixmpp)

    def from_alice(msg):
        return msg["from"].bare == "alice@localhost"

    tune = bob.next_event("user_tune_publish", from_alice)
    await alice.plugin["xep_0118"].publish_tune(title="Blackbird", artist="The Beatles")
    got = await asyncio.wait_for(tune, TIMEOUT)
    title = got["pubsub_event"]["items"]["item"]["tune"]["title"]
    assert title == "Blackbird", f"tune title {title!r}"

    nick = bob.next_event("user_nick_publish", from_alice)
    await alice.plugin["xep_0172"].publish_nick("Alice in PEP")
    got = await asyncio.wait_for(nick, TIMEOUT)
    assert got["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Alice in PEP"

    data = b"\x89PNG fake image bytes"
    item_id = alice.plugin["xep_0084"].generate_id(data)
    meta = bob.next_event("avatar_metadata_publish", from_alice)
    await alice.plugin["xep_0084"].publish_avatar(data)
    await alice.plugin["xep_0084"].publish_avatar_metadata(
        [{"id": item_id, "type": "image/png", "bytes": len(data)}])
    got = await asyncio.wait_for(meta, TIMEOUT)
    info = got["pubsub_event"]["items"]["item"]["avatar_metadata"]["info"]
    assert info["id"] == item_id, f"metadata id {info['id']!r}"
    fetched = await bob.plugin["xep_0084"].retrieve_avatar(alice.boundjid.bare, item_id)
    assert fetched["pubsub"]["items"]["item"]["avatar_data"]["value"] == data

    # XEP-0223: private, persistent storage in PEP.
    nick_el = alice.plugin["xep_0172"].stanza.UserNick()
    nick_el["nick"] = "secret"
    await alice.plugin["xep_0223"].store(nick_el, node="urn:conformance:private", id="current")
    back = await alice.plugin["xep_0223"].retrieve("urn:conformance:private")
    payload = back["pubsub"]["items"]["item"]["payload"]
    assert payload is not None and payload.text == "secret", payload
    try:
        await bob.plugin["xep_0060"].get_items("alice@localhost", "urn:conformance:private")
        raise AssertionError("bob read alice's private node")
    except IqError as e:
        assert e.condition == "not-allowed", e.condition

    # XEP-0402 #compat: XEP-0048 bookmarks in private storage are PEP items...
    marks = alice.plugin["xep_0048"].stanza.Bookmarks()
    marks.add_conference("slix@conference.localhost", "ali", name="Slix", autojoin=True)
    await alice.plugin["xep_0048"].set_bookmarks(marks, method="xep_0049")
    got = await alice.plugin["xep_0060"].get_items(None, "urn:xmpp:bookmarks:1")
    conf_items = list(got["pubsub"]["items"])
    assert [i["id"] for i in conf_items] == ["slix@conference.localhost"], conf_items
    conf = conf_items[0]["conference"]
    assert conf["name"] == "Slix" and conf["autojoin"] and conf["nick"] == "ali", conf
    # ... and XEP-0402 items are XEP-0048 bookmarks.
    item = alice.plugin["xep_0402"].stanza.Conference()
    item["name"] = "Other"
    item["nick"] = "a2"
    item["autojoin"] = False
    await alice.plugin["xep_0163"].publish(item, node="urn:xmpp:bookmarks:1",
                                           id="other@conference.localhost")
    back = await alice.plugin["xep_0048"].get_bookmarks(method="xep_0049")
    rooms = {str(c["jid"]): c for c in back["private"]["bookmarks"]["conferences"]}
    assert set(rooms) == {"slix@conference.localhost", "other@conference.localhost"}, rooms
    assert rooms["other@conference.localhost"]["nick"] == "a2"

    for c in (alice, bob):
        c.disconnect()
    print("ok")


asyncio.run(main())
