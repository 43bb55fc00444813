package outbox

import "context"

// TraceContext is the W3C trace context of the operation that wrote a message.
type TraceContext struct {
	TraceParent string // the traceparent header, for example 00-<trace-id>-<span-id>-01
	TraceState  string // the tracestate header; may be empty
}

type traceContextKey struct{}

// ContextWithTraceContext returns a context carrying tc; Write copies it into the headers of
// every message it writes. Services using OpenTelemetry set Config.TraceContext instead.
func ContextWithTraceContext(ctx context.Context, tc TraceContext) context.Context {
	return context.WithValue(ctx, traceContextKey{}, tc)
}

// TraceContextFromContext returns the trace context stored by ContextWithTraceContext.
func TraceContextFromContext(ctx context.Context) TraceContext {
	tc, _ := ctx.Value(traceContextKey{}).(TraceContext)
	return tc
}
