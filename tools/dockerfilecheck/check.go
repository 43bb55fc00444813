// Command dockerfilecheck parses a Dockerfile with BuildKit's own parser and checks the rules
// syncworker's image keeps: multi-stage, a static CGO_ENABLED=0 Go build, a final stage that
// runs as a non-root user, and COPY sources that exist in the build context.
//
//	go run . ../../Dockerfile          (scripts/test.sh runs it)
//
// It is a module of its own so BuildKit stays out of syncworker's go.mod.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dockerfilecheck PATH/TO/Dockerfile")
		os.Exit(2)
	}
	if err := check(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "dockerfilecheck %s:\n%v\n", os.Args[1], err)
		os.Exit(1)
	}
	fmt.Printf("dockerfilecheck %s: ok\n", os.Args[1])
}

// check returns every problem of the Dockerfile at path; its directory is the build context.
func check(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		return fmt.Errorf("parse instructions: %w", err)
	}
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if len(stages) < 2 {
		bad("want a multi-stage build (a build stage and a runtime stage), found %d stage(s)", len(stages))
	}
	if len(stages) == 0 {
		return errors.Join(problems...)
	}
	context := filepath.Dir(path)
	names := map[string]bool{}
	staticBuild := false
	for i, st := range stages {
		for _, c := range st.Commands {
			switch c := c.(type) {
			case *instructions.RunCommand:
				line := strings.Join(c.CmdLine, " ")
				if strings.Contains(line, "go build") && strings.Contains(line, "CGO_ENABLED=0") {
					staticBuild = true
				}
			case *instructions.CopyCommand:
				if c.From != "" {
					if !names[strings.ToLower(c.From)] {
						bad("stage %d: COPY --from=%s names no earlier stage", i, c.From)
					}
					continue
				}
				for _, src := range c.SourcePaths {
					matches, err := filepath.Glob(filepath.Join(context, src))
					if err != nil || len(matches) == 0 {
						bad("stage %d: COPY source %q does not exist in the build context %s", i, src, context)
					}
				}
			}
		}
		names[strings.ToLower(st.Name)] = st.Name != ""
		names[fmt.Sprint(i)] = true
	}
	if !staticBuild {
		bad("no RUN builds with CGO_ENABLED=0 go build: the binary must be static for a distroless/static base")
	}
	final := stages[len(stages)-1]
	user := ""
	for _, c := range final.Commands {
		if u, ok := c.(*instructions.UserCommand); ok {
			user = u.User
		}
	}
	name, _, _ := strings.Cut(user, ":")
	switch name {
	case "":
		bad("the final stage sets no USER: it would run as root")
	case "root", "0":
		bad("the final stage runs as %q: use a non-root user", user)
	}
	return errors.Join(problems...)
}
