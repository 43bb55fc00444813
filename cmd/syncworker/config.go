package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// configProblem is one thing wrong with the configuration: which key, where, what, and what
// is allowed.
type configProblem struct {
	File    string
	Line    int
	Key     string
	Problem string
	decode  bool // found decoding the file, before validation
	byFlag  bool // the value came from a command-line flag: a bad command line
}

// Is makes a problem with a flag's value a usage error (exit code 2), as a flag the flag
// package refused would be.
func (p configProblem) Is(target error) bool { return p.byFlag && target == errUsage }

func (p configProblem) Error() string {
	loc := p.File
	if loc == "" {
		loc = "config"
	}
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Key == "" {
		return loc + ": " + p.Problem
	}
	return loc + ": " + p.Key + ": " + p.Problem
}

// configErrors collects problems while validating, with line numbers from the YAML tree.
type configErrors struct {
	file     string
	lines    map[string]int // dotted key path -> line
	problems []error
	// sources names the environment variable or flag that overrode a key's value in the
	// file: a problem with it is theirs, not the file line's.
	sources map[string]string
}

// flagSource starts the source of a value set by a flag: "flag --partitions".
const flagSource = "flag --"

func (c *configErrors) add(key, format string, args ...any) {
	if c.undecoded(key) {
		return
	}
	p := configProblem{File: c.file, Line: c.lines[key], Key: key, Problem: fmt.Sprintf(format, args...)}
	if src := c.sources[key]; src != "" {
		p.File, p.Line = src, 0
		p.byFlag = strings.HasPrefix(src, flagSource)
	}
	c.problems = append(c.problems, p)
}

// undecoded reports whether key, or a section holding it, already has a problem from
// decoding the file: its value was not read, so validating it would only add noise (a
// "mysql.dsn is required" after "mysql: is not a mapping").
func (c *configErrors) undecoded(key string) bool {
	for _, p := range c.problems {
		if cp, ok := p.(configProblem); ok && cp.decode && (key == cp.Key || strings.HasPrefix(key, cp.Key+".") || strings.HasPrefix(key, cp.Key+"[")) {
			return true
		}
	}
	return false
}

// has reports whether key already has a problem.
func (c *configErrors) has(key string) bool {
	for _, p := range c.problems {
		if cp, ok := p.(configProblem); ok && cp.Key == key {
			return true
		}
	}
	return false
}

// err lists the problems in the order of their lines in the file, those without a line last.
func (c *configErrors) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	line := func(e error) int {
		if p, ok := e.(configProblem); ok && p.Line > 0 {
			return p.Line
		}
		return math.MaxInt
	}
	slices.SortStableFunc(c.problems, func(a, b error) int { return cmp.Compare(line(a), line(b)) })
	return invalidConfiguration(c.problems)
}

// invalidConfiguration is the error listing every problem found, one per line.
func invalidConfiguration(problems []error) error {
	noun := "problems"
	if len(problems) == 1 {
		noun = "problem"
	}
	return fmt.Errorf("invalid configuration (%d %s):\n%w", len(problems), noun, errors.Join(problems...))
}

// decodeYAMLStrict decodes data into out, refusing unknown keys, and returns the line of every
// key path (under prefix) for later messages. A value of the wrong type or an unknown key is a
// problem, each named by key; the rest of the file is still decoded, so validation can report
// its problems too. Only a file that is not YAML at all is an error.
func decodeYAMLStrict(file string, data []byte, out any, prefix string) (map[string]int, []error, error) {
	lines := map[string]int{}
	if len(bytes.TrimSpace(data)) == 0 {
		return lines, nil, nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, configProblem{File: file, Problem: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var keys []keyNode
	collectLines(&root, prefix, lines, &keys)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(out)
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var problems []error
		for _, msg := range te.Errors {
			problems = append(problems, yamlProblem(file, msg, keys))
		}
		return lines, problems, nil
	}
	if err != nil {
		return nil, nil, configProblem{File: file, Problem: err.Error()}
	}
	return lines, nil, nil
}

// keyNode is one key of the file (or item of a list) with its value, to name the key of a
// decoding problem that yaml reports by line only.
type keyNode struct {
	key   string
	line  int
	value *yaml.Node
}

var (
	yamlUnknownKey = regexp.MustCompile(`^line (\d+): field (.+) not found in type `)
	yamlWrongType  = regexp.MustCompile(`^line (\d+): cannot unmarshal !!(\w+)(?: ` + "`" + `(.*)` + "`" + `)? into (.+)$`)
)

// yamlProblem turns yaml's "line 12: field foo not found in type main.x" or "line 8: cannot
// unmarshal !!str `four` into int" into a problem naming the key and what is allowed, without
// Go type names. Values are not quoted: they may be (part of) a DSN with its password.
func yamlProblem(file, msg string, keys []keyNode) error {
	p := configProblem{File: file, Problem: msg, decode: true}
	if m := yamlUnknownKey.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Key, p.Problem = m[2], "unknown key"
		for _, k := range keys {
			if k.line == p.Line && (k.key == m[2] || strings.HasSuffix(k.key, "."+m[2])) {
				p.Key = k.key
			}
		}
		return p
	}
	if m := yamlWrongType.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		kind := yamlKinds[m[2]]
		if kind == "" {
			kind = "!!" + m[2]
		}
		p.Problem = fmt.Sprintf("%s is not allowed; allowed: %s", kind, goTypeKind(m[4]))
		if m[4] == "time.Duration" && m[2] == "str" {
			p.Problem = "is not a duration; allowed: " + goTypeKind(m[4])
		}
		// The deepest key on that line whose value is the one refused.
		for _, k := range keys {
			if k.value.Line == p.Line && yamlTagMatches(k.value, m[2], m[3]) && len(k.key) >= len(p.Key) {
				p.Key = k.key
			}
		}
	}
	return p
}

