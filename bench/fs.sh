#!/usr/bin/env bash
# File-system benchmark: the job's /tmp (ckptenv vfs, through `ckptenv run`) side by side with a
# plain directory on the host's disk, bindfs of a host directory and fuse-overlayfs (upper and
# work on the host's disk), then the cost of `ckptenv snapshot` as /tmp grows. See bench/README.md.
#
#   bench/fs.sh            (as root; build first: cmake --build build)
#
# Environment (defaults in brackets):
#   BENCH_N [3]               runs per measurement; the median is reported
#   BENCH_TARGETS [native bindfs overlay vfs]; also tmpfs (a tmpfs in the work directory: the
#                             in-memory floor, which a loaded host disk does not slow down)
#   BENCH_OPS [seq files chmod untar fio]  which measurements (the snapshot part: BENCH_SNAP_MB)
#   BENCH_CHMODS [100000]     fchmods of one file (on FUSE: one round trip each)
#   BENCH_DIR [/var/tmp]      where the work directory is made (must be on the host's disk)
#   BENCH_SEQ_MB [1024]       sequential write+fsync / read size
#   BENCH_FILES [10000]       small files created, stat'ed, unlinked
#   BENCH_TAR [/usr/include]  tree tarred once, then untarred in every target
#   BENCH_FIO_SECS [30]       fio 4k randrw duration; BENCH_FIO_MB [256] its file size
#   BENCH_SNAP_MB [4096]      size of /tmp for the snapshot bench (0 skips it)
#   BENCH_SNAP_CHANGES [16 64 256]  MiB changed between snapshots
#   CKPTENV [build/ckptenv/ckptenv], CK_HELPERS [dir of ckptenv/../helpers]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${BENCH_N:-3}
TARGETS=${BENCH_TARGETS:-native bindfs overlay vfs}
OPS=${BENCH_OPS:-seq files chmod untar fio}
CHMODS=${BENCH_CHMODS:-100000}
SEQ_MB=${BENCH_SEQ_MB:-1024}
FILES=${BENCH_FILES:-10000}
TARSRC=${BENCH_TAR:-/usr/include}
FIO_SECS=${BENCH_FIO_SECS:-30}
FIO_MB=${BENCH_FIO_MB:-256}
SNAP_MB=${BENCH_SNAP_MB:-4096}
SNAP_CHANGES=${BENCH_SNAP_CHANGES:-16 64 256}
CKPTENV=${CKPTENV:-$ROOT/build/ckptenv/ckptenv}
CK_HELPERS=${CK_HELPERS:-$(dirname "$(dirname "$CKPTENV")")/helpers}
FSBENCH=$CK_HELPERS/fsbench

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "run as root (drop_caches, FUSE mounts of peers)"
[ -x "$CKPTENV" ] || die "no ckptenv at $CKPTENV (build first, or set CKPTENV)"
[ -x "$FSBENCH" ] || die "no fsbench at $FSBENCH (build the helpers, or set CK_HELPERS)"
# After each drop of the page cache, memory is primed (bench/prime.c: why) so that every target
# finds recently used pages; the vfs needs two page caches' worth (FUSE's and the store's).
export CKBENCH_PRIME=${PRIME:-$(dirname "$(dirname "$CKPTENV")")/bench/ckbench-prime}
[ -x "$CKBENCH_PRIME" ] || die "no ckbench-prime at $CKBENCH_PRIME (build first, or set PRIME)"
for t in fio tar bindfs fuse-overlayfs; do command -v "$t" >/dev/null || die "$t missing (scripts/setup.sh)"; done

W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/ckbench.XXXXXX")
chmod 755 "$W"
export CKPTENV_HOME=$W/home
MOUNTS=()
SNAPJOB=
cleanup() {
	set +e
	if [ -n "$SNAPJOB" ]; then "$CKPTENV" rm --force "$SNAPJOB" >/dev/null 2>&1; fi
	for m in "${MOUNTS[@]}"; do fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the operations, run inside each target (for vfs: inside the job, on /tmp) --------------
# Each prints "key nanoseconds" lines. Reads come after dropping the page cache (host-wide; the
# FUSE page cache and the backing store's both go), so they reach the disk through the stack.
cat >"$W/ops.sh" <<'EOF'
set -euo pipefail
op=$1 dir=$2/op.$$ fsbench=$3
mkdir -p "$dir"
now() { date +%s%N; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; "$CKBENCH_PRIME" $((3 * mb)); }
case $op in
seq)
	mb=$4
	# Incompressible, non-zero data in 1 MiB writes then fsync (dd from /dev/zero would let a
	# store that skips zero blocks cheat; /dev/urandom would measure the RNG).
	drop
	t0=$(now)
	"$fsbench" fill "$dir/big" "$mb" 7 >/dev/null
	t1=$(now)
	drop
	t2=$(now)
	dd if="$dir/big" of=/dev/null bs=1M status=none
	t3=$(now)
	echo "seq_write $((t1 - t0))"
	echo "seq_read $((t3 - t2))"
	;;
