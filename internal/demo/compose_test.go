package demo

import (
	"os"
	"os/exec"
	"slices"
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
