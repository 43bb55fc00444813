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

// openDeadStore parses the common flags of the dead commands and opens the store. It returns
// the env to print through (passwords blanked).
func openDeadStore(ctx context.Context, env *cliEnv, fs *flag.FlagSet, args []string) (*outbox.DeadStore, *cliEnv, func(), error) {
	need := needs{mysql: true}
	s, env, err := bindSettings(fs, need).parse(env, args, need)
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := openDB(s)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := checkSchema(ctx, db); err != nil {
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

func runDeadList(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "outbox dead list", "[--limit N] [--after ID]")
	limit := fs.Int("limit", 100, "most messages to list")
	after := fs.Int64("after", 0, "list messages with a dead id above this (for paging)")
	store, env, closeDB, err := openDeadStore(ctx, env, fs, args)
	if err != nil {
		return err
	}
	defer closeDB()
	dead, err := store.List(ctx, *after, *limit)
	if err != nil {
		return err
	}
	if len(dead) == 0 {
		fmt.Fprintln(env.stdout, "no dead messages")
		return nil
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tMESSAGE ID\tEXCHANGE\tROUTING KEY\tTYPE\tATTEMPTS\tDIED\tLAST ERROR")
	for _, d := range dead {
		exchange := d.Exchange
		if exchange == "" {
			exchange = "(default)"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.MessageID, exchange, d.RoutingKey, d.Type,
			d.Attempts, d.DiedAt.UTC().Format(time.RFC3339), d.LastError)
	}
	return w.Flush()
}

// deadSelection reads the ids to act on: the arguments, or every dead message with --all.
func deadSelection(fs *flag.FlagSet, all bool) ([]int64, error) {
	if all == (fs.NArg() > 0) {
		return nil, fmt.Errorf("give the dead message ids to act on, or --all (not both)")
	}
	if all {
		return nil, nil
	}
	ids := make([]int64, 0, fs.NArg())
	for _, a := range fs.Args() {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("%q is not a dead message id (see 'outbox dead list')", a)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func runDeadRetry(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "outbox dead retry", "(ID... | --all)")
	all := fs.Bool("all", false, "retry every dead message")
	store, env, closeDB, err := openDeadStore(ctx, env, fs, args)
	if err != nil {
		return err
	}
	defer closeDB()
	ids, err := deadSelection(fs, *all)
	if err != nil {
		return err
	}
	n, err := store.Retry(ctx, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%d dead messages put back into the outbox\n", n)
	return nil
}

func runDeadPurge(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "outbox dead purge", "(ID... | --all) [--yes]")
	all := fs.Bool("all", false, "purge every dead message")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	store, env, closeDB, err := openDeadStore(ctx, env, fs, args)
	if err != nil {
		return err
	}
	defer closeDB()
	ids, err := deadSelection(fs, *all)
	if err != nil {
		return err
	}
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