files)
	"$fsbench" files "$dir" "$4" | sed -n 's/^total_ns /files /p'
	;;
chmod)
	"$fsbench" chmod "$dir" "$4" | sed -n 's/^chmod_ns /chmod /p'
	;;
untar)
	t0=$(now)
	tar -C "$dir" -xf "$4"
	sync -f "$dir"
	t1=$(now)
	echo "untar $((t1 - t0))"
	;;
fio)
	out=$(fio --name=bench --directory="$dir" --rw=randrw --bs=4k --size="$4"M \
		--runtime="$5" --time_based --ioengine=psync --end_fsync=1 --output-format=terse)
	# Terse v3: field 8 read IOPS, field 49 write IOPS.
	echo "fio_iops $(echo "$out" | awk -F';' '{print $8 + $49}')"
	;;
esac
rm -rf "$dir"
EOF

# ---- targets --------------------------------------------------------------------------------
mkdir -p "$W/native" "$W/tmpfs" "$W/bind-src" "$W/bind" "$W/ovl-lower" "$W/ovl-upper" "$W/ovl-work" "$W/ovl"
for t in $TARGETS; do
	case $t in
	bindfs) bindfs "$W/bind-src" "$W/bind" && MOUNTS+=("$W/bind") ;;
	overlay)
		fuse-overlayfs -o "lowerdir=$W/ovl-lower,upperdir=$W/ovl-upper,workdir=$W/ovl-work" "$W/ovl"
		MOUNTS+=("$W/ovl")
		;;
	tmpfs) mount -t tmpfs -o mode=755 ckbench "$W/tmpfs" && MOUNTS+=("$W/tmpfs") ;;
	native | vfs) ;;
	*) die "unknown target $t" ;;
	esac
done

JOBSEQ=0
# run_op TARGET OP ARGS...: the op's "key ns" lines.
run_op() {
	local t=$1; shift
	case $t in
	native) bash "$W/ops.sh" "$1" "$W/native" "$FSBENCH" "${@:2}" ;;
	tmpfs) bash "$W/ops.sh" "$1" "$W/tmpfs" "$FSBENCH" "${@:2}" ;;
	bindfs) bash "$W/ops.sh" "$1" "$W/bind" "$FSBENCH" "${@:2}" ;;
	overlay) bash "$W/ops.sh" "$1" "$W/ovl" "$FSBENCH" "${@:2}" ;;
	vfs)
		# A fresh job per run, so every run starts from an empty /tmp.
		local name="bench$((JOBSEQ += 1))"
		"$CKPTENV" run --name "$name" -- bash "$W/ops.sh" "$1" /tmp "$FSBENCH" "${@:2}" 2>/dev/null
		"$CKPTENV" rm --force "$name" >/dev/null 2>&1 || true
		;;
	esac
}

median() { sort -n | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print ""}'; }

