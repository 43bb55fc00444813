package demo

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/topology"
)

// docker-compose.yml must be valid for Compose. No Docker engine is needed for this check;
// scripts/test.sh installs Debian's docker-compose when it can.
func TestComposeFileIsValid(t *testing.T) {
	t.Parallel()
	tool, err := exec.LookPath("docker-compose")
	if err != nil {
		if os.Getenv(testenv.EnvSkip) == "1" {
			t.Skip("docker-compose is not installed")
		}
		t.Fatal("docker-compose is not installed: apt-get install docker-compose (scripts/test.sh does it as root), " +
			"or set SYNCWORKER_SKIP_INTEGRATION=1")
	}
	cmd := exec.Command(tool, "-f", "../../docker-compose.yml", "config", "-q")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
}

// The compose stack's replica consumer must be the one the demo would run itself: same
// queue, inbox scope and retry tiers.
func TestComposeReplicaConsumerMatchesTheDemo(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../examples/demo/replica.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Queue        string `yaml:"queue"`
		ConsumerName string `yaml:"consumer_name"`
		Retry        struct {
			Delays []time.Duration `yaml:"delays"`
		} `yaml:"retry"`
	}
	if err := yaml.Unmarshal(data, &cf); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Parse(TopologyYAML("demo"), "demo")
	if err != nil {
		t.Fatal(err)
	}
	n := namesFor("demo")
	if cf.Queue != n.replicaQueue || cf.ConsumerName != ReplicaConsumer || !slices.Equal(cf.Retry.Delays, retryDelays(topo, n.replicaQueue)) {
		t.Fatalf("examples/demo/replica.yaml %+v does not match the demo (queue %s, consumer %s, delays %v)",
			cf, n.replicaQueue, ReplicaConsumer, retryDelays(topo, n.replicaQueue))
	}
}

// The long-running services are healthy once ready, asked by the image's own binary (the
// distroless image has nothing else to run), on the address they serve, and the demo waits
// for that rather than for their start.
func TestComposeWorkersHaveHealthChecks(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
			DependsOn map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"relay", "consume-replica"} {
		svc, ok := compose.Services[name]
		if !ok {
			t.Fatalf("docker-compose.yml has no service %s", name)
		}
		test := svc.Healthcheck.Test
		if len(test) != 4 || test[0] != "CMD" || test[2] != "health" || test[3] != "--ready" {
			t.Errorf("%s: healthcheck test %q, want [CMD <binary> health --ready]", name, test)
		} else if entrypoint := `ENTRYPOINT ["` + test[1] + `"]`; !strings.Contains(string(dockerfile), entrypoint) {
			t.Errorf("%s: healthcheck runs %s, which is not the Dockerfile's %s", name, test[1], entrypoint)
		}
		if svc.Environment["SYNCWORKER_HTTP_LISTEN"] == "" {
			t.Errorf("%s: no SYNCWORKER_HTTP_LISTEN: there is no /readyz to ask", name)
		}
		if got := compose.Services["demo"].DependsOn[name].Condition; got != "service_healthy" {
			t.Errorf("demo depends on %s with condition %q, want service_healthy", name, got)
		}
	}
}
