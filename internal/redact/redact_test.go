package redact

import (
	"strings"
	"testing"
)

func TestDSNHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"app:s3cret@tcp(db:3306)/orders?parseTime=true",
		"app:s3cret@tcp(db:3306)/orders?bad=%zz",
		"app:s3cret@unix(/run/mysqld/mysqld.sock)/x",
	} {
		got := DSN(dsn)
		if strings.Contains(got, "s3cret") {
			t.Errorf("DSN(%q) = %q still holds the password", dsn, got)
		}
		if !strings.Contains(got, "db") && !strings.Contains(got, "mysqld") {
			t.Errorf("DSN(%q) = %q lost the address", dsn, got)
		}
	}
	if got := DSN("root@tcp(127.0.0.1:3306)/"); got != "root@tcp(127.0.0.1:3306)/" {
		t.Errorf("DSN without password changed: %q", got)
	}
}

func TestURLHidesPassword(t *testing.T) {
	for _, u := range []string{"amqp://app:s3cret@mq:5672/vh", "amqps://app:s3cret@mq/%zz"} {
		if got := URL(u); strings.Contains(got, "s3cret") || !strings.Contains(got, "mq") {
			t.Errorf("URL(%q) = %q", u, got)
		}
	}
	if got := Secrets("dial amqp://a:pw@h failed", "pw"); strings.Contains(got, "pw@") {
		t.Errorf("Secrets left the password: %q", got)
	}
}
