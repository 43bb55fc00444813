package demo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/syncworker/syncworker/outbox"
)

// monitor samples how far the events got and draws the progress line.
type monitor struct {
	cfg   Config
	d     dbs
	prod  *producer
	want  int64 // events of each kind
	start time.Time

	produced, backlog, replica, projection int64
	at                                     time.Time
	last                                   struct {
		produced, applied int64
		at                time.Time
	}
	lastLine time.Time
}

func (m *monitor) sample(ctx context.Context) error {
	m.produced = m.prod.produced.Load()
	inbox := "SELECT COUNT(*) FROM " + outbox.QuoteIdentifier(outbox.DefaultInboxTable) + " WHERE consumer = ?"
	for _, q := range []struct {
		err  error
		what string
	}{
		{m.d.orders.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+outbox.QuoteIdentifier(outbox.DefaultTable)).Scan(&m.backlog), "outbox backlog"},
		{m.d.replica.QueryRowContext(ctx, inbox, ReplicaConsumer).Scan(&m.replica), "replica inbox"},
		{m.d.projection.QueryRowContext(ctx, inbox, ProjectionConsumer).Scan(&m.projection), "projection inbox"},
	} {
		if q.err != nil {
			return fmt.Errorf("demo: read %s: %w", q.what, q.err)
		}
	}
	m.at = time.Now()
	return nil
}

// done: everything written, published, and applied by both subscribers.
func (m *monitor) done() bool {
	return m.produced == 2*m.want && m.backlog == 0 && m.replica >= m.want && m.projection >= m.want
}

// render draws the progress: redrawn in place on a terminal, else a line now and then.
func (m *monitor) render(final bool) {
	if !m.cfg.Terminal && !final && time.Since(m.lastLine) < m.cfg.ProgressInterval {
		return
	}
	m.lastLine = time.Now()
	applied := m.replica + m.projection
	if m.last.at.IsZero() {
		m.last.at = m.start // the first line's rates are since the start, not 0/s
	}
	var prodRate, applyRate float64
	if dt := m.at.Sub(m.last.at).Seconds(); dt > 0 {
		prodRate = float64(m.produced-m.last.produced) / dt
		applyRate = float64(applied-m.last.applied) / dt
	}
	m.last.produced, m.last.applied, m.last.at = m.produced, applied, m.at
	total := 4 * m.want // produced and applied, both kinds
	frac := min(float64(m.produced+applied)/float64(total), 1)
	const width = 24
	bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
	relayed := max(m.produced-m.backlog, 0)
	line := fmt.Sprintf("[%s] %3.0f%%  produced %d/%d (%.0f/s)  relayed %d  applied replica %d, projection %d (%.0f/s)  lag %d  %s",
		bar, frac*100, m.produced, 2*m.want, prodRate, relayed, m.replica, m.projection, applyRate,
		max(m.produced-applied, 0), time.Since(m.start).Round(100*time.Millisecond))
	switch {
	case m.cfg.Terminal && final:
		fmt.Fprintf(m.cfg.Progress, "\r%s\033[K\n", line)
	case m.cfg.Terminal:
		fmt.Fprintf(m.cfg.Progress, "\r%s\033[K", line)
	default:
		fmt.Fprintln(m.cfg.Progress, line)
	}
}
