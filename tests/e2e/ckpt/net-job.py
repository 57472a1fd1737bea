#!/usr/bin/env python3
"""A job for the network cut's scenarios (net-many.sh, net-connecting.sh, net-opts.sh,
net-expiry.sh). It runs under ckptenv, is checkpointed and restored while it waits for a file
DIR/goN (outside the job's /tmp, so the test can make it), and writes what it saw into DIR/resN.

  many PORT N DIR        N connections, a line sent on each and its echo left unread at the
                         checkpoint; go1: every echo read and compared, one more line each way;
                         go2: every connection must fail with ECONNRESET
  connecting PORT DIR    a non-blocking connect to a listener whose backlog is full (still
                         connecting at the checkpoint) and a line written into it; go1: its echo
                         read, one more line each way, then closed
  connecting-blocking PORT DIR  the same with a blocking connect (in it at the checkpoint)
  opts PORT DIR          options set before and after connect; go1: read back equal, a line
                         each way; go2: read back equal, and the connection reset
  line PORT DIR          one connection; goN: a line each way (res N "OK"), or the error
"""
import errno
import os
import resource
import select
import socket
import sys
import time

HOST = "127.0.0.1"


def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.02)


def result(d, n, text):
    tmp = os.path.join(d, "res%d.tmp" % n)
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.rename(tmp, os.path.join(d, "res%d" % n))


def read_exact(s, n, timeout=120):
    buf = b""
    end = time.monotonic() + timeout
    while len(buf) < n:
        if not select.select([s], [], [], max(0.0, end - time.monotonic()))[0]:
            raise TimeoutError("%d of %d bytes" % (len(buf), n))
        k = s.recv(n - len(buf))
        if not k:
            raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
        buf += k
    return buf


def exchange(s, line):
    s.sendall(line)
    got = read_exact(s, len(line))
    if got != line:
        raise ValueError("sent %r, echo %r" % (line, got))


def reset_on_use(s):
    try:
        s.setblocking(True)
        s.settimeout(30)
        k = s.recv(1)
        return "EOF" if not k else "DATA"
    except ConnectionResetError:
        return "ECONNRESET"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def many(port, n, d):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 256)), hard))
    conns = [socket.create_connection((HOST, port)) for _ in range(n)]
    for i, c in enumerate(conns):
        c.sendall(b"a%d\n" % i)
    result(d, 0, "ready %d" % n)
    wait_for(os.path.join(d, "go1"))
    try:
        for i, c in enumerate(conns):
            got = read_exact(c, len(b"a%d\n" % i))
            if got != b"a%d\n" % i:
                raise ValueError("connection %d: echo %r" % (i, got))
            exchange(c, b"b%d\n" % i)
        result(d, 1, "OK %d" % n)
    except Exception as e:
        result(d, 1, "BAD %s" % e)
    wait_for(os.path.join(d, "go2"))
    seen = {}
    for c in conns:
        r = reset_on_use(c)
        seen[r] = seen.get(r, 0) + 1
    result(d, 2, " ".join("%s %d" % kv for kv in sorted(seen.items())))


def connecting(port, d, blocking=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if blocking:
        result(d, 0, "ready blocking")
        s.connect((HOST, port))  # in it at the checkpoint: restarted after the restore
        s.sendall(b"hello\n")
    else:
        s.setblocking(False)
        r = s.connect_ex((HOST, port))
        s.send(b"hello\n")
        result(d, 0, "ready %s" % errno.errorcode.get(r, r))
    wait_for(os.path.join(d, "go1"))
    try:
        got = read_exact(s, 6)
        if got != b"hello\n":
            raise ValueError("echo %r" % got)
        exchange(s, b"again\n")
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        s.close()
        result(d, 1, "OK SO_ERROR %d" % err)
    except ConnectionResetError:
        result(d, 1, "ECONNRESET")
    except Exception as e:
        result(d, 1, "BAD %s" % e)


OPTS = [
    (socket.IPPROTO_TCP, socket.TCP_NODELAY, "TCP_NODELAY"),
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, "SO_KEEPALIVE"),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, "TCP_KEEPIDLE"),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, "TCP_KEEPINTVL"),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, "TCP_KEEPCNT"),
    (socket.SOL_SOCKET, socket.SO_RCVBUF, "SO_RCVBUF"),
    (socket.SOL_SOCKET, socket.SO_SNDBUF, "SO_SNDBUF"),
]


def read_opts(s):
    return [s.getsockopt(level, name) for level, name, _ in OPTS]


def compare_opts(s, want):
    got = read_opts(s)
    bad = ["%s %d (was %d)" % (o[2], g, w) for o, g, w in zip(OPTS, got, want) if g != w]
    return "OPTS OK " + " ".join("%s=%d" % (o[2], w) for o, w in zip(OPTS, want)) if not bad \
        else "OPTS BAD " + ", ".join(bad)


def opts(port, d):
    fresh = read_opts(socket.socket())
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # before connect: copied
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1234)
    s.connect((HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # after: through the filter
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 77)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 9)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 50000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 98304)
    want = read_opts(s)
    same = [o[2] for o, f, w in zip(OPTS, fresh, want) if f == w]
    result(d, 0, "ready" if not same else "BAD not set: %s" % same)
    wait_for(os.path.join(d, "go1"))
    try:
        exchange(s, b"one\n")
        result(d, 1, compare_opts(s, want))
    except Exception as e:
        result(d, 1, "BAD %s" % e)
    wait_for(os.path.join(d, "go2"))
    text = compare_opts(s, want)
    result(d, 2, "%s %s" % (text, reset_on_use(s)))


def line(port, d):
    s = socket.create_connection((HOST, port))
    exchange(s, b"first\n")
    result(d, 0, "ready")
    for n in range(1, 10):
        wait_for(os.path.join(d, "go%d" % n))
        try:
            exchange(s, b"line %d\n" % n)
            result(d, n, "OK")
        except ConnectionResetError:
            result(d, n, "ECONNRESET")
        except Exception as e:
            result(d, n, "BAD %s" % e)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "many":
        many(port, int(sys.argv[3]), sys.argv[4])
    else:
        {"connecting": connecting, "opts": opts, "line": line,
         "connecting-blocking": lambda p, d: connecting(p, d, True)}[mode](port, sys.argv[3])


if __name__ == "__main__":
    main()
