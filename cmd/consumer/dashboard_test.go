package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/zoomprov/consumer/testenv"
)

// dashboardFile is the Grafana dashboard.
const dashboardFile = "../../deploy/grafana/zoom-provisioner.json"

// comingMetrics are metrics the dashboard and the alert rules use before
// the service exports them, while other work adds them (none now).
// Remove each name once the service exports it; the test fails to remind
// you.
var comingMetrics = map[string]string{}

// metricNameRE finds the service's metric names in PromQL and dashboard
// text: every token that starts with "zoomprov_". No PromQL function,
// keyword or label the dashboard or the rules use starts with it, so what
// it finds is a metric name (or a histogram's _bucket, _sum or _count
// series). It does not see metrics without that prefix (up, go_*,
// process_*, kube_*): those are not checked.
var metricNameRE = regexp.MustCompile(`\bzoomprov_[a-zA-Z0-9_]*[a-zA-Z0-9]`)

// dashboard reads the dashboard's JSON.
func dashboard(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// dashboardStrings returns every string in the dashboard's JSON with its
// path (panels[3].targets[0].expr, ...): queries, variable definitions,
// titles and descriptions alike.
func dashboardStrings(v any, path string, out map[string]string) {
	switch v := v.(type) {
	case string:
		out[path] = v
	case []any:
		for i, e := range v {
			dashboardStrings(e, fmt.Sprintf("%s[%d]", path, i), out)
		}
	case map[string]any:
		for k, e := range v {
			dashboardStrings(e, path+"."+k, out)
		}
	}
}

// Ensure the dashboard imports into Grafana 10 or later as a plain
// dashboard: a title, a uid, schemaVersion 38 or later, the data source as
// a variable that every panel and query uses, unique panel ids, a place on
// the grid for each panel, a query for each panel but rows, and the
// panels the operators asked for.
func TestGrafanaDashboard(t *testing.T) {
	d := dashboard(t)
	if d["title"] == "" || d["uid"] == "" {
		t.Errorf("dashboard title %q uid %q; want both", d["title"], d["uid"])
	}
	if v, _ := d["schemaVersion"].(float64); v < 38 {
		t.Errorf("schemaVersion = %v; want 38 or later (Grafana 10)", d["schemaVersion"])
	}
	if _, ok := d["__inputs"]; ok {
		t.Errorf("dashboard has __inputs; want a plain dashboard whose data source is a variable")
	}
	vars := map[string]map[string]any{}
	tmpl, _ := d["templating"].(map[string]any)
	list, _ := tmpl["list"].([]any)
	for _, v := range list {
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		vars[name] = m
	}
	if ds := vars["datasource"]; ds == nil || ds["type"] != "datasource" || ds["query"] != "prometheus" {
		t.Errorf("variable datasource = %v; want a Prometheus data source variable", ds)
	}
	if pc := vars["plan_cap"]; pc == nil || pc["query"] != "1500" {
		t.Errorf("variable plan_cap = %v; want a default of 1500", pc)
	}
	wantDS := map[string]any{"type": "prometheus", "uid": "${datasource}"}
	panels, _ := d["panels"].([]any)
	ids := map[float64]bool{}
	var titles []string
	for i, p := range panels {
		m, _ := p.(map[string]any)
		title, _ := m["title"].(string)
		titles = append(titles, title)
		id, _ := m["id"].(float64)
		if ids[id] || id == 0 {
			t.Errorf("panel %d (%s): id %v missing or repeated", i, title, m["id"])
		}
		ids[id] = true
		if g, _ := m["gridPos"].(map[string]any); g == nil || g["w"] == nil || g["h"] == nil {
			t.Errorf("panel %d (%s) has no gridPos", i, title)
		}
		if m["type"] == "row" {
			continue
		}
		if fmt.Sprint(m["datasource"]) != fmt.Sprint(wantDS) {
			t.Errorf("panel %s: datasource %v; want %v", title, m["datasource"], wantDS)
		}
		targets, _ := m["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %s has no query", title)
		}
		for _, tg := range targets {
			tm, _ := tg.(map[string]any)
			if fmt.Sprint(tm["datasource"]) != fmt.Sprint(wantDS) || tm["expr"] == "" || tm["refId"] == "" {
				t.Errorf("panel %s: query %v; want the datasource variable, an expr and a refId", title, tm)
			}
		}
	}
	for _, want := range []string{
		"Quota gates", "Pace against share per replica", "429s by limit", "Daily create use against the plan",
		"Outcomes", "Dead letters by reason", "Backlog per action", "Oldest waiting request per action",
		"Mass-deprovisioning guard", "Drift",
	} {
		if !slices.Contains(titles, want) {
			t.Errorf("no panel %q (panels: %q)", want, titles)
		}
	}
}

// Ensure every metric the dashboard and the alert rules name exists in
// the /metrics of a running service (`consumer run`), or is on the
// commented allow-list of metrics other work is adding; and that nothing
// on that list is exported already.
func TestDashboardAndRulesUseExportedMetrics(t *testing.T) {
	// What they use: the rules' expressions and annotations, and every
	// string of the dashboard.
	used := map[string][]string{} // metric -> where
	for _, r := range alertRules(t, readManifests(t)) {
		texts := map[string]string{"expr": r.Expr}
		for k, v := range r.Annotations {
			texts["annotations."+k] = v
		}
		for where, text := range texts {
			for _, n := range metricNameRE.FindAllString(text, -1) {
				used[n] = append(used[n], "alert "+r.Alert+" "+where)
			}
		}
	}
	strs := map[string]string{}
	dashboardStrings(dashboard(t), "dashboard", strs)
	for where, text := range strs {
		for _, n := range metricNameRE.FindAllString(text, -1) {
			used[n] = append(used[n], where)
		}
	}
	if len(used) < 10 {
		t.Fatalf("found only %d metric names in the dashboard and rules: %v", len(used), used)
	}

	// What a running service exports, with the periodic reconciliation
	// on (its gauges come with its first scan).
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	svc := startRun(t, merge(serviceEnv(ns, sim), map[string]string{"RECONCILE_INTERVAL": "1h"}))
	addr := svc.healthAddr(t)
	eventually(t, 30*time.Second, func() (bool, string) {
		code, _, why := getReady(addr)
		if code != 200 {
			return false, why
		}
		_, ok := scrape(t, addr)["zoomprov_drift_users"]
		return ok, "no zoomprov_drift_users yet: the first reconciliation has not finished"
	})
	fams := scrape(t, addr)
	exported := func(name string) bool {
		if _, ok := fams[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				if f, ok := fams[base]; ok && (f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY) {
					return true
				}
			}
		}
		return false
	}

	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		_, coming := comingMetrics[n]
		switch {
		case exported(n) && coming:
			t.Errorf("%s is exported now: remove it from comingMetrics", n)
		case !exported(n) && !coming:
			where := used[n]
			sort.Strings(where)
			t.Errorf("%s is not exported by the service (used by %s)", n, strings.Join(where, "; "))
		}
	}
	for n, by := range comingMetrics {
		if _, ok := used[n]; !ok {
			t.Errorf("comingMetrics lists %s (%s), which neither the dashboard nor the rules use", n, by)
		}
	}
}
