#!/usr/bin/env bash
# Make sure the servers the tests talk to are reachable on loopback: an MQTT broker (Mosquitto) and
# PostgreSQL. Uses the machine's own when they answer; otherwise installs/starts them where possible.
# Tests that need a server also start their own on a free port when they can (tests/cloud/conftest.py).
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! command -v mosquitto >/dev/null 2>&1 && ! port_open 1883; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-services: installing mosquitto"
    (apt-get install -y -qq mosquitto >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq mosquitto >/dev/null 2>&1; }) \
      || echo "ensure-services: could not install mosquitto; MQTT tests will say so"
  else
    echo "ensure-services: no mosquitto and not root; MQTT tests will say so"
  fi
fi

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "ensure-services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >/dev/null 2>&1 || true
  fi
  port_open 5432 || echo "ensure-services: no PostgreSQL on 127.0.0.1:5432; PostgreSQL store tests will be skipped with that reason"
fi
exit 0
