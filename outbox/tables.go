package outbox

import (
	"errors"
	"fmt"
	"strings"
)

// Default table names. Every table syncworker uses is created by Migrate.
const (
	DefaultTable           = "syncworker_outbox"
	DefaultDeadTable       = "syncworker_outbox_dead"
	DefaultLeaseTable      = "syncworker_relay_leases"
	DefaultMembersTable    = "syncworker_relay_members"
	DefaultInboxTable      = "syncworker_inbox"
	DefaultRowVersionTable = "syncworker_row_versions"
	DefaultMigrationsTable = "syncworker_schema_migrations"
)

// ErrInvalidIdentifier is returned for a table or column name that syncworker will not put
// into SQL. Only names from configuration reach SQL, and only after this check.
var ErrInvalidIdentifier = errors.New("invalid SQL identifier")

// ValidateIdentifier reports whether name can be used as a table or column name: 1 to 64
// bytes of ASCII letters, digits, '_' or '$', not starting with a digit. These are the unquoted
// identifiers MySQL allows that are also safe and unambiguous everywhere.
func ValidateIdentifier(name string) error {
	if len(name) == 0 || len(name) > 64 || !identifierBytes(name) {
		return fmt.Errorf("%w: %q (want 1-64 ASCII letters, digits, '_' or '$', not starting with a digit)",
			ErrInvalidIdentifier, name)
	}
	return nil
}

// identifierBytes checks the characters of a non-empty name. A loop, not a regular expression:
// row-sync checks every column name of every event with it, and the expression was a tenth of
// decoding one.
func identifierBytes(name string) bool {
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '$':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// QuoteIdentifier backquotes a validated identifier. Callers validate first; the replacement
// of backquotes is a second line of defence, not the check.
func QuoteIdentifier(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// Tables names every table syncworker uses. Empty fields take their defaults.
type Tables struct {
	Outbox      string // default syncworker_outbox
	Dead        string // default syncworker_outbox_dead
	Leases      string // default syncworker_relay_leases
	Members     string // default syncworker_relay_members
	Inbox       string // default syncworker_inbox
	RowVersions string // default syncworker_row_versions
	Migrations  string // default syncworker_schema_migrations
}

// WithDefaults returns t with every empty name set to its default.
func (t Tables) WithDefaults() Tables {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&t.Outbox, DefaultTable)
	def(&t.Dead, DefaultDeadTable)
	def(&t.Leases, DefaultLeaseTable)
	def(&t.Members, DefaultMembersTable)
	def(&t.Inbox, DefaultInboxTable)
	def(&t.RowVersions, DefaultRowVersionTable)
	def(&t.Migrations, DefaultMigrationsTable)
	return t
}

// Validate checks every name and that no two tables share one.
func (t Tables) Validate() error {
	var errs []error
	seen := map[string]string{}
	for _, f := range t.fields() {
		if err := ValidateIdentifier(f.name); err != nil {
			errs = append(errs, fmt.Errorf("tables.%s: %w", f.field, err))
			continue
		}
		if other, ok := seen[strings.ToLower(f.name)]; ok {
			errs = append(errs, fmt.Errorf("tables.%s: %q is also used for tables.%s", f.field, f.name, other))
		}
		seen[strings.ToLower(f.name)] = f.field
	}
	return errors.Join(errs...)
}

type tableField struct{ field, placeholder, name string }

func (t Tables) fields() []tableField {
	return []tableField{
		{"outbox", "{outbox}", t.Outbox},
		{"dead", "{outbox_dead}", t.Dead},
		{"leases", "{relay_leases}", t.Leases},
		{"members", "{relay_members}", t.Members},
		{"inbox", "{inbox}", t.Inbox},
		{"row_versions", "{row_versions}", t.RowVersions},
		{"migrations", "{schema_migrations}", t.Migrations},
	}
}

// expand replaces the {placeholders} of a migration with the quoted table names, and the
// {placeholder:name} forms with the bare names (validated identifiers, safe inside a string
// literal), which information_schema lookups compare with.
func (t Tables) expand(sqlText string) string {
	var pairs []string
	for _, f := range t.fields() {
		pairs = append(pairs, f.placeholder, QuoteIdentifier(f.name),
			strings.TrimSuffix(f.placeholder, "}")+":name}", f.name)
	}
	return strings.NewReplacer(pairs...).Replace(sqlText)
}
