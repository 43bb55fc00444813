package subscriber

import (
	"context"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

func TestDialectOfServerVersions(t *testing.T) {
	for version, alias := range map[string]bool{
		"10.11.19-MariaDB-0+deb12u1": false, "11.8.2-MariaDB": false, "5.5.5-10.6.18-MariaDB": false,
		"5.7.44-log": false, "8.0.18": false, "8.0.19": true, "8.0.40": true, "8.4.3": true, "9.7.4": true, "garbage": false,
	} {
		d := dialectOf(version)
		if d.rowAlias != alias {
			t.Errorf("%s: row alias %v, want %v", version, d.rowAlias, alias)
		}
		want := "VALUES(`c`)"
		if alias {
			want = "sw_new.`c`"
		}
		if got := d.newValue("`c`"); got != want {
			t.Errorf("%s: new value %s, want %s", version, got, want)
		}
	}
}

// Row sync's upserts draw no warning from the server: on MySQL, VALUES(col) in ON DUPLICATE KEY
// UPDATE would draw one on every statement (deprecated). The last statement's (the versions'
// upsert) are in SHOW WARNINGS; where performance_schema records statements (MySQL by default),
// every upsert's. (INSERT IGNORE's warnings for rows already there are its purpose.)
func TestRowSyncWritesWithoutWarnings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := testenv.NewDatabase(t)
	// Text-protocol statements: the server reports a deprecated construct when it parses the
	// statement, which for a prepared one is in the PREPARE's answer, gone by its EXECUTE.
	db := testenv.OpenDSN(t, d.DSN, func(c *mysql.Config) { c.InterpolateParams = true })
	if err := outbox.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE items (id INT PRIMARY KEY, val VARCHAR(20) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	rs, err := NewRowSync(RowSyncConfig{Tables: []TableMapping{{Source: "items", KeyColumns: []string{"id"}}}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx) // one session, for its warnings and statement history
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for version := uint64(1); version <= 2; version++ { // inserts, then updates through ON DUPLICATE KEY
		var msgs []Message
		for id := 1; id <= 3; id++ {
			m, err := outbox.RowUpsert("items", map[string]any{"id": id}, map[string]any{"val": "v" + string(rune('0'+version))}, version)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, Message{ID: outbox.NewID(), Type: m.Type, Payload: m.Payload})
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := rs.HandleBatch(ctx, tx, msgs); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.QueryContext(ctx, "SHOW WARNINGS")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var level, message string
			var code int
			if err := rows.Scan(&level, &code, &message); err != nil {
				t.Fatal(err)
			}
			t.Errorf("version %d: the last statement drew %s %d: %s", version, level, code, message)
		}
		rows.Close()
		history, err := tx.QueryContext(ctx, `SELECT SQL_TEXT FROM performance_schema.events_statements_history
			WHERE WARNINGS > 0 AND SQL_TEXT LIKE '%ON DUPLICATE KEY UPDATE%' AND THREAD_ID = (SELECT THREAD_ID FROM performance_schema.threads WHERE PROCESSLIST_ID = CONNECTION_ID())`)
		if err == nil {
			for history.Next() {
				var text string
				if err := history.Scan(&text); err != nil {
					t.Fatal(err)
				}
				t.Errorf("version %d: a statement drew a warning: %s", version, text)
			}
			history.Close()
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	var vals string
	if err := db.QueryRow("SELECT GROUP_CONCAT(val ORDER BY id) FROM items").Scan(&vals); err != nil {
		t.Fatal(err)
	}
	if vals != "v2,v2,v2" {
		t.Errorf("items = %s, want v2 three times", vals)
	}
}
