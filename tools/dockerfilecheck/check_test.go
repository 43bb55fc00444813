package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepositoryDockerfilePasses(t *testing.T) {
	if err := check("../../Dockerfile"); err != nil {
		t.Fatal(err)
	}
}

func TestBrokenDockerfilesFail(t *testing.T) {
	for name, want := range map[string][]string{
		"single-stage.Dockerfile": {"multi-stage", "CGO_ENABLED=0", "sets no USER"},
		"root-user.Dockerfile":    {`runs as "root"`, `COPY source "no-such-dir/"`, "COPY --from=builder"},
		"syntax.Dockerfile":       {"parse"},
	} {
		err := check(filepath.Join("testdata", name))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q:\n%v", name, w, err)
			}
		}
	}
	if _, err := os.Stat("testdata/no-such-dir"); err == nil {
		t.Fatal("testdata/no-such-dir must not exist")
	}
}
