#!/bin/bash
# Real clients in a job, through netproxy, against servers on the host's loopback: curl and
# python's http.client against `python3 -m http.server`, ssh to an sshd of the test's own
# (throwaway host and user keys, ephemeral port, generated config), git clone from a local
# `git daemon`. Every one of them must go through the proxy: `status` counts the sessions made.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
for t in curl ssh ssh-keygen git; do command -v $t >/dev/null || skip "$t missing"; done
[ -x /usr/sbin/sshd ] || skip "sshd missing (openssh-server)"
[ -x $PY ] || skip "python3 missing"
[ "$(id -u)" = 0 ] || skip "sshd as the test's own server needs root here"

BG=()
trap 'rc=$?; set +e; kill "${BG[@]}" 2>/dev/null; _cleanup $rc' EXIT
# A free port for servers that cannot report the one they got: bind 0, close, use it.
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# HTTP
mkdir -p "$T/www" && head -c 3000000 /dev/urandom > "$T/www/blob"
sum=$(sha256sum < "$T/www/blob" | cut -d' ' -f1)
(cd "$T/www" && exec $PY -u -m http.server --bind 127.0.0.1 0 > "$T/http.log" 2>&1 </dev/null) &
BG+=($!)
poll_until 20 grep -q "port [0-9]" "$T/http.log" || fail "http.server did not start"
HP=$(grep -o 'port [0-9]*' "$T/http.log" | head -1 | cut -d' ' -f2)

# sshd: keys and config of its own, no PAM, key authentication only.
ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$T/userkey"
cp "$T/userkey.pub" "$T/authorized_keys"
mkdir -p /run/sshd
for try in 1 2 3 4 5; do
	SP=$(free_port)
	cat > "$T/sshd_config" <<CFG
Port $SP
ListenAddress 127.0.0.1
HostKey $T/hostkey
AuthorizedKeysFile $T/authorized_keys
PidFile $T/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
CFG
	/usr/sbin/sshd -D -e -f "$T/sshd_config" > "$T/sshd.log" 2>&1 </dev/null &
	BG+=($!)
	poll_until 10 sh -c "grep -q 'Server listening' '$T/sshd.log' || ! kill -0 $!" || true
	grep -q "Server listening" "$T/sshd.log" && break
done
grep -q "Server listening" "$T/sshd.log" || fail "sshd did not start: $(cat "$T/sshd.log")"

# git daemon over a small repository
git init -q "$T/repo"
(cd "$T/repo" && echo "through the proxy" > f && git add f &&
	git -c user.name=t -c user.email=t@t commit -qm one)
head=$(git -C "$T/repo" rev-parse HEAD)
for try in 1 2 3 4 5; do
	GP=$(free_port)
	git daemon --reuseaddr --export-all --base-path="$T" --listen=127.0.0.1 --port="$GP" \
		"$T" > "$T/git.log" 2>&1 </dev/null &
	BG+=($!)
	poll_until 10 sh -c "ss -tlnH '( sport = :$GP )' | grep -q . || ! kill -0 $!" || true
	ss -tlnH "( sport = :$GP )" | grep -q . && break
done
ss -tlnH "( sport = :$GP )" | grep -q . || fail "git daemon did not start: $(cat "$T/git.log")"

cat > "$T/job.sh" <<JOB
set -e
curl -sS -o $T/got-curl http://127.0.0.1:$HP/blob
$PY - <<PYEOF
import http.client, hashlib
c = http.client.HTTPConnection("127.0.0.1", $HP, timeout=30)
for i in range(3):  # keep-alive: three requests on one connection
    c.request("GET", "/blob")
    r = c.getresponse()
    assert r.status == 200, r.status
    d = r.read()
    assert hashlib.sha256(d).hexdigest() == "$sum", "http.client body differs"
print("ok http.client")
PYEOF
ssh -F /dev/null -i $T/userkey -p $SP -o BatchMode=yes -o StrictHostKeyChecking=no \
	-o UserKnownHostsFile=$T/known_hosts root@127.0.0.1 'echo ssh-said-\$((6*7)); echo \$SSH_CONNECTION' > $T/got-ssh
git clone -q git://127.0.0.1:$GP/repo $T/clone
JOB
"$CKPTENV" run --name cl -- sh "$T/job.sh" > "$T/out" 2>&1 </dev/null || fail "job failed: $(cat "$T/out")"
grep -qx "ok http.client" "$T/out" || fail "http.client: $(cat "$T/out")"
expect_eq "curl body" "$sum" "$(sha256sum < "$T/got-curl" | cut -d' ' -f1)"
expect_eq "ssh command" "ssh-said-42" "$(head -1 "$T/got-ssh")"
# sshd saw the connection come from the supervisor's upstream socket, on loopback.
sed -n 2p "$T/got-ssh" | grep -Eq "^127\.0\.0\.1 [0-9]+ 127\.0\.0\.1 $SP$" || fail "SSH_CONNECTION: $(cat "$T/got-ssh")"
expect_eq "git clone" "$head" "$(git -C "$T/clone" rev-parse HEAD)"
expect_eq "cloned file" "through the proxy" "$(cat "$T/clone/f")"
# Every connection went through the proxy: the supervisor's log names none refused, and a
# detached twin shows the sessions in status while one is open.
"$CKPTENV" run --name cl2 --detach -- sh -c "exec $PY -c 'import socket,time; s=socket.create_connection((\"127.0.0.1\",$SP)); s.recv(100); time.sleep(600)'" >/dev/null </dev/null
poll_until 30 sh -c "\"$CKPTENV\" status cl2 | grep -Eq '^  [0-9]+ +established +127\.0\.0\.1:$SP '" ||
	fail "status of a job holding an ssh connection: $("$CKPTENV" status cl2)"
"$CKPTENV" rm --force cl2 >/dev/null
pass "curl, http.client, ssh, git clone through the proxy"
