package topology

import (
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads and parses a topology file. See Parse.
func Load(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return Parse(data, path)
}

// Parse reads a topology from YAML and validates it. On error it returns every problem at
// once (unknown keys, wrong types and everything Validate finds) as *ValidationError values
// joined with errors.Join, each naming filename and line.
func Parse(data []byte, filename string) (*Topology, error) {
	d := &decoder{file: filename}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// The YAML itself is broken; yaml names the line only inside its message.
		v := &ValidationError{File: filename, Problem: err.Error()}
		if m := yamlLineRE.FindStringSubmatch(v.Problem); m != nil {
			v.Line, _ = strconv.Atoi(m[1])
			v.Problem = strings.TrimPrefix(v.Problem[len(m[0]):], " ")
		}
		return nil, v
	}
	t := &Topology{file: filename}
	if len(doc.Content) == 0 {
		d.problem(0, "", "the file is empty")
		return nil, d.err()
	}
	d.mapping(doc.Content[0], "", nil, map[string]func(*yaml.Node){
		"exchanges": func(n *yaml.Node) {
			d.sequence(n, "exchanges", func(i int, item *yaml.Node) { t.Exchanges = append(t.Exchanges, d.exchange(i, item)) })
		},
		"queues": func(n *yaml.Node) {
			d.sequence(n, "queues", func(i int, item *yaml.Node) { t.Queues = append(t.Queues, d.queue(i, item)) })
		},
		"bindings": func(n *yaml.Node) {
			d.sequence(n, "bindings", func(i int, item *yaml.Node) { t.Bindings = append(t.Bindings, d.binding(i, item)) })
		},
	})
	// Validate what could be read even when some of it could not, so the user sees all.
	if err := errors.Join(d.err(), t.Validate()); err != nil {
		return nil, sortProblems(err)
	}
	return t, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+):`)

// decoder walks yaml nodes, collecting every problem rather than stopping at the first.
type decoder struct {
	file     string
	problems []error
}

func (d *decoder) problem(line int, entity, format string, args ...any) {
	d.problems = append(d.problems, &ValidationError{File: d.file, Line: line, Entity: entity, Problem: fmt.Sprintf(format, args...)})
}

func (d *decoder) err() error { return errors.Join(d.problems...) }

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// mapping calls fields[key] for each key of n, reporting unknown and repeated keys, and
// records the line of each key in pos (when not nil).
func (d *decoder) mapping(n *yaml.Node, entity string, pos *position, fields map[string]func(*yaml.Node)) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.problem(n.Line, entity, "expected a mapping of keys to values")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if seen[k.Value] {
			d.problem(k.Line, entity, "key %q is given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		f, ok := fields[k.Value]
		if !ok {
			d.problem(k.Line, entity, "unknown key %q (known: %s)", k.Value, knownKeys(fields))
			continue
		}
		if pos != nil {
			if pos.fields == nil {
				pos.fields = map[string]int{}
			}
			pos.fields[k.Value] = k.Line
		}
		f(v)
	}
}

func knownKeys(fields map[string]func(*yaml.Node)) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func (d *decoder) sequence(n *yaml.Node, entity string, item func(int, *yaml.Node)) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "queues:" with nothing after it
	}
	if n.Kind != yaml.SequenceNode {
		d.problem(n.Line, entity, "expected a list")
		return
	}
	for i, c := range n.Content {
		item(i, resolve(c))
	}
}

// label names an entity for messages: `queue "orders"`, or `queues[3]` before it has a name.
func label(kind, list string, i int, n *yaml.Node) string {
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if v := resolve(n.Content[j+1]); n.Content[j].Value == "name" && v.Kind == yaml.ScalarNode && v.Value != "" {
				return fmt.Sprintf("%s %q", kind, v.Value)
			}
		}
	}
	return fmt.Sprintf("%s[%d]", list, i)
}

func (d *decoder) exchange(i int, n *yaml.Node) Exchange {
	x := Exchange{pos: position{line: n.Line}}
	e := label("exchange", "exchanges", i, n)
	d.mapping(n, e, &x.pos, map[string]func(*yaml.Node){
		"name":               func(v *yaml.Node) { x.Name = d.str(v, e, "name") },
		"type":               func(v *yaml.Node) { x.Type = ExchangeType(d.str(v, e, "type")) },
		"durable":            func(v *yaml.Node) { x.Durable = d.optBool(v, e, "durable") },
		"auto_delete":        func(v *yaml.Node) { x.AutoDelete = d.boolean(v, e, "auto_delete") },
		"internal":           func(v *yaml.Node) { x.Internal = d.boolean(v, e, "internal") },
		"alternate_exchange": func(v *yaml.Node) { x.AlternateExchange = d.str(v, e, "alternate_exchange") },
	})
	return x
}

func (d *decoder) queue(i int, n *yaml.Node) Queue {
	q := Queue{pos: position{line: n.Line}}
	e := label("queue", "queues", i, n)
	d.mapping(n, e, &q.pos, map[string]func(*yaml.Node){
		"name":                   func(v *yaml.Node) { q.Name = d.str(v, e, "name") },
		"type":                   func(v *yaml.Node) { q.Type = QueueType(d.str(v, e, "type")) },
		"durable":                func(v *yaml.Node) { q.Durable = d.optBool(v, e, "durable") },
		"exclusive":              func(v *yaml.Node) { q.Exclusive = d.boolean(v, e, "exclusive") },
		"auto_delete":            func(v *yaml.Node) { q.AutoDelete = d.boolean(v, e, "auto_delete") },
		"max_length":             func(v *yaml.Node) { q.MaxLength = d.integer(v, e, "max_length") },
		"max_length_bytes":       func(v *yaml.Node) { q.MaxLengthBytes = d.integer(v, e, "max_length_bytes") },
		"overflow":               func(v *yaml.Node) { q.Overflow = Overflow(d.str(v, e, "overflow")) },
		"message_ttl":            func(v *yaml.Node) { q.MessageTTL = d.duration(v, e, "message_ttl") },
		"single_active_consumer": func(v *yaml.Node) { q.SingleActiveConsumer = d.boolean(v, e, "single_active_consumer") },
		"delivery_limit":         func(v *yaml.Node) { q.DeliveryLimit = d.integer(v, e, "delivery_limit") },
		"retry":                  func(v *yaml.Node) { q.Retry = d.retry(v, e) },
	})
	return q
}

func (d *decoder) retry(n *yaml.Node, e string) *Retry {
	r := &Retry{pos: position{line: n.Line}}
	d.mapping(n, e+" retry", &r.pos, map[string]func(*yaml.Node){
		"delays": func(v *yaml.Node) {
			d.sequence(v, e+" retry delays", func(i int, item *yaml.Node) {
				r.Delays = append(r.Delays, d.duration(item, e, fmt.Sprintf("retry delay %d", i+1)))
			})
		},
		"parking_lot": func(v *yaml.Node) { r.ParkingLot = d.optBool(v, e, "retry parking_lot") },
	})
	return r
}

func (d *decoder) binding(i int, n *yaml.Node) Binding {
	b := Binding{pos: position{line: n.Line}}
	e := fmt.Sprintf("bindings[%d]", i)
	d.mapping(n, e, &b.pos, map[string]func(*yaml.Node){
		"exchange":    func(v *yaml.Node) { b.Exchange = d.str(v, e, "exchange") },
		"queue":       func(v *yaml.Node) { b.Queue = d.str(v, e, "queue") },
		"to_exchange": func(v *yaml.Node) { b.ToExchange = d.str(v, e, "to_exchange") },
		"routing_key": func(v *yaml.Node) { b.RoutingKey = d.str(v, e, "routing_key") },
		"match":       func(v *yaml.Node) { b.Match = Match(d.str(v, e, "match")) },
		"headers":     func(v *yaml.Node) { b.Headers = d.headers(v, e) },
	})
	return b
}

func (d *decoder) scalar(n *yaml.Node, e, key, want string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.problem(n.Line, e, "%s: expected %s", key, want)
		return false
	}
	return true
}

func (d *decoder) str(n *yaml.Node, e, key string) string {
	if !d.scalar(n, e, key, "a string") {
		return ""
	}
	return n.Value
}

func (d *decoder) boolean(n *yaml.Node, e, key string) bool {
	var b bool
	if !d.scalar(n, e, key, "true or false") {
		return false
	}
	if n.Tag != "!!bool" || n.Decode(&b) != nil {
		d.problem(n.Line, e, "%s: expected true or false, not %q", key, n.Value)
	}
	return b
}

func (d *decoder) optBool(n *yaml.Node, e, key string) *bool {
	b := d.boolean(n, e, key)
	return &b
}

func (d *decoder) integer(n *yaml.Node, e, key string) int64 {
	var i int64
	if !d.scalar(n, e, key, "a whole number") {
		return 0
	}
	if n.Tag != "!!int" || n.Decode(&i) != nil {
		d.problem(n.Line, e, "%s: expected a whole number, not %q", key, n.Value)
	}
	return i
}

func (d *decoder) duration(n *yaml.Node, e, key string) time.Duration {
	if !d.scalar(n, e, key, "a duration such as 500ms, 10s or 5m") {
		return 0
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.problem(n.Line, e, "%s: expected a duration such as 500ms, 10s or 5m, not %q", key, n.Value)
	}
	return v
}

// headers reads a mapping of header names to scalar values.
func (d *decoder) headers(n *yaml.Node, e string) map[string]any {
	if n.Kind != yaml.MappingNode {
		d.problem(n.Line, e, "headers: expected a mapping of header names to values")
		return nil
	}
	h := map[string]any{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if _, dup := h[k.Value]; dup {
			d.problem(k.Line, e, "header %q is given twice", k.Value)
			continue
		}
		val, ok := headerValue(v)
		if !ok {
			d.problem(v.Line, e, "header %q: value must be a string, number or true/false", k.Value)
			continue
		}
		h[k.Value] = val
	}
	return h
}

func headerValue(n *yaml.Node) (any, bool) {
	if n.Kind != yaml.ScalarNode {
		return nil, false
	}
	switch n.Tag {
	case "!!str":
		return n.Value, true
	case "!!bool":
		var b bool
		return b, n.Decode(&b) == nil
	case "!!int":
		var i int64
		return i, n.Decode(&i) == nil
	case "!!float":
		var f float64
		err := n.Decode(&f)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return nil, false
}

// sortProblems orders joined *ValidationErrors by line so they read top to bottom.
func sortProblems(err error) error {
	var list []error
	var flatten func(error)
	flatten = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				flatten(c)
			}
			return
		}
		list = append(list, e)
	}
	flatten(err)
	sort.SliceStable(list, func(i, j int) bool { return lineOf(list[i]) < lineOf(list[j]) })
	return errors.Join(list...)
}

func lineOf(err error) int {
	var v *ValidationError
	if errors.As(err, &v) {
		return v.Line
	}
	return 0
}
