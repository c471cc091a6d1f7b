package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// completionBlock returns the part of script that completes the command
// whose branch starts with start, up to the branch's end (";;").
func completionBlock(script, start string) (string, bool) {
	i := strings.Index(script, start)
	if i < 0 {
		return "", false
	}
	block, _, _ := strings.Cut(script[i:], ";;")
	return block, true
}

// Ensure `consumer completion bash|zsh` prints scripts that offer every
// command, subcommand and flag of every command (taken from the flag sets
// the commands parse), that bash and zsh accept them, and that a usage
// mistake exits 2.
func TestCompletion(t *testing.T) {
	scripts := map[string]string{}
	for _, shell := range []string{"bash", "zsh"} {
		res := runCLI(t, 10*time.Second, nil, "", "completion", shell)
		if res.code != 0 || res.stderr != "" {
			t.Fatalf("consumer completion %s = %d, stderr %q; want 0 and nothing", shell, res.code, res.stderr)
		}
		scripts[shell] = res.stdout
	}
	leaves := leafCommands()
	if len(leaves) < 10 {
		t.Fatalf("leafCommands() = %d commands; want every command and subcommand", len(leaves))
	}
	for _, c := range commands {
		for _, shell := range []string{"bash", "zsh"} {
			if !strings.Contains(scripts[shell], c.name) {
				t.Errorf("%s completion does not offer the command %s", shell, c.name)
			}
		}
	}
	for _, l := range leaves {
		path := strings.Join(l.path, " ")
		if len(l.flags) == 0 && path != "completion" && path != "sandbox" {
			t.Errorf("flagsOf(%q) found no flags; want the command's", l.path)
		}
		bash, ok1 := completionBlock(scripts["bash"], "\t\""+path+"\"")
		zsh, ok2 := completionBlock(scripts["zsh"], "\t# consumer "+path+"\n")
		if !ok1 || !ok2 {
			t.Errorf("completion scripts lack consumer %s (bash %t, zsh %t)", path, ok1, ok2)
			continue
		}
		for _, f := range l.flags {
			if !strings.Contains(bash+" ", "--"+f.Name+" ") && !strings.Contains(bash, "--"+f.Name+"\"") {
				t.Errorf("bash completion of consumer %s lacks --%s:\n%s", path, f.Name, bash)
			}
			if !strings.Contains(zsh, "'--"+f.Name+"[") && !strings.Contains(zsh, "'--"+f.Name+"=[") {
				t.Errorf("zsh completion of consumer %s lacks --%s:\n%s", path, f.Name, zsh)
			}
		}
		for _, a := range l.aliases {
			if !strings.Contains(bash, "\""+strings.Join(a, " ")+"\"") {
				t.Errorf("bash completion of consumer %s lacks its alias %q", path, a)
			}
		}
	}

	for _, args := range [][]string{{"completion"}, {"completion", "fish"}, {"completion", "bash", "zsh"}} {
		res := runCLI(t, 5*time.Second, nil, "", args...)
		if res.code != 2 || res.stdout != "" || strings.Count(res.stderr, "\n") != 1 {
			t.Errorf("consumer %q = %d, stdout %q, stderr %q; want exit 2 and one line", args, res.code, res.stdout, res.stderr)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // against a hung shell only
	defer cancel()
	// The shells accept the scripts, and completing works: bash through
	// its completion function, zsh with _arguments and _describe stubbed.
	if _, err := exec.LookPath("bash"); err == nil {
		script := scripts["bash"] + `
try() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _consumer; echo "${COMP_WORDS[*]} => ${COMPREPLY[*]}"; }
try consumer con
try consumer dlq re
try consumer dlq replay --dry
try consumer config check --time
try consumer completion z
try consumer run --nats-u
try consumer publish --wait ""
`
		out, err := exec.CommandContext(ctx, "bash", "-n", "-c", scripts["bash"]).CombinedOutput()
		if err != nil {
			t.Errorf("bash -n on the bash completion: %v\n%s", err, out)
		}
		out, err = exec.CommandContext(ctx, "bash", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion: %v\n%s", err, out)
		}
		for _, want := range []string{
			"consumer con => config", "consumer dlq re => replay", "consumer dlq replay --dry => --dry-run",
			"consumer config check --time => --timeout", "consumer completion z => zsh", "consumer run --nats-u => --nats-url",
			"consumer publish --wait  => \n",
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("bash completion gave\n%s\nwant a line %q", out, want)
			}
		}
	} else {
		t.Log("bash not installed: the bash script is not run")
	}
	if _, err := exec.LookPath("zsh"); err == nil {
		script := `_arguments() { print -r -- "ARGUMENTS $words[1] $CURRENT $*" }
_describe() { local -a a; a=("${(@P)4}"); print -r -- DESCRIBE ${a%%:*} }
compdef() { print -r -- "COMPDEF $*" }
` + scripts["zsh"] + `
words=(consumer dl); CURRENT=2; _consumer
words=(consumer dlq re); CURRENT=3; _consumer
words=(consumer dlq replay --d); CURRENT=4; _consumer
words=(consumer completion ''); CURRENT=3; _consumer
`
		out, err := exec.CommandContext(ctx, "zsh", "-n", "-c", scripts["zsh"]).CombinedOutput()
		if err != nil {
			t.Errorf("zsh -n on the zsh completion: %v\n%s", err, out)
		}
		out, err = exec.CommandContext(ctx, "zsh", "-f", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("zsh completion: %v\n%s", err, out)
		}
		for _, want := range []string{
			"COMPDEF _consumer consumer", "DESCRIBE run sandbox publish quota dlq guard user reconcile config password completion version help",
			"DESCRIBE ls list show replay purge", "ARGUMENTS replay 2 --action=[", "'--dry-run[", "ARGUMENTS completion 2 1:argument:(bash zsh)",
		} {
			if !strings.Contains(string(out), strings.Trim(want, "'")) {
				t.Errorf("zsh completion gave\n%s\nwant %q", out, want)
			}
		}
	} else {
		t.Log("zsh not installed: the zsh script is not run")
	}
}
