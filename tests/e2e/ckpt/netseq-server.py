#!/usr/bin/env python3
"""Server side of tests/e2e/ckpt/net-cut.sh: accepts one connection on 127.0.0.1 (port written
to PORTFILE), sends TOTAL bytes of "s%014d\\n" lines, reads and checks the client's "c%014d\\n"
lines, and writes one verdict line to RESULT when the connection ends:
  OK recv N | SHORT recv N | BAD at N | RESET recv N"""
import socket, sys, threading

portfile, result, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
def seq(tag):
    return b"".join(b"%c%014d\n" % (tag, i) for i in range((total + 15) // 16))[:total]
mine, theirs = seq(ord("s")), seq(ord("c"))
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
with open(portfile + ".tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
import os
os.rename(portfile + ".tmp", portfile)
c, _ = ls.accept()

def sender():
    try:
        c.sendall(mine)
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
threading.Thread(target=sender, daemon=True).start()
got, verdict = 0, None
try:
    while True:
        b = c.recv(65536)
        if not b:
            break
        if theirs[got:got + len(b)] != b:
            i = next(k for k in range(len(b)) if got + k >= total or theirs[got + k] != b[k])
            verdict = "BAD at %d" % (got + i)
            break
        got += len(b)
except ConnectionResetError:
    verdict = "RESET recv %d" % got
if verdict is None:
    verdict = ("OK recv %d" if got == total else "SHORT recv %d") % got
with open(result + ".tmp", "w") as f:
    f.write(verdict + "\n")
os.rename(result + ".tmp", result)
