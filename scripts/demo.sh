#!/usr/bin/env bash
# Install deps, build build/ (Release), then run bash as the job "demo" with a private,
# persistent /tmp: exec build/ckptenv/ckptenv run --name demo -- bash
exec bash "$(dirname "${BASH_SOURCE[0]}")/setup.sh" --demo "$@"
