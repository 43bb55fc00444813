package outbox_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/syncworker/syncworker/outbox"
)

// TestFetchReadsEveryColumnBack checks both reads of the relay (Fetch and FetchRanges) give back
// exactly what was written, column for column, with empty and absent values, and that a row's
// headers and payload do not share writable room.
func TestFetchReadsEveryColumnBack(t *testing.T) {
	db := newStoreDB(t)
	ctx := context.Background()
	written := []outbox.Message{
		{ID: "full-1", Exchange: "orders", RoutingKey: "order.created", PartitionKey: "order-7",
			Type: "OrderCreated", AggregateType: "order", ContentType: "application/x-test",
			CorrelationID: "corr-1", Headers: map[string]string{"h": "v"}, Payload: []byte(`{"n":1}`)},
		{ID: "bare-2", Exchange: "orders", PartitionKey: "k", Payload: []byte("x")},
		{ID: "empty-payload-3", Exchange: "orders", PartitionKey: "k"},
	}
	before := time.Now().Add(-time.Second)
	writeMsgs(t, db, written...)
	store, err := outbox.NewRelayStore(db.DB, outbox.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	fetched, err := store.Fetch(ctx, outbox.FetchRequest{Lo: 0, Hi: ^uint32(0), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	ranged, err := store.FetchRanges(ctx, []outbox.HashRange{{Lo: 0, Hi: ^uint32(0)}}, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, rows := range map[string][]outbox.PendingRow{"Fetch": fetched.Rows, "FetchRanges": ranged[0].Rows} {
		if len(rows) != len(written) {
			t.Fatalf("%s: %d rows, want %d", name, len(rows), len(written))
		}
		byID := map[string]outbox.PendingRow{}
		for _, r := range rows {
			byID[r.MessageID] = r
		}
		for _, m := range written {
			r, ok := byID[m.ID]
			if !ok {
				t.Fatalf("%s: message %s not read", name, m.ID)
			}
			contentType := m.ContentType
			if contentType == "" {
				contentType = outbox.DefaultContentType
			}
			got := [...]string{r.Exchange, r.RoutingKey, r.PartitionKey, r.Type, r.AggregateType, r.ContentType, r.CorrelationID}
			want := [...]string{m.Exchange, m.RoutingKey, m.PartitionKey, m.Type, m.AggregateType, contentType, m.CorrelationID}
			if got != want {
				t.Errorf("%s: %s read back as %q, want %q", name, m.ID, got, want)
			}
			if !bytes.Equal(r.Payload, m.Payload) || r.Payload == nil {
				t.Errorf("%s: %s payload %q (nil %v), want %q", name, m.ID, r.Payload, r.Payload == nil, m.Payload)
			}
			headers, err := outbox.DecodeHeaders(r.Headers)
			if err != nil || len(headers) != len(m.Headers) || headers["h"] != m.Headers["h"] {
				t.Errorf("%s: %s headers %q (%v), want %v", name, m.ID, r.Headers, err, m.Headers)
			}
			if r.CreatedAt.Before(before) || r.CreatedAt.After(time.Now().Add(time.Second)) || r.CreatedAt.Nanosecond()%1000 != 0 {
				t.Errorf("%s: %s created at %v, want a microsecond time around now", name, m.ID, r.CreatedAt)
			}
			if len(r.Headers) > 0 && len(r.Payload) > 0 {
				payload := string(r.Payload)
				grown := append(r.Headers, '!') // within the capacity, if the payload's room were shared
				if string(r.Payload) != payload || len(grown) != len(r.Headers)+1 {
					t.Errorf("%s: appending to the headers of %s changed its payload to %q", name, m.ID, r.Payload)
				}
			}
		}
	}
}
