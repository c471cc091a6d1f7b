package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// k8sDir holds the Kubernetes manifests.
const k8sDir = "../../deploy/k8s"

// k8sKinds is the apiVersion each kind in deploy/k8s must have.
var k8sKinds = map[string]string{
	"Namespace":           "v1",
	"ServiceAccount":      "v1",
	"ConfigMap":           "v1",
	"Secret":              "v1",
	"Service":             "v1",
	"Deployment":          "apps/v1",
	"PodDisruptionBudget": "policy/v1",
	"NetworkPolicy":       "networking.k8s.io/v1",
	"ServiceMonitor":      "monitoring.coreos.com/v1",
	"PrometheusRule":      "monitoring.coreos.com/v1",
	"ScaledObject":        "keda.sh/v1alpha1",
	"Stream":              "jetstream.nats.io/v1beta2",
	"Consumer":            "jetstream.nats.io/v1beta2",
	"KeyValue":            "jetstream.nats.io/v1beta2",
	"Kustomization":       "kustomize.config.k8s.io/v1beta1",
	"Component":           "kustomize.config.k8s.io/v1alpha1",
}

// sdkEnv are variables the manifests may set that are not settings of
// cmd/consumer: the OpenTelemetry SDK and the Go runtime read them
// themselves.
var sdkEnv = map[string]bool{
	"OTEL_SERVICE_NAME": true, "OTEL_RESOURCE_ATTRIBUTES": true,
	"OTEL_EXPORTER_OTLP_HEADERS": true, "OTEL_EXPORTER_OTLP_TIMEOUT": true,
	"OTEL_EXPORTER_OTLP_COMPRESSION": true, "OTEL_EXPORTER_OTLP_CERTIFICATE": true,
	"OTEL_TRACES_SAMPLER": true, "OTEL_TRACES_SAMPLER_ARG": true,
	"GOMEMLIMIT": true, "GOMAXPROCS": true,
}

// manifest is one YAML document of deploy/k8s.
type manifest struct {
	file string // the path under deploy/k8s, e.g. components/keda/keda-scaledobject.yaml
	doc  *yaml.Node
	head struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	}
}

// decode decodes the document into v.
func (m manifest) decode(t *testing.T, v any) {
	t.Helper()
	if err := m.doc.Decode(v); err != nil {
		t.Fatalf("%s: %s %s: %v", m.file, m.head.Kind, m.head.Metadata.Name, err)
	}
}

// readManifests parses every YAML document of every *.yaml file in
// deploy/k8s and its directories (the components) and checks each has a
// known kind with its apiVersion.
func readManifests(t *testing.T) []manifest {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(k8sDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil || len(paths) == 0 {
		t.Fatalf("no YAML in %s (%v)", k8sDir, err)
	}
	var out []manifest
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d: %v", filepath.Base(p), i, err)
			}
			rel, _ := filepath.Rel(k8sDir, p)
			m := manifest{file: filepath.ToSlash(rel), doc: &doc}
			m.decode(t, &m.head)
			if want, ok := k8sKinds[m.head.Kind]; !ok || m.head.APIVersion != want {
				t.Errorf("%s document %d: kind %q apiVersion %q; want a known kind with its apiVersion (%s)", m.file, i, m.head.Kind, m.head.APIVersion, want)
			}
			if m.head.Kind != "Kustomization" && m.head.Kind != "Component" && m.head.Metadata.Name == "" {
				t.Errorf("%s document %d (%s): no metadata.name", m.file, i, m.head.Kind)
			}
			out = append(out, m)
		}
	}
	return out
}

