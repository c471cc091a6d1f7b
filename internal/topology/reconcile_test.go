package topology_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		cluster.Shutdown()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var actions = topology.Actions()

func opts(replicas int) topology.Options {
	return topology.Options{Replicas: replicas, Actions: actions, AckWait: 30 * time.Second, MaxAckPending: 1000}
}

// The cluster is shared by the tests of this file: starting three
// processes costs a second or two each time. Each test uses its own
// stream names (a prefix of its own), so they do not see each other.
var (
	clusterOnce sync.Once
	cluster     *testenv.Cluster
	clusterErr  error
)

func sharedCluster(t *testing.T) *testenv.Cluster {
	t.Helper()
	clusterOnce.Do(func() { cluster, clusterErr = testenv.StartCluster(3) })
	if clusterErr != nil {
		t.Fatalf("start cluster: %v", clusterErr)
	}
	return cluster
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

// named returns the default topology with every name made unique to one
// test.
func named(p string) topology.Topology {
	t := topology.Default()
	t.RequestStream, t.ResultStream, t.DeadLetterStream = p+"_USERS", p+"_RESULTS", p+"_DLQ"
	lp := strings.ToLower(p)
	t.RequestPrefix, t.ResultPrefix, t.DeadLetterPrefix = lp+".users.create", lp+".users.result", lp+".users.dlq"
	t.OperationPrefix = lp + ".users"
	t.AttemptsBucket, t.QuotaBucket, t.LedgerBucket = lp+"_attempts", lp+"_quota", lp+"_ledger"
	t.ConsumerPrefix = lp + "-provisioner"
	return t
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// replicasOf returns the configured replica count of every stream of topo,
// the buckets' streams included.
func replicasOf(t *testing.T, js jetstream.JetStream, topo topology.Topology) map[string]int {
	t.Helper()
	out := map[string]int{}
	names := []string{topo.RequestStream, topo.ResultStream, topo.DeadLetterStream, "KV_" + topo.AttemptsBucket, "KV_" + topo.QuotaBucket, "KV_" + topo.LedgerBucket}
	for _, n := range names {
		s, err := js.Stream(ctxT(t), n)
		if err != nil {
			t.Fatalf("stream %s: %v", n, err)
		}
		out[n] = s.CachedInfo().Config.Replicas
	}
	return out
}

func TestAutoReplicasOnClusterAreThree(t *testing.T) {
	c := sharedCluster(t)
	js := connect(t, c.URLs())
	topo := named("AUTO")
	if _, err := topology.Reconcile(ctxT(t), js, topo, opts(topology.AutoReplicas)); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	for name, n := range replicasOf(t, js, topo) {
		if n != 3 {
			t.Errorf("stream %s has %d replicas; want 3", name, n)
		}
	}
	consumersHavePeers(t, js, topo, 3)
}

// consumersHavePeers checks that every durable consumer of topo runs on
// peers servers (its stream's replica count).
func consumersHavePeers(t *testing.T, js jetstream.JetStream, topo topology.Topology, peers int) {
	t.Helper()
	for _, a := range append(slices.Clone(actions), topology.LedgerConsumer) {
		stream := topo.RequestStream
		if a == topology.LedgerConsumer {
			stream = topo.ResultStream
		}
		// A scale-up converges in the background (about 11 s here).
		testenv.Eventually(t, 60*time.Second, func() (bool, string) {
			ci, err := js.Consumer(ctxT(t), stream, topo.ConsumerName(a))
			if err != nil {
				return false, err.Error()
			}
			info := ci.CachedInfo()
			if info.Cluster == nil || len(info.Cluster.Replicas)+1 != peers {
				return false, fmt.Sprintf("consumer %s: cluster %+v; want %d peers", a, info.Cluster, peers)
			}
			return true, ""
		})
	}
}

func TestAutoReplicasOnSingleServerAreOne(t *testing.T) {
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(ns.Shutdown)
	js := connect(t, ns.URL())
	topo := topology.Default()
	if _, err := topology.Reconcile(ctxT(t), js, topo, opts(topology.AutoReplicas)); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	for name, n := range replicasOf(t, js, topo) {
		if n != 1 {
			t.Errorf("stream %s has %d replicas; want 1", name, n)
		}
	}
	// An explicit count the server cannot place stops start-up.
	_, err = topology.Reconcile(ctxT(t), js, topo, opts(3))
	if !errors.Is(err, topology.ErrPlacement) {
		t.Errorf("Reconcile(replicas 3) on one server = %v; want ErrPlacement", err)
	}
}

func TestExplicitReplicasTheClusterCannotPlace(t *testing.T) {
	c := sharedCluster(t)
	js := connect(t, c.URLs())
	_, err := topology.Reconcile(ctxT(t), js, named("FIVE"), opts(5))
	if !errors.Is(err, topology.ErrPlacement) {
		t.Fatalf("Reconcile(replicas 5) on 3 nodes = %v; want ErrPlacement", err)
	}
	if !strings.Contains(err.Error(), "5 replicas") {
		t.Errorf("error %q does not say how many replicas were asked for", err)
	}
}

// An operator created the streams with three replicas, a 90-day max age on
// the dead letters, a byte limit and metadata of their own. Starting the
// service (twice, as a rollout would) keeps all of it.
func TestOperatorSettingsSurviveRestarts(t *testing.T) {
	c := sharedCluster(t)
	js := connect(t, c.URLs())
	topo := named("OPER")
	ctx := ctxT(t)
	const ninetyDays = 90 * 24 * time.Hour
	for _, sc := range topo.StreamConfigs() {
		sc.Replicas = 3
		sc.MaxBytes = 64 << 20
		sc.Metadata = map[string]string{"owner": "platform-team"}
		if sc.Name == topo.DeadLetterStream {
			sc.MaxAge = ninetyDays
		}
		if _, err := js.CreateStream(ctx, sc); err != nil {
			t.Fatalf("operator creates %s: %v", sc.Name, err)
		}
	}
	for range 2 {
		changes, err := topology.Reconcile(ctx, js, topo, opts(topology.AutoReplicas))
		if err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
		kept := false
		for _, ch := range changes {
			if ch.Resource == "stream "+topo.DeadLetterStream && ch.Field == "max_age" && ch.Kept {
				kept = true
			}
			if ch.Field == "replicas" && !ch.Kept && strings.HasPrefix(ch.Resource, "stream ") {
				t.Errorf("change %v: the operator's replicas must not change", ch)
			}
		}
		if !kept {
			t.Errorf("changes %v: no line says the dead-letter max age was kept", changes)
		}
	}
	for _, sc := range topo.StreamConfigs() {
		s, err := js.Stream(ctx, sc.Name)
		if err != nil {
			t.Fatalf("stream %s: %v", sc.Name, err)
		}
		got := s.CachedInfo().Config
		if got.Replicas != 3 || got.MaxBytes != 64<<20 || got.Metadata["owner"] != "platform-team" {
			t.Errorf("stream %s after restarts: replicas %d, max bytes %d, metadata %v; want 3, 64 MiB, owner kept",
				sc.Name, got.Replicas, got.MaxBytes, got.Metadata)
		}
		if sc.Name == topo.DeadLetterStream && got.MaxAge != ninetyDays {
			t.Errorf("dead-letter max age after restarts = %v; want %v", got.MaxAge, ninetyDays)
		}
	}
}

// The same with an explicit lower setting: STREAM_REPLICAS=1 never lowers an
// operator's R3 stream.
func TestExplicitLowerSettingNeverLowers(t *testing.T) {
	c := sharedCluster(t)
	js := connect(t, c.URLs())
	topo := named("LOWER")
	ctx := ctxT(t)
	sc := topo.RequestStreamConfig()
	sc.Replicas = 3
	if _, err := js.CreateStream(ctx, sc); err != nil {
		t.Fatalf("operator creates %s: %v", sc.Name, err)
	}
	if _, err := topology.Reconcile(ctx, js, topo, opts(1)); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	got := replicasOf(t, js, topo)
	if got[topo.RequestStream] != 3 {
		t.Errorf("request stream replicas = %d; want the operator's 3", got[topo.RequestStream])
	}
	if got[topo.ResultStream] != 1 {
		t.Errorf("new result stream replicas = %d; want the explicit 1", got[topo.ResultStream])
	}
}

// Streams an older version created with one replica on a cluster are
// raised to three by auto.
func TestAutoRaisesSingleReplicaStreams(t *testing.T) {
	c := sharedCluster(t)
	js := connect(t, c.URLs())
	topo := named("RAISE")
	ctx := ctxT(t)
	if _, err := topology.Reconcile(ctx, js, topo, opts(1)); err != nil {
		t.Fatalf("Reconcile(1): %v", err)
	}
	changes, err := topology.Reconcile(ctx, js, topo, opts(topology.AutoReplicas))
	if err != nil {
		t.Fatalf("Reconcile(auto): %v", err)
	}
	for name, n := range replicasOf(t, js, topo) {
		if n != 3 {
			t.Errorf("stream %s has %d replicas after auto; want 3 (changes: %v)", name, n, changes)
		}
	}
	consumersHavePeers(t, js, topo, 3)
}

// Reconciling what is already right changes nothing: no update calls, so
// several replicas starting together do not fight.
func TestReconcileIsIdempotent(t *testing.T) {
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(ns.Shutdown)
	js := connect(t, ns.URL())
	topo := topology.Default()
	if _, err := topology.Reconcile(ctxT(t), js, topo, opts(topology.AutoReplicas)); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	changes, err := topology.Reconcile(ctxT(t), js, topo, opts(topology.AutoReplicas))
	if err != nil {
		t.Fatalf("second Reconcile: %v", err)
	}
	for _, ch := range changes {
		if !ch.Kept {
			t.Errorf("second Reconcile changed %v", ch)
		}
	}
	// A request stream with another retention cannot be taken over.
	other := topology.Default()
	other.RequestStream = "OTHER"
	other.RequestPrefix = "other.create"
	other.OperationPrefix = "other"
	sc := other.RequestStreamConfig()
	sc.Retention = jetstream.LimitsPolicy
	if _, err := js.CreateStream(ctxT(t), sc); err != nil {
		t.Fatalf("create: %v", err)
	}
	other.ResultStream, other.DeadLetterStream = "OTHER_R", "OTHER_D"
	other.ResultPrefix, other.DeadLetterPrefix = "other.result", "other.dlq"
	if _, err := topology.Reconcile(ctxT(t), js, other, opts(topology.AutoReplicas)); !errors.Is(err, topology.ErrIncompatible) {
		t.Errorf("Reconcile over a Limits request stream = %v; want ErrIncompatible", err)
	}
}
