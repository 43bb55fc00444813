package subscriber

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/outbox"
)

// Messages from publishers that are not the relay: each is parked with a reason and never
// applied, the consumer keeps running, and good messages around them are applied.
// (TestRowSyncRejectsBadEvents and TestParking cover unknown tables and columns, SQL in a
// row column, malformed JSON, wrong event types and a missing message id.)
func TestForeignPublishersParked(t *testing.T) {
	t.Parallel()
	f, _ := rowSyncFixture(t, 2)
	good := func(id int) string { return f.publishRow(upsert(t, id, 1), true) }
	payload := func(id int) []byte { return upsert(t, id, 1).Payload }
	raw := func(p amqp.Publishing) string {
		if p.MessageId == "" {
			p.MessageId = outbox.NewID()
		}
		if p.Type == "" {
			p.Type = outbox.EventTypeRowUpsert
		}
		f.publishRaw(p)
		return p.MessageId
	}
	rowJSON := func(table, key, column string) []byte {
		return []byte(`{"format":1,"op":"upsert","table":"` + table + `","key":{"` + key + `":90},"row":{"` + column + `":"x"},"version":1}`)
	}
	good(1)
	want := map[string]string{
		raw(amqp.Publishing{ContentType: "text/xml", Body: payload(10)}): `content type "text/xml"`,
		raw(amqp.Publishing{ContentType: "application/json", Body: []byte("{\"format\":1,\"op\":\"upsert\",\"table\":\"orders\",\"key\":{\"id\":11},\"row\":{\"st\xffatus\":\"x\"},\"version\":1}")}):            "not valid UTF-8",
		raw(amqp.Publishing{ContentType: "application/json", Body: []byte("{\"format\":1,\"op\":\"upsert\",\"table\":\"orders\",\"key\":{\"id\":12},\"row\":{\"status\":\"\xff\xfe\",\"v\":1},\"version\":1}")}): "not valid UTF-8",
		raw(amqp.Publishing{ContentType: "application/json", Headers: amqp.Table{"x-big": strings.Repeat("h", 100_000)}, Body: rowJSON("customers", "id", "status")}):                                            `table "customers" is not mapped`,
		raw(amqp.Publishing{Body: rowJSON("syncworker_inbox", "consumer", "message_id")}):                                                                                                                        `table "syncworker_inbox" is not mapped`,
		raw(amqp.Publishing{Body: rowJSON("mysql.user", "id", "status")}):                                                                                                                                        "invalid SQL identifier",
		raw(amqp.Publishing{Body: rowJSON("x; DROP TABLE replica_orders", "id", "status")}):                                                                                                                      "invalid SQL identifier",
		raw(amqp.Publishing{Body: rowJSON("orders", "id`) VALUES (1); --", "status")}):                                                                                                                           "invalid SQL identifier",
		raw(amqp.Publishing{Body: rowJSON("orders", "id", "status`=1, `secret")}):                                                                                                                                "invalid SQL identifier",
		raw(amqp.Publishing{Body: rowJSON("orders", "id", "col) VALUES (1); --")}):                                                                                                                               "invalid SQL identifier",
	}
	good(2)
	// Message ids are opaque bytes to the inbox: one that is not UTF-8 is applied once.
	raw(amqp.Publishing{MessageId: "id-\xff\xfe", ContentType: "application/json; charset=utf-8", Body: payload(3)})
	parked := f.waitParked(len(want), 30*time.Second)
	for id, reason := range want {
		d, ok := parked[id]
		if !ok {
			t.Errorf("message expecting %q was not parked", reason)
			continue
		}
		if got, _ := d.Headers[HeaderError].(string); !strings.Contains(got, reason) {
			t.Errorf("parked with reason %q, want it to mention %q", got, reason)
		}
	}
	f.waitInbox(3)
	var rows int
	if err := f.db.DB.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM replica_orders").Scan(&rows); err != nil || rows != 3 {
		t.Errorf("replica_orders holds %d rows (%v), want only the 3 good ones", rows, err)
	}
	var inbox int
	if err := f.db.DB.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM syncworker_inbox").Scan(&inbox); err != nil || inbox != 3 {
		t.Errorf("inbox holds %d rows (%v), want 3", inbox, err)
	}
}