func byKind(ms []manifest, kind string) []manifest {
	var out []manifest
	for _, m := range ms {
		if m.head.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

func single(t *testing.T, ms []manifest, kind string) manifest {
	t.Helper()
	got := byKind(ms, kind)
	if len(got) != 1 {
		t.Fatalf("%d %s documents in %s; want 1", len(got), kind, k8sDir)
	}
	return got[0]
}

// Kubernetes types, reduced to what the test checks.
type (
	k8sProbe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port any    `yaml:"port"`
		} `yaml:"httpGet"`
	}
	k8sContainer struct {
		Name    string   `yaml:"name"`
		Args    []string `yaml:"args"`
		EnvFrom []struct {
			ConfigMapRef struct {
				Name string `yaml:"name"`
			} `yaml:"configMapRef"`
		} `yaml:"envFrom"`
		Env []struct {
			Name string `yaml:"name"`
		} `yaml:"env"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
		ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
		StartupProbe   *k8sProbe `yaml:"startupProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	}
	k8sDeployment struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata struct {
					Labels map[string]string `yaml:"labels"`
				} `yaml:"metadata"`
				Spec struct {
					TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
					SecurityContext               struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
						RunAsUser    int  `yaml:"runAsUser"`
					} `yaml:"securityContext"`
					Containers []k8sContainer `yaml:"containers"`
					Volumes    []struct {
						Name   string `yaml:"name"`
						Secret *struct {
							SecretName string `yaml:"secretName"`
						} `yaml:"secret"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
)

// Ensure deploy/k8s is valid YAML throughout, every document has a known
// kind and apiVersion, and the manifests agree with the code: probes on
// /healthz and /readyz at HTTP_ADDR's port, a grace period longer than the
// shutdown bound, only real settings in the environment, secrets mounted
// where the *_FILE settings point, the metrics Service scraped, alerts on
// metrics that exist, and NACK and KEDA definitions equal to the service's
// topology.
func TestK8sManifests(t *testing.T) {
	ms := readManifests(t)

	checkKustomize(t, ms)

	// The ConfigMap: only real settings, and values the service accepts.
	var cm struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
	}
	single(t, ms, "ConfigMap").decode(t, &cm)
	known := map[string]bool{}
	fileSettings := map[string]bool{}
	for _, s := range settings() {
		known[s.env] = true
		if s.secret || s.file {
			known[s.env+"_FILE"] = true
			fileSettings[s.env+"_FILE"] = true
		}
	}
	fileSettings[sealKeySetting] = true
	env := map[string]string{}
	for k, v := range cm.Data {
		if !known[k] && !sdkEnv[k] {
			t.Errorf("configmap.yaml sets %s, which is not a setting of cmd/consumer (nor an OTEL_/Go runtime variable)", k)
		}
		if !fileSettings[k] {
			env[k] = v
		}
	}
	cfg, err := parseConfig(newFlagSet("k8s"), nil, mapEnv(env))
	if err != nil {
		t.Fatalf("configmap.yaml values: %v", err)
	}

	// The Deployment.
	dm := single(t, ms, "Deployment")
	var dep k8sDeployment
	dm.decode(t, &dep)
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("deployment has %d containers; want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef.Name != cm.Metadata.Name {
		t.Errorf("container envFrom = %+v; want the ConfigMap %s", c.EnvFrom, cm.Metadata.Name)
	}
	for _, e := range c.Env {
		if !known[e.Name] && !sdkEnv[e.Name] {
			t.Errorf("deployment sets %s, which is not a setting of cmd/consumer (nor an OTEL_/Go runtime variable)", e.Name)
		}
	}
	if len(c.Args) != 1 || c.Args[0] != "run" {
		t.Errorf("container args = %q; want [run]", c.Args)
	}
	_, portStr, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		t.Fatalf("HTTP_ADDR %q: %v", cfg.HTTPAddr, err)
	}
	httpPort, _ := strconv.Atoi(portStr)
	portName := ""
	for _, p := range c.Ports {
		if p.ContainerPort == httpPort {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Fatalf("no container port %d (HTTP_ADDR %s)", httpPort, cfg.HTTPAddr)
	}
	for _, pr := range []struct {
		name  string
		probe *k8sProbe
		path  string
	}{
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
		{"startupProbe", c.StartupProbe, "/healthz"},
	} {
		if pr.probe == nil {
			t.Errorf("deployment has no %s", pr.name)
			continue
		}
		port := fmt.Sprint(pr.probe.HTTPGet.Port)
		if pr.probe.HTTPGet.Path != pr.path || (port != portName && port != portStr) {
			t.Errorf("%s = GET %s on port %s; want GET %s on %s (%d)", pr.name, pr.probe.HTTPGet.Path, port, pr.path, portName, httpPort)
		}
	}
	shutdownBound := cfg.ShutdownTimeout + drainTimeout + tracerShutdownTimeout
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= shutdownBound {
		t.Errorf("terminationGracePeriodSeconds = %v; want more than SHUTDOWN_TIMEOUT %v + NATS drain %v + trace flush %v",
			grace, cfg.ShutdownTimeout, drainTimeout, tracerShutdownTimeout)
	}
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("pod securityContext = %+v; want runAsNonRoot with a non-zero uid", pod.SecurityContext)
	}
	sc := c.SecurityContext
	if !sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext = %+v; want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("container resources = %+v; want cpu and memory requests and a memory limit", c.Resources)
	}
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("pod template lacks the selector label %s=%s", k, v)
		}
	}

	// Secrets: every *_FILE setting points into a mounted Secret, at a key
	// the example Secret has.
	secretKeys := map[string][]string{}
	for _, sm := range byKind(ms, "Secret") {
		var s struct {
			StringData map[string]string `yaml:"stringData"`
		}
		sm.decode(t, &s)
		for k := range s.StringData {
			secretKeys[sm.head.Metadata.Name] = append(secretKeys[sm.head.Metadata.Name], k)
		}
	}
	mounts := map[string]string{} // mount path -> secret name
	for _, v := range pod.Volumes {
		if v.Secret == nil {
			continue
		}
		if _, ok := secretKeys[v.Secret.SecretName]; !ok {
			t.Errorf("volume %s mounts Secret %s, which secret.example.yaml does not show", v.Name, v.Secret.SecretName)
		}
		for _, vm := range c.VolumeMounts {
			if vm.Name == v.Name {
				mounts[vm.MountPath] = v.Secret.SecretName
			}
		}
	}
	for k, path := range cm.Data {
		if !fileSettings[k] {
			continue
		}
		for _, path := range strings.Split(path, ",") {
			secret, ok := mounts[filepath.Dir(path)]
			if !ok || !slices.Contains(secretKeys[secret], filepath.Base(path)) {
				t.Errorf("%s=%s is not a key of a mounted Secret (mounts %v, keys %v)", k, path, mounts, secretKeys)
			}
		}
	}
	for _, k := range []string{"ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET"} {
		if cm.Data[k+"_FILE"] == "" {
			t.Errorf("configmap.yaml does not set %s_FILE; the Zoom credentials come from a Secret", k)
		}
	}

	// The metrics Service and its ServiceMonitor.
	var svc struct {
		Spec struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Name       string `yaml:"name"`
				TargetPort any    `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	single(t, ms, "Service").decode(t, &svc)
	svcPort := ""
	for _, p := range svc.Spec.Ports {
		if tp := fmt.Sprint(p.TargetPort); tp == portName || tp == portStr {
			svcPort = p.Name
		}
	}
	if svcPort == "" {
		t.Errorf("Service ports %+v do not target the container's %s port", svc.Spec.Ports, portName)
	}
	var smon struct {
		Spec struct {
			Endpoints []struct {
				Port string `yaml:"port"`
				Path string `yaml:"path"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	single(t, ms, "ServiceMonitor").decode(t, &smon)
	if len(smon.Spec.Endpoints) != 1 || smon.Spec.Endpoints[0].Port != svcPort || smon.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints = %+v; want port %s path /metrics", smon.Spec.Endpoints, svcPort)
	}

	checkNACK(t, ms, cfg)
	checkKEDA(t, single(t, ms, "ScaledObject"), dm.head.Metadata.Name)
	checkNetworkPolicy(t, single(t, ms, "NetworkPolicy"), dep, cfg, portName, httpPort)

	var pdb struct {
		Spec struct {
			MaxUnavailable any `yaml:"maxUnavailable"`
			Selector       struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
		} `yaml:"spec"`
	}
	single(t, ms, "PodDisruptionBudget").decode(t, &pdb)
	if fmt.Sprint(pdb.Spec.Selector.MatchLabels) != fmt.Sprint(dep.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget selects %v; want the Deployment's %v", pdb.Spec.Selector.MatchLabels, dep.Spec.Selector.MatchLabels)
	}
}

// alertRule is one rule of the PrometheusRule.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         *string           `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// alertRules returns every rule of the PrometheusRule.
func alertRules(t *testing.T, ms []manifest) []alertRule {
	t.Helper()
	var rule struct {
		Spec struct {
			Groups []struct {
				Name  string      `yaml:"name"`
				Rules []alertRule `yaml:"rules"`
			} `yaml:"groups"`
		} `yaml:"spec"`
	}
	single(t, ms, "PrometheusRule").decode(t, &rule)
	var out []alertRule
	for _, g := range rule.Spec.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("the PrometheusRule has no rules")
	}
	return out
}

// runbookBase is where every alert's runbook_url points: the operations
// guide on the repository's main branch, then "#" and the section's
// anchor.
const runbookBase = "https://github.com/zoomprov/consumer/blob/main/docs/operations.md#"

// markdownAnchors returns the anchors GitHub gives the headings of a
// Markdown text (lower case; letters, digits, spaces turned into hyphens,
// hyphens and underscores kept; a repeated heading gets -1, -2, ...),
// with each heading's title.
func markdownAnchors(text string) map[string]string {
	out := map[string]string{}
	seen := map[string]int{}
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		out[a] = title
	}
	return out
}

// Ensure every alerting rule is complete and documented: an expression, a
// for (0m for "at once"), a severity of warning or critical, a summary, and
// a runbook_url pointing at a section of docs/operations.md titled with the
// alert's name; and that the alerts people rely on exist. (.ci/run lints
// the expressions with promtool; TestDashboardAndRulesUseExportedMetrics
// checks their metrics.)
func TestPrometheusRules(t *testing.T) {
	rules := alertRules(t, readManifests(t))
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	anchors := markdownAnchors(string(doc))
	names := map[string]bool{}
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("rule %q is not an alert; want only alerts (or document recording rules here)", r.Record)
			continue
		}
		if names[r.Alert] {
			t.Errorf("alert %s defined twice", r.Alert)
		}
		names[r.Alert] = true
		if strings.TrimSpace(r.Expr) == "" {
			t.Errorf("alert %s has no expr", r.Alert)
		}
		if r.For == nil {
			t.Errorf("alert %s has no for; write for: 0m to fire at once", r.Alert)
		} else if _, err := time.ParseDuration(*r.For); err != nil {
			t.Errorf("alert %s: for %q: %v", r.Alert, *r.For, err)
		}
		if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
			t.Errorf("alert %s: severity %q; want warning or critical", r.Alert, sev)
		}
		if r.Annotations["summary"] == "" {
			t.Errorf("alert %s has no summary", r.Alert)
		}
		url := r.Annotations["runbook_url"]
		anchor, ok := strings.CutPrefix(url, runbookBase)
		switch {
		case !ok:
			t.Errorf("alert %s: runbook_url %q; want %s<anchor>", r.Alert, url, runbookBase)
		case anchors[anchor] != r.Alert:
			t.Errorf("alert %s: runbook_url anchor #%s is the heading %q in %s; want a section titled %s", r.Alert, anchor, anchors[anchor], operationsDoc, r.Alert)
		}
	}
	for _, want := range []string{
		"ZoomProvisionerQuotaExhausted", "ZoomProvisionerDeadLetters", "ZoomProvisionerPaused", "ZoomProvisionerNotReady",
		"ZoomProvisionerDown", "ZoomProvisionerRateLimited", "ZoomProvisionerBacklogStalled", "ZoomProvisionerBacklogOld",
		"ZoomProvisioningGuardTripped", "ZoomProvisionerDriftPersisting",
	} {
		if !names[want] {
			t.Errorf("no alert %s", want)
		}
	}
	for _, r := range rules {
		if strings.Contains(r.Expr, "zoomprov_guard_tripped") && r.Alert != "ZoomProvisioningGuardTripped" {
			t.Errorf("alert %s uses zoomprov_guard_tripped; want that in ZoomProvisioningGuardTripped", r.Alert)
		}
	}
}

// checkNACK compares the NACK resources with the service's topology.
func checkNACK(t *testing.T, ms []manifest, cfg Config) {
	t.Helper()
	topo := topology.Default()
	dur := func(file, field, v string) time.Duration {
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Errorf("%s %s %q: %v", file, field, v, err)
		}
		return d
	}
	streams := map[string]manifest{}
	for _, m := range byKind(ms, "Stream") {
		var s struct {
			Spec struct {
				Name            string   `yaml:"name"`
				Subjects        []string `yaml:"subjects"`
				Retention       string   `yaml:"retention"`
				Storage         string   `yaml:"storage"`
				Discard         string   `yaml:"discard"`
				DuplicateWindow string   `yaml:"duplicateWindow"`
				MaxAge          string   `yaml:"maxAge"`
				MaxMsgSize      int32    `yaml:"maxMsgSize"`
				Replicas        int      `yaml:"replicas"`
			} `yaml:"spec"`
		}
		m.decode(t, &s)
		streams[s.Spec.Name] = m
		var want *jetstream.StreamConfig
		for _, sc := range topo.StreamConfigs() {
			if sc.Name == s.Spec.Name {
				want = &sc
			}
		}
		if want == nil {
			t.Errorf("NACK Stream %s is not a stream of the topology", s.Spec.Name)
			continue
		}
		retention := map[jetstream.RetentionPolicy]string{jetstream.LimitsPolicy: "limits", jetstream.WorkQueuePolicy: "workqueue", jetstream.InterestPolicy: "interest"}
		discard := map[jetstream.DiscardPolicy]string{jetstream.DiscardOld: "old", jetstream.DiscardNew: "new"}
		got := fmt.Sprintf("subjects %v retention %s storage %s discard %s duplicates %v max age %v max msg size %d replicas %d",
			s.Spec.Subjects, s.Spec.Retention, s.Spec.Storage, s.Spec.Discard, dur(m.file, "duplicateWindow", s.Spec.DuplicateWindow), dur(m.file, "maxAge", s.Spec.MaxAge), s.Spec.MaxMsgSize, s.Spec.Replicas)
		wantStr := fmt.Sprintf("subjects %v retention %s storage %s discard %s duplicates %v max age %v max msg size %d replicas %d",
			want.Subjects, retention[want.Retention], "file", discard[want.Discard], want.Duplicates, want.MaxAge, want.MaxMsgSize, topology.MaxAutoReplicas)
		if got != wantStr {
			t.Errorf("NACK Stream %s:\n got  %s\n want %s", s.Spec.Name, got, wantStr)
		}
	}
	for _, sc := range topo.StreamConfigs() {
		if _, ok := streams[sc.Name]; !ok {
			t.Errorf("no NACK Stream %s", sc.Name)
		}
	}

	consumers := map[string]bool{}
	for _, m := range byKind(ms, "Consumer") {
		var c struct {
			Spec struct {
				StreamName    string `yaml:"streamName"`
				DurableName   string `yaml:"durableName"`
				FilterSubject string `yaml:"filterSubject"`
				DeliverPolicy string `yaml:"deliverPolicy"`
				AckPolicy     string `yaml:"ackPolicy"`
				AckWait       string `yaml:"ackWait"`
				MaxDeliver    int    `yaml:"maxDeliver"`
				MaxAckPending int    `yaml:"maxAckPending"`
				PauseUntil    string `yaml:"pauseUntil"`
			} `yaml:"spec"`
		}
		m.decode(t, &c)
		if c.Spec.StreamName == topo.ResultStream && strings.Contains(m.file, "example") {
			// An audit subscriber's consumer: result events only.
			if c.Spec.FilterSubject != topo.ResultPrefix+".>" {
				t.Errorf("%s: audit consumer filters %q; want %s.>", m.file, c.Spec.FilterSubject, topo.ResultPrefix)
			}
			continue
		}
		if c.Spec.DurableName == topo.ConsumerName(topology.LedgerConsumer) {
			// The ledger's consumer of the results.
			consumers[c.Spec.DurableName] = true
			want := topo.LedgerConsumerConfig()
			got := fmt.Sprintf("stream %s filter %s deliver %s ack %s ack wait %v max deliver %d max ack pending %d",
				c.Spec.StreamName, c.Spec.FilterSubject, c.Spec.DeliverPolicy, c.Spec.AckPolicy, dur(m.file, "ackWait", c.Spec.AckWait), c.Spec.MaxDeliver, c.Spec.MaxAckPending)
			wantStr := fmt.Sprintf("stream %s filter %s deliver %s ack %s ack wait %v max deliver %d max ack pending %d",
				topo.ResultStream, want.FilterSubject, "all", "explicit", want.AckWait, want.MaxDeliver, want.MaxAckPending)
			if got != wantStr {
				t.Errorf("NACK Consumer %s:\n got  %s\n want %s", c.Spec.DurableName, got, wantStr)
			}
			continue
		}
		var action string
		for _, a := range consumersWithParked() {
			if topo.ConsumerName(a) == c.Spec.DurableName {
				action = a
			}
		}
		if action == "" {
			t.Errorf("NACK Consumer %s is not a consumer of the topology", c.Spec.DurableName)
			continue
		}
		consumers[c.Spec.DurableName] = true
		want := topo.ConsumerConfig(action, cfg.AckWait, cfg.MaxAckPending)
		got := fmt.Sprintf("stream %s filter %s deliver %s ack %s ack wait %v max deliver %d max ack pending %d",
			c.Spec.StreamName, c.Spec.FilterSubject, c.Spec.DeliverPolicy, c.Spec.AckPolicy, dur(m.file, "ackWait", c.Spec.AckWait), c.Spec.MaxDeliver, c.Spec.MaxAckPending)
		wantStr := fmt.Sprintf("stream %s filter %s deliver %s ack %s ack wait %v max deliver %d max ack pending %d",
			topo.RequestStream, want.FilterSubject, "all", "explicit", want.AckWait, want.MaxDeliver, want.MaxAckPending)
		if got != wantStr {
			t.Errorf("NACK Consumer %s (ACK_WAIT and MAX_ACK_PENDING from configmap.yaml):\n got  %s\n want %s", c.Spec.DurableName, got, wantStr)
		}
		if c.Spec.PauseUntil != "" {
			t.Errorf("NACK Consumer %s sets pauseUntil; the service pauses and resumes it at run time", c.Spec.DurableName)
		}
	}
	for _, a := range append(consumersWithParked(), topology.LedgerConsumer) {
		if !consumers[topo.ConsumerName(a)] {
			t.Errorf("no NACK Consumer %s", topo.ConsumerName(a))
		}
	}

	buckets := map[string]bool{}
	for _, m := range byKind(ms, "KeyValue") {
		var kv struct {
			Spec struct {
				Bucket   string `yaml:"bucket"`
				History  int    `yaml:"history"`
				TTL      string `yaml:"ttl"`
				Storage  string `yaml:"storage"`
				Replicas int    `yaml:"replicas"`
			} `yaml:"spec"`
		}
		m.decode(t, &kv)
		var want *jetstream.KeyValueConfig
		for _, kc := range topo.BucketConfigs() {
			if kc.Bucket == kv.Spec.Bucket {
				want = &kc
			}
		}
		if want == nil {
			t.Errorf("NACK KeyValue %s is not a bucket of the topology", kv.Spec.Bucket)
			continue
		}
		buckets[kv.Spec.Bucket] = true
		got := fmt.Sprintf("history %d ttl %v storage %s replicas %d", kv.Spec.History, dur(m.file, "ttl", kv.Spec.TTL), kv.Spec.Storage, kv.Spec.Replicas)
		wantStr := fmt.Sprintf("history %d ttl %v storage %s replicas %d", want.History, want.TTL, "file", topology.MaxAutoReplicas)
		if got != wantStr {
			t.Errorf("NACK KeyValue %s:\n got  %s\n want %s", kv.Spec.Bucket, got, wantStr)
		}
	}
	for _, b := range []string{topo.AttemptsBucket, topo.QuotaBucket, topo.LedgerBucket} {
		if !buckets[b] {
			t.Errorf("no NACK KeyValue %s", b)
		}
	}
}

