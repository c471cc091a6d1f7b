package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/zoomprov/consumer/internal/ledger"
)

// Ensure EachKey lists the key of every entry once, Entry reads an entry
// by its key (the zero Record for none), and a caller that stops early
// gets its error back and leaves no goroutine behind (goleak).
func TestEachKeyAndEntry(t *testing.T) {
	w := newWorld(t, true)
	ctx := context.Background()
	kv, err := w.js.KeyValue(ctx, w.topo.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	// More keys than the lister buffers (256), so that stopping early
	// leaves it in the middle of sending.
	want := map[string]bool{}
	for i := range 600 {
		email := fmt.Sprintf("k%d@example.com", i)
		key := ledger.Key(email)
		want[key] = true
		if _, err := kv.Put(ctx, key, []byte(`{"v":1,"email":"`+email+`","state":"active","requests":[]}`)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := ledger.Open(ctx, w.js, w.topo)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	if err := l.EachKey(ctx, func(k string) error { got[k]++; return nil }); err != nil {
		t.Fatalf("EachKey = %v; want nil", err)
	}
	if len(got) != len(want) {
		t.Errorf("EachKey listed %d keys; want %d", len(got), len(want))
	}
	for k, n := range got {
		if !want[k] || n != 1 {
			t.Errorf("EachKey listed %s %d times; want once, and only keys of entries", k, n)
		}
	}
	stop := errors.New("enough")
	n := 0
	if err := l.EachKey(ctx, func(string) error { n++; return map[bool]error{true: stop}[n == 3] }); !errors.Is(err, stop) || n != 3 {
		t.Errorf("EachKey stopped after %d keys with %v; want 3 and the caller's error", n, err)
	}
	rec, err := l.Entry(ctx, ledger.Key("K7@Example.com"))
	if err != nil || rec.Email != "k7@example.com" || rec.State != ledger.StateActive {
		t.Errorf("Entry(Key(K7@Example.com)) = %+v, %v; want k7's entry", rec, err)
	}
	if rec, err := l.Entry(ctx, ledger.Key("nobody@example.com")); err != nil || rec.Known() {
		t.Errorf("Entry of no entry = %+v, %v; want the zero record", rec, err)
	}
}
