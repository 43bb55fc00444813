package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
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
}

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
}

func (c *configErrors) add(key, format string, args ...any) {
	c.problems = append(c.problems, configProblem{File: c.file, Line: c.lines[key], Key: key, Problem: fmt.Sprintf(format, args...)})
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

func (c *configErrors) err() error {
	if len(c.problems) == 0 {
		return nil
	}
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
// key path for later messages. Every decoding problem is reported, not just the first.
func decodeYAMLStrict(file string, data []byte, out any) (map[string]int, error) {
	lines := map[string]int{}
	if len(bytes.TrimSpace(data)) == 0 {
		return lines, nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, configProblem{File: file, Problem: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	collectLines(&root, "", lines)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var problems []error
			for _, msg := range te.Errors {
				problems = append(problems, yamlProblem(file, msg))
			}
			return nil, invalidConfiguration(problems)
		}
		return nil, configProblem{File: file, Problem: err.Error()}
	}
	return lines, nil
}

// yamlProblem turns "line 12: field foo not found in type main.x" into a configProblem with
// the line split out and Go type names left out.
func yamlProblem(file, msg string) error {
	p := configProblem{File: file, Problem: msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(n); err == nil {
				p.Line, p.Problem = line, tail
			}
		}
	}
	if i := strings.Index(p.Problem, " in type "); i >= 0 {
		p.Problem = p.Problem[:i] + " (unknown key)"
	}
	return p
}

// collectLines records the line of every mapping key and sequence item under prefix.
func collectLines(n *yaml.Node, prefix string, lines map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			collectLines(c, prefix, lines)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			lines[key] = n.Content[i].Line
			collectLines(n.Content[i+1], key, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			key := fmt.Sprintf("%s[%d]", prefix, i)
			lines[key] = c.Line
			collectLines(c, key, lines)
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
// walking nested structs. Strings, ints, bools and durations are supported; a value that does
// not parse is a problem reported with the variable's name.
func applyEnv(v any, getenv func(string) string, errs *configErrors) {
	applyEnvValue(reflect.ValueOf(v).Elem(), getenv, errs)
}

func applyEnvValue(v reflect.Value, getenv func(string) string, errs *configErrors) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			applyEnvValue(fv, getenv, errs)
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
		switch {
		case f.Type == reflect.TypeOf(time.Duration(0)):
			d, err := time.ParseDuration(raw)
			if err != nil {
				errs.add(name, "%q is not a duration (for example 500ms, 10s, 1m)", raw)
				continue
			}
			fv.SetInt(int64(d))
		case f.Type.Kind() == reflect.String:
			fv.SetString(raw)
		case f.Type.Kind() == reflect.Int:
			n, err := strconv.Atoi(raw)
			if err != nil {
				errs.add(name, "%q is not an integer", raw)
				continue
			}
			fv.SetInt(int64(n))
		case f.Type.Kind() == reflect.Bool:
			b, err := strconv.ParseBool(raw)
			if err != nil {
				errs.add(name, "%q is not true or false", raw)
				continue
			}
			fv.SetBool(b)
		}
	}
}
