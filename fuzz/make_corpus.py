#!/usr/bin/env python3
"""Writes fuzz/corpus/<target>/: hostile inputs (and a few valid seeds) for every fuzz target.

A file named `reject-*` must be refused by its entry point (`switchboard::ops::fuzz`), one
named `accept-*` accepted; `seed-*` only must not panic or hang. `tests/hostile_corpus.rs`
replays them all. Run again after editing: `python3 fuzz/make_corpus.py`.
"""
import base64
import os
import shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")

corpus = {}


def add(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    corpus.setdefault(target, []).append((name, data))


def stream(name, body, chunk=7):
    for target in ("stream_preauth", "stream_postauth"):
        add(target, name, bytes([chunk]) + body)


# --- the stream parser -------------------------------------------------------------------
stream("accept-login", HEADER + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>")
stream("accept-message", HEADER + b"<message to='bob@localhost'><body>hi &amp; &#x263A;</body></message>", 1)
stream("reject-dtd", b"<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY a 'x'>]>" + HEADER)
laughs = b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>" + b"".join(
    b"<!ENTITY lol%d '%s'>" % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)
) + b"]>" + HEADER + b"<message><body>&lol9;</body></message>"
stream("reject-billion-laughs", laughs)
stream("reject-dtd-mid-stream", HEADER + b"<!DOCTYPE x><message/>")
stream("reject-external-entity", HEADER + b"<message><body>&xxe;</body></message>")
stream("reject-huge-attribute", HEADER + b"<message to='" + b"a" * 20_000 + b"'/>", 255)
stream("reject-huge-name", HEADER + b"<" + b"m" * 20_000 + b"/>", 255)
stream("reject-huge-text", HEADER + b"<message><body>" + b"x" * 300_000 + b"</body></message>", 255)
stream("reject-many-attributes", HEADER + b"<message " + b" ".join(b"a%d='1'" % i for i in range(30_000)) + b"/>", 255)
stream("reject-deep-nesting", HEADER + b"<message>" + b"<a>" * 10_000, 255)
stream("reject-deep-nesting-closed", HEADER + b"<a>" * 60 + b"</a>" * 60)
stream("reject-invalid-utf8", HEADER + b"<message><body>\xff\xfe\xc3\x28</body></message>")
stream("reject-invalid-utf8-between-stanzas", HEADER + b"<message/>\xc3\x28<message/>")
stream("reject-overlong-utf8", HEADER + b"<message><body>\xc0\xaf</body></message>")
stream("reject-surrogate-utf8", HEADER + b"<message><body>\xed\xa0\x80</body></message>")
stream("reject-nul", HEADER + b"<message><body>a\x00b</body></message>")
stream("reject-nul-char-ref", HEADER + b"<message><body>&#0;</body></message>")
stream("reject-control-char-ref", HEADER + b"<message><body>&#x1;</body></message>")
stream("reject-undeclared-prefix", HEADER + b"<foo:message/>")
stream("reject-rebind-xml-prefix", HEADER + b"<message xmlns:xml='urn:evil'/>")
stream("reject-bind-xmlns-prefix", HEADER + b"<message xmlns:xmlns='urn:evil'/>")
stream("reject-duplicate-attribute", HEADER + b"<message to='a' to='b'/>")
stream("reject-duplicate-expanded-attribute", HEADER + b"<message xmlns:a='urn:x' xmlns:b='urn:x' a:t='1' b:t='2'/>")
stream("reject-wrong-stream-namespace", b"<stream:stream xmlns='jabber:client' xmlns:stream='urn:evil'>")
stream("seed-wrong-default-namespace-checked-by-c2s", b"<stream:stream xmlns='urn:evil' xmlns:stream='http://etherx.jabber.org/streams'>")
stream("reject-processing-instruction", HEADER + b"<?evil data?><message/>")
stream("reject-comment", HEADER + b"<!-- hi --><message/>")
stream("accept-cdata", HEADER + b"<message><body><![CDATA[x]]></body></message>")
stream("reject-restart-mid-stream", HEADER + b"<message/>" + HEADER)
stream("reject-second-xml-declaration", HEADER + b"<?xml version='1.0'?><message/>")
stream("reject-not-xml", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
stream("reject-mismatched-end", HEADER + b"<message></presence>")
stream("seed-text-at-top-level", HEADER + b"text between stanzas")
stream("accept-closed-stream", HEADER + b"<presence/></stream:stream>")
stream("accept-many-namespaces", HEADER + b"<message>" + b"".join(b"<x%d xmlns='urn:x:%d'/>" % (i, i) for i in range(200)) + b"</message>", 64)
stream("reject-namespace-flood", HEADER + b"<message " + b" ".join(b"xmlns:p%d='urn:%s'" % (i, b"n" * 100) for i in range(2500)) + b"/>", 255)

# --- SASL ---------------------------------------------------------------------------------
add("sasl_plain", "accept-plain", b"\x00alice\x00passw0rd")
add("sasl_plain", "accept-plain-authzid", b"alice@localhost\x00alice\x00passw0rd")
add("sasl_plain", "reject-no-separator", b"alicepassw0rd")
add("sasl_plain", "reject-empty-password", b"\x00alice\x00")
add("sasl_plain", "reject-extra-nul", b"\x00alice\x00pass\x00word")
add("sasl_plain", "reject-invalid-utf8", b"\x00al\xffice\x00passw0rd")
add("sasl_plain", "reject-huge", b"\x00" + b"a" * 20_000 + b"\x00" + b"p" * 20_000)
add("sasl_plain", "reject-prohibited-chars", "\x00alice\x00pass\u200eword")
nonce = b"fyko+d2lbbFgONRv9qkxdawL"
final_ok = b"c=biws,r=" + nonce + b"x,p=" + base64.b64encode(b"\x00" * 32)
add("sasl_scram", "seed-sha256", b"\x03n,,n=alice,r=" + nonce + b"\xff" + final_ok)
add("sasl_scram", "seed-sha256-plus", b"\x02p=tls-exporter,,n=alice,r=" + nonce + b"\xff" + final_ok)
add("sasl_scram", "reject-y-flag-with-plus-offered", b"\x03y,,n=alice,r=" + nonce)
add("sasl_scram", "reject-unknown-binding", b"\x02p=tls-unique,,n=alice,r=" + nonce)
add("sasl_scram", "reject-no-nonce", b"\x03n,,n=alice")
add("sasl_scram", "reject-bad-username-escape", b"\x03n,,n=al=2Cice=ZZ,r=" + nonce)
add("sasl_scram", "reject-extension", b"\x03n,,m=ext,n=alice,r=" + nonce)
add("sasl_scram", "reject-empty", b"")
add("sasl_scram", "reject-huge-nonce", b"\x03n,,n=alice,r=" + b"x" * 100_000)
add("sasl_scram", "reject-invalid-utf8", b"\x03n,,n=al\xffice,r=" + nonce)
add("sasl_scram", "reject-nul", b"\x03n,,n=al\x00ice,r=" + nonce)
add("sasl_scram", "reject-wrong-final-nonce", b"\x03n,,n=alice,r=" + nonce + b"\xffc=biws,r=other,p=AAAA")
add("sasl_scram", "reject-final-bad-base64", b"\x03n,,n=alice,r=" + nonce + b"\xffc=!!!,r=" + nonce + b"x,p=%%%")
add("sasl_scram", "reject-final-missing-proof", b"\x03n,,n=alice,r=" + nonce + b"\xffc=biws,r=" + nonce)
add("sasl_scram", "reject-final-huge-proof", b"\x03n,,n=alice,r=" + nonce + b"\xffc=biws,r=" + nonce + b",p=" + b"A" * 100_000)

# --- payloads -----------------------------------------------------------------------------
CMD = "http://jabber.org/protocol/commands"
def form(fields, kind="submit"):
    return "<x xmlns='jabber:x:data' type='%s'>%s</x>" % (kind, "".join(fields))
def field(var, *values, t=None):
    ty = " type='%s'" % t if t else ""
    return "<field var='%s'%s>%s</field>" % (var, ty, "".join("<value>%s</value>" % v for v in values))
add("data_form", "accept-complete", "<command xmlns='%s' node='n'>%s</command>" % (CMD, form([field("accountjid", "bob@localhost"), field("enable", "1"), field("max_items", "25")])))
add("data_form", "reject-missing-required", "<command xmlns='%s' node='n'>%s</command>" % (CMD, form([field("enable", "1")])))
add("data_form", "reject-bad-jid", "<command xmlns='%s' node='n'>%s</command>" % (CMD, form([field("accountjid", "@@")])))
add("data_form", "reject-two-values-single", "<command xmlns='%s' node='n'>%s</command>" % (CMD, form([field("accountjid", "a@localhost", "b@localhost")])))
add("data_form", "reject-bad-boolean", "<command xmlns='%s' node='n'>%s</command>" % (CMD, form([field("accountjid", "a@localhost"), field("enable", "maybe")])))
add("data_form", "reject-option-not-offered", "<command xmlns='%s' node='n'>%s</command>" % (CMD, form([field("accountjid", "a@localhost"), field("max_items", "99999")])))
add("data_form", "reject-many-fields", "<command xmlns='%s' node='n'>%s</command>" % (CMD, form([field("f%d" % i, "v") for i in range(20000)])))
add("data_form", "seed-many-values", "<command xmlns='%s' node='n'>%s</command>" % (CMD, form([field("accountjid", "a@localhost"), field("accountjids", *["u%d@localhost" % i for i in range(5000)])])))
add("data_form", "reject-not-a-form", "<command xmlns='%s' node='n'><x xmlns='urn:evil'/></command>" % CMD)
add("muc_owner_form", "accept-defaults", form([field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig", t="hidden")]))
add("muc_owner_form", "seed-name", form([field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig", t="hidden"), field("muc#roomconfig_roomname", "Room")]))
add("muc_owner_form", "reject-protected-without-secret", form([field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig", t="hidden"), field("muc#roomconfig_passwordprotectedroom", "1")]))
add("muc_owner_form", "reject-huge-maxusers", form([field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig", t="hidden"), field("muc#roomconfig_maxusers", "99999999999999999999")]))
add("muc_owner_form", "reject-huge-name", form([field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig", t="hidden"), field("muc#roomconfig_roomname", "n" * 100_000)]))
add("muc_owner_form", "seed-bad-boolean", form([field("muc#roomconfig_persistentroom", "perhaps")]))
PRIV = "jabber:iq:privacy"
add("privacy_items", "accept-list", "<list xmlns='%s' name='l'><item type='jid' value='bob@localhost' action='deny' order='1'><message/></item></list>" % PRIV)
add("privacy_items", "reject-bad-action", "<list xmlns='%s' name='l'><item action='explode' order='1'/></list>" % PRIV)
add("privacy_items", "reject-bad-order", "<list xmlns='%s' name='l'><item action='deny' order='-1'/></list>" % PRIV)
add("privacy_items", "reject-huge-order", "<list xmlns='%s' name='l'><item action='deny' order='999999999999999999999'/></list>" % PRIV)
add("privacy_items", "reject-bad-type", "<list xmlns='%s' name='l'><item type='planet' value='x' action='deny' order='1'/></list>" % PRIV)
add("privacy_items", "reject-bad-jid", "<list xmlns='%s' name='l'><item type='jid' value='@@/' action='deny' order='1'/></list>" % PRIV)
add("privacy_items", "reject-bad-subscription", "<list xmlns='%s' name='l'><item type='subscription' value='some' action='deny' order='1'/></list>" % PRIV)
add("privacy_items", "seed-many-items", "<list xmlns='%s' name='l'>%s</list>" % (PRIV, "".join("<item action='allow' order='%d'/>" % i for i in range(5000))))
ROSTER = "jabber:iq:roster"
NOTES = "urn:switchboard:roster-notes:0"
add("roster_set", "accept-note", "<query xmlns='%s'><item jid='bob@localhost' name='Bob'><group>Friends</group><note xmlns='%s'>plays only ranked</note></item></query>" % (ROSTER, NOTES))
add("roster_set", "reject-two-items", "<query xmlns='%s'><item jid='bob@localhost'/><item jid='carol@localhost'/></query>" % ROSTER)
add("roster_set", "reject-no-jid", "<query xmlns='%s'><item name='x'/></query>" % ROSTER)
add("roster_set", "reject-bad-jid", "<query xmlns='%s'><item jid='@@'/></query>" % ROSTER)
add("roster_set", "reject-own-jid", "<query xmlns='%s'><item jid='alice@localhost'/></query>" % ROSTER)
add("roster_set", "reject-duplicate-group", "<query xmlns='%s'><item jid='bob@localhost'><group>a</group><group>a</group></item></query>" % ROSTER)
add("roster_set", "reject-empty-group", "<query xmlns='%s'><item jid='bob@localhost'><group></group></item></query>" % ROSTER)
add("roster_set", "reject-two-notes", "<query xmlns='%s'><item jid='bob@localhost'><note xmlns='%s'>a</note><note xmlns='%s'>b</note></item></query>" % (ROSTER, NOTES, NOTES))
add("roster_set", "seed-huge-note", "<query xmlns='%s'><item jid='bob@localhost'><note xmlns='%s'>%s</note></item></query>" % (ROSTER, NOTES, "n" * 100_000))
add("roster_set", "seed-many-groups", "<query xmlns='%s'><item jid='bob@localhost'>%s</item></query>" % (ROSTER, "".join("<group>g%d</group>" % i for i in range(5000))))
SD = "urn:xmpp:pie:0"
def server_data(users):
    return "<?xml version='1.0'?><server-data xmlns='%s'><host jid='localhost'>%s</host></server-data>" % (SD, users)
add("xep0227", "accept-user", server_data("<user name='alice' password='passw0rd'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='both'/></query></user>"))
add("xep0227", "reject-dtd", "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>" + server_data("<user name='a'/>"))
add("xep0227", "reject-billion-laughs", laughs.decode().replace(HEADER.decode(), "<server-data xmlns='%s'>" % SD).replace("<message><body>&lol9;</body></message>", "<host jid='localhost'><user name='&lol9;'/></host></server-data>"))
add("xep0227", "reject-include", server_data("<xi:include xmlns:xi='http://www.w3.org/2001/XInclude' href='/dev/zero'/>"))
add("xep0227", "reject-include-at-root", "<?xml version='1.0'?><server-data xmlns='%s'><xi:include xmlns:xi='http://www.w3.org/2001/XInclude' href='/etc/passwd'/></server-data>" % SD)
add("xep0227", "reject-deep-nesting", server_data("<user name='a'>" + "<x>" * 1000 + "</x>" * 1000 + "</user>"))
add("xep0227", "reject-huge-user", server_data("<user name='a'><vCard xmlns='vcard-temp'><FN>%s</FN></vCard></user>" % ("x" * 200_000)))
add("xep0227", "reject-bad-name", server_data("<user name='a@b/c'/>"))
add("xep0227", "reject-invalid-utf8", server_data("<user name='a'/>").encode().replace(b"name='a'", b"name='\xff'"))
add("xep0227", "reject-wrong-root", "<?xml version='1.0'?><server-data xmlns='urn:evil'/>")
add("xep0227", "reject-unclosed", server_data("<user name='a'>").replace("</host></server-data>", ""))
add("xep0227", "seed-foreign-namespace", server_data("<user name='a'><evil xmlns='urn:evil'><deep/></evil></user>"))

if os.path.isdir(ROOT):
    shutil.rmtree(ROOT)
for target, files in corpus.items():
    os.makedirs(os.path.join(ROOT, target))
    for name, data in files:
        with open(os.path.join(ROOT, target, name), "wb") as f:
            f.write(data)
print(sum(len(f) for f in corpus.values()), "files in", len(corpus), "targets")
