package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/syncworker/syncworker/outbox"
)

func init() {
	register(&command{name: "outbox dead list", summary: "list outbox messages the relay gave up on", run: runDeadList})
	register(&command{name: "outbox dead retry", summary: "put dead outbox messages back for the relay (attempts reset)", run: runDeadRetry})
	register(&command{name: "outbox dead purge", summary: "delete dead outbox messages for good", run: runDeadPurge})
}

// deadCommand is what every dead subcommand parses: the settings and, for retry and purge,
// the ids given as arguments (ids may come before, after or between the flags).
type deadCommand struct {
	fs   *flag.FlagSet
	b    *settingsFlags
	args []string
}

func newDeadCommand(env *cliEnv, name, synopsis string, takesIDs bool) *deadCommand {
	c := &deadCommand{fs: newFlagSet(env, name, synopsis)}
	c.b = bindSettings(c.fs, needs{mysql: true})
	if takesIDs {
		c.b.args = &c.args
	}
	return c
}

// parse reads the command line; check, when not nil, refuses bad flag values before anything
// connects. open then connects and returns the env to print through (passwords blanked).
func (c *deadCommand) parse(ctx context.Context, env *cliEnv, args []string, check func() error) (*outbox.DeadStore, *cliEnv, func(), error) {
	need := needs{mysql: true}
	s, env, err := c.b.parse(env, args, need)
	if err != nil {
		return nil, nil, nil, err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, nil, nil, err
		}
	}
	db, err := openDB(s, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := checkSchema(ctx, db, s); err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	store, err := outbox.NewDeadStore(db, outbox.Tables{})
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	return store, env, func() { db.Close() }, nil
}

// deadListPage bounds the rows read at once, so --limit 0 (all) lists any number in bounded memory.
const deadListPage = 1000

func runDeadList(ctx context.Context, env *cliEnv, args []string) error {
	c := newDeadCommand(env, "outbox dead list", "[--limit N] [--after ID]", false)
	limit := c.fs.Int("limit", 100, "most messages to list (0: all)")
	after := c.fs.Int64("after", 0, "list messages with a dead id above this (for paging)")
	store, env, closeDB, err := c.parse(ctx, env, args, func() error {
		if *limit < 0 {
			return usageErrorf("--limit %d is negative; allowed: a positive number, or 0 for all", *limit)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer closeDB()
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	listed := 0
	for *limit == 0 || listed < *limit {
		n := deadListPage
		if *limit > 0 {
			n = min(n, *limit-listed)
		}
		dead, err := store.List(ctx, *after, n)
		if err != nil {
			return err
		}
		if listed == 0 && len(dead) > 0 {
			fmt.Fprintln(w, "ID\tMESSAGE ID\tEXCHANGE\tROUTING KEY\tTYPE\tATTEMPTS\tDIED\tLAST ERROR")
		}
		for _, d := range dead {
			exchange := d.Exchange
			if exchange == "" {
				exchange = "(default)"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.MessageID, exchange, d.RoutingKey, d.Type,
				d.Attempts, d.DiedAt.UTC().Format(time.RFC3339), d.LastError)
		}
		listed += len(dead)
		if err := w.Flush(); err != nil {
			return err
		}
		if len(dead) < n {
			break
		}
		*after = dead[len(dead)-1].ID
	}
	if listed == 0 {
		fmt.Fprintln(env.stdout, "no dead messages")
	}
	return nil
}

// selection reads the ids to act on: the arguments, or every dead message with --all (nil).
func (c *deadCommand) selection(all bool) ([]int64, error) {
	if all == (len(c.args) > 0) {
		return nil, usageErrorf("give the dead message ids to act on, or --all (not both)")
	}
	if all {
		return nil, nil
	}
	ids := make([]int64, 0, len(c.args))
	for _, a := range c.args {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return nil, usageErrorf("%q is not a dead message id (see 'outbox dead list')", a)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func runDeadRetry(ctx context.Context, env *cliEnv, args []string) error {
	c := newDeadCommand(env, "outbox dead retry", "(ID... | --all)", true)
	all := c.fs.Bool("all", false, "retry every dead message")
	var ids []int64
	store, env, closeDB, err := c.parse(ctx, env, args, func() (err error) {
		ids, err = c.selection(*all)
		return err
	})
	if err != nil {
		return err
	}
	defer closeDB()
	n, err := store.Retry(ctx, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%d dead messages put back into the outbox\n", n)
	return nil
}

func runDeadPurge(ctx context.Context, env *cliEnv, args []string) error {
	c := newDeadCommand(env, "outbox dead purge", "(ID... | --all) [--yes]", true)
	all := c.fs.Bool("all", false, "purge every dead message")
	yes := c.fs.Bool("yes", false, "do not ask for confirmation")
	var ids []int64
	store, env, closeDB, err := c.parse(ctx, env, args, func() (err error) {
		ids, err = c.selection(*all)
		return err
	})
	if err != nil {
		return err
	}
	defer closeDB()
	if !*yes {
		what := fmt.Sprintf("%d dead messages", len(ids))
		if ids == nil {
			n, err := store.Count(ctx)
			if err != nil {
				return err
			}
			what = fmt.Sprintf("all %d dead messages", n)
		}
		fmt.Fprintf(env.stdout, "Delete %s for good? Type 'yes' to confirm: ", what)
		answer, _ := bufio.NewReader(env.stdin).ReadString('\n')
		if strings.TrimSpace(answer) != "yes" {
			return fmt.Errorf("not confirmed; nothing deleted")
		}
	}
	n, err := store.Purge(ctx, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%d dead messages purged\n", n)
	return nil
}
