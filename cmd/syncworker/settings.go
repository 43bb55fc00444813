package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.yaml.in/yaml/v3"

	"github.com/syncworker/syncworker/internal/tlsconfig"
	"github.com/syncworker/syncworker/publisher"
	"github.com/syncworker/syncworker/subscriber"
)

// settings is the whole configuration of every subcommand: the YAML file (syncworker.example.yaml
// documents every key), then environment variables, then flags, each overriding the one before;
// what is still zero takes its default.
type settings struct {
	MySQL struct {
		DSN string          `yaml:"dsn" env:"SYNCWORKER_MYSQL_DSN"`
		TLS tlsconfig.Files `yaml:"tls"`
	} `yaml:"mysql"`
	AMQP struct {
		URL           string          `yaml:"url" env:"SYNCWORKER_AMQP_URL"`
		TLS           tlsconfig.Files `yaml:"tls"`
		ManagementURL string          `yaml:"management_url" env:"SYNCWORKER_AMQP_MANAGEMENT_URL"`
	} `yaml:"amqp"`
	Log struct {
		Level  string `yaml:"level" env:"SYNCWORKER_LOG_LEVEL"`
		Format string `yaml:"format" env:"SYNCWORKER_LOG_FORMAT"`
	} `yaml:"log"`
	HTTP struct {
		Listen string `yaml:"listen" env:"SYNCWORKER_HTTP_LISTEN"`
	} `yaml:"http"`
	Topology struct {
		File string `yaml:"file" env:"SYNCWORKER_TOPOLOGY_FILE"`
	} `yaml:"topology"`
	Relay   relaySettings   `yaml:"relay"`
	Consume consumeSettings `yaml:"consume"`

	file  string         // the config file read, for messages
	lines map[string]int // key -> line in file
}

// relaySettings are the publisher.Config knobs; zero means the publisher's default.
type relaySettings struct {
	Group            string        `yaml:"group" env:"SYNCWORKER_RELAY_GROUP"`
	MemberID         string        `yaml:"member_id" env:"SYNCWORKER_RELAY_MEMBER_ID"`
	Partitions       int           `yaml:"partitions"`
	Channels         int           `yaml:"channels"`
	Window           int           `yaml:"window"`
	BatchSize        int           `yaml:"batch_size"`
	KeyWindow        int           `yaml:"key_window"`
	Order            string        `yaml:"order"`
	MaxAttempts      int           `yaml:"max_attempts"`
	RetryInitial     time.Duration `yaml:"retry_initial"`
	RetryMax         time.Duration `yaml:"retry_max"`
	LeaseTTL         time.Duration `yaml:"lease_ttl"`
	PollInterval     time.Duration `yaml:"poll_interval"`
	IdlePollInterval time.Duration `yaml:"idle_poll_interval"`
	ConfirmTimeout   time.Duration `yaml:"confirm_timeout"`
	ShutdownTimeout  time.Duration `yaml:"shutdown_timeout"`
	StatsInterval    time.Duration `yaml:"stats_interval"`
	AppID            string        `yaml:"app_id"`
}

// consumeSettings configure `syncworker consume`; zero means the subscriber's default.
type consumeSettings struct {
	Queue          string        `yaml:"queue" env:"SYNCWORKER_CONSUME_QUEUE"`
	ConsumerName   string        `yaml:"consumer_name" env:"SYNCWORKER_CONSUMER_NAME"`
	Concurrency    int           `yaml:"concurrency"`
	Prefetch       int           `yaml:"prefetch"`
	BatchSize      int           `yaml:"batch_size"`
	FlushInterval  time.Duration `yaml:"flush_interval"`
	InboxRetention time.Duration `yaml:"inbox_retention"`
	StopTimeout    time.Duration `yaml:"stop_timeout"`
	Retry          struct {
		Delays      []time.Duration `yaml:"delays"`
		MaxAttempts int             `yaml:"max_attempts"`
	} `yaml:"retry"`
	RowSync subscriber.RowSyncConfig `yaml:"row_sync"`
}

// Defaults the command line applies itself (the libraries default the rest).
const (
	defaultLogLevel      = "info"
	defaultLogFormat     = "json"
	defaultPartitions    = 16 // publisher.Config's default; status needs it without a relay
	defaultGroup         = "default"
	defaultStatsInterval = 5 * time.Second
	// minLeaseTTL keeps the renewal period (the publisher's RenewInterval, lease_ttl/4) long
	// enough for its database round trips; the publisher itself only asks for a positive TTL.
	minLeaseTTL           = time.Second
	defaultManagementNote = "set amqp.management_url (the RabbitMQ management API) to see unacked counts"
)

