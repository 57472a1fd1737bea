"""Client side of tests/e2e/net, run inside a ckptenv job (so under netproxy).

Usage: npclient.py PORT CLOSED_PORT SYNC_DIR
Each check prints "ok NAME" or raises. SYNC_DIR: the options check writes "opts" (the upstream's
local port as the job sees it through getsockname) and waits for "opts-go" from the test.
"""
import asyncio
import ctypes
import hashlib
import os
import socket
import sys
import time

PORT, CLOSED, SYNC = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ADDR = ("127.0.0.1", PORT)


def ok(name):
    print("ok", name, flush=True)


def check(cond, what):
    if not cond:
        raise SystemExit("FAILED: " + what)


def echo_blocking():
    s = socket.create_connection(ADDR)
    check(s.getpeername() == ADDR, "getpeername %r != %r" % (s.getpeername(), ADDR))
    check(s.getsockname()[1] != 0, "getsockname")
    s.sendall(b"ECHO\n")
    data = os.urandom(4 << 20)
    got = bytearray()

    # Both directions at once: a writer thread, the reader here.
    import threading
    t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
    t.start()
    while True:
        d = s.recv(1 << 16)
        if not d:
            break
        got += d
    t.join()
    check(hashlib.sha256(got).digest() == hashlib.sha256(data).digest(),
          "echo: %d bytes back of %d, or different" % (len(got), len(data)))
    s.close()
    ok("echo-4MiB-both-ways")


def options():
    s = socket.create_connection(ADDR)
    s.sendall(b"ECHO\n")
    # Set after connect: must reach the real connection (the test reads it with ss).
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 777)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 33)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 96 * 1024)
    check(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 777, "TCP_KEEPIDLE read back")
    check(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1, "TCP_NODELAY read back")
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, -5)
        raise SystemExit("FAILED: a bad TCP_KEEPCNT was accepted")
    except OSError as e:
        check(e.errno == 22, "bad TCP_KEEPCNT: errno %d, not EINVAL" % e.errno)
    with open(os.path.join(SYNC, "opts.tmp"), "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    os.rename(os.path.join(SYNC, "opts.tmp"), os.path.join(SYNC, "opts"))
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(SYNC, "opts-go")):
        check(time.time() < deadline, "the test never checked the options")
        time.sleep(0.05)
    s.sendall(b"still here")
    check(s.recv(100) == b"still here", "echo after options")
    s.close()
    ok("options-after-connect")


def reset():
    s = socket.create_connection(ADDR)
    s.sendall(b"RESET\n")
    got = b""
    try:
        while True:
            d = s.recv(100)
            if not d:
                raise SystemExit("FAILED: EOF instead of a reset after %r" % got)
            got += d
    except ConnectionResetError:
        pass
    check(got == b"bye\n", "bytes before the reset: %r" % got)
    # The socket was connected: connecting it again is EISCONN, as on a real TCP socket
    # (not a second proxied connection).
    e = s.connect_ex(ADDR)
    check(e == 106, "connect after the reset: errno %d, not EISCONN" % e)
    ok("peer-reset")


def half_close():
    s = socket.create_connection(ADDR)
    data = os.urandom(300000)
    s.sendall(b"HALF\n" + data)
    s.shutdown(socket.SHUT_WR)
    ans = b""
    while not ans.endswith(b"\n"):
        d = s.recv(100)
        check(d, "EOF before the answer")
        ans += d
    check(ans == b"%d %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode()),
          "half-close answer %r" % ans)
    ok("half-close")


def refused():
    try:
        socket.create_connection(("127.0.0.1", CLOSED))
        raise SystemExit("FAILED: connect to a closed port succeeded")
    except ConnectionRefusedError:
        pass
    # Non-blocking: EINPROGRESS, then writable with SO_ERROR = ECONNREFUSED.
    s = socket.socket()
    s.setblocking(False)
    e = s.connect_ex(("127.0.0.1", CLOSED))
    check(e in (115, 111), "non-blocking connect: errno %d" % e)
    if e == 115:
        import select
        select.select([], [s], [], 5)
        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    check(e == 111, "non-blocking refused: SO_ERROR %d" % e)
    # As on Linux: the next connect() of that socket says ECONNABORTED, the one after it
    # connects; a blocking socket that was refused connects again at once.
    e = s.connect_ex(ADDR)
    check(e == 103, "connect after a non-blocking refusal: errno %d, not ECONNABORTED" % e)
    s.setblocking(True)
    s.connect(ADDR)
    echo_line(s)
    b = socket.socket()
    check(b.connect_ex(("127.0.0.1", CLOSED)) == 111, "blocking connect not refused")
    b.connect(ADDR)
    echo_line(b)
    ok("refused")


def echo_line(s):
    s.sendall(b"ECHO\nping\n")
    got = b""
    while not got.endswith(b"ping\n"):
        d = s.recv(100)
        check(d, "EOF instead of the echo")
        got += d
    check(got.endswith(b"ping\n"), "echo %r" % got)
    s.close()