func consumersWithParked() []string { return topology.Consumers(topology.Actions()) }

// optionalKinds are the kinds that need an operator's CRDs: only the
// components may hold them, never the base kustomization.
var optionalKinds = map[string]string{
	"ServiceMonitor": "prometheus-operator", "PrometheusRule": "prometheus-operator",
	"ScaledObject": "keda",
	"Stream":       "nack", "Consumer": "nack", "KeyValue": "nack",
}

// checkKustomize checks the base kustomization and the components: the
// base lists existing files, no example and nothing that needs a CRD; each
// optional part is a Component in components/<name> listing its own
// files; every YAML file is applied by one of them or is an example; and
// the components' patches address fields the base has.
func checkKustomize(t *testing.T, ms []manifest) {
	t.Helper()
	type kustomization struct {
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
		Patches   []struct {
			Target struct {
				Kind string `yaml:"kind"`
				Name string `yaml:"name"`
			} `yaml:"target"`
			Patch string `yaml:"patch"`
		} `yaml:"patches"`
	}
	byFile := map[string][]manifest{}
	for _, m := range ms {
		byFile[m.file] = append(byFile[m.file], m)
	}
	applied := map[string]bool{}

	var base kustomization
	single(t, ms, "Kustomization").decode(t, &base)
	for _, r := range base.Resources {
		applied[r] = true
		if _, err := os.Stat(filepath.Join(k8sDir, r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
		if strings.Contains(r, "example") {
			t.Errorf("kustomization.yaml applies %s; examples must not be applied", r)
		}
		for _, m := range byFile[r] {
			if c, ok := optionalKinds[m.head.Kind]; ok {
				t.Errorf("kustomization.yaml applies %s, a %s, which needs CRDs; it belongs in components/%s", r, m.head.Kind, c)
			}
		}
	}
	for _, want := range []string{"deployment.yaml", "configmap.yaml", "service.yaml", "pdb.yaml", "networkpolicy.yaml"} {
		if !slices.Contains(base.Resources, want) {
			t.Errorf("kustomization.yaml does not list %s", want)
		}
	}

	components := map[string]bool{}
	for _, cm := range byKind(ms, "Component") {
		dir := filepath.ToSlash(filepath.Dir(cm.file))
		name, ok := strings.CutPrefix(dir, "components/")
		if !ok || strings.Contains(name, "/") {
			t.Errorf("%s: a Component outside components/<name>/", cm.file)
			continue
		}
		components[name] = true
		var k kustomization
		cm.decode(t, &k)
		if k.Namespace != base.Namespace {
			t.Errorf("%s: namespace %q; want the base's %q, so its objects land there also in an overlay that sets none", cm.file, k.Namespace, base.Namespace)
		}
		for _, r := range k.Resources {
			f := dir + "/" + r
			applied[f] = true
			if strings.Contains(r, "/") || strings.Contains(r, "example") {
				t.Errorf("%s lists %s; want files of its own directory, no example", cm.file, r)
			}
			if _, err := os.Stat(filepath.Join(k8sDir, f)); err != nil {
				t.Errorf("%s lists %s: %v", cm.file, r, err)
			}
			for _, m := range byFile[f] {
				if c, ok := optionalKinds[m.head.Kind]; ok && c != name {
					t.Errorf("%s: a %s in component %s; want it in components/%s", f, m.head.Kind, name, c)
				}
			}
		}
		for _, p := range k.Patches {
			var target *manifest
			for _, m := range byKind(ms, p.Target.Kind) {
				if m.head.Metadata.Name == p.Target.Name && !strings.HasPrefix(m.file, "components/") {
					target = &m
				}
			}
			if target == nil {
				t.Errorf("%s patches %s %s, which the base does not have", cm.file, p.Target.Kind, p.Target.Name)
				continue
			}
			var ops []struct {
				Op   string `yaml:"op"`
				Path string `yaml:"path"`
			}
			if err := yaml.Unmarshal([]byte(p.Patch), &ops); err != nil || len(ops) == 0 {
				t.Errorf("%s: patch of %s %s is not a JSON 6902 list (%v)", cm.file, p.Target.Kind, p.Target.Name, err)
				continue
			}
			for _, op := range ops {
				if (op.Op == "remove" || op.Op == "replace") && yamlPath(target.doc, op.Path) == nil {
					t.Errorf("%s: %s %s on %s %s, which has no such field; the patch would fail", cm.file, op.Op, op.Path, p.Target.Kind, p.Target.Name)
				}
			}
		}
	}
	for name := range map[string]bool{"keda": true, "nack": true, "prometheus-operator": true} {
		if !components[name] {
			t.Errorf("no Component in components/%s", name)
		}
	}
	for f, docs := range byFile {
		if applied[f] || strings.Contains(f, "example") || docs[0].head.Kind == "Kustomization" || docs[0].head.Kind == "Component" {
			continue
		}
		t.Errorf("%s is applied by neither kustomization.yaml nor a component, and is not an example", f)
	}
}

// yamlPath returns the node at a JSON pointer (/spec/replicas) in doc, or
// nil.
func yamlPath(doc *yaml.Node, pointer string) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, key := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// checkNetworkPolicy checks the NetworkPolicy selects the Deployment's
// pods, lets Prometheus reach the metrics port, and lets the pods reach
// NATS where NATS_URL points (its port, and the namespace its host names),
// DNS and Zoom.
func checkNetworkPolicy(t *testing.T, m manifest, dep k8sDeployment, cfg Config, portName string, httpPort int) {
	t.Helper()
	type peer struct {
		NamespaceSelector *struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"namespaceSelector"`
		PodSelector *struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"podSelector"`
		IPBlock *struct {
			CIDR string `yaml:"cidr"`
		} `yaml:"ipBlock"`
	}
	type port struct {
		Port     any    `yaml:"port"`
		Protocol string `yaml:"protocol"`
	}
	type rule struct {
		From  []peer `yaml:"from"`
		To    []peer `yaml:"to"`
		Ports []port `yaml:"ports"`
	}
	var np struct {
		Spec struct {
			PodSelector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"podSelector"`
			PolicyTypes []string `yaml:"policyTypes"`
			Ingress     []rule   `yaml:"ingress"`
			Egress      []rule   `yaml:"egress"`
		} `yaml:"spec"`
	}
	m.decode(t, &np)
	if fmt.Sprint(np.Spec.PodSelector.MatchLabels) != fmt.Sprint(dep.Spec.Selector.MatchLabels) {
		t.Errorf("NetworkPolicy selects %v; want the Deployment's pods %v", np.Spec.PodSelector.MatchLabels, dep.Spec.Selector.MatchLabels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Ingress") || !slices.Contains(np.Spec.PolicyTypes, "Egress") {
		t.Errorf("NetworkPolicy policyTypes = %v; want Ingress and Egress", np.Spec.PolicyTypes)
	}
	allows := func(rules []rule, p int, proto string, peerOK func(peer) bool) bool {
		for _, r := range rules {
			portOK := false
			for _, rp := range r.Ports {
				v := fmt.Sprint(rp.Port)
				if (v == strconv.Itoa(p) || (p == httpPort && v == portName)) && (rp.Protocol == proto || (rp.Protocol == "" && proto == "TCP")) {
					portOK = true
				}
			}
			peers := append(r.From, r.To...)
			anyPeer := len(peers) == 0
			for _, pe := range peers {
				anyPeer = anyPeer || peerOK(pe)
			}
			if portOK && anyPeer {
				return true
			}
		}
		return false
	}
	everyone := func(peer) bool { return true }
	if !allows(np.Spec.Ingress, httpPort, "TCP", func(p peer) bool { return p.NamespaceSelector != nil }) {
		t.Errorf("NetworkPolicy ingress lets no namespace (Prometheus) reach port %s (%d)", portName, httpPort)
	}
	for _, proto := range []string{"UDP", "TCP"} {
		if !allows(np.Spec.Egress, 53, proto, everyone) {
			t.Errorf("NetworkPolicy egress does not allow DNS over %s", proto)
		}
	}
	if !allows(np.Spec.Egress, 443, "TCP", func(p peer) bool { return p.IPBlock != nil && p.IPBlock.CIDR == "0.0.0.0/0" }) {
		t.Errorf("NetworkPolicy egress does not allow HTTPS (Zoom) to 0.0.0.0/0")
	}
	for _, u := range strings.Split(cfg.NATSURL, ",") {
		host, p, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimSpace(u), "nats://"))
		if err != nil {
			t.Fatalf("NATS_URL %q: %v", u, err)
		}
		natsPort, _ := strconv.Atoi(p)
		// <pod>.<service>.<namespace>.svc... or <service>.<namespace>.svc...
		labels := strings.Split(host, ".")
		ns := ""
		for i, l := range labels {
			if l == "svc" && i > 0 {
				ns = labels[i-1]
			}
		}
		if !allows(np.Spec.Egress, natsPort, "TCP", func(p peer) bool {
			return p.NamespaceSelector != nil && (ns == "" || p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == ns)
		}) {
			t.Errorf("NetworkPolicy egress does not let the pods reach NATS at %s (port %d, namespace %q)", host, natsPort, ns)
		}
	}
}

// checkKEDA checks the ScaledObject scales the Deployment on every action
// consumer of the request stream.
func checkKEDA(t *testing.T, m manifest, deployment string) {
	t.Helper()
	var so struct {
		Spec struct {
			ScaleTargetRef struct {
				Name string `yaml:"name"`
			} `yaml:"scaleTargetRef"`
			MinReplicaCount int `yaml:"minReplicaCount"`
			Triggers        []struct {
				Type     string            `yaml:"type"`
				Metadata map[string]string `yaml:"metadata"`
			} `yaml:"triggers"`
		} `yaml:"spec"`
	}
	m.decode(t, &so)
	if so.Spec.ScaleTargetRef.Name != deployment {
		t.Errorf("ScaledObject targets %q; want the Deployment %q", so.Spec.ScaleTargetRef.Name, deployment)
	}
	if so.Spec.MinReplicaCount < 1 {
		t.Errorf("ScaledObject minReplicaCount = %d; want at least 1 (a replica keeps the leases and gates current)", so.Spec.MinReplicaCount)
	}
	topo := topology.Default()
	seen := map[string]bool{}
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "nats-jetstream" || tr.Metadata["stream"] != topo.RequestStream || tr.Metadata["natsServerMonitoringEndpoint"] == "" {
			t.Errorf("ScaledObject trigger %+v; want nats-jetstream on %s with a monitoring endpoint", tr, topo.RequestStream)
		}
		seen[tr.Metadata["consumer"]] = true
	}
	for _, a := range topology.Actions() {
		if !seen[topo.ConsumerName(a)] {
			t.Errorf("ScaledObject has no trigger for consumer %s", topo.ConsumerName(a))
		}
	}
}

// Ensure the NATS accounts example gives every user what it needs and no
// more: the service, logged in as its user, provisions, consumes, pauses
// on a daily 429, dead-letters (also requests on subjects that name no
// action) and shares the quota bucket without one permissions violation;
// HRIS may only publish requests; the audit user reads results through its
// own consumer and cannot read the dead letters.
func TestNATSAccountsExample(t *testing.T) {
	opts, err := natsserver.ProcessConfigFile(filepath.Join(k8sDir, "nats-accounts.conf"))
	if err != nil {
		t.Fatalf("nats-accounts.conf: %v", err)
	}
	var account *natsserver.Account
	for _, u := range opts.Users {
		u.Password = "pw-" + u.Username // the file has placeholder hashes
		account = u.Account
	}
	// An administrator with no restrictions, for what the test itself does.
	opts.Users = append(opts.Users, &natsserver.User{Username: "admin", Password: "pw-admin", Account: account})
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.JetStreamMaxMemory, opts.JetStreamMaxStore = 64<<20, 256<<20
	opts.NoLog, opts.NoSigs = true, true
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	url := ns.ClientURL()

	// connect logs in as user; violations collects permission errors.
	type conn struct {
		nc         *nats.Conn
		js         jetstream.JetStream
		mu         sync.Mutex
		violations []string
	}
	connect := func(user, inbox string) *conn {
		c := &conn{}
		o := []nats.Option{nats.UserInfo(user, "pw-"+user), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.violations = append(c.violations, err.Error())
			c.mu.Unlock()
		})}
		if inbox != "" {
			o = append(o, nats.CustomInboxPrefix(inbox))
		}
		nc, err := nats.Connect(url, o...)
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		c.nc = nc
		if c.js, err = jetstream.New(nc); err != nil {
			t.Fatal(err)
		}
		return c
	}
	violations := func(c *conn) []string {
		c.mu.Lock()
		defer c.mu.Unlock()
		return slices.Clone(c.violations)
	}

	sim := startSim(t, testenv.SimConfig{DailyCreateLimit: 1})
	env := map[string]string{
		"NATS_URL":           url,
		"NATS_USER":          "zoom-provisioner",
		"NATS_PASSWORD":      "pw-zoom-provisioner",
		"ZOOM_ACCOUNT_ID":    testenv.DefaultSimAccountID,
		"ZOOM_CLIENT_ID":     testenv.DefaultSimClientID,
		"ZOOM_CLIENT_SECRET": testenv.DefaultSimClientSecret,
		"ZOOM_API_URL":       sim.APIURL(),
		"ZOOM_TOKEN_URL":     sim.TokenURL(),
		"HTTP_ADDR":          "127.0.0.1:0",
		// The periodic reconciliation scans at once: the lease, the
		// ledger's keys, the drift report.
		"RECONCILE_INTERVAL": "1h",
	}
	svc := startRun(t, env) // PROVISION_STREAMS=true: the widest set the service needs
	addr := svc.healthAddr(t)
	eventually(t, 15*time.Second, func() (bool, string) {
		code, _, why := getReady(addr)
		return code == 200, why
	})

	hris := connect("hris", "_INBOX_hris")
	ctx := context.Background()
	publish := func(subject, id, body string) {
		t.Helper()
		m := nats.NewMsg(subject)
		m.Data = []byte(body)
		if _, err := hris.js.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
			t.Fatalf("hris publish %s: %v", id, err)
		}
	}
	publish("zoom.users.create.ssoCreate", "acct-ok", `{"action":"ssoCreate","user_info":{"email":"acct@example.com","type":1}}`)
	publish("zoom.users.create.custCreate", "acct-invalid", `{"action":"custCreate","user_info":{"email":"nope","type":2}}`)
	publish("zoom.users.create.create", "acct-invite-1", `{"action":"create","user_info":{"email":"i1@example.com","type":1}}`)
	publish("zoom.users.create.create", "acct-invite-2", `{"action":"create","user_info":{"email":"i2@example.com","type":1}}`)
	// Publishing anything else is refused.
	if err := hris.nc.Publish("zoom.users.result.created", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	_ = hris.nc.Flush()

	admin := connect("admin", "")
	// The daily 429 closes the gate (bucket zoom_quota) and pauses the create
	// consumer: wait for both, and for every other outcome.
	eventually(t, 30*time.Second, func() (bool, string) {
		evs := resultEvents(t, admin.js)
		invites := len(terminalEvents(evs["acct-invite-1"])) + len(terminalEvents(evs["acct-invite-2"]))
		deferred := len(evs["acct-invite-1"]) + len(evs["acct-invite-2"]) - invites
		c, err := admin.js.Consumer(ctx, "ZOOM_USERS", "zoom-provisioner-create")
		if err != nil {
			return false, err.Error()
		}
		info, err := c.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return len(terminalEvents(evs["acct-ok"])) == 1 && len(terminalEvents(evs["acct-invalid"])) == 1 && invites == 1 && deferred >= 1 && info.Paused,
			fmt.Sprintf("results %v, create consumer paused %v", evs, info.Paused)
	})

	eventually(t, 30*time.Second, func() (bool, string) {
		return len(auditEvents(t, admin.js, "drift")) > 0, "no drift report yet"
	})

	// A request on a subject that names no action, swept at start-up:
	// restart the service so its sweep (stream info, get, delete) runs under
	// the user's permissions too.
	publish("zoom.users.create.Bogus", "acct-stray", `{"action":"ssoCreate","user_info":{"email":"s@example.com","type":1}}`)
	if err := svc.stop(t); err != nil {
		t.Fatalf("run: %v", err)
	}
	svc2 := startRun(t, env)
	eventually(t, 30*time.Second, func() (bool, string) {
		evs := resultEvents(t, admin.js)
		if len(terminalEvents(evs["acct-stray"])) != 1 {
			return false, "stray request not dead-lettered yet"
		}
		st, err := admin.js.Stream(ctx, "ZOOM_USERS")
		if err != nil {
			return false, err.Error()
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter("zoom.users.create.Bogus"))
		if err != nil {
			return false, err.Error()
		}
		return len(info.State.Subjects) == 0, "stray request still in ZOOM_USERS"
	})
	if err := svc2.stop(t); err != nil {
		t.Fatalf("second run: %v", err)
	}
	for i, r := range []*runInstance{svc, svc2} {
		if log := strings.ToLower(r.stderr.String()); strings.Contains(log, "permission") || strings.Contains(log, "authorization") {
			t.Errorf("service run %d under the zoom-provisioner user hit a permission error:\n%s", i+1, r.stderr.String())
		}
	}
	if v := violations(hris); len(v) == 0 {
		t.Errorf("hris published to zoom.users.result.created without a permissions violation; want it refused")
	}

	// The audit user reads results through its own consumer, and nothing
	// else.
	if _, err := admin.js.CreateOrUpdateConsumer(ctx, "ZOOM_USERS_RESULTS", jetstream.ConsumerConfig{
		Durable: "audit", FilterSubject: "zoom.users.result.>", AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatalf("create audit consumer: %v", err)
	}
	audit := connect("audit", "_INBOX_audit")
	ac, err := audit.js.Consumer(ctx, "ZOOM_USERS_RESULTS", "audit")
	if err != nil {
		t.Fatalf("audit binds its consumer: %v", err)
	}
	batch, err := ac.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("audit fetch: %v", err)
	}
	got := 0
	for m := range batch.Messages() {
		if err := m.Ack(); err != nil {
			t.Errorf("audit ack: %v", err)
		}
		got++
	}
	if got == 0 || batch.Error() != nil {
		t.Errorf("audit fetched %d results (%v); want some", got, batch.Error())
	}
	if len(violations(audit)) != 0 {
		t.Errorf("audit reading its consumer: violations %v", violations(audit))
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := audit.js.Stream(dctx, "ZOOM_USERS_DLQ"); err == nil {
		t.Errorf("audit read the dead-letter stream's info; want it refused")
	}
	if _, err := audit.nc.SubscribeSync("zoom.users.create.>"); err == nil {
		_ = audit.nc.Flush()
		eventually(t, 5*time.Second, func() (bool, string) {
			return len(violations(audit)) > 0, "audit subscribed to requests without a permissions violation"
		})
	}
}

// operationsDoc is the operators' guide, which holds the install steps.
const operationsDoc = "../../docs/operations.md"

// docSection returns the text of the "## title" section of a Markdown
// file, up to the next second-level heading.
func docSection(t *testing.T, path, title string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n## "+title+"\n")
	if start < 0 {
		t.Fatalf("%s has no section %q", path, "## "+title)
	}
	text = text[start+1:]
	if end := strings.Index(text[3:], "\n## "); end >= 0 {
		text = text[:end+3]
	}
	return text
}

// createdSecrets returns the Secrets that `kubectl ... create secret`
// commands in text create, with the keys each command gives them
// (--from-literal=KEY=..., --from-file=KEY=...). Lines continued with a
// backslash are joined first. Only such commands count: a Secret named in
// prose, or created from a YAML file, is not recognised.
func createdSecrets(text string) map[string][]string {
	text = strings.ReplaceAll(text, "\\\n", " ")
	cmdRE := regexp.MustCompile(`kubectl\s+(?:(?:-n|--namespace)[= ]\S+\s+)?create\s+secret\s+(?:generic|tls|docker-registry)\s+([a-z0-9][a-z0-9.-]*)([^\n]*)`)
	keyRE := regexp.MustCompile(`--from-(?:literal|file)=([A-Za-z0-9._-]+)=`)
	out := map[string][]string{}
	for _, m := range cmdRE.FindAllStringSubmatch(text, -1) {
		keys := out[m[1]]
		for _, k := range keyRE.FindAllStringSubmatch(m[2], -1) {
			keys = append(keys, k[1])
		}
		out[m[1]] = keys
	}
	return out
}

// podSecretRefs returns every Secret the Deployment's pod refers to
// (secret volumes, projected secret sources, env secretKeyRef, envFrom
// secretRef), each with whether every reference to it is optional.
func podSecretRefs(t *testing.T, dm manifest) map[string]bool {
	t.Helper()
	type ref struct {
		Name     string `yaml:"name"`
		Optional *bool  `yaml:"optional"`
	}
	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					Volumes []struct {
						Secret *struct {
							SecretName string `yaml:"secretName"`
							Optional   *bool  `yaml:"optional"`
						} `yaml:"secret"`
						Projected *struct {
							Sources []struct {
								Secret *ref `yaml:"secret"`
							} `yaml:"sources"`
						} `yaml:"projected"`
					} `yaml:"volumes"`
					Containers []struct {
						Env []struct {
							ValueFrom *struct {
								SecretKeyRef *ref `yaml:"secretKeyRef"`
							} `yaml:"valueFrom"`
						} `yaml:"env"`
						EnvFrom []struct {
							SecretRef *ref `yaml:"secretRef"`
						} `yaml:"envFrom"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dm.decode(t, &dep)
	optional := map[string]bool{}
	add := func(name string, opt *bool) {
		o := opt != nil && *opt
		if prev, seen := optional[name]; seen {
			o = o && prev // one required reference makes the Secret required
		}
		optional[name] = o
	}
	pod := dep.Spec.Template.Spec
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			add(v.Secret.SecretName, v.Secret.Optional)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					add(s.Secret.Name, s.Secret.Optional)
				}
			}
		}
	}
	for _, c := range pod.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				add(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Optional)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				add(e.SecretRef.Name, e.SecretRef.Optional)
			}
		}
	}
	return optional
}