// needs says which settings a command cannot do without.
type needs struct {
	mysql, amqp, consume bool
}

// settingsFlags binds the flags that override settings, and applies only those given.
type settingsFlags struct {
	fs      *flag.FlagSet
	config  *string
	setters map[string]func(*settings) any // sets the field and returns its address
	// args receives the positional arguments of a command that takes them; nil refuses them.
	args *[]string
}

// bindSettings adds --config and the connection flags every service command shares.
func bindSettings(fs *flag.FlagSet, n needs) *settingsFlags {
	b := &settingsFlags{fs: fs, setters: map[string]func(*settings) any{}}
	b.config = fs.String("config", "", "YAML config file, see syncworker.example.yaml (env SYNCWORKER_CONFIG)")
	if n.mysql {
		b.str("dsn", "MySQL DSN, e.g. 'user:pass@tcp(host:3306)/app' (mysql.dsn, env SYNCWORKER_MYSQL_DSN)", func(s *settings) *string { return &s.MySQL.DSN })
	}
	if n.amqp {
		b.str("amqp-url", "RabbitMQ URL, amqp:// or amqps:// (amqp.url, env SYNCWORKER_AMQP_URL)", func(s *settings) *string { return &s.AMQP.URL })
	}
	return b
}

// logFlags adds --log-level and --log-format, for the commands that log.
func (b *settingsFlags) logFlags() {
	b.str("log-level", "debug, info, warn or error (log.level, env SYNCWORKER_LOG_LEVEL; default info)", func(s *settings) *string { return &s.Log.Level })
	b.str("log-format", "json or console (log.format, env SYNCWORKER_LOG_FORMAT; default json)", func(s *settings) *string { return &s.Log.Format })
}

// str binds a string flag with no default shown (the default is the setting's), so --help
// never prints a value from the environment, such as a password.
func (b *settingsFlags) str(name, usage string, field func(*settings) *string) {
	v := b.fs.String(name, "", usage)
	b.setters[name] = func(s *settings) any { p := field(s); *p = *v; return p }
}

func (b *settingsFlags) int(name, usage string, field func(*settings) *int) {
	v := b.fs.Int(name, 0, usage)
	b.setters[name] = func(s *settings) any { p := field(s); *p = *v; return p }
}

func (b *settingsFlags) duration(name, usage string, field func(*settings) *time.Duration) {
	v := b.fs.Duration(name, 0, usage)
	b.setters[name] = func(s *settings) any { p := field(s); *p = *v; return p }
}

// load reads the file (--config or SYNCWORKER_CONFIG), the environment and the given flags,
// fills defaults and returns every problem at once.
// parse parses args, loads the settings and returns env with the settings' passwords blanked
// from everything the command prints. Every command goes through it, so none can forget that.
func (b *settingsFlags) parse(env *cliEnv, args []string, n needs) (*settings, *cliEnv, error) {
	if b.args == nil {
		if err := parseFlags(b.fs, args); err != nil {
			return nil, nil, err
		}
	} else {
		positional, err := parseArgs(b.fs, args)
		if err != nil {
			return nil, nil, err
		}
		*b.args = positional
	}
	s, err := b.load(env, n)
	if err != nil {
		return nil, nil, err
	}
	return s, scrubbed(env, s), nil
}

func (b *settingsFlags) load(env *cliEnv, n needs) (*settings, error) {
	path := *b.config
	if path == "" {
		path = env.getenv("SYNCWORKER_CONFIG")
	}
	s, problems, err := readSettingsFile(path)
	if err != nil {
		return nil, err
	}
	errs := &configErrors{file: s.file, lines: s.lines, problems: problems, sources: map[string]string{}}
	applyEnv(s, env.getenv, errs)
	b.fs.Visit(func(f *flag.Flag) {
		if set, ok := b.setters[f.Name]; ok {
			if key := settingKey(reflect.ValueOf(s).Elem(), "", set(s)); key != "" {
				errs.sources[key] = flagSource + f.Name
			}
		}
	})
	s.expand(env.getenv, errs)
	s.setDefaults()
	s.validate(n, errs)
	if err := errs.err(); err != nil {
		return nil, redactErr(err, s)
	}
	return s, nil
}

