package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/internal/verify"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/publisher"
	"github.com/syncworker/syncworker/subscriber"
	"github.com/syncworker/syncworker/topology"
)

// Consumer names (inbox scopes) of the two subscribers; docker-compose.yml's replica
// consumer uses the same name.
const (
	ReplicaConsumer    = "demo-replica"
	ProjectionConsumer = "demo-projection"
)

// dbs are the three databases of a run.
type dbs struct{ orders, replica, projection *sql.DB }

func (d dbs) close() {
	for _, db := range []*sql.DB{d.orders, d.replica, d.projection} {
		if db != nil {
			db.Close()
		}
	}
}

// Run sets everything up, produces the orders, waits until both subscribers applied every
// event, and checks the replica (verify) and the projection. Drift is reported in the
// Result, not as an error.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if !cfg.Keep && !cfg.ExternalWorkers {
		// On every way out: an interrupted or failed run must not leave its databases behind.
		defer func() {
			// ctx may be what ended the run; the drop gets a context of its own.
			dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			dropErr := dropDatabases(dropCtx, cfg)
			switch {
			case dropErr == nil:
			case err == nil:
				res, err = nil, dropErr
			default: // the run's own error says more (often the same unreachable server)
				fmt.Fprintf(cfg.Progress, "demo: could not drop the databases: %v\n", dropErr)
			}
		}()
	}
	start := time.Now()
	d, err := setup(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer d.close()
	topo, err := applyTopology(ctx, cfg.AMQPURL, cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("demo: topology at %s: %w", redact.URL(cfg.AMQPURL), err)
	}
	fmt.Fprintf(cfg.Progress, "demo: databases and topology ready in %s\n", time.Since(start).Round(time.Millisecond))

	res, err = produceAndSync(ctx, cfg, d, topo)
	if err != nil {
		return nil, err
	}
	if res.Verify, err = verify.Run(ctx, verify.Config{Source: d.orders, Replica: d.replica, SourceTable: "orders",
		KeyColumns: []string{"id"}}); err != nil {
		return nil, err
	}
	if res.Projection, err = checkProjection(ctx, d.orders, d.projection); err != nil {
		return nil, err
	}
	return res, nil
}

// setup creates the databases if missing, migrates them and empties the demo's tables.
func setup(ctx context.Context, cfg Config) (dbs, error) {
	server, err := openDB(cfg.ServerDSN, "", 1)
	if err != nil {
		return dbs{}, err
	}
	defer server.Close()
	orders, replica, projection := cfg.Databases()
	for _, name := range []string{orders, replica, projection} {
		if _, err := server.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+outbox.QuoteIdentifier(name)); err != nil {
			return dbs{}, fmt.Errorf("demo: create database %s on %s: %w", name, redact.DSN(cfg.ServerDSN), err)
		}
	}
	var d dbs
	if d.orders, err = openDB(cfg.ServerDSN, orders, 64); err == nil {
		if d.replica, err = openDB(cfg.ServerDSN, replica, 16); err == nil {
			d.projection, err = openDB(cfg.ServerDSN, projection, 16)
		}
	}
	if err != nil {
		d.close()
		return dbs{}, err
	}
	for _, step := range []struct {
		db  *sql.DB
		ddl []string
	}{{d.orders, []string{ordersDDL}}, {d.replica, []string{replicaDDL}}, {d.projection, []string{projectionOrdersDDL, customerTotalsDDL}}} {
		if err := prepare(ctx, step.db, step.ddl...); err != nil {
			d.close()
			return dbs{}, fmt.Errorf("demo: prepare database: %w", err)
		}
	}
	return d, nil
}

func dropDatabases(ctx context.Context, cfg Config) error {
	server, err := openDB(cfg.ServerDSN, "", 1)
	if err != nil {
		return err
	}
	defer server.Close()
	orders, replica, projection := cfg.Databases()
	for _, name := range []string{orders, replica, projection} {
		if _, err := server.ExecContext(ctx, "DROP DATABASE IF EXISTS "+outbox.QuoteIdentifier(name)); err != nil {
			return fmt.Errorf("demo: drop database %s: %w", name, err)
		}
	}
	return nil
}

