#!/usr/bin/env bash
# Runs ./scripts/test.sh against a RabbitMQ 4 broker instead of the machine's own. Debian 12 ships
# RabbitMQ 3.10; unstable has RabbitMQ 4.x with the Erlang it needs, built for a newer C library,
# so this installs them with debootstrap into a directory of their own and runs the broker there
# (chroot) beside the machine's: AMQP on 127.0.0.1:5673, management API on 127.0.0.1:15673, its
# own epmd on port 4370. rabbitmqctl and rabbitmq-plugins on the tests' PATH talk to that broker,
# so the chaos test restarts it and raises its memory alarm. Needs root and deb.debian.org; the
# first run downloads ~60 MB and takes about a minute, later runs reuse the directory and the
# running broker. Not part of CI: Debian unstable moves under us, and CI must not fail for that.
#
#   ./scripts/test-rabbitmq.sh             everything test.sh runs, against RabbitMQ 4
#   ./scripts/test-rabbitmq.sh ./topology/ only these packages (as test.sh takes them)
#   ./scripts/test-rabbitmq.sh --stop      stop that broker
#
# Environment: SYNCWORKER_RABBITMQ_ROOT (default /var/tmp/syncworker-rabbitmq),
# SYNCWORKER_RABBITMQ_PORT (default 5673), SYNCWORKER_RABBITMQ_SUITE (Debian suite, default sid).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
die() { printf 'test-rabbitmq.sh: %s\n' "$*" >&2; exit 1; }

root=${SYNCWORKER_RABBITMQ_ROOT:-/var/tmp/syncworker-rabbitmq}
port=${SYNCWORKER_RABBITMQ_PORT:-5673}
suite=${SYNCWORKER_RABBITMQ_SUITE:-sid}
management_port=$((port + 10000))
dist_port=$((port + 20000))
epmd_port=4370 # not the machine's epmd (4369): that one belongs to its own broker's Erlang
node=rabbit-syncworker@localhost

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, mount, chroot)"

# The broker's command-line tools, run inside the root against its node.
in_root() { chroot "$root" env ERL_EPMD_PORT="$epmd_port" HOME=/var/lib/rabbitmq RABBITMQ_NODENAME="$node" "$@"; }
answers() { in_root rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1; }

if [ "${1:-}" = --stop ]; then
  if [ -x "$root/usr/sbin/rabbitmqctl" ]; then
    say "stopping RabbitMQ ($node)"
    in_root rabbitmqctl -q stop >/dev/null 2>&1 || true # quiet when it was not running
    in_root epmd -kill >/dev/null 2>&1 || true # its own epmd, on $epmd_port
  fi
  exit 0
fi

if [ ! -x "$root/usr/sbin/rabbitmq-server" ]; then
  command -v debootstrap >/dev/null || {
    say "apt-get install debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || die "cannot install debootstrap"
  }
  say "installing RabbitMQ from Debian $suite into $root (debootstrap, about a minute)"
  mkdir -p "$root"
  debootstrap --variant=minbase --include=rabbitmq-server "$suite" "$root" http://deb.debian.org/debian \
    >"$root.debootstrap.log" 2>&1 || die "debootstrap failed; see $root.debootstrap.log"
fi
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
cp /etc/hosts "$root/etc/hosts" # the node name's host, localhost, must resolve inside
mkdir -p "$root/etc/rabbitmq"
cat >"$root/etc/rabbitmq/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
management.tcp.ip = 127.0.0.1
management.tcp.port = $management_port
EOF
echo '[rabbitmq_management].' >"$root/etc/rabbitmq/enabled_plugins"

if ! answers; then
  say "starting RabbitMQ $(chroot "$root" dpkg-query -W -f '${Version}' rabbitmq-server) on 127.0.0.1:$port"
  in_root env RABBITMQ_DIST_PORT="$dist_port" rabbitmq-server -detached ||
    die "rabbitmq-server did not start; see $root/var/log/rabbitmq"
  for _ in $(seq 1 60); do answers && break; sleep 1; done
  answers || die "RabbitMQ started but does not answer; see $root/var/log/rabbitmq"
fi

# rabbitmqctl and rabbitmq-plugins for test.sh and the tests (chaos, least privilege).
bin=$root.bin
mkdir -p "$bin"
for tool in rabbitmqctl rabbitmq-plugins rabbitmq-diagnostics; do
  cat >"$bin/$tool" <<EOF
#!/bin/sh
exec chroot "$root" env ERL_EPMD_PORT=$epmd_port HOME=/var/lib/rabbitmq RABBITMQ_NODENAME=$node $tool "\$@"
EOF
  chmod +x "$bin/$tool"
done
export PATH="$bin:$PATH"
export SYNCWORKER_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$port/"
export SYNCWORKER_TEST_AMQP_MANAGEMENT_URL="http://guest:guest@127.0.0.1:$management_port"
export SYNCWORKER_CHAOS_BROKER_RESTART=${SYNCWORKER_CHAOS_BROKER_RESTART:-1} # it is ours to restart
say "tests against RabbitMQ $(rabbitmqctl -q version) (Erlang $(rabbitmqctl -q eval 'erlang:system_info(otp_release).' | tr -d '"'))"
exec ./scripts/test.sh "$@"
