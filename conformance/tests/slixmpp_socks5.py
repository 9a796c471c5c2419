# XEP-0065 through our proxy with slixmpp's own plugin (xep_0065), driven by
# slixmpp_socks5.rs.
#
#   python slixmpp_socks5.py HOST PORT PASSWORD SIZE
#
# alice (initiator) discovers the proxy (disco#items, disco#info, streamhost query), offers
# it to bob (target, auto_accept), bob connects through it and answers streamhost-used,
# alice connects and activates, then sends SIZE bytes that bob must receive intact.
# Prints "proxies <jids>", "received <n> <match>" and "ok", or what went wrong.

import asyncio
import ssl
import sys

import slixmpp

HOST, PORT, PASSWORD, SIZE = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
TIMEOUT = 20
DATA = bytes(i % 239 for i in range(SIZE))


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid):
        super().__init__(jid, PASSWORD)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0065", {"auto_accept": True})
        self.online = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start", self.started)
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE

    def started(self, _):
        self.send_presence()
        self.online.set_result(True)

    async def login(self):
        self.connect(HOST, PORT)
        await asyncio.wait_for(self.online, TIMEOUT)
        return self


async def main():
    alice = await Client("alice@localhost/a").login()
    bob = await Client("bob@localhost/b").login()
    received = bytearray()
    done = asyncio.get_running_loop().create_future()

    def on_data(data):
        received.extend(data)
        if len(received) >= SIZE and not done.done():
            done.set_result(True)

    bob.add_event_handler("socks5_data", on_data)
    proxies = await alice.plugin["xep_0065"].discover_proxies(timeout=TIMEOUT)
    print("proxies", " ".join(str(j) for j in proxies), flush=True)
    sock = await asyncio.wait_for(alice.plugin["xep_0065"].handshake("bob@localhost/b", timeout=TIMEOUT), TIMEOUT)
    if sock is None:
        print("handshake failed", flush=True)
        return
    await sock.write(DATA)
    await asyncio.wait_for(done, TIMEOUT)
    print("received", len(received), "match" if bytes(received) == DATA else "differ", flush=True)
    alice.disconnect()
    bob.disconnect()
    print("ok", flush=True)


asyncio.run(main())
