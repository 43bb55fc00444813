package demo

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"text/template"
	"time"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/topology"
)

//go:embed topology.yaml.tmpl
var topologyTemplate string

// TopologyYAML is the demo's topology file for the given name prefix.
func TopologyYAML(prefix string) []byte {
	var b bytes.Buffer
	template.Must(template.New("topology").Parse(topologyTemplate)).Execute(&b, prefix) //nolint:errcheck // a string cannot fail
	return b.Bytes()
}

// names are the broker entities of one prefix.
type names struct{ exchange, replicaQueue, projectionQueue string }

func namesFor(prefix string) names {
	return names{exchange: prefix + ".orders", replicaQueue: prefix + ".replica", projectionQueue: prefix + ".projection"}
}

// applyTopology declares the demo's exchange and queues and purges the queues, their retry
// tiers and parking lots, so a run never sees a previous run's messages.
func applyTopology(ctx context.Context, url, prefix string) (*topology.Topology, error) {
	topo, err := topology.Parse(TopologyYAML(prefix), "demo topology")
	if err != nil {
		return nil, err
	}
	conn, err := amqpx.Dial(amqpx.DialConfig{URL: url, Name: "syncworker demo setup"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := topology.Apply(ctx, conn, topo); err != nil {
		return nil, fmt.Errorf("apply demo topology: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	for _, q := range topo.Queues {
		toPurge := []string{q.Name, q.ParkingLot()}
		for _, tier := range q.RetryTiers() {
			toPurge = append(toPurge, tier.Queue)
		}
		for _, name := range toPurge {
			if _, err := ch.QueuePurge(name, false); err != nil {
				return nil, fmt.Errorf("purge %s: %w", name, err)
			}
		}
	}
	return topo, nil
}

// retryDelays are the tiers the subscribers use; they must be the topology's.
func retryDelays(topo *topology.Topology, queue string) []time.Duration {
	q, _ := topo.Queue(queue)
	var out []time.Duration
	for _, t := range q.RetryTiers() {
		out = append(out, t.Delay)
	}
	return out
}
