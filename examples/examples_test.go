// Package examples_test builds the example services and runs them as processes against the
// real MySQL and RabbitMQ.
package examples_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
)

func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// The orders service places 60 orders; the inventory service reserves stock for each exactly
// once. Pear has 10 units, so some pear orders are rejected and its stock never goes negative.
func TestOrdersAndInventory(t *testing.T) {
	t.Parallel()
	orders, inventory, broker := testenv.NewDatabase(t), testenv.NewDatabase(t), testenv.NewBroker(t)
	exchange, queue := broker.Name("shop.orders"), broker.Name("inventory.orders")
	broker.Track(queue+".retry.1s", queue+".parked")
	dir := t.TempDir()
	ordersBin, inventoryBin := build(t, dir, "./orders"), build(t, dir, "./inventory")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n = 60
	inv := exec.CommandContext(ctx, inventoryBin, "-exchange", exchange, "-queue", queue, "-expect", "60", "-timeout", "60s")
	inv.Env = append(os.Environ(), "INVENTORY_DSN="+inventory.DSN, "AMQP_URL="+broker.URL)
	var invOut strings.Builder
	inv.Stdout, inv.Stderr = &invOut, &invOut
	if err := inv.Start(); err != nil {
		t.Fatal(err)
	}
	// The orders relay retries until inventory has declared the exchange, so no ordering is needed.
	ord := exec.CommandContext(ctx, ordersBin, "-exchange", exchange, "-orders", "60", "-timeout", "60s")
	ord.Env = append(os.Environ(), "ORDERS_DSN="+orders.DSN, "AMQP_URL="+broker.URL)
	if out, err := ord.CombinedOutput(); err != nil {
		t.Fatalf("orders: %v\n%s", err, out)
	}
	if err := inv.Wait(); err != nil {
		t.Fatalf("inventory: %v\n%s", err, invOut.String())
	}

	// Expected: order i has sku skus[i%3] and qty 1+i%3, applied per SKU in order.
	want := map[string]int{"apple": 1000, "pear": 10, "plum": 1000}
	rejected := 0
	for i := range n {
		sku, qty := []string{"apple", "pear", "plum"}[i%3], 1+i%3
		if want[sku] >= qty {
			want[sku] -= qty
		} else {
			rejected++
		}
	}
	rows, err := inventory.DB.Query("SELECT sku, available FROM stock")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var sku string
		var available int
		if err := rows.Scan(&sku, &available); err != nil {
			t.Fatal(err)
		}
		if available != want[sku] {
			t.Errorf("stock of %s: %d, want %d", sku, available, want[sku])
		}
	}
	var handled, gotRejected int
	if err := inventory.DB.QueryRow("SELECT COUNT(*), COALESCE(SUM(status = 'rejected'), 0) FROM reservations").Scan(&handled, &gotRejected); err != nil {
		t.Fatal(err)
	}
	if handled != n || gotRejected != rejected || rejected == 0 {
		t.Errorf("reservations %d (want %d), rejected %d (want %d, > 0)", handled, n, gotRejected, rejected)
	}
}
