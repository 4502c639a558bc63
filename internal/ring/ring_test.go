package ring

import (
	"strings"
	"testing"
)

func TestJumpSpreadsKeysEvenly(t *testing.T) {
	const keys = 200_000
	for _, n := range []int{1, 2, 3, 5, 16} {
		counts := make([]int, n)
		for i := range keys {
			counts[jump(mix(uint64(i), 7), n)]++
		}
		want := keys / n
		for b, c := range counts {
			if c < want*95/100 || c > want*105/100 {
				t.Errorf("%d buckets: bucket %d holds %d keys, want %d ± 5%%", n, b, c, want)
			}
		}
	}
}

func TestJumpMovesOnlyWhatMustMove(t *testing.T) {
	const keys = 100_000
	for _, tc := range []struct{ from, to int }{{3, 5}, {5, 2}, {1, 2}, {8, 7}} {
		moved := 0
		for i := range keys {
			k := mix(uint64(i), 11)
			a, b := jump(k, tc.from), jump(k, tc.to)
			if a == b {
				continue
			}
			moved++
			// Growing, a key only moves to a new bucket; shrinking, only
			// keys of removed buckets move.
			if tc.to > tc.from && b < tc.from {
				t.Fatalf("%d→%d: key moved between surviving buckets %d→%d", tc.from, tc.to, a, b)
			}
			if tc.to < tc.from && a < tc.to {
				t.Fatalf("%d→%d: key of surviving bucket %d moved to %d", tc.from, tc.to, a, b)
			}
		}
		lo, hi := min(tc.from, tc.to), max(tc.from, tc.to)
		want := keys * (hi - lo) / hi
		if moved < want*95/100 || moved > want*105/100 {
			t.Errorf("%d→%d: %d keys moved, want about %d", tc.from, tc.to, moved, want)
		}
	}
}

// Gateways and workers of different releases must agree on owners during an
// upgrade, so the ring's outputs are pinned.
func TestOwnersArePinnedAcrossReleases(t *testing.T) {
	m := Membership{Epoch: 1}
	for i := range 5 {
		m.Members = append(m.Members, Member{Name: string(rune('a' + i)), Endpoint: "e"})
	}
	got := make([]int, 0, 8)
	for _, k := range []Key{0, 1, 2, 3, 1 << 40, 0xdeadbeef, 0xffffffffffffffff, 42} {
		got = append(got, m.Owner(k))
	}
	want := []int{0, 0, 3, 3, 1, 3, 2, 2}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("owners changed: got %v, want %v", got, want)
		}
	}
}

func TestMembershipValidation(t *testing.T) {
	ok := `{"epoch":3,"members":[{"name":"w-0","endpoint":"w-0.w:4317"},{"name":"w-1","endpoint":"w-1.w:4317"}]}`
	m, err := ParseMembership([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if m.Epoch != 3 || len(m.Members) != 2 || m.Members[1].Endpoint != "w-1.w:4317" {
		t.Fatalf("parsed %+v", m)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if again, err := ParseMembership(b); err != nil || !again.SameMembers(m) || again.Epoch != m.Epoch {
		t.Fatalf("round trip: %+v, %v", again, err)
	}
	for _, tc := range []struct{ doc, wantErr string }{
		{`{"epoch":0,"members":[{"name":"a","endpoint":"a:1"}]}`, "epoch must be at least 1"},
		{`{"epoch":1,"members":[]}`, "has no members"},
		{`{"epoch":1,"members":[{"name":"a"}]}`, "needs a name and an endpoint"},
		{`{"epoch":1,"members":[{"name":"a","endpoint":"x"},{"name":"a","endpoint":"y"}]}`, `both named "a"`},
		{`{"epoch":`, "decoding membership"},
	} {
		if _, err := ParseMembership([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want one containing %q", tc.doc, err, tc.wantErr)
		}
	}
}
