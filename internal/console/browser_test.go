package console_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/zoomprov/consumer/testenv"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the overview's screenshot to docs/console-overview.png (for the README)")

// chromiumPackage is the Debian package the browser tests need.
const chromiumPackage = "chromium"

// browser starts headless Chromium for the test, with a fresh profile
// and no background traffic (this machine has no outside network), and
// returns a context that drives one tab of it. Without Chromium the test
// is skipped, or fails when CI_REQUIRE_BROWSER=1 (CI sets it).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("CHROMIUM_BIN")
	if path == "" {
		var err error
		if path, err = exec.LookPath("chromium"); err != nil {
			msg := fmt.Sprintf("no Chromium: install Debian's %s package (apt-get install -y %s), or name the binary in CHROMIUM_BIN", chromiumPackage, chromiumPackage)
			if os.Getenv("CI_REQUIRE_BROWSER") == "1" {
				t.Fatal(msg + " (CI_REQUIRE_BROWSER=1: the browser tests must run)")
			}
			t.Skip(msg)
		}
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first run starts the browser, for as long as ctx lives: without
	// a time limit of its own (each step has one).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

// step runs browser actions within a time limit, failing the test with
// what was being done.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Log(what)
}

// waitFor polls the page until selector matches, across reloads (a page
// that reloads itself while it waits for a result).
func waitFor(t *testing.T, ctx context.Context, timeout time.Duration, selector string) {
	t.Helper()
	testenv.Eventually(t, timeout, func() (bool, string) {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		found, err := chromedp.Run(qctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, selector)))
		return err == nil && found, fmt.Sprintf("no %s in the page (%v)", selector, err)
	})
}

// screenshot saves the visible page as a PNG and returns its path.
func screenshot(t *testing.T, ctx context.Context, dir, name string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot of the %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the %s: %s (%d bytes)", name, p, len(png))
	return p
}

// Ensure an operator can do in a real browser what the console is for:
// log in, see the overview, find the dead letters through the page's own
// links, replay one with a click, and follow it to its result in the
// person's history. Screenshots of the overview and of the dead letters
// are left in the test's temporary directory (and, with
// -update-screenshot, the overview in docs/ for the README).
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	w := newWorld(t)

	// A little of everything, for the overview: creations, an update, a
	// deactivation, a user who exists, and dead letters.
	for i, email := range []string{"ada@example.com", "grace@example.com", "edsger@example.com", "barbara@example.com"} {
		w.publish(fmt.Sprintf("web-new-%d", i), "ssoCreate", fmt.Sprintf(`{"action":"ssoCreate","user_info":{"email":%q,"type":1}}`, email))
	}
	w.sim.AddUser("linus@example.com", 1)
	w.publish("web-exists", "custCreate", `{"action":"custCreate","user_info":{"email":"linus@example.com","type":2}}`)
	w.publish("web-rename", "update", `{"email":"ada@example.com","user":{"last_name":"Lovelace"}}`)
	w.publish("web-leaver", "deactivate", `{"email":"grace@example.com"}`)
	w.publish("web-invalid", "custCreate", `{"action":"custCreate","user_info":{"email":"not-an-email","type":2}}`)
	w.deadLetter("web-group", "ken@example.com")
	dl := w.deadLetters(2)["web-group"]
	replayID := fmt.Sprintf("web-group/replay/%d", dl.Seq)
	shots := t.TempDir()

	step(t, ctx, "opened "+w.appURL+": the login page", chromedp.Navigate(w.appURL), chromedp.WaitVisible(chromedp.CSS(`#token`)))
	step(t, ctx, "typed alice's token and clicked Log in",
		chromedp.SendKeys(chromedp.CSS(`#token`), aliceSecret),
		chromedp.Click(chromedp.CSS(`form[action="/console/login"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`nav[aria-label="Sections"]`)))
	waitFor(t, ctx, 20*time.Second, `[data-stat="dead-letters"]`)
	step(t, ctx, "the overview shows the chart", chromedp.WaitVisible(chromedp.CSS(`figure.chart svg`)))
	overview := screenshot(t, ctx, shots, "overview")

	step(t, ctx, "clicked Dead letters in the menu",
		chromedp.Click(chromedp.CSS(`nav a[href="/console/dlq"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-request-id="web-group"]`)))
	screenshot(t, ctx, shots, "dead-letters")

	step(t, ctx, "clicked Replay in the row of web-group",
		chromedp.Click(chromedp.CSS(`tr[data-request-id="web-group"] button[data-action="replay"]`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-replay-id=%q][data-status="replayed"]`, replayID))))
	step(t, ctx, "clicked the link to ken's history",
		chromedp.Click(chromedp.CSS(`a[data-action="history"]`)))
	waitFor(t, ctx, 30*time.Second, fmt.Sprintf(`tr[data-request-id=%q][data-outcome="created"]`, replayID))
	t.Logf("ken's history shows %s created", replayID)
	if n := w.count(); n != 1 {
		t.Errorf("%d dead letters after the replay; want 1 (the invalid one)", n)
	}
	evs := w.audits("dlq")
	if len(evs) != 1 || evs[0].Data["actor"] != "alice" || evs[0].Subject != "web-group" {
		t.Errorf("dlq audit events %+v; want one replay of web-group by alice", evs)
	}

	if *updateScreenshot {
		png, err := os.ReadFile(overview)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console-overview.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
