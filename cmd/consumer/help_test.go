package main

import (
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

// Ensure settingTopics puts every setting under exactly one topic, and
// names no setting that does not exist.
func TestSettingTopics(t *testing.T) {
	count := map[string]int{}
	for _, tp := range settingTopics {
		for _, env := range tp.envs {
			count[env]++
		}
	}
	for _, s := range settings() {
		if count[s.env] != 1 {
			t.Errorf("setting %s is in %d topics of settingTopics; want exactly 1", s.env, count[s.env])
		}
		delete(count, s.env)
	}
	for env := range count {
		t.Errorf("settingTopics lists %s, which is no setting", env)
	}
}

// helpSections parses grouped -h output into the section of each flag
// line ("  --name ...") and how often each flag appears.
func helpSections(out string) (section map[string]string, seen map[string]int, titles []string) {
	section, seen = map[string]string{}, map[string]int{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "  --"):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "  --"), " ")
			seen[name]++
			section[name] = cur
		case line != "" && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") && strings.HasSuffix(line, ":"):
			cur = strings.TrimSuffix(line, ":")
			titles = append(titles, cur)
		}
	}
	return section, seen, titles
}

// Ensure `consumer run -h` (and `config check -h`, which takes the same
// settings) groups the flags by topic, shows every flag exactly once and
// every setting's flags under its topic, and ends with examples.
func TestRunHelpGrouped(t *testing.T) {
	topicOf := map[string]string{}
	for _, tp := range settingTopics {
		for _, env := range tp.envs {
			topicOf[env] = tp.title
		}
		for _, f := range tp.flags {
			topicOf["--"+f] = tp.title
		}
	}
	for _, cmd := range [][]string{{"run"}, {"config", "check"}} {
		res := runCLI(t, 10*time.Second, nil, "", append(cmd, "-h")...)
		if res.code != 0 {
			t.Fatalf("consumer %q -h exit code = %d; want 0", cmd, res.code)
		}
		section, seen, titles := helpSections(res.stderr)
		for _, tp := range settingTopics {
			if !slices.Contains(titles, tp.title) {
				t.Errorf("consumer %q -h has no section %q", cmd, tp.title)
			}
		}
		flags := flagsOf(cmd...)
		if len(flags) < len(settings()) {
			t.Fatalf("flagsOf(%q) = %d flags; want at least one per setting", cmd, len(flags))
		}
		for _, f := range flags {
			if seen[f.Name] != 1 {
				t.Errorf("consumer %q -h shows --%s %d times; want once", cmd, f.Name, seen[f.Name])
			}
		}
		for name := range seen {
			if !slices.ContainsFunc(flags, func(f2 *flag.Flag) bool { return f2.Name == name }) {
				t.Errorf("consumer %q -h shows --%s, which it does not parse", cmd, name)
			}
		}
		for _, s := range settings() {
			names := []string{s.flag}
			if s.secret {
				names = []string{s.flag + "-file"}
			} else if s.file {
				names = append(names, s.flag+"-file")
			}
			for _, n := range names {
				if section[n] != topicOf[s.env] {
					t.Errorf("consumer %q -h shows --%s (%s) under %q; want %q", cmd, n, s.env, section[n], topicOf[s.env])
				}
			}
		}
		for _, tp := range settingTopics {
			for _, f := range tp.flags {
				if section[f] != tp.title {
					t.Errorf("consumer %q -h shows --%s under %q; want %q", cmd, f, section[f], tp.title)
				}
			}
		}
		_, examples, ok := strings.Cut(res.stderr, "\nexamples:\n")
		if n := strings.Count(examples, "  consumer "+strings.Join(cmd, " ")); !ok || n < 2 {
			t.Errorf("consumer %q -h ends with %d examples of it; want two or three:\n%s", cmd, n, res.stderr)
		}
	}
}

// Ensure the usage text lists every command, and every listed command and
// subcommand is one the program runs.
func TestCommandsTable(t *testing.T) {
	res := runCLI(t, 5*time.Second, nil, "", "help")
	for _, c := range commands {
		if !strings.Contains(res.stdout, "\n  "+c.name+" ") {
			t.Errorf("consumer help = %q; want it to list %s", res.stdout, c.name)
		}
		paths := [][]string{{c.name}}
		if len(c.subs) > 0 {
			paths = nil
			for _, s := range c.subs {
				for _, n := range append([]string{s.name}, s.aliases...) {
					paths = append(paths, []string{c.name, n})
				}
			}
		}
		for _, p := range paths {
			res := runCLI(t, 5*time.Second, nil, "", append(p, "-h")...)
			if res.code != 0 && !(c.name == "sandbox" && res.code == 2) {
				t.Errorf("consumer %q -h exit code = %d (stderr %q); want 0", p, res.code, res.stderr)
			}
			if strings.Contains(res.stderr, "unknown command") {
				t.Errorf("consumer %q -h = %q; want a command the program runs", p, res.stderr)
			}
		}
	}
	for _, sub := range []struct{ usage, name string }{{dlqUsage, "dlq"}, {configUsage, "config"}} {
		i := slices.IndexFunc(commands, func(c commandInfo) bool { return c.name == sub.name })
		for _, s := range commands[i].subs {
			if !strings.Contains(sub.usage, "\n  "+s.name+" ") {
				t.Errorf("the usage of consumer %s does not list %s", sub.name, s.name)
			}
		}
	}
}
