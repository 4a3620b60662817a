#!/usr/bin/env bash
# Tools the deploy tests (tests/deploy/) drive for real: Debian's caddy (validate + a live
# reverse proxy), nginx (nginx -t + a live reverse proxy), systemd-analyze (verify and
# security scoring of the unit), openssl (a throwaway certificate for nginx's TLS server)
# and python3-venv (the container install steps run into a fresh venv).
# Idempotent: returns at once when everything is present. Runs as root on Debian 12.
set -euo pipefail

need=()
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps it small; policy-rc.d stops the packages' services from
# being started (there is no init system here, and the tests start their own instances).
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
