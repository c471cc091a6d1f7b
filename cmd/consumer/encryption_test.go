package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/zoomprov/consumer/testenv"
)

// helmEncryption is deploy/nats/helm-values-encryption.yaml, as far as the
// test reads it.
type helmEncryption struct {
	Config struct {
		JetStream struct {
			Enabled bool              `yaml:"enabled"`
			Merge   map[string]string `yaml:"merge"`
		} `yaml:"jetstream"`
	} `yaml:"config"`
	Container struct {
		Env map[string]struct {
			ValueFrom struct {
				SecretKeyRef struct {
					Name string `yaml:"name"`
					Key  string `yaml:"key"`
				} `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
	} `yaml:"container"`
}

// chartVariable is the nats chart's spelling of an unquoted configuration
// variable, << $NAME >>.
var chartVariable = regexp.MustCompile(`^<< (\$[A-Z_]+) >>$`)

// Ensure the JetStream encryption the deploy files document works: the
// values for the nats Helm chart ask for chachapoly with a key from a
// Secret (never in the values), and a server configured from them, the key
// in its environment, keeps a request's password out of the stream's
// files, where a server without it keeps it in clear.
func TestJetStreamEncryptionHidesPasswords(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nats", "helm-values-encryption.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v helmEncryption
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	js := v.Config.JetStream
	m := chartVariable.FindStringSubmatch(js.Merge["key"])
	if !js.Enabled || js.Merge["cipher"] != "chachapoly" || m == nil {
		t.Fatalf("helm values jetstream = %+v; want enabled, cipher chachapoly, key << $VAR >>", js)
	}
	envName := strings.TrimPrefix(m[1], "$")
	if ref := v.Container.Env[envName].ValueFrom.SecretKeyRef; ref.Name == "" || ref.Key == "" {
		t.Errorf("helm values: %s comes from no Secret (container.env.%s.valueFrom.secretKeyRef)", envName, envName)
	}
	t.Setenv(envName, "a-test-key-of-the-jetstream-encryption-0123456789")

	const password = "At-Rest-Pw-4711!"
	for _, encrypted := range []bool{true, false} {
		dir := t.TempDir()
		conf := fmt.Sprintf("listen: 127.0.0.1:-1\njetstream {\n  store_dir: %q\n", dir)
		if encrypted {
			// As the chart renders the merge: the variable unquoted.
			conf += fmt.Sprintf("  cipher: %s\n  key: %s\n", js.Merge["cipher"], m[1])
		}
		conf += "}\n"
		confFile := writeFile(t, "nats.conf", conf)
		opts, err := natsserver.ProcessConfigFile(confFile)
		if err != nil {
			t.Fatalf("nats.conf %q: %v", conf, err)
		}
		opts.NoLog, opts.NoSigs = true, true
		if files := storeFiles(t, opts, password); bytes.Contains(files, []byte(password)) == encrypted {
			t.Errorf("encryption %v: the stream's files hold the password: %v; want %v", encrypted, !encrypted, !encrypted)
		}
	}
}

// storeFiles runs a server with opts, stores a request holding password in
// a file stream, stops the server and returns the stream's files, as a
// backup of the store would hold them.
func storeFiles(t *testing.T, opts *natsserver.Options, password string) []byte {
	t.Helper()
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	stopped := false
	stop := func() {
		if !stopped {
			srv.Shutdown()
			srv.WaitForShutdown()
			stopped = true
		}
	}
	defer stop()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZOOM_USERS", Subjects: []string{"zoom.users.create.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	body := `{"action":"autoCreate","user_info":{"email":"pat@example.com","type":1,"password":"` + password + `"}}`
	if _, err := js.Publish(ctx, "zoom.users.create.autoCreate", []byte(body)); err != nil {
		t.Fatal(err)
	}
	stored, err := testenv.StreamBytes(ctx, js, "ZOOM_USERS")
	if err != nil || !bytes.Contains(stored, []byte(password)) {
		t.Fatalf("the server serves %q, %v; want the request as published", stored, err)
	}
	// Stopped, the server has written everything it holds.
	nc.Close()
	stop()
	files, err := testenv.StreamFiles(opts.StoreDir, "ZOOM_USERS")
	if err != nil {
		t.Fatal(err)
	}
	return files
}
