#!/usr/bin/env bash
# Installs the Debian packages that the tests drive, only when they are missing.
# Needs root (or sudo); prints what it would need otherwise.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# bench/edge.py: the HTTP/3 baseline server (quic-go) and an independent h3 load client
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v gtlsclient >/dev/null 2>&1 || need+=(ngtcp2-client)
# the event bus (abrstack/bus.py): Redis Streams, a private redis-server when no --redis URL
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "system-deps: please install: ${need[*]} (apt-get install ${need[*]})" >&2; exit 1
fi
echo "system-deps: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
