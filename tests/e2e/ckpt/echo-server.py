#!/usr/bin/env python3
"""Line echo server for the network cut's scenarios: echo-server.py PORTFILE LOG [--full]

Echoes every byte back; ends when the scenario that started it does. LOG gets one line per connection that ends: "closed EOF <bytes>" or
"closed RESET <bytes>", bytes being repr() of all it received. --full: the listener's accept
queue is kept full (backlog 0, one connection of its own queued) so further SYNs are dropped,
until the file PORTFILE.open exists; then it accepts everything."""
import os
import selectors
import socket
import sys
import time

portfile, log = sys.argv[1], sys.argv[2]
parent = os.getppid()
full = "--full" in sys.argv[3:]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(0 if full else 4096)
port = ls.getsockname()[1]
filler = None
if full:
    filler = socket.create_connection(("127.0.0.1", port))  # queued, never accepted yet
    while not os.path.exists(portfile + ".open") and os.getppid() == parent:
        if not os.path.exists(portfile):
            with open(portfile + ".tmp", "w") as f:
                f.write("%d\n" % port)
            os.rename(portfile + ".tmp", portfile)
        time.sleep(0.02)
else:
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(portfile + ".tmp", portfile)

sel = selectors.DefaultSelector()
ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ, None)
got = {}


def closed(c, how):
    sel.unregister(c)
    with open(log, "a") as f:
        f.write("closed %s %r\n" % (how, got.pop(c)))
    c.close()


while os.getppid() == parent:
    for key, _ in sel.select(0.5):
        if key.data is None:
            try:
                c, _ = ls.accept()
            except BlockingIOError:
                continue
            c.setblocking(False)
            got[c] = b""
            sel.register(c, selectors.EVENT_READ, c)
            continue
        c = key.data
        try:
            k = c.recv(65536)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            closed(c, "RESET")
            continue
        if not k:
            closed(c, "EOF")
            continue
        got[c] += k
        c.setblocking(True)
        c.sendall(k)
        c.setblocking(False)
