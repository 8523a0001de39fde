#!/usr/bin/env bash
# Start a Docker engine if none answers. Nothing on this kind of machine starts one (PID 1 is not systemd).
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null; then
  echo "dockerd is not installed: run 'make deps' (it installs docker.io)" >&2; exit 1
fi
# A pid file left by a daemon that is gone stops a new one from starting.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then rm -f /var/run/docker.pid; fi
mkdir -p /var/log
nohup dockerd >/var/log/swiftfleet-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then echo "dockerd is up"; exit 0; fi
  sleep 1
done
echo "dockerd did not start; see /var/log/swiftfleet-dockerd.log" >&2
tail -n 20 /var/log/swiftfleet-dockerd.log >&2
exit 1
