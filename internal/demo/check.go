package demo

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
)

// ProjectionCheck compares the projection's customer totals with the orders table.
type ProjectionCheck struct {
	Customers  int      // customers with at least one order in the source
	Mismatched []string // "customer: want N orders / C cents, got ..." (at most 10)
	Wrong      int      // customers whose totals differ
}

type totals struct{ orders, cents int64 }

func checkProjection(ctx context.Context, orders, projection *sql.DB) (ProjectionCheck, error) {
	want, err := readTotals(ctx, orders, "SELECT customer_id, COUNT(*), CAST(SUM(amount * 100) AS SIGNED) FROM orders GROUP BY customer_id")
	if err != nil {
		return ProjectionCheck{}, fmt.Errorf("demo: totals of orders: %w", err)
	}
	got, err := readTotals(ctx, projection, "SELECT customer_id, orders, total_cents FROM customer_totals WHERE orders <> 0 OR total_cents <> 0")
	if err != nil {
		return ProjectionCheck{}, fmt.Errorf("demo: projection totals: %w", err)
	}
	check := ProjectionCheck{Customers: len(want)}
	seen := map[string]bool{}
	var customers []string
	for c := range want {
		customers, seen[c] = append(customers, c), true
	}
	for c := range got {
		if !seen[c] {
			customers = append(customers, c)
		}
	}
	sort.Strings(customers)
	for _, c := range customers {
		if w, g := want[c], got[c]; w != g {
			check.Wrong++
			if len(check.Mismatched) < 10 {
				check.Mismatched = append(check.Mismatched, fmt.Sprintf("%s: want %d orders / %d cents, got %d / %d", c, w.orders, w.cents, g.orders, g.cents))
			}
		}
	}
	return check, nil
}

func readTotals(ctx context.Context, db *sql.DB, query string) (map[string]totals, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]totals{}
	for rows.Next() {
		var c string
		var t totals
		if err := rows.Scan(&c, &t.orders, &t.cents); err != nil {
			return nil, err
		}
		out[c] = t
	}
	return out, rows.Err()
}
