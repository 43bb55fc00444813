package verify

import (
	"context"
	"fmt"
	"sort"
)

// walker visits the key space chunk by chunk.
type walker struct {
	cfg      Config
	src, rep query
	report   *Report
}

func (w *walker) walk(ctx context.Context) error {
	var lo []any // exclusive lower bound; nil = start of the key space
	for {
		hi, err := w.src.nextBound(ctx, w.cfg.Source, lo, w.cfg.ChunkSize)
		if err != nil {
			return fmt.Errorf("verify: find chunk bound in source: %w", err)
		}
		// hi nil: the last chunk, open above, so replica rows past the source's last key count too.
		if err := w.chunk(ctx, lo, hi); err != nil {
			return err
		}
		if hi == nil {
			return nil
		}
		lo = hi
	}
}

func (w *walker) chunk(ctx context.Context, lo, hi []any) error {
	r := w.report
	r.Chunks++
	// The two sides are summed at the same time: they are usually on different servers.
	var d chunkSum
	var repErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		d, repErr = w.rep.checksum(ctx, w.cfg.Replica, lo, hi)
	}()
	s, err := w.src.checksum(ctx, w.cfg.Source, lo, hi)
	<-done
	if err != nil {
		return fmt.Errorf("verify: checksum source chunk: %w", err)
	}
	if repErr != nil {
		return fmt.Errorf("verify: checksum replica chunk: %w", repErr)
	}
	r.SourceRows += s.rows
	r.ReplicaRows += d.rows
	if s == d {
		r.Matching += s.rows
		return nil
	}
	r.DifferingChunks++
	return w.drill(ctx, lo, hi)
}

// drill classifies the rows of a differing chunk. The source side holds at most ChunkSize
// rows; the replica side is streamed against it.
func (w *walker) drill(ctx context.Context, lo, hi []any) error {
	r := w.report
	source := map[string]string{}
	if err := w.src.rows(ctx, w.cfg.Source, lo, hi, func(key, hash string) error {
		source[key] = hash
		return nil
	}); err != nil {
		return fmt.Errorf("verify: read source chunk: %w", err)
	}
	err := w.rep.rows(ctx, w.cfg.Replica, lo, hi, func(key, hash string) error {
		want, ok := source[key]
		switch {
		case !ok:
			r.Extra++
			r.ExtraKeys = w.sample(r.ExtraKeys, key)
			return nil
		case want != hash:
			r.Differing++
			r.DifferingKeys = w.sample(r.DifferingKeys, key)
		default:
			r.Matching++
		}
		delete(source, key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify: read replica chunk: %w", err)
	}
	missing := make([]string, 0, len(source))
	for key := range source {
		missing = append(missing, key)
	}
	sort.Strings(missing) // deterministic samples
	for _, key := range missing {
		r.Missing++
		r.MissingKeys = w.sample(r.MissingKeys, key)
	}
	return nil
}

func (w *walker) sample(keys []string, key string) []string {
	if len(keys) < w.cfg.Samples {
		keys = append(keys, key)
	}
	return keys
}