// Ensure the install steps of docs/operations.md ("Deploying on
// Kubernetes") create every Secret the Deployment needs: a Secret the pod
// refers to without optional: true must be created by a `kubectl create
// secret` command there, with every key the ConfigMap's *_FILE settings
// read from it; otherwise pods following the steps never start.
func TestK8sInstallStepsCreateMountedSecrets(t *testing.T) {
	ms := readManifests(t)
	dm := single(t, ms, "Deployment")
	refs := podSecretRefs(t, dm)
	if len(refs) == 0 {
		t.Fatal("the Deployment refers to no Secret; want at least the Zoom credentials")
	}
	created := createdSecrets(docSection(t, operationsDoc, "Deploying on Kubernetes"))

	// Keys read from each Secret, by the *_FILE settings of the ConfigMap.
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	single(t, ms, "ConfigMap").decode(t, &cm)
	var dep k8sDeployment
	dm.decode(t, &dep)
	mountSecret := map[string]string{} // mount path -> secret
	for _, v := range dep.Spec.Template.Spec.Volumes {
		for _, c := range dep.Spec.Template.Spec.Containers {
			for _, vm := range c.VolumeMounts {
				if v.Secret != nil && vm.Name == v.Name {
					mountSecret[vm.MountPath] = v.Secret.SecretName
				}
			}
		}
	}
	readKeys := map[string][]string{}
	for k, v := range cm.Data {
		if !strings.HasSuffix(k, "_FILE") {
			continue
		}
		for _, p := range strings.Split(v, ",") {
			if s, ok := mountSecret[filepath.Dir(p)]; ok {
				readKeys[s] = append(readKeys[s], filepath.Base(p))
			}
		}
	}

	for name, optional := range refs {
		if optional {
			continue
		}
		keys, ok := created[name]
		if !ok {
			t.Errorf("the Deployment needs Secret %s (no optional: true), but the install steps in %s never create it (found %v)", name, operationsDoc, slices.Sorted(maps.Keys(created)))
			continue
		}
		for _, k := range readKeys[name] {
			if !slices.Contains(keys, k) {
				t.Errorf("the install steps create Secret %s with keys %v; the ConfigMap reads key %s from it", name, keys, k)
			}
		}
	}
}
