#!/usr/bin/python3
"""SMTP sink for edesk tests: `smtp_sink.py PORT DIR`.

Writes each accepted message to DIR/<n>.eml, prefixed with X-Sink-Mail-From
and X-Sink-Rcpt-To headers. Answers 451 at RCPT for local parts starting with
`tempfail` and 550 for `reject`. Prints "ready" once listening.
"""
import itertools
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller

counter = itertools.count(1)
lock = threading.Lock()


class Handler:
    def __init__(self, out):
        self.out = out

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local.startswith("tempfail"):
            return "451 4.3.0 Mailbox temporarily unavailable"
        if local.startswith("reject"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with lock:
            n = next(counter)
        head = "X-Sink-Mail-From: %s\r\nX-Sink-Rcpt-To: %s\r\n" % (envelope.mail_from, ",".join(envelope.rcpt_tos))
        tmp = os.path.join(self.out, ".%d.tmp" % n)
        with open(tmp, "wb") as f:
            f.write(head.encode() + envelope.original_content)
        os.rename(tmp, os.path.join(self.out, "%d.eml" % n))
        return "250 OK queued as %d" % n


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    controller = Controller(Handler(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
