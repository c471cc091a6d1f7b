package topology_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/topology"
)

// deployDir holds the operator's definitions for the nats CLI, used when
// the service runs with PROVISION_STREAMS=false.
const deployDir = "../../deploy/nats"

// The service's defaults for ACK_WAIT and MAX_ACK_PENDING
// (cmd/consumer/config.go); the consumer files carry the same values.
const (
	deployAckWait       = 30 * time.Second
	deployMaxAckPending = 1000
)

// deployFile is one JSON definition from deployDir.
type deployFile[T any] struct {
	name string // base name, e.g. stream-zoom-users.json
	cfg  T
}

// readDeployFiles decodes every file of deployDir matching pattern into T,
// rejecting fields T does not know (a misspelt key would otherwise be
// dropped silently, by this test and by the nats CLI alike).
func readDeployFiles[T any](t *testing.T, pattern string) []deployFile[T] {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(deployDir, pattern))
	if err != nil {
		t.Fatalf("glob %s: %v", pattern, err)
	}
	if len(paths) == 0 {
		t.Fatalf("no %s in %s", pattern, deployDir)
	}
	var out []deployFile[T]
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		var cfg T
		if err := dec.Decode(&cfg); err != nil {
			t.Fatalf("decode %s: %v", p, err)
		}
		out = append(out, deployFile[T]{name: filepath.Base(p), cfg: cfg})
	}
	return out
}

// streamFileName is the file a stream's definition lives in:
// ZOOM_USERS_RESULTS -> stream-zoom-users-results.json.
func streamFileName(stream string) string {
	return "stream-" + strings.ToLower(strings.ReplaceAll(stream, "_", "-")) + ".json"
}

// deployField compares one field of a definition with the code's value.
func deployField(t *testing.T, file, field string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: %s = %v, the code has %v", file, field, got, want)
	}
}

func TestDeployStreamFilesMatchCode(t *testing.T) {
	files := readDeployFiles[jetstream.StreamConfig](t, "stream-*.json")
	want := topology.Default().StreamConfigs()
	if len(files) != len(want) {
		t.Errorf("%d stream files, the code defines %d streams", len(files), len(want))
	}
	byFile := map[string]jetstream.StreamConfig{}
	for _, f := range files {
		byFile[f.name] = f.cfg
	}
	for _, w := range want {
		file := streamFileName(w.Name)
		got, ok := byFile[file]
		if !ok {
			t.Errorf("stream %s: %s is missing", w.Name, file)
			continue
		}
		deployField(t, file, "name", got.Name, w.Name)
		deployField(t, file, "description", got.Description, w.Description)
		deployField(t, file, "subjects", got.Subjects, w.Subjects)
		deployField(t, file, "retention", got.Retention, w.Retention)
		deployField(t, file, "storage", got.Storage, w.Storage)
		deployField(t, file, "duplicate_window", got.Duplicates, w.Duplicates)
		deployField(t, file, "max_age", got.MaxAge, w.MaxAge)
		deployField(t, file, "discard", got.Discard, w.Discard)
		deployField(t, file, "allow_direct", got.AllowDirect, w.AllowDirect)
		// The files are for a cluster: STREAM_REPLICAS=auto's three.
		deployField(t, file, "num_replicas", got.Replicas, topology.MaxAutoReplicas)
	}
}

func TestDeployConsumerFilesMatchCode(t *testing.T) {
	files := readDeployFiles[jetstream.ConsumerConfig](t, "consumer-*.json")
	consumers := topology.Consumers(actions)
	if len(files) != len(consumers) {
		t.Errorf("%d consumer files, want one per action and the parked one (%d)", len(files), len(consumers))
	}
	byFile := map[string]jetstream.ConsumerConfig{}
	for _, f := range files {
		byFile[f.name] = f.cfg
	}
	topo := topology.Default()
	for _, a := range consumers {
		file := "consumer-" + a + ".json"
		got, ok := byFile[file]
		if !ok {
			t.Errorf("action %s: %s is missing", a, file)
			continue
		}
		w := topo.ConsumerConfig(a, deployAckWait, deployMaxAckPending)
		deployField(t, file, "durable_name", got.Durable, w.Durable)
		if got.Name != "" && got.Name != got.Durable {
			t.Errorf("%s: name %q differs from durable_name %q", file, got.Name, got.Durable)
		}
		deployField(t, file, "description", got.Description, w.Description)
		deployField(t, file, "filter_subject", got.FilterSubject, w.FilterSubject)
		deployField(t, file, "filter_subjects", got.FilterSubjects, w.FilterSubjects)
		deployField(t, file, "deliver_policy", got.DeliverPolicy, w.DeliverPolicy)
		deployField(t, file, "ack_policy", got.AckPolicy, w.AckPolicy)
		deployField(t, file, "ack_wait", got.AckWait, w.AckWait)
		deployField(t, file, "max_deliver", got.MaxDeliver, w.MaxDeliver)
		deployField(t, file, "max_ack_pending", got.MaxAckPending, w.MaxAckPending)
		deployField(t, file, "backoff", got.BackOff, w.BackOff)
		deployField(t, file, "inactive_threshold", got.InactiveThreshold, w.InactiveThreshold)
		deployField(t, file, "deliver_subject (pull consumer)", got.DeliverSubject, w.DeliverSubject)
	}
}

