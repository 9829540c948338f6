package ledger

import (
	"context"
	"testing"
)

func TestStateRowsAppendSeq(t *testing.T) {
	ctx := context.Background()
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	var want []uint64
	for i := range 3 {
		r := adminRecord(i)
		r.State = []StateRow{{Table: TableCorrections, Key: "dk_1", AppendSeq: true}, {Table: "x", Key: "k", Value: []byte{byte(i)}}}
		res, err := l.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res.Seq)
	}
	got, err := l.Corrections("dk_1")
	if err != nil || len(got) != 3 || got[0] != want[0] || got[2] != want[2] {
		t.Fatalf("Corrections = %v, %v; want %v", got, err, want)
	}
	v, ok, err := l.State("x", "k")
	if err != nil || !ok || v[0] != 2 {
		t.Fatalf("State(x, k) = %v, %v, %v", v, ok, err)
	}
	r := adminRecord(9)
	r.State = []StateRow{{Table: "x", Key: "k"}}
	if _, err := l.Append(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.State("x", "k"); ok {
		t.Fatal("a nil Value did not delete the row")
	}
}