// yamlKinds describe yaml's short tags for people.
var yamlKinds = map[string]string{"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
	"seq": "a list", "map": "a mapping", "null": "an empty value", "timestamp": "a timestamp", "binary": "binary data"}

func yamlTagMatches(n *yaml.Node, tag, value string) bool {
	switch tag {
	case "seq":
		return n.Kind == yaml.SequenceNode
	case "map":
		return n.Kind == yaml.MappingNode
	}
	if n.Kind != yaml.ScalarNode {
		return false
	}
	if prefix, cut := strings.CutSuffix(value, "..."); cut { // yaml shortens long values
		return strings.HasPrefix(n.Value, prefix)
	}
	return n.Value == value
}

// goTypeKind says what a Go type yaml decodes into accepts.
func goTypeKind(t string) string {
	switch {
	case t == "time.Duration":
		return "a duration such as 500ms, 10s or 1m"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "a mapping of keys (a section)" // structs and maps
}

// collectLines records the line of every mapping key and sequence item under prefix, and
// each key with its value node in keys.
func collectLines(n *yaml.Node, prefix string, lines map[string]int, keys *[]keyNode) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			collectLines(c, prefix, lines, keys)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			lines[key] = n.Content[i].Line
			*keys = append(*keys, keyNode{key: key, line: n.Content[i].Line, value: n.Content[i+1]})
			collectLines(n.Content[i+1], key, lines, keys)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			key := fmt.Sprintf("%s[%d]", prefix, i)
			lines[key] = c.Line
			*keys = append(*keys, keyNode{key: key, line: c.Line, value: c})
			collectLines(c, key, lines, keys)
		}
	}
}

// readConfigFile reads path, or returns nil data for an empty path (defaults and environment
// only).
func readConfigFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	return data, nil
}

// applyEnv sets fields tagged `env:"NAME"` from the environment when the variable is set,
// walking nested structs, and records the variable as the source of the key. Strings, ints,
// bools and durations are supported; a value that does not parse is a problem of the variable.
func applyEnv(v any, getenv func(string) string, errs *configErrors) {
	applyEnvValue(reflect.ValueOf(v).Elem(), "", getenv, errs)
}

func applyEnvValue(v reflect.Value, prefix string, getenv func(string) string, errs *configErrors) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		key := yamlKey(prefix, f)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			applyEnvValue(fv, key, getenv, errs)
			continue
		}
		name := f.Tag.Get("env")
		if name == "" {
			continue
		}
		raw := getenv(name)
		if raw == "" {
			continue
		}
		errs.sources[key] = "env " + name
		switch {
		case f.Type == reflect.TypeOf(time.Duration(0)):
			d, err := time.ParseDuration(raw)
			if err != nil {
				errs.add(key, "%q is not a duration (for example 500ms, 10s, 1m)", raw)
				continue
			}
			fv.SetInt(int64(d))
		case f.Type.Kind() == reflect.String:
			fv.SetString(raw)
		case f.Type.Kind() == reflect.Int:
			n, err := strconv.Atoi(raw)
			if err != nil {
				errs.add(key, "%q is not an integer", raw)
				continue
			}
			fv.SetInt(int64(n))
		case f.Type.Kind() == reflect.Bool:
			b, err := strconv.ParseBool(raw)
			if err != nil {
				errs.add(key, "%q is not true or false", raw)
				continue
			}
			fv.SetBool(b)
		}
	}
}

// yamlKey is the dotted key of field f under prefix, by its yaml tag.
func yamlKey(prefix string, f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// settingKey returns the dotted key of the field of v (a struct) at address ptr, or "".
func settingKey(v reflect.Value, prefix string, ptr any) string {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		key := yamlKey(prefix, f)
		if fv.Addr().Interface() == ptr {
			return key
		}
		if f.Type.Kind() == reflect.Struct {
			if k := settingKey(fv, key, ptr); k != "" {
				return k
			}
		}
	}
	return ""
}
