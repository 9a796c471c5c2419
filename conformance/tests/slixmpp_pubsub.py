# XEP-0060 publish-subscribe service (pubsub.localhost) with slixmpp's own xep_0060 plugin,
# driven by slixmpp_pubsub.rs.
#
#   python slixmpp_pubsub.py HOST PORT PASSWORD
#
# alice creates a node with a configuration form and reads the configuration back; bob
# subscribes and gets the published items (pubsub_publish), reads items, his subscriptions
# and the subscription options; alice makes bob a publisher (modify_affiliations) and bob
# publishes; alice retracts (pubsub_retract), purges (pubsub_purge) and deletes
# (pubsub_delete) the node; a second create of a node is refused with `conflict`.
# Prints "ok" on success, or what went wrong.

import asyncio
import ssl
import sys

import slixmpp
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

HOST, PORT, PASSWORD = sys.argv[1:4]
SERVICE = "pubsub.localhost"
NODE = "slix-news"
TIMEOUT = 15


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid):
        super().__init__(jid, PASSWORD)
        for p in ["xep_0004", "xep_0030", "xep_0060"]:
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
        self.send_presence()
        await self.get_roster()
        self.online.set_result(True)

    async def login(self):
        self.connect(HOST, int(PORT))
        await asyncio.wait_for(self.online, TIMEOUT)
        return self

    def next_event(self, name):
        fut = asyncio.get_running_loop().create_future()

        def handler(stanza):
            if not fut.done() and stanza["from"] == SERVICE:
                fut.set_result(stanza)

        self.add_event_handler(name, handler)
        fut.add_done_callback(lambda _: self.del_event_handler(name, handler))
        return fut


def entry(text):
    el = ET.Element("{urn:example:slix}entry")
    el.text = text
    return el


async def main():
    alice = await Client("alice@localhost/slix").login()
    bob = await Client("bob@localhost/slix").login()
    ps_a, ps_b = alice.plugin["xep_0060"], bob.plugin["xep_0060"]

    info = await alice.plugin["xep_0030"].get_info(jid=SERVICE)
    assert "http://jabber.org/protocol/pubsub#subscribe" in info["disco_info"]["features"], info

    form = alice.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="pubsub#title", value="Slix news")
    form.add_field(var="pubsub#max_items", value="5")
    await ps_a.create_node(SERVICE, NODE, config=form)
    config = await ps_a.get_node_config(SERVICE, NODE)
    values = config["pubsub_owner"]["configure"]["form"].get_values()
    assert values["pubsub#title"] == "Slix news" and values["pubsub#max_items"] == "5", values
    try:
        await ps_b.create_node(SERVICE, NODE)
        raise AssertionError("a second create succeeded")
    except IqError as e:
        assert e.condition == "conflict", e.condition

    sub = await ps_b.subscribe(SERVICE, NODE)
    assert sub["pubsub"]["subscription"]["subscription"] == "subscribed", sub
    published = bob.next_event("pubsub_publish")
    await ps_a.publish(SERVICE, NODE, id="first", payload=entry("hello"))
    got = await asyncio.wait_for(published, TIMEOUT)
    item = got["pubsub_event"]["items"]["item"]
    assert item["id"] == "first" and item["payload"].text == "hello", got

    items = await ps_b.get_items(SERVICE, NODE)
    assert [i["id"] for i in items["pubsub"]["items"]] == ["first"], items
    subs = await ps_b.get_subscriptions(SERVICE)
    assert [(s["node"], s["subscription"]) for s in subs["pubsub"]["subscriptions"]] == [(NODE, "subscribed")], subs
    opts = await ps_b.get_subscription_options(SERVICE, NODE, "bob@localhost")
    # slixmpp has no interface for the options form: look at its XML.
    assert "pubsub#deliver" in str(ET.tostring(opts.xml)), opts

    try:
        await ps_b.publish(SERVICE, NODE, payload=entry("not yet"))
        raise AssertionError("bob published without being a publisher")
    except IqError as e:
        assert e.condition == "forbidden", e.condition
    await ps_a.modify_affiliations(SERVICE, NODE, [("bob@localhost", "publisher")])
    affs = await ps_a.get_node_affiliations(SERVICE, NODE)
    pairs = sorted((str(a["jid"]), a["affiliation"]) for a in affs["pubsub_owner"]["affiliations"])
    assert pairs == [("alice@localhost", "owner"), ("bob@localhost", "publisher")], pairs
    published = bob.next_event("pubsub_publish")
    result = await ps_b.publish(SERVICE, NODE, payload=entry("from bob"))
    bob_id = result["pubsub"]["publish"]["item"]["id"]
    got = await asyncio.wait_for(published, TIMEOUT)
    assert got["pubsub_event"]["items"]["item"]["id"] == bob_id

    retracted = bob.next_event("pubsub_retract")
    await ps_a.retract(SERVICE, NODE, "first", notify=True)
    got = await asyncio.wait_for(retracted, TIMEOUT)
    assert got["pubsub_event"]["items"]["retract"]["id"] == "first", got

    purged = bob.next_event("pubsub_purge")
    await ps_a.purge(SERVICE, NODE)
    await asyncio.wait_for(purged, TIMEOUT)
    items = await ps_b.get_items(SERVICE, NODE)
    assert len(items["pubsub"]["items"]) == 0, items

    deleted = bob.next_event("pubsub_delete")
    await ps_a.delete_node(SERVICE, NODE)
    await asyncio.wait_for(deleted, TIMEOUT)
    try:
        await ps_b.get_items(SERVICE, NODE)
        raise AssertionError("the deleted node still answers")
    except IqError as e:
        assert e.condition == "item-not-found", e.condition

    for c in (alice, bob):
        c.disconnect()
    print("ok")


asyncio.run(main())