// loadSettingsFile decodes path strictly (unknown keys are problems); "" gives empty settings.
func loadSettingsFile(path string) (*settings, error) {
	s, problems, err := readSettingsFile(path)
	if err == nil && len(problems) > 0 {
		err = invalidConfiguration(problems)
	}
	return s, err
}

// readSettingsFile decodes path strictly; keys of the wrong type and unknown keys are
// problems returned beside what could be decoded, so the caller reports them with the rest.
func readSettingsFile(path string) (*settings, []error, error) {
	s := &settings{file: path, lines: map[string]int{}}
	data, err := readConfigFile(path)
	if err != nil {
		return nil, nil, err
	}
	var problems []error
	if flatConsumeFile(data) {
		// The earlier consume-only file: its keys are the consume section's.
		s.lines, problems, err = decodeYAMLStrict(path, data, &s.Consume, "consume")
	} else {
		s.lines, problems, err = decodeYAMLStrict(path, data, s, "")
	}
	if err != nil {
		return nil, nil, err
	}
	return s, problems, nil
}

// flatConsumeFile reports whether data is a consume-only file (row_sync, queue, ... at the top)
// as `syncworker consume --config` read before the unified file; it still works.
func flatConsumeFile(data []byte) bool {
	var top map[string]yaml.Node
	if yaml.Unmarshal(data, &top) != nil {
		return false
	}
	_, flat := top["row_sync"]
	_, q := top["queue"]
	_, sections := top["consume"]
	return (flat || q) && !sections
}

// expand replaces ${VAR} in the DSN and URLs with environment variables, so the file can
// name a secret without holding it. A variable that is not set is a problem.
func (s *settings) expand(getenv func(string) string, errs *configErrors) {
	for key, p := range map[string]*string{"mysql.dsn": &s.MySQL.DSN, "amqp.url": &s.AMQP.URL, "amqp.management_url": &s.AMQP.ManagementURL} {
		expandSetting(key, p, getenv, errs)
	}
}

// expandSetting replaces ${VAR} in *p, the value of key.
func expandSetting(key string, p *string, getenv func(string) string, errs *configErrors) {
	if !strings.Contains(*p, "${") {
		return
	}
	*p = os.Expand(*p, func(name string) string {
		v := getenv(name)
		if v == "" {
			errs.add(key, "names ${%s}, which is not set in the environment", name)
		}
		return v
	})
}

func (s *settings) setDefaults() {
	if s.Log.Level == "" {
		s.Log.Level = defaultLogLevel
	}
	if s.Log.Format == "" {
		s.Log.Format = defaultLogFormat
	}
	if s.Relay.Partitions == 0 {
		s.Relay.Partitions = defaultPartitions
	}
	if s.Relay.Group == "" {
		s.Relay.Group = defaultGroup
	}
	if s.Relay.Order == "" {
		s.Relay.Order = "strict"
	}
	if s.Relay.StatsInterval == 0 {
		s.Relay.StatsInterval = defaultStatsInterval
	}
}

// validate adds every problem with the settings to errs, naming the key and what is allowed.
func (s *settings) validate(n needs, errs *configErrors) {
	if n.mysql {
		if s.MySQL.DSN == "" {
			errs.add("mysql.dsn", "is required (or env SYNCWORKER_MYSQL_DSN, or --dsn)")
		} else if _, err := mysql.ParseDSN(s.MySQL.DSN); err != nil {
			errs.add("mysql.dsn", "is not a MySQL DSN (%v); allowed: user:password@tcp(host:3306)/database?param=value", err)
		}
		if err := s.MySQL.TLS.ValidateAs("mysql.tls"); err != nil {
			errs.problems = append(errs.problems, err)
		}
	}
	if n.amqp {
		if s.AMQP.URL == "" {
			errs.add("amqp.url", "is required (or env SYNCWORKER_AMQP_URL, or --amqp-url)")
		} else if problem := urlProblem(s.AMQP.URL, "amqp", "amqps"); problem != "" {
			errs.add("amqp.url", "%s; allowed: amqp://user:password@host:5672/vhost or amqps://...", problem)
		} else if strings.HasPrefix(s.AMQP.URL, "amqp:") && !s.AMQP.TLS.IsZero() {
			errs.add("amqp.tls", "is set but amqp.url is amqp://; use amqps:// for TLS or leave amqp.tls empty")
		}
		if err := s.AMQP.TLS.ValidateAs("amqp.tls"); err != nil {
			errs.problems = append(errs.problems, err)
		}
		if s.AMQP.ManagementURL != "" {
			if problem := urlProblem(s.AMQP.ManagementURL, "http", "https"); problem != "" {
				errs.add("amqp.management_url", "%s; allowed: an http:// or https:// URL, e.g. http://user:pass@rabbitmq:15672", problem)
			}
		}
	}
	switch s.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs.add("log.level", "%q is not allowed; allowed: debug, info, warn, error", s.Log.Level)
	}
	switch s.Log.Format {
	case "json", "console":
	default:
		errs.add("log.format", "%q is not allowed; allowed: json, console", s.Log.Format)
	}
	if s.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(s.HTTP.Listen); err != nil {
			errs.add("http.listen", "%q is not host:port (e.g. :9090 or 127.0.0.1:9090; empty disables the server)", s.HTTP.Listen)
		}
	}
	s.validateRelay(errs)
	s.validateConsume(n, errs)
}

