package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/internal/tlsconfig"
)

// openDB opens mysql.dsn with the mysql.tls settings applied and interpolateParams on unless
// the DSN says otherwise, and the further defaults given (utcSessionByDefault). The driver's
// own messages (a bad idle connection closed, an unexpected EOF) go to log when it is not nil,
// instead of plain lines on stderr among the JSON ones. It does not connect; the first query
// does, and a TLS failure there is explained by pingDB.
func openDB(s *settings, log *zap.Logger, defaults ...func(dsn string) (string, error)) (*sql.DB, error) {
	dsn, err := interpolateByDefault(s.MySQL.DSN)
	for _, d := range defaults {
		if err == nil {
			dsn, err = d(dsn)
		}
	}
	if err != nil {
		return nil, err
	}
	if dsn, err = tlsconfig.ApplyToDSN(dsn, s.MySQL.TLS); err != nil {
		return nil, fmt.Errorf("mysql.tls: %w", err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err == nil && log != nil {
		cfg.Logger = driverLog{log}
	}
	var connector driver.Connector
	if err == nil {
		connector, err = mysql.NewConnector(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redact.DSN(s.MySQL.DSN), err)
	}
	return sql.OpenDB(connector), nil
}

// driverLog is a mysql.Logger writing the driver's messages as warnings.
type driverLog struct{ log *zap.Logger }

func (d driverLog) Print(v ...any) {
	d.log.Warn("mysql driver: " + strings.TrimSpace(fmt.Sprint(v...)))
}

// keepPool lets db hold up to n connections and keeps them all between uses. A long-running
// command uses its connections at a steady rate; a pool keeping fewer idle than it uses (two, by
// database/sql's default) closes some after every burst and dials them again, which costs both
// sides a handshake. Connections unused for a minute are closed.
func keepPool(db *sql.DB, n int) {
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(time.Minute)
}

// pingDB connects once, explaining a TLS failure by the settings to check.
func pingDB(ctx context.Context, db *sql.DB, s *settings) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		addr := ""
		if cfg, perr := mysql.ParseDSN(s.MySQL.DSN); perr == nil {
			addr = cfg.Addr
		}
		return fmt.Errorf("connect to MySQL at %s: %w", addr, tlsconfig.Explain(err, "MySQL", addr, "mysql.tls"))
	}
	return nil
}

// amqpTLS builds the amqp.tls settings; nil for plain amqp://.
func amqpTLS(s *settings) (*tls.Config, error) {
	if s.AMQP.TLS.IsZero() {
		return nil, nil
	}
	tc, err := s.AMQP.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("amqp.tls: %w", err)
	}
	return tc, nil
}

// dialConfig is how every command reaches the broker.
func dialConfig(s *settings, name string) (amqpx.DialConfig, error) {
	tc, err := amqpTLS(s)
	if err != nil {
		return amqpx.DialConfig{}, err
	}
	return amqpx.DialConfig{URL: s.AMQP.URL, TLS: tc, Name: name}, nil
}

// dialAMQP opens one broker connection for a command.
func dialAMQP(s *settings, name string) (*amqp.Connection, error) {
	dc, err := dialConfig(s, name)
	if err != nil {
		return nil, err
	}
	return amqpx.Dial(dc)
}
