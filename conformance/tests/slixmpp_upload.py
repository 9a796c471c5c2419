# XEP-0363 with slixmpp's own HTTP upload plugin (xep_0363, aiohttp), driven by
# slixmpp_upload.rs.
#
#   python slixmpp_upload.py HOST PORT JID PASSWORD FILE
#
# Finds the upload service by disco, uploads FILE, then asks for a slot over the limit.
# Prints "max <max-file-size>", "url <GET URL>", "too-large <condition>" and "ok", or what
# went wrong.

import asyncio
import ssl
import sys

import slixmpp
from slixmpp.exceptions import IqError

HOST, PORT, JID, PASSWORD, FILE = sys.argv[1:6]
TIMEOUT = 20


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(JID, PASSWORD)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0363")
        self.online = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.online.set_result(True))
        self.add_event_handler("failed_auth", lambda _: self.online.set_exception(RuntimeError("auth failed")))
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE


async def main():
    c = Client()
    c.connect(HOST, int(PORT))
    await asyncio.wait_for(c.online, TIMEOUT)
    upload = c.plugin["xep_0363"]
    url = await asyncio.wait_for(upload.upload_file(FILE, content_type="application/pdf"), TIMEOUT)
    print("max", upload.max_file_size, flush=True)
    print("url", url, flush=True)
    try:
        await upload.request_slot(upload.upload_service, "big.bin", upload.max_file_size + 1, timeout=TIMEOUT)
        print("too-large accepted", flush=True)
    except IqError as e:
        print("too-large", e.iq["error"]["condition"], flush=True)
    c.disconnect()
    print("ok", flush=True)


asyncio.run(main())