func (s *settings) validateRelay(errs *configErrors) {
	r := s.Relay
	for key, v := range map[string]int{"relay.channels": r.Channels, "relay.window": r.Window,
		"relay.batch_size": r.BatchSize, "relay.key_window": r.KeyWindow, "relay.max_attempts": r.MaxAttempts} {
		if v < 0 {
			errs.add(key, "%d is negative; allowed: a positive number, or 0 for the default", v)
		}
	}
	if r.Partitions < 1 || r.Partitions > 4096 {
		errs.add("relay.partitions", "%d is out of range; allowed: 1 to 4096 (default 16)", r.Partitions)
	}
	if r.Order != "strict" && r.Order != "relaxed" {
		errs.add("relay.order", "%q is not allowed; allowed: strict, relaxed", r.Order)
	}
	for key, d := range map[string]time.Duration{"relay.retry_initial": r.RetryInitial, "relay.retry_max": r.RetryMax,
		"relay.lease_ttl": r.LeaseTTL, "relay.poll_interval": r.PollInterval, "relay.idle_poll_interval": r.IdlePollInterval,
		"relay.confirm_timeout": r.ConfirmTimeout, "relay.shutdown_timeout": r.ShutdownTimeout,
		"relay.stats_interval": r.StatsInterval} {
		if d < 0 {
			errs.add(key, "%s is negative; allowed: a positive duration such as 500ms or 10s, or 0 for the default", d)
		}
	}
	if r.LeaseTTL > 0 && r.LeaseTTL < minLeaseTTL {
		errs.add("relay.lease_ttl", "%s is too short; allowed: at least %s (leases are renewed every lease_ttl/4, "+
			"a few database round trips that must finish well within the lease), or 0 for the default 10s", r.LeaseTTL, minLeaseTTL)
	}
	if r.RetryMax > 0 && r.RetryInitial > r.RetryMax {
		errs.add("relay.retry_max", "%s is shorter than relay.retry_initial %s", r.RetryMax, r.RetryInitial)
	}
	poll := r.PollInterval
	if poll == 0 {
		poll = publisher.DefaultPollInterval
	}
	if r.IdlePollInterval > 0 && r.IdlePollInterval < poll {
		errs.add("relay.idle_poll_interval", "%s is shorter than relay.poll_interval %s", r.IdlePollInterval, poll)
	}
}

func (s *settings) validateConsume(n needs, errs *configErrors) {
	c := s.Consume
	if n.consume {
		if c.Queue == "" {
			errs.add("consume.queue", "is required: the queue to consume (or --queue)")
		}
		if c.ConsumerName == "" {
			errs.add("consume.consumer_name", "is required: the stable name scoping the inbox (or --consumer-name)")
		}
		if len(c.RowSync.Tables) == 0 {
			errs.add("consume.row_sync.tables", "is empty: map at least one table (source, target, key_columns), or there is nothing to apply")
		}
	}
	if n.consume {
		s.validateSubscriber(errs)
	}
}

// subscriberKeys name the settings behind the subscriber.Config fields its validation reports.
var subscriberKeys = map[string]string{"Concurrency": "consume.concurrency", "BatchSize": "consume.batch_size",
	"FlushInterval": "consume.flush_interval", "Prefetch": "consume.prefetch", "RetryDelays": "consume.retry.delays",
	"MaxAttempts": "consume.retry.max_attempts", "InboxRetention": "consume.inbox_retention",
	"StopTimeout": "consume.stop_timeout", "Queue": "consume.queue", "ConsumerName": "consume.consumer_name"}

