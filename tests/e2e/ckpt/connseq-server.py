# Pushes "S K N\n" every 2 ms on connection number K after the hello "H ...\n" -> "HA K\n".
import socket, sys, threading, time, os
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0)); ls.listen(16)
open(sys.argv[1] + ".tmp", "w").write(str(ls.getsockname()[1])); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
k = [0]
def serve(c, k):
    try:
        c.makefile("rb").readline()
        c.sendall(b"HA %d\n" % k)
        n = 0
        while True:
            c.sendall(b"S %d %d\n" % (k, n)); n += 1; time.sleep(0.002)
    except OSError:
        pass
while True:
    c, _ = ls.accept(); k[0] += 1
    threading.Thread(target=serve, args=(c, k[0]), daemon=True).start()
