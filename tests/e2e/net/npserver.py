"""Test server for tests/e2e/net on 127.0.0.1 (run on the host, outside the job).

Prints its port, then serves each connection by its first line:
  ECHO     echo every byte back until EOF, then close
  RESET    send b"bye\\n", then close with SO_LINGER 0 (the client sees a reset)
  HALF     read to EOF, then answer "<bytes> <sha256>\\n" and close (half-close works)
  CLOSE    close at once (the client's next write meets a reset)
"""
import hashlib
import socket
import struct
import sys
import threading


def readline(c):
    b = b""
    while not b.endswith(b"\n"):
        d = c.recv(1)
        if not d:
            break
        b += d
    return b.strip()


def serve(c):
    try:
        mode = readline(c)
        if mode == b"ECHO":
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                c.sendall(d)
        elif mode == b"RESET":
            c.sendall(b"bye\n")
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == b"CLOSE":
            pass
        elif mode == b"HALF":
            h, n = hashlib.sha256(), 0
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                h.update(d)
                n += len(d)
            c.sendall(b"%d %s\n" % (n, h.hexdigest().encode()))
    finally:
        c.close()


def main():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    print(s.getsockname()[1], flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
