#!/usr/bin/env bash
# Runs the cpu chain in the background, detached from the shell (resumable: rerun it after a stop);
# the profile runs one stage at a time on all cores.
# Log: work/chain.log. Stop it with: kill -TERM -- -$(cat work/chain.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p work
if [ -f work/chain.pid ] && kill -0 "$(cat work/chain.pid)" 2>/dev/null; then
  echo "chain already running (pid $(cat work/chain.pid))"; exit 1
fi
echo "=== start $(date -u +%FT%TZ) at $(git rev-parse --short HEAD)" >> work/chain.log
PYTHONUNBUFFERED=1 setsid nohup .venv/bin/python -m sepnet_core.pipeline \
  --profile cpu "$@" >> work/chain.log 2>&1 < /dev/null &
echo $! > work/chain.pid
echo "chain started (pid $!), log work/chain.log"
