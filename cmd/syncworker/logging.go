package main

import (
	"io"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/syncworker/syncworker/internal/redact"
)

// newLogger is the one logger of every command: JSON lines (or console text) on stderr at
// log.level. Fields used across commands: component (relay, consume, ops), partition, queue,
// consumer; message ids only at debug level. Nothing logs payloads.
func newLogger(env *cliEnv, s *settings, component string) *zap.Logger {
	level := zapcore.InfoLevel
	_ = level.Set(s.Log.Level) // validated already
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.TimeKey = "ts"
	var enc zapcore.Encoder
	if s.Log.Format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	core := zapcore.NewCore(enc, zapcore.AddSync(env.stderr), level)
	return zap.New(core).With(zap.String("component", component))
}

// scrubWriter replaces every secret in what passes through it: the last line of defence
// behind redact.DSN and redact.URL, for errors of libraries that echo a DSN or URL.
type scrubWriter struct {
	w       io.Writer
	secrets []string
}

func (s scrubWriter) Write(p []byte) (int, error) {
	text := string(p)
	clean := redact.Secrets(text, s.secrets...)
	if clean == text {
		return s.w.Write(p)
	}
	if _, err := io.WriteString(s.w, clean); err != nil {
		return 0, err
	}
	return len(p), nil
}

// scrubbed returns env with stdout and stderr scrubbed of the settings' secrets.
func scrubbed(env *cliEnv, s *settings) *cliEnv {
	sec := s.secrets()
	if len(sec) == 0 {
		return env
	}
	out := *env
	out.stdout = scrubWriter{w: env.stdout, secrets: sec}
	out.stderr = scrubWriter{w: env.stderr, secrets: sec}
	return &out
}

// scrubbedError keeps the wrapped error for errors.Is/As but prints without secrets.
type scrubbedError struct {
	err error
	msg string
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// redactErr removes the settings' passwords from err's text.
func redactErr(err error, s *settings) error {
	if err == nil || s == nil {
		return err
	}
	msg := err.Error()
	clean := redact.Secrets(msg, s.secrets()...)
	if clean == msg && !strings.Contains(msg, "://") {
		return err
	}
	return &scrubbedError{err: err, msg: clean}
}