// validateSubscriber checks the consume knobs by the subscriber's own rules (prefetch range,
// inbox retention longer than the longest retry delay, ...) before anything connects, and
// names each problem by its key rather than its Go field. subscriber.New validates before it
// touches the database, so a nil one is fine here; its "db is required", the handler and the
// URL are checked elsewhere and left out.
func (s *settings) validateSubscriber(errs *configErrors) {
	_, err := subscriber.New(nil, s.Consume.subscriberConfig())
	for _, e := range leafErrors(err) {
		field, problem, ok := strings.Cut(e.Error(), ": ")
		base, index, indexed := strings.Cut(field, "[")
		key, known := subscriberKeys[base]
		if !ok || !known || errs.has(key) {
			continue
		}
		if indexed {
			key += "[" + index
		}
		errs.add(key, "%s", problem)
	}
}

// subscriberConfig maps the consume settings to the subscriber's knobs; the caller adds the
// connection, handlers, metrics and logger.
func (c consumeSettings) subscriberConfig() subscriber.Config {
	return subscriber.Config{Queue: c.Queue, ConsumerName: c.ConsumerName, Concurrency: c.Concurrency,
		BatchSize: c.BatchSize, FlushInterval: c.FlushInterval, Prefetch: c.Prefetch, RetryDelays: c.Retry.Delays,
		MaxAttempts: c.Retry.MaxAttempts, InboxRetention: c.InboxRetention, StopTimeout: c.StopTimeout}
}

// leafErrors returns the errors joined or wrapped in err, innermost first level that is not
// itself a wrapper.
func leafErrors(err error) []error {
	switch u := err.(type) {
	case nil:
		return nil
	case interface{ Unwrap() []error }:
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		return leafErrors(u.Unwrap())
	}
	return []error{err}
}

// urlProblem says what is wrong with raw as a URL of one of schemes ("" if nothing). It never
// quotes raw: a URL that does not parse cannot have its password redacted, and the parser's
// messages quote parts of it (a password with a "/" makes its tail look like a port).
func urlProblem(raw string, schemes ...string) string {
	const encodeHint = " (reserved characters such as / ? # @ : % in the user or password must be percent-encoded)"
	u, err := url.Parse(raw)
	var ee url.EscapeError
	var he url.InvalidHostError
	switch {
	case errors.As(err, &ee):
		return "has an invalid %-escape (write a literal % as %25)"
	case errors.As(err, &he):
		return "has an invalid character in the host name" + encodeHint
	case err != nil && strings.Contains(err.Error(), "invalid port"):
		return "has a port that is not a number" + encodeHint
	case err != nil && strings.Contains(err.Error(), "invalid userinfo"):
		return "has an invalid character in the user or password" + encodeHint
	case err != nil:
		return "cannot be parsed as a URL" + encodeHint
	case !slices.Contains(schemes, u.Scheme):
		return fmt.Sprintf("has the scheme %q", u.Scheme)
	case u.Host == "" && !strings.HasPrefix(u.Scheme, "amqp"): // AMQP URIs default the host to localhost
		return "names no host"
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("has the port %s, outside 1..65535", p)
		}
	}
	if strings.ContainsAny(raw, " \t\r\n") {
		return "contains whitespace"
	}
	return ""
}

// secrets are the passwords in the settings, which must never be printed. Passwords shorter
// than minScrubbed are left out: replacing every "p" in the output would garble it, and
// DSNs and URLs are redacted where they are printed anyway.
func (s *settings) secrets() []string {
	var out []string
	add := func(p string) {
		if len(p) >= minScrubbed {
			out = append(out, p)
		}
	}
	if cfg, err := mysql.ParseDSN(s.MySQL.DSN); err == nil {
		add(cfg.Passwd)
	}
	for _, raw := range []string{s.AMQP.URL, s.AMQP.ManagementURL} {
		if u, err := url.Parse(raw); err == nil {
			if p, ok := u.User.Password(); ok {
				add(p)
				add(url.QueryEscape(p))
				add(url.PathEscape(p))
			}
		}
	}
	return out
}

const minScrubbed = 4
