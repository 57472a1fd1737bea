# SQLite in WAL mode on the job's /tmp (shared-memory index through MAP_SHARED on the vfs):
# 10 transactions of 1000 rows with a concurrent reader, integrity_check, and a second run of
# the same job name sees the rows.
. "$(dirname "$0")/../lib.sh"

command -v sqlite3 >/dev/null || skip "sqlite3 not installed"

cat >"$T/fill.sh" <<'SH'
set -euo pipefail
db=/tmp/wal/test.db
mkdir -p /tmp/wal
[ "$(sqlite3 "$db" 'PRAGMA journal_mode=wal;')" = wal ] || { echo "journal_mode not wal"; exit 1; }
sqlite3 "$db" 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL, n INTEGER);'
writer() {
	for i in $(seq 1 10); do
		sqlite3 "$db" >/dev/null "PRAGMA busy_timeout=10000; BEGIN;
			WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<1000)
			INSERT INTO t(v, n) SELECT hex(randomblob(40)), $i FROM c; COMMIT;"
	done
}
writer &
wpid=$!
# The reader sees whole transactions only, never fewer rows than before.
prev=0
while kill -0 "$wpid" 2>/dev/null; do
	n=$(sqlite3 "$db" 'PRAGMA busy_timeout=10000; SELECT count(*) FROM t;' | tail -n1)
	[ $((n % 1000)) -eq 0 ] || { echo "reader saw a partial transaction: $n rows"; exit 1; }
	[ "$n" -ge "$prev" ] || { echo "row count went back: $prev -> $n"; exit 1; }
	prev=$n
done
wait "$wpid"
[ -e "$db-wal" ] || [ -e "$db-shm" ] || echo "note: no -wal/-shm file left (checkpointed)"
echo "rows=$(sqlite3 "$db" 'SELECT count(*) FROM t;')"
echo "integrity=$(sqlite3 "$db" 'PRAGMA integrity_check;')"
echo "mode=$(sqlite3 "$db" 'PRAGMA journal_mode;')"
SH

out=$("$CKPTENV" run --name db -- bash "$T/fill.sh") || fail "first run: $out"
printf '%s\n' "$out"
grep -qx 'rows=10000' <<<"$out" || fail "expected 10000 rows"
grep -qx 'integrity=ok' <<<"$out" || fail "integrity_check failed"
grep -qx 'mode=wal' <<<"$out" || fail "journal mode is not wal"
pass "10000 rows in WAL mode, integrity ok"

out=$("$CKPTENV" run --name db -- sqlite3 /tmp/wal/test.db \
	'PRAGMA integrity_check; SELECT count(*), count(DISTINCT n), sum(length(v)) FROM t;') ||
	fail "second run: $out"
expect_eq "second run" "$(printf 'ok\n10000|10|800000')" "$out"
pass "second run of job 'db' sees the rows"

# Another job name does not.
"$CKPTENV" run --name other -- test ! -e /tmp/wal/test.db || fail "job 'other' sees db's /tmp"
pass "job 'other' has its own /tmp"
