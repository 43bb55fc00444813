package tlstest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/testenv"
)

// Environment variables naming the MariaDB binaries StartMariaDB runs.
const (
	EnvMariaDBD  = "SYNCWORKER_TEST_MARIADBD"   // default: mariadbd on PATH, else /usr/sbin/mariadbd
	EnvInstallDB = "SYNCWORKER_TEST_INSTALL_DB" // default: mariadb-install-db on PATH
)

// MariaDB is a throwaway MariaDB server that requires TLS on TCP, with the server
// certificate of the Certs it was started with. Its root user has no password.
type MariaDB struct {
	Addr   string // 127.0.0.1:port, TLS required
	Socket string // unix socket, plaintext allowed (for setup)
}

// DSN is a DSN for root on Addr selecting dbName (none when empty), without a tls
// parameter: connecting with it fails until TLS is added.
func (m *MariaDB) DSN(dbName string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", m.Addr, dbName
	cfg.Timeout = 5 * time.Second
	return cfg.FormatDSN()
}

// StartMariaDB initialises a data directory with mariadb-install-db and starts mariadbd on
// a free loopback port with --ssl-ca/--ssl-cert/--ssl-key from certs and
// --require-secure-transport, so a plaintext TCP client is refused. The server is stopped
// and its files removed when the test ends. It takes about two seconds and 25 MB of disk.
//
// A test server of our own is needed because MySQL negotiates TLS inside its protocol
// (SSLRequest after the greeting), so the plain TLS-terminating faultproxy cannot front the
// shared server, and that server's TLS settings are fixed at its start.
func StartMariaDB(t testing.TB, certs *Certs) *MariaDB {
	t.Helper()
	testenv.Integration(t)
	mariadbd := binary(t, EnvMariaDBD, "mariadbd", "/usr/sbin/mariadbd")
	installDB := binary(t, EnvInstallDB, "mariadb-install-db", "/usr/bin/mariadb-install-db")
	runAs := "mysql"
	if u, err := user.Current(); err == nil {
		runAs = u.Username // mariadbd refuses root unless told; as anyone else --user is ignored
	}

	// Not t.TempDir(): a unix socket path must stay under ~100 bytes.
	dir, err := os.MkdirTemp("", "swt-mdb-")
	if err != nil {
		t.Fatalf("MariaDB temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	// Small, with its own tmpdir: in /tmp, shared with the other servers and tests, a bootstrap
	// once lost a temporary table ("Could not remove temporary table ... error: 2") and failed.
	serverOpts := []string{"--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M", "--tmpdir=" + dir}

	install := exec.Command(installDB, append([]string{"--no-defaults", "--datadir=" + data, "--user=" + runAs,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, serverOpts...)...)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("%s failed: %v\n%s", installDB, err, out)
	}

	m := &MariaDB{Socket: filepath.Join(dir, "mysqld.sock")}
	logFile := filepath.Join(dir, "error.log")
	// A free port can be taken between our probe and mariadbd's bind; try a few.
	for attempt := 1; ; attempt++ {
		m.Addr = freePort(t)
		args := append([]string{"--no-defaults", "--datadir=" + data, "--user=" + runAs,
			"--bind-address=127.0.0.1", "--port=" + strings.TrimPrefix(m.Addr, "127.0.0.1:"),
			"--socket=" + m.Socket, "--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--log-error=" + logFile,
			"--skip-name-resolve", "--ssl-ca=" + certs.CAFile, "--ssl-cert=" + certs.ServerCertFile,
			"--ssl-key=" + certs.ServerKeyFile, "--require-secure-transport=ON"}, serverOpts...)
		err := m.run(t, mariadbd, args, logFile)
		if err == nil {
			return m
		}
		if attempt == 3 || !strings.Contains(err.Error(), "Address already in use") {
			t.Fatalf("start %s: %v", mariadbd, err)
		}
	}
}

// run starts mariadbd and waits until it answers on its socket, or says why it could not.
func (m *MariaDB) run(t testing.TB, mariadbd string, args []string, logFile string) error {
	t.Helper()
	cmd := exec.Command(mariadbd, args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	db, err := sql.Open("mysql", "root@unix("+m.Socket+")/?timeout=1s")
	if err != nil {
		cmd.Process.Kill()
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		select {
		case err := <-exited:
			return fmt.Errorf("mariadbd exited (%v):\n%s", err, tail(logFile))
		case <-time.After(wait):
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("mariadbd not ready within 30s: %v\n%s", err, tail(logFile))
		}
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	return nil
}

func binary(t testing.TB, env, name, fallback string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback
	}
	t.Fatalf("%s not found (on PATH or at %s); the MySQL TLS tests start their own MariaDB server.\n"+
		"Install MariaDB (Debian: apt-get install mariadb-server), set %s to the binary, or %s=1 to skip integration tests.",
		name, fallback, env, testenv.EnvSkip)
	return ""
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// tail returns the last lines of the server's error log, for failure messages.
func tail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no error log: %v)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}
