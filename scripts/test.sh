#!/usr/bin/env bash
# The one test command: makes sure MariaDB/MySQL and RabbitMQ answer (starting or installing
# them where it can), then runs gofmt, go vet and every test with the race detector.
#
#   ./scripts/test.sh            everything
#   ./scripts/test.sh ./outbox/  only these packages (gofmt and vet still run on all; no fuzz, no chaos)
#
# Environment: SYNCWORKER_TEST_MYSQL_DSN, SYNCWORKER_TEST_AMQP_URL point the tests elsewhere;
# SYNCWORKER_SKIP_INTEGRATION=1 skips the integration tests (and the service checks).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed: install Go 1.26 or newer (https://go.dev/doc/install)"

is_root() { [ "$(id -u)" = 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }
apt_updated=""
apt_install() {
  is_root && have apt-get || return 1
  if [ -z "$apt_updated" ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
    apt_updated=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || return 1
}
docker_up() {
  have docker && docker info >/dev/null 2>&1 || return 1
  say "starting $1 with docker compose"
  docker compose up -d --wait "$1"
}

# --- MariaDB / MySQL ---------------------------------------------------------------------
mysql_tcp_ok() { have mariadb && mariadb -h127.0.0.1 -P3306 -uroot -e 'SELECT 1' >/dev/null 2>&1; }
mysql_running() { have mariadb-admin && mariadb-admin -h127.0.0.1 -P3306 ping >/dev/null 2>&1 \
  || mariadb-admin ping >/dev/null 2>&1; }
# db_server_is_local: the server the tests use is a process of this machine (its pid file names
# a live process), so the chaos test can crash it and start it again.
db_server_is_local() {
  local pid_file
  pid_file=$( (mariadb -h127.0.0.1 -P3306 -uroot -N -e 'SELECT @@pid_file' || mariadb -uroot -N -e 'SELECT @@pid_file') 2>/dev/null) || return 1
  [ -r "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}
start_mariadb() {
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 60); do mysql_running && return 0; sleep 0.5; done
  return 1
}
local_mysql=""  # set when the tests use this machine's own server (the chaos test may crash it)
ensure_mysql() {
  if [ -n "${SYNCWORKER_TEST_MYSQL_DSN:-}" ]; then return 0; fi  # the caller chose a server
  local_mysql=1
  if ! mysql_running; then
    if [ -x /usr/sbin/mariadbd ]; then
      say "MariaDB is installed but not running: starting it"
      start_mariadb || die "MariaDB did not start; see /var/log/mysql or run mariadbd by hand"
    elif apt_install mariadb-server mariadb-client; then
      start_mariadb || die "MariaDB was installed but did not start"
    elif docker_up mysql; then :
    else
      die "MariaDB/MySQL is not running and cannot be installed here: install mariadb-server (10.6+) or MySQL 8.0+, start it, or set SYNCWORKER_TEST_MYSQL_DSN"
    fi
  fi
  # A fresh Debian MariaDB lets root in only through the unix socket. The tests speak TCP, so
  # create a dedicated test user through the socket and point the tests at it.
  if ! mysql_tcp_ok; then
    say "root cannot log in over TCP: creating the syncworker_test user"
    mariadb -uroot <<'SQL' || die "cannot create the test user; set SYNCWORKER_TEST_MYSQL_DSN to a user that may create databases"
CREATE USER IF NOT EXISTS 'syncworker_test'@'127.0.0.1' IDENTIFIED BY 'syncworker_test';
CREATE USER IF NOT EXISTS 'syncworker_test'@'localhost' IDENTIFIED BY 'syncworker_test';
GRANT ALL PRIVILEGES ON *.* TO 'syncworker_test'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'syncworker_test'@'localhost' WITH GRANT OPTION;
SQL
    export SYNCWORKER_TEST_MYSQL_DSN='syncworker_test:syncworker_test@tcp(127.0.0.1:3306)/'
  fi
}

# --- RabbitMQ ----------------------------------------------------------------------------
rabbit_ok() { have rabbitmqctl && timeout 20 rabbitmqctl -q status >/dev/null 2>&1; }
start_rabbit() {
  rabbitmq-server -detached
  # await_startup needs a node that answers; right after -detached it may not yet.
  for _ in $(seq 1 120); do
    timeout 10 rabbitmqctl -q ping >/dev/null 2>&1 && break
    sleep 1
  done
  timeout 120 rabbitmqctl -q await_startup
}
ensure_rabbit() {
  if [ -n "${SYNCWORKER_TEST_AMQP_URL:-}" ]; then return 0; fi
  if rabbit_ok; then return 0; fi
  if have rabbitmq-server; then
    say "RabbitMQ is installed but not running: starting it"
    start_rabbit || die "RabbitMQ did not start; see /var/log/rabbitmq"
  elif apt_install rabbitmq-server; then
    rabbit_ok || start_rabbit || die "RabbitMQ was installed but did not start"
  elif docker_up rabbitmq; then :
  else
    die "RabbitMQ is not running and cannot be installed here: install rabbitmq-server (3.10+), start it, or set SYNCWORKER_TEST_AMQP_URL"
  fi
}

# The status command reads unacked counts from the management API (cmd/syncworker tests use
# port 15672 of the broker's host, or SYNCWORKER_TEST_AMQP_MANAGEMENT_URL). Enabling an enabled
# plugin changes nothing.
enable_management() {
  if [ -n "${SYNCWORKER_TEST_AMQP_MANAGEMENT_URL:-}${SYNCWORKER_TEST_AMQP_URL:-}" ] || ! have rabbitmq-plugins; then return 0; fi
  timeout 60 rabbitmq-plugins -q enable rabbitmq_management >/dev/null 2>&1 ||
    say "could not enable rabbitmq_management; set SYNCWORKER_TEST_AMQP_MANAGEMENT_URL for the status test"
}

# Remove broker entities that interrupted test runs left behind (names start with swt-).
sweep_rabbit() {
  have rabbitmqctl || return 0
  timeout 30 rabbitmqctl -q list_queues name 2>/dev/null | grep '^swt-' | while read -r q; do
    timeout 10 rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true
  done || true
}

# --- docker-compose (only to check docker-compose.yml; no Docker engine is needed) ------------
ensure_compose() {
  have docker-compose && return 0
  # Without it the compose test fails and says so; the other tests still run.
  apt_install docker-compose || printf 'test.sh: warning: docker-compose is not installed and cannot be installed here (apt-get install docker-compose); TestComposeFileIsValid will fail\n' >&2
}

# continue_stopped: the chaos test freezes the local servers (SIGSTOP) for a few seconds; one
# killed during a freeze would leave a server that looks running and answers nothing.
continue_stopped() {
  local pid
  for pid in $(pgrep -x mariadbd; pgrep -x mysqld; pgrep -f beam.smp); do
    if [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = T ]; then
      say "process $pid ($(cat "/proc/$pid/comm")) is stopped: continuing it"
      kill -CONT "$pid" 2>/dev/null || true
    fi
  done
}

if [ "${SYNCWORKER_SKIP_INTEGRATION:-}" != 1 ]; then
  continue_stopped
  ensure_mysql
  ensure_rabbit
  enable_management
  sweep_rabbit
  ensure_compose
fi

say "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$unformatted" ] || die "gofmt would change: $unformatted"

say "go vet"
go vet ./...

# staticcheck at a pinned version, fetched through the module proxy like any dependency (about a
# minute the first time on a 2-core machine, seconds once built); staticcheck.conf says what it
# leaves out and why.
say "staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# The Dockerfile check lives in a module of its own (BuildKit's parser stays out of go.mod).
say "Dockerfile check (tools/dockerfilecheck)"
(cd tools/dockerfilecheck && go vet ./... && go test -count=1 ./... && go run . ../../Dockerfile)

pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
say "go test -race ${pkgs[*]}"
go test -race -count=1 -timeout 20m "${pkgs[@]}"

# The fuzz and chaos steps run only for a full run (no package arguments).
[ $# -eq 0 ] || exit 0

# Short fuzzing of every target; the seed corpus in testdata/fuzz/ runs with the tests above.
# Budgets are execution counts (about 10 s each here), not durations: with a duration, Go 1.26's
# fuzz coordinator can report a spurious "context deadline exceeded" as the time runs out
# (go.dev/issue/75804, fixed in Go 1.27). SYNCWORKER_FUZZTIME=2m (or 1000000x) overrides all.
# Minimizing a new interesting input is bounded too (60 s by default).
fuzz() {
  local budget=${SYNCWORKER_FUZZTIME:-$3}
  say "fuzz $2 ($1, $budget)"
  go test -run '^$' -fuzz "^$2\$" -fuzztime "$budget" -fuzzminimizetime 1s "$1"
}
fuzz ./subscriber/ FuzzDecodeDelivery 150000x
fuzz ./outbox/ FuzzDecodeRowChange 150000x
fuzz ./topology/ FuzzParse 30000x
fuzz ./cmd/syncworker/ FuzzConfig 10000x

# The chaos test last and alone: it restarts and freezes the broker (stop_app/start_app,
# SIGSTOP/SIGCONT) and freezes and crashes the database server (SIGKILL, started again with the
# same command line), which would break any other test running against them. SYNCWORKER_CHAOS_DURATION=30m makes it a soak run.
if [ "${SYNCWORKER_SKIP_INTEGRATION:-}" != 1 ]; then
  say "chaos test (${SYNCWORKER_CHAOS_DURATION:-90s} of faults)"
  restart=0
  if [ -z "${SYNCWORKER_TEST_AMQP_URL:-}" ] && rabbit_ok; then restart=1; fi  # we control the local broker
  restart=${SYNCWORKER_CHAOS_BROKER_RESTART:-$restart} # scripts/test-rabbitmq.sh: its broker is ours too
  crash=0  # and the local database server (SIGKILL, start again); SYNCWORKER_CHAOS_DB_CRASH=0 opts out
  if [ -n "$local_mysql" ] && is_root && db_server_is_local; then crash=${SYNCWORKER_CHAOS_DB_CRASH:-1}; fi
  SYNCWORKER_CHAOS_BROKER_RESTART=$restart SYNCWORKER_CHAOS_DB_CRASH=$crash go test -tags chaos -count=1 -timeout 60m ./chaos/ -run '^Test' -v
fi