// deployBuckets are the code's key-value buckets, which the nats CLI
// creates from commands rather than JSON files.
func deployBuckets(topo topology.Topology) []jetstream.KeyValueConfig {
	return topo.BucketConfigs()
}

// ledgerConsumerFile is the ledger's consumer of the result stream (not a
// consumer-*.json: those are the request stream's).
const ledgerConsumerFile = "result-consumer-ledger.json"

func TestDeployLedgerConsumerFileMatchesCode(t *testing.T) {
	files := readDeployFiles[jetstream.ConsumerConfig](t, ledgerConsumerFile)
	got, w := files[0].cfg, topology.Default().LedgerConsumerConfig()
	file := ledgerConsumerFile
	deployField(t, file, "durable_name", got.Durable, w.Durable)
	deployField(t, file, "name", got.Name, w.Durable)
	deployField(t, file, "description", got.Description, w.Description)
	deployField(t, file, "filter_subject", got.FilterSubject, w.FilterSubject)
	deployField(t, file, "filter_subjects", got.FilterSubjects, w.FilterSubjects)
	deployField(t, file, "deliver_policy", got.DeliverPolicy, w.DeliverPolicy)
	deployField(t, file, "ack_policy", got.AckPolicy, w.AckPolicy)
	deployField(t, file, "ack_wait", got.AckWait, w.AckWait)
	deployField(t, file, "max_deliver", got.MaxDeliver, w.MaxDeliver)
	deployField(t, file, "max_ack_pending", got.MaxAckPending, w.MaxAckPending)
	deployField(t, file, "deliver_subject (pull consumer)", got.DeliverSubject, w.DeliverSubject)
	// apply.sh creates it on the result stream.
	script, err := os.ReadFile(filepath.Join(deployDir, "apply.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"result_stream=" + topology.Default().ResultStream, file} {
		if !strings.Contains(string(script), want) {
			t.Errorf("apply.sh does not mention %s", want)
		}
	}
}

// kvCommandRE finds `nats kv add|edit BUCKET ...` commands in the docs and
// the script.
var kvCommandRE = regexp.MustCompile("nats kv (add|edit) ([A-Za-z0-9_-]+) [^`]*")

// kvCommand is one `nats kv add|edit` command of deploy/nats.
type kvCommand struct {
	where string // "README.md: nats kv add ..."
	add   bool
	cfg   jetstream.KeyValueConfig
}

// deployKVCommands returns every `nats kv add|edit` command written in
// deploy/nats/README.md and apply.sh, by bucket. Every bucket of the code
// must have an add command in both files, and no other bucket may appear.
func deployKVCommands(t *testing.T) map[string][]kvCommand {
	t.Helper()
	out := map[string][]kvCommand{}
	adds := map[string]bool{}
	for _, name := range []string{"README.md", "apply.sh"} {
		data, err := os.ReadFile(filepath.Join(deployDir, name))
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			m := kvCommandRE.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			cmd := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[0]), ">/dev/null"))
			add := m[1] == "add"
			if add {
				adds[name+" "+m[2]] = true
			}
			out[m[2]] = append(out[m[2]], kvCommand{where: name + ": " + cmd, add: add, cfg: parseKVCommand(t, name, cmd, add)})
		}
	}
	code := map[string]bool{}
	for _, b := range deployBuckets(topology.Default()) {
		code[b.Bucket] = true
		for _, name := range []string{"README.md", "apply.sh"} {
			if !adds[name+" "+b.Bucket] {
				t.Errorf("%s: no `nats kv add %s` command", name, b.Bucket)
			}
		}
	}
	for b, cmds := range out {
		if !code[b] {
			t.Errorf("%s: bucket %s is not one the code uses", cmds[0].where, b)
		}
	}
	return out
}

