#!/usr/bin/env bash
# Prepares a fresh machine: Debian tools the tests use, the local services, a virtualenv with tracegate.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
want_tests=${1:-}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "$want_tests" = "--tests" ] && ! command -v xmlsec1 >/dev/null 2>&1; then
  echo "setup: installing xmlsec1 (independent XML-DSig implementation for the interoperability tests)"
  as_root apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xmlsec1 >/dev/null
fi

# The local services: RabbitMQ always, PostgreSQL for the tests. Started only when they are down.
if command -v rabbitmq-diagnostics >/dev/null 2>&1 && ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
  echo "setup: starting RabbitMQ"
  as_root rabbitmq-server -detached || true
  for _ in $(seq 1 60); do rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; sleep 1; done
fi
if [ "$want_tests" = "--tests" ] && command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1; then
  echo "setup: starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
extras=""
[ "$want_tests" = "--tests" ] && extras="[test]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import gateway" >/dev/null