// produceAndSync runs the workers and the producer and returns once every event is applied.
func produceAndSync(ctx context.Context, cfg Config, d dbs, topo *topology.Topology) (*Result, error) {
	n := namesFor(cfg.Prefix)
	workersCtx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	workers, workersCtx := errgroup.WithContext(workersCtx)
	prod := &producer{db: d.orders, exchange: n.exchange, orders: cfg.Orders, writers: cfg.Writers}

	if !cfg.ExternalWorkers {
		relay, err := publisher.New(publisher.Config{DB: d.orders, AMQP: amqpx.DialConfig{URL: cfg.AMQPURL, Name: "syncworker demo relay"},
			Group: "demo", Logger: cfg.Logger.Named("relay")})
		if err != nil {
			return nil, err
		}
		prod.notify = relay.Notify
		rs, err := subscriber.NewRowSync(subscriber.RowSyncConfig{Tables: []subscriber.TableMapping{{Source: "orders", KeyColumns: []string{"id"}}}})
		if err != nil {
			return nil, err
		}
		replicaSub, err := subscriber.New(d.replica, subscriber.Config{AMQPURL: cfg.AMQPURL, Queue: n.replicaQueue,
			ConsumerName: ReplicaConsumer, Handler: rs.Handle, RetryDelays: retryDelays(topo, n.replicaQueue), Logger: cfg.Logger.Named("replica")})
		if err != nil {
			return nil, err
		}
		workers.Go(func() error { return relay.Run(workersCtx) })
		workers.Go(func() error { return replicaSub.Run(workersCtx) })
	}
	projectionSub, err := subscriber.New(d.projection, subscriber.Config{AMQPURL: cfg.AMQPURL, Queue: n.projectionQueue,
		ConsumerName: ProjectionConsumer, Handler: projectOrder, RetryDelays: retryDelays(topo, n.projectionQueue), Logger: cfg.Logger.Named("projection")})
	if err != nil {
		return nil, err
	}
	workers.Go(func() error { return projectionSub.Run(workersCtx) })
	workersFailed := make(chan error, 1)
	go func() { workersFailed <- workers.Wait() }()

	start := time.Now()
	produced := make(chan error, 1)
	go func() { produced <- prod.run(workersCtx) }()

	want := expectedEvents(cfg.Orders)
	mon := &monitor{cfg: cfg, d: d, prod: prod, want: want, start: start}
	res := &Result{Orders: cfg.Orders}
	var producedAt time.Time
	tick := time.NewTicker(cfg.ProgressInterval)
	defer tick.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-workersFailed:
			if err == nil {
				err = errors.New("stopped")
			}
			return nil, fmt.Errorf("demo: workers: %w", err)
		case err := <-produced:
			if err != nil {
				return nil, fmt.Errorf("demo: producer: %w", err)
			}
			producedAt = time.Now()
			res.ProduceTime = producedAt.Sub(start)
			produced = nil
		case <-tick.C:
			if err := mon.sample(ctx); err != nil {
				return nil, err
			}
			mon.render(false)
		case <-poll.C:
			if producedAt.IsZero() {
				continue
			}
			if err := mon.sample(ctx); err != nil {
				return nil, err
			}
			if mon.done() {
				mon.render(true)
				res.SyncTime = time.Since(start)
				res.Events = prod.produced.Load()
				stopWorkers()
				if err := <-workersFailed; err != nil {
					return nil, fmt.Errorf("demo: workers: %w", err)
				}
				return res, nil
			}
			if time.Since(producedAt) > cfg.Timeout {
				mon.render(true)
				return nil, fmt.Errorf("demo: not every event was applied %s after the last order was written "+
					"(is a relay or consumer running? look at the parking lots %s.parked and %s.parked)",
					cfg.Timeout, n.replicaQueue, n.projectionQueue)
			}
		}
	}
}