// parseKVCommand turns a `nats kv add|edit BUCKET --flag=value ...` line
// into the KeyValueConfig the nats CLI builds from it (its defaults:
// history 1, replicas 1, file storage).
func parseKVCommand(t *testing.T, file, cmd string, add bool) jetstream.KeyValueConfig {
	t.Helper()
	args := shellWords(t, cmd)
	cfg := jetstream.KeyValueConfig{Bucket: args[3], History: 1, Replicas: 1, Storage: jetstream.FileStorage}
	seen := map[string]bool{}
	for _, arg := range args[4:] {
		flag, val, ok := strings.Cut(arg, "=")
		if !ok || !strings.HasPrefix(flag, "--") {
			t.Errorf("%s: %q: write flags as --flag=value, got %q", file, cmd, arg)
			continue
		}
		seen[flag] = true
		switch flag {
		case "--history":
			n, err := strconv.ParseUint(val, 10, 8)
			if err != nil {
				t.Errorf("%s: %s: %v", file, arg, err)
			}
			cfg.History = uint8(n)
		case "--ttl":
			d, err := time.ParseDuration(val)
			if err != nil {
				t.Errorf("%s: %s: %v", file, arg, err)
			}
			cfg.TTL = d
		case "--storage":
			if !add {
				t.Errorf("%s: %q: nats kv edit has no --storage", file, cmd)
			}
			switch val {
			case "file":
				cfg.Storage = jetstream.FileStorage
			case "memory":
				cfg.Storage = jetstream.MemoryStorage
			default:
				t.Errorf("%s: %s: want file or memory", file, arg)
			}
		case "--replicas":
			n, err := strconv.Atoi(val)
			if err != nil {
				t.Errorf("%s: %s: %v", file, arg, err)
			}
			cfg.Replicas = n
		case "--description":
			cfg.Description = val
		default:
			t.Errorf("%s: %q: flag %s is not checked against the code; extend this test", file, cmd, flag)
		}
	}
	// The documented flags must be explicit, not CLI defaults.
	must := []string{"--history", "--ttl", "--replicas", "--description"}
	if add {
		must = append(must, "--storage")
	}
	for _, f := range must {
		if !seen[f] {
			t.Errorf("%s: %q: missing %s", file, cmd, f)
		}
	}
	return cfg
}

// shellWords splits a command line on blanks, honouring double quotes (all
// the quoting the deploy files use).
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted = !quoted
			inWord = true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quotes in %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

func TestDeployKVCommandsMatchCode(t *testing.T) {
	topo := topology.Default()
	if a := topo.AttemptsConfig(); a.History != 1 || a.TTL != 168*time.Hour || a.Storage != jetstream.FileStorage {
		t.Errorf("AttemptsConfig = history %d, ttl %v, storage %v; deploy/nats/README.md documents history 1, ttl 168h, file storage",
			a.History, a.TTL, a.Storage)
	}
	cmds := deployKVCommands(t)
	for _, want := range deployBuckets(topo) {
		for _, c := range cmds[want.Bucket] {
			got := c.cfg
			deployField(t, c.where, "bucket", got.Bucket, want.Bucket)
			deployField(t, c.where, "history", got.History, want.History)
			deployField(t, c.where, "ttl", got.TTL, want.TTL)
			deployField(t, c.where, "storage", got.Storage, want.Storage)
			deployField(t, c.where, "replicas", got.Replicas, topology.MaxAutoReplicas)
			deployField(t, c.where, "description", got.Description, want.Description)
		}
	}
}

