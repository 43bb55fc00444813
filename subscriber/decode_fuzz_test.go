package subscriber

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/outbox"
)

// Deliveries from any publisher decode or fail with ErrUndecodable; they never panic, and
// the attempt count stays in range whatever the headers say.
func FuzzDecodeDelivery(f *testing.F) {
	f.Add("01HZY", "syncworker.row.upsert", "application/json", "orders:42", "3", int64(2), []byte(`{"format":1}`))
	f.Add("", "", "", "", "", int64(0), []byte(nil))
	f.Add("id", "x", "text/plain", "\xff\xfe", "-9999999999999999999", int64(-1<<63), []byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, id, typ, contentType, partitionKey, attemptsText string, attempts int64, body []byte) {
		d := &amqp.Delivery{MessageId: id, Type: typ, ContentType: contentType, Body: body,
			Headers: amqp.Table{outbox.HeaderPartitionKey: partitionKey, HeaderAttempts: attempts}}
		if strings.HasPrefix(attemptsText, "s") {
			d.Headers[HeaderAttempts] = attemptsText
			d.Headers[outbox.HeaderPartitionKey] = []byte(partitionKey)
		}
		m, err := decodeDelivery(d)
		if (err != nil) != (id == "") {
			t.Fatalf("id %q: err %v", id, err)
		}
		if err != nil {
			return
		}
		if m.ID != id || m.Attempt < 1 || m.Attempt > 1<<30+1 {
			t.Fatalf("decoded %+v", m)
		}
		if k := orderKey(d); k == "" {
			t.Fatalf("empty order key for %+v", d)
		}
	})
}
