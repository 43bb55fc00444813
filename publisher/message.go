package publisher

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/outbox"
)

// publishing turns an outbox row into the AMQP message: persistent, with the row's properties
// and headers, and the payload unchanged (no envelope), so any AMQP client can read it.
func publishing(row *outbox.PendingRow, appID string) (amqp.Publishing, error) {
	stored, err := outbox.DecodeHeaders(row.Headers)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("row %d: %w", row.ID, err)
	}
	headers := make(amqp.Table, len(stored)+2)
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
