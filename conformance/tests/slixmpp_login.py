# Logs in N times in a row with slixmpp over STARTTLS, driven by slixmpp_login.rs.
#
#   python slixmpp_login.py HOST PORT JID PASSWORD N
#
# Each login runs from connect to session_start (SASL with whatever mechanisms slixmpp picks,
# resource binding) and is closed before the next. Prints the mechanisms slixmpp tried, one line
# "login <i> <seconds> <mechanism>" per login, then "ok", or what went wrong.

import asyncio
import ssl
import sys
import time

import slixmpp

HOST, PORT, JID, PASSWORD, N = sys.argv[1:6]
TIMEOUT = 15


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(JID, PASSWORD)
        self.online = asyncio.get_running_loop().create_future()
        self.failures = []
        self.add_event_handler("session_start", self.started)
        self.add_event_handler("failed_auth", lambda s: self.failures.append(s["condition"]))
        self.add_event_handler("failed_all_auth", lambda _: self.fail("no mechanism left"))
        self.add_event_handler("disconnected", lambda _: self.fail("disconnected"))
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE

    def fail(self, why):
        if not self.online.done():
            self.online.set_exception(RuntimeError("%s (failures: %s)" % (why, self.failures)))

    async def started(self, _event):
        self.online.set_result(self.plugin["feature_mechanisms"].mech.name)


async def main():
    print("slixmpp", slixmpp.__version__, flush=True)
    for i in range(int(N)):
        c = Client()
        started = time.monotonic()
        c.connect((HOST, int(PORT)))
        mech = await asyncio.wait_for(c.online, TIMEOUT)
        took = time.monotonic() - started
        print("login %d %.3f %s refused-first: %s" % (i, took, mech, c.failures), flush=True)
        c.disconnect()
        await c.disconnected
    print("ok", flush=True)


asyncio.run(main())
