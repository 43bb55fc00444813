package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/topology"
)

// grantsDoc is the file whose GRANT and set_permissions lines the test applies verbatim.
const grantsDoc = "../../SECURITY.md"

// privilegeDoc holds the documented rights, per user name used in the document.
type privilegeDoc struct {
	grants map[string][]string  // MySQL user -> GRANT statements
	perms  map[string][3]string // RabbitMQ user -> configure, write, read
}

func readPrivilegeDoc(t *testing.T) privilegeDoc {
	t.Helper()
	f, err := os.Open(grantsDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc := privilegeDoc{grants: map[string][]string{}, perms: map[string][3]string{}}
	grantUser := regexp.MustCompile(`TO '([a-z_]+)'@'%';$`)
	perm := regexp.MustCompile(`^rabbitmqctl set_permissions -p / ([a-z_]+) '([^']*)' '([^']*)' '([^']*)'$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := grantUser.FindStringSubmatch(line); m != nil && strings.HasPrefix(line, "GRANT ") {
			doc.grants[m[1]] = append(doc.grants[m[1]], line)
		}
		if m := perm.FindStringSubmatch(line); m != nil {
			doc.perms[m[1]] = [3]string{m[2], m[3], m[4]}
		}
	}
	for _, u := range []string{"orders_service", "syncworker_relay", "syncworker_consume"} {
		if len(doc.grants[u]) == 0 {
			t.Fatalf("%s documents no GRANT for %s", grantsDoc, u)
		}
	}
	for _, u := range []string{"syncworker_relay", "syncworker_consume"} {
		if _, ok := doc.perms[u]; !ok {
			t.Fatalf("%s documents no RabbitMQ permissions for %s", grantsDoc, u)
		}
	}
	return doc
}

func rabbitmqctl(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rabbitmqctl %s: %v: %s", args[0], err, out)
	}
	return nil
}

// The writer, the relay and the consumer work end to end with exactly the rights SECURITY.md
// documents: events written, published, applied, a bad event parked, and a clean stop.
func TestLeastPrivilege(t *testing.T) {
	t.Parallel()
	doc := readPrivilegeDoc(t)
	ctx := context.Background()
	src, rep := testenv.NewDatabase(t), testenv.NewDatabase(t)
	for _, d := range []*testenv.Database{src, rep} {
		if err := outbox.Migrate(ctx, d.DB); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rep.DB.Exec("CREATE TABLE orders_replica (id BIGINT PRIMARY KEY, status VARCHAR(20) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	broker := testenv.NewBroker(t)
	exchange, queue := broker.Name("events"), broker.Name("q")
	broker.Track(queue+".retry.1s", queue+".parked")
	topo, err := topology.Parse([]byte(fmt.Sprintf("exchanges: [{name: %q, type: direct}]\nqueues: [{name: %q, retry: {delays: [1s]}}]\nbindings: [{exchange: %q, queue: %q, routing_key: rows}]\n",
		exchange, queue, exchange, queue)), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topology.Apply(ctx, broker.Conn, topo); err != nil {
		t.Fatal(err)
	}

	// Users with random names and passwords, removed when the test ends.
	suffix := testenv.RandomSuffix(8)
	names := map[string]string{}
	for _, u := range []string{"orders_service", "syncworker_relay", "syncworker_consume"} {
		names[u] = "swt_" + suffix + "_" + strings.TrimPrefix(u, "syncworker_")
	}
	rename := strings.NewReplacer("orders_db", src.Name, "billing_db", rep.Name,
		`orders\.events`, regexp.QuoteMeta(exchange), `billing\.orders`, regexp.QuoteMeta(queue))
	password := testenv.RandomSuffix(16)
	admin, err := sql.Open("mysql", testenv.MySQLDSNWithTimeout())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	dsns := map[string]string{}
	for docUser, user := range names {
		if _, err := admin.Exec(fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, password)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) })
		for _, g := range doc.grants[docUser] {
			g = strings.Replace(rename.Replace(g), "'"+docUser+"'", "'"+user+"'", 1)
			if _, err := admin.Exec(g); err != nil {
				t.Fatalf("%s: %v", g, err)
			}
		}
		cfg, err := mysql.ParseDSN(src.DSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.User, cfg.Passwd = user, password
		if docUser == "syncworker_consume" {
			cfg.DBName = rep.Name
		}
		dsns[docUser] = cfg.FormatDSN()
	}
	urls := map[string]string{}
	for docUser, p := range doc.perms {
		user := names[docUser]
		if err := rabbitmqctl("add_user", user, password); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rabbitmqctl("delete_user", user) })
		if err := rabbitmqctl("set_permissions", "-p", "/", user, rename.Replace(p[0]), rename.Replace(p[1]), rename.Replace(p[2])); err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(broker.URL)
		u.User = url.UserPassword(user, password)
		urls[docUser] = u.String()
	}

	// The writer: nine row changes and one event for a table the consumer does not map.
	writer, err := sql.Open("mysql", dsns["orders_service"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Close() })
	var msgs []outbox.Message
	for i := 1; i <= 9; i++ {
		m, _ := outbox.RowUpsert("orders", map[string]any{"id": i}, map[string]any{"status": fmt.Sprint("s", i)}, 1)
		msgs = append(msgs, m)
	}
	bad, _ := outbox.RowUpsert("customers", map[string]any{"id": 1}, map[string]any{"name": "x"}, 1)
	msgs = append(msgs, bad)
	for i := range msgs {
		msgs[i].Exchange, msgs[i].RoutingKey = exchange, "rows"
	}
	tx, err := writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Write(ctx, tx, msgs...); err != nil {
		t.Fatalf("write as the writer user: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	cfgPath := t.TempDir() + "/consume.yaml"
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("queue: %s\nconsumer_name: billing\nretry: {delays: [1s], max_attempts: 2}\nrow_sync:\n  tables:\n    - {source: orders, target: orders_replica, key_columns: [id], columns: [status]}\n", queue)), 0o600)
	bin := buildBinary(t)
	start := func(role string, args ...string) (*exec.Cmd, *lockedBuffer) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "SYNCWORKER_MYSQL_DSN="+dsns[role], "SYNCWORKER_AMQP_URL="+urls[role])
		var out lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &out
	}
	relay, relayOut := start("syncworker_relay", "relay", "--partitions", "2", "--lease-ttl", "2s")
	consume, consumeOut := start("syncworker_consume", "consume", "--config", cfgPath)

	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		var rows, left int
		rep.DB.QueryRow("SELECT COUNT(*) FROM orders_replica").Scan(&rows)
		src.DB.QueryRow("SELECT COUNT(*) FROM syncworker_outbox").Scan(&left)
		return rows == 9 && left == 0, fmt.Sprintf("%d of 9 rows applied, %d outbox rows left\nrelay:\n%s\nconsume:\n%s", rows, left, relayOut, consumeOut)
	})
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		q, err := broker.Channel().QueueDeclarePassive(queue+".parked", true, false, false, false, nil)
		return err == nil && q.Messages == 1, fmt.Sprintf("parking lot: %+v %v\nconsume:\n%s", q, err, consumeOut)
	})
	for _, p := range []struct {
		cmd *exec.Cmd
		out *lockedBuffer
	}{{relay, relayOut}, {consume, consumeOut}} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("%s exited with %v:\n%s", p.cmd.Args[1], err, p.out)
		}
		if s := p.out.String(); strings.Contains(s, "denied") || strings.Contains(s, "ACCESS_REFUSED") {
			t.Errorf("%s was refused something under the documented rights:\n%s", p.cmd.Args[1], s)
		}
		if strings.Contains(p.out.String(), password) {
			t.Errorf("%s printed a password", p.cmd.Args[1])
		}
	}
}