// TestDeployDefinitionsOnServer applies the definitions as an operator
// would, checks that the service accepts them (PROVISION_STREAMS=false),
// and that the service's own provisioning on top changes nothing, on a
// three-node cluster (the files ask for three replicas).
func TestDeployDefinitionsOnServer(t *testing.T) {
	js := connect(t, sharedCluster(t).URLs())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo := topology.Default()

	for _, f := range readDeployFiles[jetstream.StreamConfig](t, "stream-*.json") {
		if _, err := js.CreateStream(ctx, f.cfg); err != nil {
			t.Fatalf("create stream from %s: %v", f.name, err)
		}
	}
	if err := topology.Check(ctx, js, topo, actions); err == nil || !strings.Contains(err.Error(), "key-value bucket") {
		t.Fatalf("Check without the key-value buckets = %v, want an error naming a bucket", err)
	}

	// The buckets, as the README's `nats kv add` commands create them.
	cmds := deployKVCommands(t)
	for _, b := range deployBuckets(topo) {
		var cfg *jetstream.KeyValueConfig
		for _, c := range cmds[b.Bucket] {
			if c.add && strings.HasPrefix(c.where, "README.md: ") {
				cfg = &c.cfg
			}
		}
		if cfg == nil {
			t.Fatalf("README.md has no `nats kv add %s` command", b.Bucket)
		}
		if _, err := js.CreateKeyValue(ctx, *cfg); err != nil {
			t.Fatalf("create key-value bucket %s: %v", b.Bucket, err)
		}
		if _, err := js.Stream(ctx, "KV_"+b.Bucket); err != nil {
			t.Fatalf("the bucket's stream KV_%s: %v", b.Bucket, err)
		}
	}

	for _, f := range readDeployFiles[jetstream.ConsumerConfig](t, "consumer-*.json") {
		if _, err := js.CreateConsumer(ctx, topo.RequestStream, f.cfg); err != nil {
			t.Fatalf("create consumer from %s: %v", f.name, err)
		}
	}
	if err := topology.Check(ctx, js, topo, actions); err == nil || !strings.Contains(err.Error(), topo.ConsumerName(topology.LedgerConsumer)) {
		t.Fatalf("Check without the ledger's consumer = %v; want an error naming it", err)
	}
	for _, f := range readDeployFiles[jetstream.ConsumerConfig](t, ledgerConsumerFile) {
		if _, err := js.CreateConsumer(ctx, topo.ResultStream, f.cfg); err != nil {
			t.Fatalf("create consumer from %s: %v", f.name, err)
		}
	}
	if err := topology.Check(ctx, js, topo, actions); err != nil {
		t.Fatalf("Check after applying deploy/nats: %v", err)
	}

	before := deploySnapshot(ctx, t, js, topo)
	changes, err := topology.Reconcile(ctx, js, topo, topology.Options{Actions: actions, AckWait: deployAckWait, MaxAckPending: deployMaxAckPending})
	if err != nil {
		t.Fatalf("Reconcile on top of the operator's definitions: %v", err)
	}
	for _, ch := range changes {
		if !ch.Kept {
			t.Errorf("Reconcile changed the operator's definitions: %v", ch)
		}
	}
	after := deploySnapshot(ctx, t, js, topo)
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if !reflect.DeepEqual(before[k], after[k]) {
			b, _ := json.Marshal(before[k])
			a, _ := json.Marshal(after[k])
			t.Errorf("Reconcile changed %s:\n  deploy/nats: %s\n  service:     %s", k, b, a)
		}
	}
	if err := topology.Check(ctx, js, topo, actions); err != nil {
		t.Fatalf("Check after Provision: %v", err)
	}
}

// deploySnapshot returns the server's configuration of every stream
// (including the bucket's) and consumer of topo.
func deploySnapshot(ctx context.Context, t *testing.T, js jetstream.JetStream, topo topology.Topology) map[string]any {
	t.Helper()
	out := map[string]any{}
	var streams []string
	for _, b := range deployBuckets(topo) {
		streams = append(streams, "KV_"+b.Bucket)
	}
	for _, sc := range topo.StreamConfigs() {
		streams = append(streams, sc.Name)
	}
	for _, name := range streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		out["stream "+name] = s.CachedInfo().Config
	}
	for _, a := range actions {
		c, err := js.Consumer(ctx, topo.RequestStream, topo.ConsumerName(a))
		if err != nil {
			t.Fatalf("consumer %s: %v", topo.ConsumerName(a), err)
		}
		out["consumer "+topo.ConsumerName(a)] = c.CachedInfo().Config
	}
	c, err := js.Consumer(ctx, topo.ResultStream, topo.ConsumerName(topology.LedgerConsumer))
	if err != nil {
		t.Fatalf("consumer %s: %v", topo.ConsumerName(topology.LedgerConsumer), err)
	}
	out["consumer "+topo.ConsumerName(topology.LedgerConsumer)] = c.CachedInfo().Config
	return out
}
