package topology

import (
	"errors"
	"fmt"
)

// Sentinels for errors.Is: every *ValidationError is ErrInvalid, every *ConflictError is
// ErrConflict.
var (
	ErrInvalid  = errors.New("invalid topology")
	ErrConflict = errors.New("topology conflicts with the broker")
)

// ValidationError is one problem of a topology, found without a broker.
type ValidationError struct {
	File    string // the file, when the topology was loaded from one
	Line    int    // 1-based line in File; 0 when unknown
	Entity  string // for example `queue "orders"` or `bindings[2]`; "" for the file itself
	Problem string
}

func (e *ValidationError) Error() string {
	s := ""
	switch {
	case e.File != "" && e.Line > 0:
		s = fmt.Sprintf("%s:%d: ", e.File, e.Line)
	case e.File != "":
		s = e.File + ": "
	case e.Line > 0:
		s = fmt.Sprintf("line %d: ", e.Line)
	}
	if e.Entity != "" {
		s += e.Entity + ": "
	}
	return s + e.Problem
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// ConflictError says that an entity exists on the broker with a setting other than the
// file's. Apply reports it and changes nothing; it never deletes or redeclares the entity.
type ConflictError struct {
	Kind     string // "exchange" or "queue"
	Entity   string // its name on the broker
	Argument string // for example "x-message-ttl", "durable", "type"
	Broker   string // what the broker has; "(not set)" when absent
	File     string // what the file says; "(not set)" when absent
	Line     int    // line of the entity in the file; 0 when unknown
}

func (e *ConflictError) Error() string {
	s := fmt.Sprintf("%s %q differs from the broker: %s is %s on the broker, the file says %s",
		e.Kind, e.Entity, e.Argument, e.Broker, e.File)
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d)", e.Line)
	}
	return s
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
