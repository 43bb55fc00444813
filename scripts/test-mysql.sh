#!/usr/bin/env bash
# Runs ./scripts/test.sh against MySQL instead of MariaDB. Debian's only MySQL packages are
# in unstable (MySQL 9.x), built for a newer C library than Debian 12's, so this installs
# them with debootstrap into a directory of their own and runs mysqld there (chroot) on
# 127.0.0.1:3307. Needs root and deb.debian.org; the first run downloads ~150 MB and takes
# a few minutes, later runs reuse the directory and the running server. Not part of CI:
# Debian unstable moves under us, and CI must not fail for that.
#
#   ./scripts/test-mysql.sh             everything test.sh runs, against MySQL
#   ./scripts/test-mysql.sh ./verify/   only these packages (as test.sh takes them)
#   ./scripts/test-mysql.sh --stop      stop that MySQL server
#
# Environment: SYNCWORKER_MYSQL_ROOT (default /var/tmp/syncworker-mysql), SYNCWORKER_MYSQL_PORT
# (default 3307), SYNCWORKER_MYSQL_SUITE (Debian suite, default sid).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
die() { printf 'test-mysql.sh: %s\n' "$*" >&2; exit 1; }

root=${SYNCWORKER_MYSQL_ROOT:-/var/tmp/syncworker-mysql}
port=${SYNCWORKER_MYSQL_PORT:-3307}
suite=${SYNCWORKER_MYSQL_SUITE:-sid}
datadir=/var/lib/syncworker-mysql # inside $root
pidfile=/run/mysqld/mysqld.pid    # inside $root

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, mount, chroot)"

in_root() { chroot "$root" "$@"; }
answers() { in_root mysql --protocol=TCP -h127.0.0.1 -P"$port" -uroot -e 'SELECT 1' >/dev/null 2>&1; }

if [ "${1:-}" = --stop ]; then
  if [ -f "$root$pidfile" ]; then
    say "stopping MySQL (pid $(cat "$root$pidfile"))"
    kill "$(cat "$root$pidfile")" || true
  fi
  exit 0
fi

if [ ! -x "$root/usr/sbin/mysqld" ] || [ ! -x "$root/usr/bin/mysql" ]; then
  command -v debootstrap >/dev/null || {
    say "apt-get install debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || die "cannot install debootstrap"
  }
  say "installing MySQL from Debian $suite into $root (debootstrap, a few minutes)"
  mkdir -p "$root"
  debootstrap --variant=minbase --include=mysql-server-core,mysql-client-core "$suite" "$root" \
    http://deb.debian.org/debian >"$root.debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $root.debootstrap.log"
fi
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
mkdir -p "$root/run/mysqld"

if ! answers; then
  if [ ! -d "$root$datadir/mysql" ]; then
    say "initialising a data directory (root without a password, reachable on 127.0.0.1 only)"
    in_root /usr/sbin/mysqld --initialize-insecure --user=root --datadir="$datadir" >/dev/null 2>&1 ||
      die "mysqld --initialize-insecure failed"
  fi
  say "starting $(in_root /usr/sbin/mysqld --version | sed 's/^.*Ver //') on 127.0.0.1:$port"
  # --secure-file-priv= : the packaged default directory does not exist in a bare root.
  in_root /usr/sbin/mysqld --daemonize --user=root --datadir="$datadir" --port="$port" \
    --bind-address=127.0.0.1 --socket=/run/mysqld/mysqld.sock --pid-file="$pidfile" --mysqlx=OFF \
    --secure-file-priv= --log-error="$datadir/error.log" >/dev/null ||
    die "mysqld did not start; see $root$datadir/error.log"
  for _ in $(seq 1 60); do answers && break; sleep 0.5; done
  answers || die "mysqld started but does not answer; see $root$datadir/error.log"
fi

export SYNCWORKER_TEST_MYSQL_DSN="root@tcp(127.0.0.1:$port)/"
say "tests against $(in_root mysql --protocol=TCP -h127.0.0.1 -P"$port" -uroot -N -e 'SELECT VERSION()')"
exec ./scripts/test.sh "$@"
