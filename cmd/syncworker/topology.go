package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/syncworker/syncworker/topology"
)

func init() {
	register(&command{name: "topology validate", summary: "check a topology file without a broker", run: runTopologyValidate})
	register(&command{name: "topology plan", summary: "show what topology apply would change; changes nothing", run: runTopologyPlan})
	register(&command{name: "topology apply", summary: "declare exchanges, queues, bindings, retry tiers, parking lots", run: runTopologyApply})
}

// Exit codes of the topology commands besides 0 (done) and 2 (bad flags).
const (
	exitTopologyInvalid  = 1 // the file has problems; the broker was not contacted
	exitTopologyConflict = 3 // the broker has an entity with other settings; nothing was changed
)

// topologyError carries an exit code chosen by the kind of failure.
type topologyError struct {
	err  error
	code int
}

func (e *topologyError) Error() string { return e.err.Error() }
func (e *topologyError) Unwrap() error { return e.err }
func (e *topologyError) ExitCode() int { return e.code }

type topologyFlags struct {
	file string
	s    *settings
}

// parseTopologyFlags parses a topology command's flags; it returns the env to print through
// (passwords blanked).
func parseTopologyFlags(env *cliEnv, name string, args []string, needBroker bool) (*topologyFlags, *cliEnv, error) {
	synopsis := "-f FILE [--config FILE]"
	if needBroker {
		synopsis += " [--amqp-url URL]"
	}
	fs := newFlagSet(env, name, synopsis)
	need := needs{amqp: needBroker}
	b := bindSettings(fs, need)
	b.str("f", "topology YAML file, see topology/README.md (topology.file, env SYNCWORKER_TOPOLOGY_FILE)", func(s *settings) *string { return &s.Topology.File })
	s, env, err := b.parse(env, args, need)
	if err != nil {
		return nil, nil, err
	}
	if s.Topology.File == "" {
		fmt.Fprintln(env.stderr, "-f FILE (or topology.file) is required")
		fs.Usage()
		return nil, nil, errUsage
	}
	return &topologyFlags{file: s.Topology.File, s: s}, env, nil
}

// loadTopology reads and validates the file before any broker connection.
func loadTopology(path string) (*topology.Topology, error) {
	t, err := topology.Load(path)
	if err != nil {
		n := len(joined(err))
		return nil, &topologyError{code: exitTopologyInvalid,
			err: fmt.Errorf("%s is invalid (%d problem%s):\n%w", path, n, plural(n), err)}
	}
	return t, nil
}

func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func runTopologyValidate(_ context.Context, env *cliEnv, args []string) error {
	f, env, err := parseTopologyFlags(env, "topology validate", args, false)
	if err != nil {
		return err
	}
	t, err := loadTopology(f.file)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s is valid: %d exchanges, %d queues, %d bindings\n", f.file, len(t.Exchanges), len(t.Queues), len(t.Bindings))
	return nil
}

func runTopologyPlan(ctx context.Context, env *cliEnv, args []string) error {
	f, env, err := parseTopologyFlags(env, "topology plan", args, true)
	if err != nil {
		return err
	}
	t, err := loadTopology(f.file)
	if err != nil {
		return err
	}
	conn, err := dialAMQP(f.s, "syncworker topology plan")
	if err != nil {
		return redactErr(err, f.s)
	}
	defer conn.Close()
	p, err := topology.Plan(ctx, conn, t)
	if err != nil {
		return err
	}
	if err := p.Format(env.stdout); err != nil {
		return err
	}
	if n := p.Count(topology.Differs); n > 0 {
		what := fmt.Sprintf("%d entities on the broker differ", n)
		if n == 1 {
			what = "1 entity on the broker differs"
		}
		return &topologyError{code: exitTopologyConflict, err: fmt.Errorf("%s from %s; apply would refuse", what, f.file)}
	}
	return nil
}

func runTopologyApply(ctx context.Context, env *cliEnv, args []string) error {
	f, env, err := parseTopologyFlags(env, "topology apply", args, true)
	if err != nil {
		return err
	}
	t, err := loadTopology(f.file)
	if err != nil {
		return err
	}
	conn, err := dialAMQP(f.s, "syncworker topology apply")
	if err != nil {
		return redactErr(err, f.s)
	}
	defer conn.Close()
	res, err := topology.Apply(ctx, conn, t)
	if res != nil && res.Plan != nil && errors.Is(err, topology.ErrConflict) {
		if ferr := res.Plan.Format(env.stdout); ferr != nil {
			return ferr
		}
		return &topologyError{code: exitTopologyConflict,
			err: fmt.Errorf("nothing was changed: the broker differs from %s:\n%w", f.file, err)}
	}
	if err != nil {
		if res != nil && len(res.Created) > 0 {
			return fmt.Errorf("%w (already created: %v)", err, res.Created)
		}
		return err
	}
	// Count as plan does, so its "N to create" and this "N created" agree: a binding whose
	// exchange or queue was just created was created too, not merely ensured.
	created := res.Created
	for _, c := range res.Plan.Changes {
		if c.Kind == "binding" && c.Action == topology.Create {
			created = append(created, "binding "+c.Name)
		}
	}
	for _, c := range created {
		fmt.Fprintf(env.stdout, "created  %s\n", c)
	}
	fmt.Fprintf(env.stdout, "applied %s: %d created, %d unchanged, %d bindings ensured\n",
		f.file, len(created), res.Plan.Count(topology.Exists), res.Bound-(len(created)-len(res.Created)))
	return nil
}
