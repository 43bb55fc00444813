package publisher

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/outbox"
)

// publishing turns an outbox row into the AMQP message: persistent, with the row's properties
// and headers, and the payload unchanged (no envelope), so any AMQP client can read it.
// headers is emptied and filled for this row: a sweep reuses one table for all its rows, since
// amqp091 encodes it during Publish and keeps no reference (a new map per message was a tenth
// of the sweep's allocations).
func publishing(row *outbox.PendingRow, appID string, headers amqp.Table) (amqp.Publishing, error) {
	stored, err := outbox.DecodeHeaders(row.Headers)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("row %d: %w", row.ID, err)
	}
	clear(headers)
	for k, v := range stored {
		headers[k] = v
	}
	headers[outbox.HeaderPartitionKey] = row.PartitionKey
	if row.AggregateType != "" {
		headers[outbox.HeaderAggregateType] = row.AggregateType
	}
	return amqp.Publishing{
		Headers:       headers,
		ContentType:   row.ContentType,
		DeliveryMode:  amqp.Persistent,
		CorrelationId: row.CorrelationID,
		MessageId:     row.MessageID,
		Timestamp:     row.CreatedAt,
		Type:          row.Type,
		AppId:         appID,
		Body:          row.Payload,
	}, nil
}
