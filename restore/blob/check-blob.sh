#!/bin/sh
# Refuse a blob object that could not run as a copy at any address: every relocation must be
# PC-relative (no absolute addresses in code or data, no GOT).
# usage: check-blob.sh READELF OBJECT
bad=$("$1" -rW "$2" | awk '/^[0-9a-f]+ +[0-9a-f]+ +R_X86_64_/ && $3 != "R_X86_64_PC32" && $3 != "R_X86_64_PLT32" { print $3 " " $5 }')
if [ -n "$bad" ]; then
	echo "restorer blob $2 has non PC-relative relocations:" >&2
	echo "$bad" >&2
	exit 1
fi
exit 0