declare -A RES # RES[key,target] = median
# measure OP ARGS...: N rounds, each running every target once, medians into RES.
# Rounds, not N runs of one target then N of the next: the load of a shared machine drifts over
# minutes, and the targets must see the same drift. The order rotates from round to round (no
# target always runs right after another's writes), and before every run `sync` writes back what
# the previous runs left dirty (seq's GiB, untar's tree), so it is not charged to the next one.
measure() {
	local t i j key
	local -a tl
	read -ra tl <<<"$TARGETS"
	for t in $TARGETS; do : >"$W/res.$t"; done
	for ((i = 0; i < N; i++)); do
		for ((j = 0; j < ${#tl[@]}; j++)); do
			t=${tl[$(((i + j) % ${#tl[@]}))]}
			sync
			run_op "$t" "$@" >>"$W/res.$t" || note "$t $1 run $i failed"
		done
	done
	for t in $TARGETS; do
		local tmp="$W/res.$t"
		for key in $(awk '{print $1}' "$tmp" | sort -u); do
			RES[$key,$t]=$(awk -v k="$key" '$1 == k {print $2}' "$tmp" | median)
		done
		note "$1 on $t (median; runs): $(for key in $(awk '{print $1}' "$tmp" | sort -u); do
			printf '%s=%s (%s) ' "$key" "${RES[$key,$t]}" "$(awk -v k="$key" '$1 == k {printf "%s%s", s, $2; s = " "}' "$tmp")"
		done)"
	done
}
has_op() { [[ " $OPS " == *" $1 "* ]]; }

# The machine's load around the run: on a shared machine the ratios swing with it.
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START=$(loadavg)
note "work dir $W, N=$N, targets: $TARGETS, ops: $OPS, load average $LOAD_START"
TARFILES='' TARMB=''
if has_op untar; then
	tar -C "$(dirname "$TARSRC")" -cf "$W/tree.tar" "$(basename "$TARSRC")"
	TARFILES=$(tar -tf "$W/tree.tar" | wc -l)
	TARMB=$(($(du -sk "$TARSRC" | cut -f1) / 1024))
fi
if has_op seq; then measure seq "$SEQ_MB"; fi
if has_op files; then measure files "$FILES"; fi
if has_op chmod; then measure chmod "$CHMODS"; fi
if has_op untar; then measure untar "$W/tree.tar"; fi
if has_op fio; then measure fio "$FIO_MB" "$FIO_SECS"; fi

# ---- snapshot cost as /tmp grows ---------------------------------------------------------------
# A name runs once and /tmp is private to it, so the writes must come from inside the job: the
# detached job is a small command loop reading lines from a FIFO in the host's work directory
# (outside /tmp, so visible to both) and answering on a second FIFO. The host fills /tmp with
# SNAP_MB, snapshots once (the full first epoch), then for each size changes that many MiB spread
# over the file and times `ckptenv snapshot` (whole command: CLI + control socket + commit).
SNAP=()
if [ "$SNAP_MB" -gt 0 ] && [[ " $TARGETS " == *" vfs "* ]]; then
	mkdir -p "$W/ctl"
	mkfifo "$W/ctl/cmd" "$W/ctl/ack"
	cat >"$W/ctl/loop.sh" <<'EOF'
ctl=$1 fsbench=$2
touch "$ctl/ready"
while :; do
	read -r cmd a b <"$ctl/cmd" || continue
	case $cmd in
	quit) echo "ok bye" >"$ctl/ack"; exit 0 ;;
	fill | change) out=$("$fsbench" "$cmd" /tmp/data "$a" "$b" 2>&1) && echo "ok $out" >"$ctl/ack" || echo "err $out" >"$ctl/ack" ;;
	*) echo "err unknown $cmd" >"$ctl/ack" ;;
	esac
done
EOF
	SNAPJOB=benchsnap
	"$CKPTENV" run --detach --name "$SNAPJOB" -- bash "$W/ctl/loop.sh" "$W/ctl" "$FSBENCH" >/dev/null 2>&1
	for ((i = 0; i < 600; i++)); do [ -e "$W/ctl/ready" ] && break; sleep 0.1; done
	[ -e "$W/ctl/ready" ] || die "the snapshot job did not start (see $CKPTENV_HOME/jobs/$SNAPJOB/log)"
	job() { # job CMD A B: run a command in the job, wait for its answer
		timeout 900 bash -c 'echo "$1" >"$2/cmd"' _ "$*" "$W/ctl" || die "job: sending '$*' timed out"
		local ans
		ans=$(timeout 900 cat "$W/ctl/ack") || die "job: '$*' got no answer"
		[[ $ans == ok* ]] || die "job: $*: $ans"
	}
	# One timed snapshot: "command_ms reported_ms commit_ms": the CLI's own "taken in X ms" (the
	# supervisor's whole commit) and its "commit Y ms" (the part after the syncfs and the
	# flush of open files, what the goal is about).
	snap_ms() {
		local t0 t1 err
		t0=$(date +%s%N)
		err=$("$CKPTENV" snapshot "$SNAPJOB" 2>&1 >/dev/null) || die "ckptenv snapshot failed: $err"
		t1=$(date +%s%N)
		err=$(tail -n1 <<<"$err")
		echo "$(((t1 - t0) / 1000000)) $(sed -n 's/.* taken in \([0-9.]*\) ms.*/\1/p' <<<"$err")" \
			"$(sed -n 's/.*, commit \([0-9.]*\) ms.*/\1/p' <<<"$err")"
	}
	med3() { # median of each of the three columns
		local in
		in=$(cat)
		echo "$(awk '{print $1}' <<<"$in" | median) $(awk '{print $2}' <<<"$in" | median)" \
			"$(awk '{print $3}' <<<"$in" | median)"
	}
	note "snapshot: filling /tmp with $SNAP_MB MiB"
	job fill "$SNAP_MB" 1
	SNAP+=("full first snapshot of $SNAP_MB MiB|$(snap_ms)")
	SNAP+=("nothing changed|$(for ((i = 0; i < N; i++)); do snap_ms; done | med3)")
	seed=2
	for ch in $SNAP_CHANGES; do
		vals=()
		for ((i = 0; i < N; i++)); do
			job change "$ch" $((seed += 1))
			vals+=("$(snap_ms)")
		done
		SNAP+=("$ch MiB of $SNAP_MB MiB changed|$(printf '%s\n' "${vals[@]}" | med3)")
		note "snapshot after $ch MiB changed (command ms, reported ms, after syncfs ms): ${vals[*]}"
	done
	du_store=$(du -sm "$CKPTENV_HOME/jobs/$SNAPJOB" | cut -f1)
	job quit
	"$CKPTENV" rm --force "$SNAPJOB" >/dev/null 2>&1 || true
	SNAPJOB=
fi

# ---- report -----------------------------------------------------------------------------------
label() {
	case $1 in
	native) echo "native" ;; tmpfs) echo "tmpfs" ;; bindfs) echo "bindfs" ;; overlay) echo "fuse-overlayfs" ;;
	vfs) echo "ckptenv vfs" ;;
	esac
}
echo
echo "ckptenv file-system bench: median of $N, $(uname -r), $(nproc) CPUs, host disk $(findmnt -no FSTYPE --target "$W")"
echo "load average (1, 5, 15 min) at the start: $LOAD_START, at the end: $(loadavg)"
echo "time in seconds (fio: IOPS); (x) = slowdown vs native: time/native, native IOPS/IOPS"
printf '%-34s' "operation"
for t in $TARGETS; do printf '%20s' "$(label "$t")"; done
echo
row() { # row OP LABEL KEY KIND(time|iops), when OP was measured
	has_op "$1" || return 0
	shift
	printf '%-34s' "$1"
	local nat=${RES[$2,native]:-} t v cell
	for t in $TARGETS; do
		v=${RES[$2,$t]:-}
		if [ -z "$v" ]; then
			cell="failed"
		elif [ "$3" = time ]; then
			cell=$(awk -v v="$v" -v n="$nat" 'BEGIN { s = sprintf("%.2f", v / 1e9);
				if (n > 0) s = s sprintf(" (%.2fx)", v / n); print s }')
		else
			cell=$(awk -v v="$v" -v n="$nat" 'BEGIN { s = sprintf("%d", v);
				if (n > 0 && v > 0) s = s sprintf(" (%.2fx)", n / v); print s }')
		fi
		printf '%20s' "$cell"
	done
	echo
}
row seq "seq write ${SEQ_MB} MiB + fsync" seq_write time
row seq "seq read ${SEQ_MB} MiB (cold cache)" seq_read time
row files "create+stat+unlink $FILES files" files time
row chmod "fchmod of one file x $CHMODS" chmod time
row untar "untar $(basename "$TARSRC") ($TARFILES, ${TARMB} MiB)+sync" untar time
row fio "fio 4k randrw ${FIO_SECS}s (IOPS)" fio_iops iops
if [ ${#SNAP[@]} -gt 0 ]; then
	echo
	echo "ckptenv snapshot of a job whose /tmp holds $SNAP_MB MiB (store ${du_store} MiB at the end)"
	printf '  %-40s %12s %14s %16s\n' "" "command ms" "reported ms" "after syncfs ms"
	for s in "${SNAP[@]}"; do
		read -r c r a <<<"${s##*|}"
		printf '  %-40s %12s %14s %16s\n' "${s%%|*}" "$c" "${r:--}" "${a:--}"
	done
fi