async def aio_echo():
    r, w = await asyncio.open_connection(*ADDR)
    check(w.get_extra_info("peername") == ADDR, "asyncio peername")
    w.write(b"ECHO\n")
    msgs = [os.urandom(n) for n in (1, 100, 70000, 1 << 20)]
    for m in msgs:
        w.write(m)
        await w.drain()
        got = await r.readexactly(len(m))
        check(got == m, "asyncio echo of %d bytes" % len(m))
    w.close()
    await w.wait_closed()
    try:
        await asyncio.open_connection("127.0.0.1", CLOSED)
        raise SystemExit("FAILED: asyncio connect to a closed port succeeded")
    except ConnectionRefusedError:
        pass
    # Several at once: each non-blocking connect is answered separately.
    conns = await asyncio.gather(*[asyncio.open_connection(*ADDR) for _ in range(20)])
    for r, w in conns:
        w.write(b"ECHO\nx")
    for r, w in conns:
        check(await r.readexactly(1) == b"x", "parallel asyncio echo")
        w.close()
    ok("asyncio")


def unproxied():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.connect(u.getsockname())
    c.send(b"dgram")
    check(u.recv(100) == b"dgram", "UDP")
    check(c.getpeername() == u.getsockname(), "UDP getpeername")
    path = os.path.join(SYNC, "u.sock")
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(path)
    ls.listen(1)
    cs = socket.socket(socket.AF_UNIX)
    cs.connect(path)
    a, _ = ls.accept()
    cs.sendall(b"unix")
    check(a.recv(10) == b"unix", "unix socket")
    ok("udp-unix")


def closed_peer():
    # A peer that closed for good answers the next write with a reset: the write after that
    # fails with EPIPE, and SO_ERROR says so, as on a real socket.
    import signal
    old = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    s = socket.create_connection(ADDR)
    s.sendall(b"CLOSE\n")
    check(s.recv(10) == b"", "no EOF from the closing peer")
    s.send(b"x")
    time.sleep(1)  # the reset is back long before (direct: microseconds)
    try:
        s.send(b"y")
        raise SystemExit("FAILED: a second write to a closed peer succeeded")
    except BrokenPipeError:
        pass
    check(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0, "SO_ERROR not consumed")
    s.close()
    signal.signal(signal.SIGPIPE, old)
    # connect(AF_UNSPEC) dissolves the connection; the socket connects again.
    libc = ctypes.CDLL(None, use_errno=True)
    s = socket.create_connection(ADDR)
    s.sendall(b"ECHO\n")
    unspec = ctypes.create_string_buffer(16)  # sa_family 0
    r = libc.connect(s.fileno(), unspec, 16)
    check(r == 0, "connect(AF_UNSPEC): errno %d" % ctypes.get_errno())
    try:
        s.getpeername()
        raise SystemExit("FAILED: still connected after connect(AF_UNSPEC)")
    except OSError as x:
        check(x.errno == 107, "getpeername after AF_UNSPEC: %r" % x)
    s.connect(ADDR)
    echo_line(s)
    ok("closed-peer")


def addresses():
    # Validated as the kernel does: an AF_INET sockaddr on an AF_INET6 socket is too short
    # (EINVAL), a v4-mapped address on an IPV6_V6ONLY socket is unreachable.
    import struct
    libc = ctypes.CDLL(None, use_errno=True)
    s6 = socket.socket(socket.AF_INET6)
    sa = struct.pack("=H", socket.AF_INET) + struct.pack(">H", PORT) + socket.inet_aton("127.0.0.1") + bytes(8)
    r = libc.connect(s6.fileno(), sa, len(sa))
    check(r == -1 and ctypes.get_errno() == 22, "AF_INET address on an AF_INET6 socket: %d errno %d" % (r, ctypes.get_errno()))
    s6 = socket.socket(socket.AF_INET6)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    e = s6.connect_ex(("::ffff:127.0.0.1", PORT))
    check(e == 101, "v4-mapped on a V6ONLY socket: errno %d, not ENETUNREACH" % e)
    # 0.0.0.0 reaches this host; getpeername says 127.0.0.1, as the kernel's does.
    s = socket.create_connection(("0.0.0.0", PORT))
    check(s.getpeername() == ADDR, "getpeername after a connect to 0.0.0.0: %r" % (s.getpeername(),))
    echo_line(s)
    ok("addresses")


def io_uring_refused():
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    r = libc.syscall(425, 8, params)  # io_uring_setup
    check(r == -1 and ctypes.get_errno() == 38, "io_uring_setup: %d errno %d" % (r, ctypes.get_errno()))
    ok("io_uring-refused")


def main():
    echo_blocking()
    options()
    reset()
    half_close()
    refused()
    closed_peer()
    addresses()
    asyncio.run(aio_echo())
    unproxied()
    io_uring_refused()
    print("all done", flush=True)


main()
