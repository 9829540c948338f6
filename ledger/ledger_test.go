package ledger

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// testKeys is a real Ed25519 note key pair. The ledger package does not
// depend on crypto/; production wires a Tink-backed note.Signer instead.
type testKeys struct {
	skey, vkey string
}

func newTestKeys(t testing.TB, origin string) testKeys {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	return testKeys{skey, vkey}
}

func (k testKeys) verifiers(t testing.TB) note.Verifiers {
	v, err := note.NewVerifier(k.vkey)
	if err != nil {
		t.Fatal(err)
	}
	return note.VerifierList(v)
}

// openTest opens a ledger in dir whose signer key is created on first use
// and remembered in *keys.
func openTest(t testing.TB, dir string, keys *testKeys) *Ledger {
	t.Helper()
	return openTestLogged(t, dir, keys, nil)
}

// openTestLogged is openTest with a logger (nil discards).
func openTestLogged(t testing.TB, dir string, keys *testKeys, logger *slog.Logger) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), Options{
		Dir:                dir,
		Logger:             logger,
		CheckpointInterval: 10 * time.Millisecond,
		Signer: func(origin string) (note.Signer, error) {
			if keys.skey == "" {
				*keys = newTestKeys(t, origin)
			}
			return note.NewSigner(keys.skey)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func adminRecord(i int) Record {
	return Record{
		Kind:   KindAdmin,
		ID:     newID(),
		Time:   time.Date(2026, 11, 20, 0, 0, i, 0, time.UTC),
		Policy: 1,
		Body:   AdminBody{ActorID: "p1", ActorName: "admin", Action: "test", Target: strconv.Itoa(i)},
	}
}

func paymentRecord(tx, typ string, amount int64, at time.Time) Record {
	return Record{
		Kind: KindPayment, ID: newID(), Time: at, Policy: 1,
		Body: PaymentBody{
			Source: "dev", EventID: newID(), Type: typ, TransactionID: tx, MerchantID: "m1",
			Amount: amount, Currency: "USD", Status: strings.TrimPrefix(typ, "payment."), OccurredAt: at,
		},
	}
}

// withCard gives a payment record sealed card fields (stand-in
// ciphertexts: the ledger never opens them) and a raw payload.
func withCard(r Record, i int) Record {
	p := r.Body.(PaymentBody)
	p.Brand, p.DataKey = "visa", fmt.Sprintf("dk_%032x", i)
	p.Sealed = map[string][]byte{
		"bin": []byte(fmt.Sprintf("sealed-bin-%d", i)), "last4": []byte(fmt.Sprintf("sealed-last4-%d", i)),
		"card_token": []byte(fmt.Sprintf("sealed-token-%d\x00\xff", i)), "raw": []byte("sealed-raw"),
	}
	r.Body = p
	return r
}

func TestAppendProofsAndCheckpoints(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var keys testKeys
	l := openTest(t, dir, &keys)

	const n = 200
	var wg sync.WaitGroup
	seqs := make([]uint64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := l.Append(ctx, adminRecord(i))
			if err != nil {
				t.Error(err)
			}
			seqs[i] = res.Seq
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for _, s := range seqs {
		if s >= n || seen[s] {
			t.Fatalf("sequence numbers are not a permutation of 0..%d: %v", n-1, seqs)
		}
		seen[s] = true
	}
	if got := l.Size(); got != n {
		t.Fatalf("Size() = %d, want %d", got, n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen: same size, a checkpoint for it, verifiable proofs.
	l = openTest(t, dir, &keys)
	defer l.Close()
	if got := l.Size(); got != n {
		t.Fatalf("after reopen Size() = %d, want %d", got, n)
	}
	cpNote, err := l.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	cp, _, _, err := log.ParseCheckpoint(cpNote, l.Origin(), mustVerifier(t, keys.vkey))
	if err != nil {
		t.Fatalf("latest checkpoint does not verify: %v", err)
	}
	if cp.Size != n {
		t.Fatalf("checkpoint size %d, want %d", cp.Size, n)
	}
	hasher := rfc6962.DefaultHasher
	for _, seq := range []uint64{0, 1, 77, n - 1} {
		e, err := l.Entry(seq)
		if err != nil {
			t.Fatal(err)
		}
		if got := hasher.HashLeaf(e.Bytes()); string(got) != string(e.LeafHash()) {
			t.Fatalf("leaf hash of %d is not RFC 6962 SHA-256(0x00||bytes)", seq)
		}
		p, err := l.InclusionProof(seq, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(hasher, seq, n, e.LeafHash(), p, cp.Hash); err != nil {
			t.Fatalf("inclusion proof for %d: %v", seq, err)
		}
	}
	for _, from := range []uint64{1, 7, 64, 199, 200} {
		p, err := l.ConsistencyProof(from, n)
		if err != nil {
			t.Fatal(err)
		}
		old, err := l.RootAt(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(hasher, from, n, p, old, cp.Hash); err != nil {
			t.Fatalf("consistency %d->%d: %v", from, n, err)
		}
	}
	if _, err := l.ConsistencyProof(0, n); !errors.Is(err, ErrBadRange) {
		t.Fatalf("ConsistencyProof(0, n) err = %v, want ErrBadRange", err)
	}
	if _, err := l.Entry(n); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Entry(n) err = %v, want ErrNotFound", err)
	}
	rep, err := l.Verify(ctx, keys.verifiers(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != n || rep.Checkpoints < 2 {
		t.Fatalf("verify report %+v: want %d entries and several checkpoints", rep, n)
	}
}

func mustVerifier(t testing.TB, vkey string) note.Verifier {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestIdempotency(t *testing.T) {
	ctx := context.Background()
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()

	rec := func(digest string) Record {
		r := adminRecord(1)
		r.Unique = &Unique{Key: "webhook/dev/evt_1", Digest: []byte(digest)}
		return r
	}
	// Concurrent redeliveries of one event produce exactly one entry.
	const n = 32
	results := make([]Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if results[i], err = l.Append(ctx, rec("same")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	originals := 0
	for _, r := range results {
		if r.Seq != 0 {
			t.Fatalf("redelivery got seq %d, want 0", r.Seq)
		}
		if !r.Duplicate {
			originals++
		}
	}
	if originals != 1 || l.Size() != 1 {
		t.Fatalf("%d originals and size %d, want exactly one entry", originals, l.Size())
	}
	if _, err := l.Append(ctx, rec("different")); !errors.Is(err, ErrConflict) {
		t.Fatalf("different digest: err = %v, want ErrConflict", err)
	}
	if l.Size() != 1 {
		t.Fatalf("a conflict appended an entry")
	}
}

func TestTransactionState(t *testing.T) {
	ctx := context.Background()
	var keys testKeys
	dir := t.TempDir()
	l := openTest(t, dir, &keys)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, r := range []Record{
		paymentRecord("pay_1", TypeAuthorized, 1000, t0),
		paymentRecord("pay_1", TypeCaptured, 1000, t0.Add(time.Minute)),
		paymentRecord("pay_2", TypeCaptured, 500, t0.Add(2*time.Minute)),
		paymentRecord("pay_1", TypeRefunded, 400, t0.Add(3*time.Minute)),
	} {
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	s, err := l.Transaction("pay_1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Captured != 1000 || s.Refunded != 400 || s.Status != "refunded" || len(s.Seqs) != 3 || !s.CapturedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("state of pay_1 = %+v", s)
	}
	if _, err := l.Transaction("pay_9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing transaction err = %v", err)
	}
	l.Close()
	l = openTest(t, dir, &keys)
	defer l.Close()
	if _, err := l.Verify(ctx, keys.verifiers(t), nil); err != nil {
		t.Fatal(err)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	var keys testKeys
	l := openTest(t, dir, &keys)
	defer l.Close()
	if _, err := Open(context.Background(), Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open err = %v, want ErrLocked", err)
	}
}

// TestVerifyCatchesTampering edits the store underneath the ledger the way
// an attacker with disk access would, and checks that verify names the first
// bad sequence number.
func TestVerifyCatchesTampering(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	build := func(t *testing.T) (string, testKeys) {
		dir := t.TempDir()
		var keys testKeys
		l := openTest(t, dir, &keys)
		for i := range 20 {
			var r Record
			if i%2 == 0 {
				r = paymentRecord(fmt.Sprintf("pay_%d", i/4), TypeCaptured, int64(100+i), t0.Add(time.Duration(i)*time.Second))
				if i%4 == 0 {
					r = withCard(r, i)
				}
			} else {
				r = adminRecord(i)
			}
			if _, err := l.Append(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return dir, keys
	}
	tamper := func(t *testing.T, dir string, f func(db *pebble.DB)) {
		db, err := pebble.Open(dir, &pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		f(db)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	getEntry := func(db *pebble.DB, seq uint64) []byte {
		v, c, err := db.Get(entryKey(seq))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return append([]byte(nil), v...)
	}
	for _, tc := range []struct {
		name    string
		wantSeq uint64
		edit    func(db *pebble.DB)
	}{
		{"flip one byte", 7, func(db *pebble.DB) {
			v := getEntry(db, 7)
			i := strings.Index(string(v), `"action":"test"`) + 11
			v[i] ^= 0x01
			db.Set(entryKey(7), v, pebble.Sync)
		}},
		{"flip amount", 4, func(db *pebble.DB) {
			v := []byte(strings.Replace(string(getEntry(db, 4)), `"amount":104`, `"amount":105`, 1))
			db.Set(entryKey(4), v, pebble.Sync)
		}},
		{"delete one entry", 12, func(db *pebble.DB) {
			db.Delete(entryKey(12), pebble.Sync)
		}},
		{"swap two entries", 5, func(db *pebble.DB) {
			a, b := getEntry(db, 5), getEntry(db, 9)
			db.Set(entryKey(5), b, pebble.Sync)
			db.Set(entryKey(9), a, pebble.Sync)
		}},
		{"swap entries and renumber", 5, func(db *pebble.DB) {
			a, b := getEntry(db, 5), getEntry(db, 9)
			a = []byte(strings.Replace(string(a), `"seq":5`, `"seq":9`, 1))
			b = []byte(strings.Replace(string(b), `"seq":9`, `"seq":5`, 1))
			db.Set(entryKey(5), b, pebble.Sync)
			db.Set(entryKey(9), a, pebble.Sync)
		}},
		{"flip a stored subtree hash", 7, func(db *pebble.DB) {
			// Leaf 7 completes the subtree of leaves 0..3 at level 2
			// (offset 64 of its hash row).
			v := mustGet(t, db, hashRowKey(7))
			v[64] ^= 0x80
			db.Set(hashRowKey(7), v, pebble.Sync)
		}},
		{"delete a hash row", 3, func(db *pebble.DB) {
			db.Delete(hashRowKey(3), pebble.Sync)
		}},
		{"delete a derived list row", 0, func(db *pebble.DB) {
			it, _ := db.NewIter(&pebble.IterOptions{LowerBound: key(tagIndex, idxMerchant), UpperBound: prefixEnd(key(tagIndex, idxMerchant))})
			it.First()
			k := append([]byte(nil), it.Key()...)
			it.Close()
			db.Delete(k, pebble.Sync)
		}},
		{"add a stray idempotency row", 0, func(db *pebble.DB) {
			db.Set(uniqueKey("webhook/dev/forged"), append(u64(3), 'x'), pebble.Sync)
		}},
		{"edit a payment entry row", 0, func(db *pebble.DB) {
			k := txEntryKey("pay_0", 2)
			in, err := parseFoldRow(mustGet(t, db, k))
			if err != nil || in.Amount != 102 {
				t.Fatalf("fold row of entry 2 = %+v, %v", in, err)
			}
			in.Amount = 1
			db.Set(k, appendFoldRow(nil, in), pebble.Sync)
		}},
		{"edit a transaction index", 0, func(db *pebble.DB) {
			v := []byte(strings.Replace(string(mustGet(t, db, txStateKey("pay_0"))), `"amount_captured":102`, `"amount_captured":1`, 1))
			db.Set(txStateKey("pay_0"), v, pebble.Sync)
		}},
		{"edit a transaction index's card copy", 0, func(db *pebble.DB) {
			v := mustGet(t, db, txStateKey("pay_1"))
			if !bytes.Contains(v, []byte(`"brand":"visa"`)) {
				t.Fatalf("state of pay_1 has no card copy: %s", v)
			}
			db.Set(txStateKey("pay_1"), bytes.Replace(v, []byte(`"brand":"visa"`), []byte(`"brand":"amex"`), 1), pebble.Sync)
		}},
		{"edit a transaction index's card copy: swap two", 0, func(db *pebble.DB) {
			a, b := mustGet(t, db, txStateKey("pay_1")), mustGet(t, db, txStateKey("pay_2"))
			ia, ib := bytes.Index(a, cardMember), bytes.Index(b, cardMember)
			db.Set(txStateKey("pay_1"), append(a[:ia:ia], b[ib:]...), pebble.Sync)
			db.Set(txStateKey("pay_2"), append(b[:ib:ib], a[ia:]...), pebble.Sync)
		}},
		{"edit a transaction index's card copy: drop it", 0, func(db *pebble.DB) {
			v := mustGet(t, db, txStateKey("pay_1"))
			db.Set(txStateKey("pay_1"), append(v[:bytes.Index(v, cardMember)], '}'), pebble.Sync)
		}},
		{"edit a payment entry row's card digest", 0, func(db *pebble.DB) {
			k := txEntryKey("pay_1", 4)
			v := mustGet(t, db, k)
			v[len(v)-1] ^= 1
			db.Set(k, v, pebble.Sync)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, keys := build(t)
			tamper(t, dir, tc.edit)
			l, err := Open(ctx, Options{Dir: dir, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			_, err = l.Verify(ctx, keys.verifiers(t), nil)
			var te *TamperedError
			if !errors.As(err, &te) || !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify err = %v, want a TamperedError", err)
			}
			// Rows found wrong by the multiset comparison are not one
			// entry's fault: they report Index instead of a seq.
			wantIndex := strings.HasPrefix(tc.name, "delete a derived") || strings.HasPrefix(tc.name, "add a stray") || strings.HasPrefix(tc.name, "edit a payment entry row") || strings.HasPrefix(tc.name, "edit a transaction index")
			if tc.name == "flip amount" {
				// The untampered store verifies.
				clean, keys := build(t)
				l, err := Open(ctx, Options{Dir: clean, ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				if _, err := l.Verify(ctx, keys.verifiers(t), nil); err != nil {
					t.Fatalf("Verify of the untampered store: %v", err)
				}
			}
			if te.Index != wantIndex || (!wantIndex && te.Seq != tc.wantSeq) {
				t.Fatalf("Verify: %v (index %v); want seq %d, index %v", err, te.Index, tc.wantSeq, wantIndex)
			}
		})
	}
}

func mustGet(t *testing.T, db *pebble.DB, k []byte) []byte {
	v, c, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return append([]byte(nil), v...)
}

// TestCrashKeepsAcknowledged runs an appending child process, kills it with
// SIGKILL in the middle of the load, and checks that every entry the child
// saw acknowledged is in the reopened ledger and that the ledger verifies.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if os.Getenv("PAYTRAIL_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	for round := range 3 {
		dir := filepath.Join(t.TempDir(), "ledger")
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsAcknowledged$")
		cmd.Env = append(os.Environ(), "PAYTRAIL_CRASH_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[uint64]string{}
		var vkey string
		sc := bufio.NewScanner(out)
		killAt := 300 + round*400
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 2 && f[0] == "vkey" {
				vkey = f[1]
				continue
			}
			if len(f) != 2 {
				continue
			}
			seq, _ := strconv.ParseUint(f[0], 10, 64)
			acked[seq] = f[1]
			if len(acked) == killAt {
				cmd.Process.Kill()
				break
			}
		}
		cmd.Wait()
		if len(acked) < killAt {
			t.Fatalf("child stopped after %d acknowledgements", len(acked))
		}
		l, err := Open(context.Background(), Options{Dir: dir, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for seq, id := range acked {
			e, err := l.Entry(seq)
			if err != nil {
				t.Fatalf("acknowledged entry %d lost: %v", seq, err)
			}
			if e.ID != id {
				t.Fatalf("entry %d has id %s, acknowledged %s", seq, e.ID, id)
			}
		}
		if _, err := l.Verify(context.Background(), note.VerifierList(mustVerifier(t, vkey)), nil); err != nil {
			t.Fatalf("after crash: %v", err)
		}
		t.Logf("round %d: %d acknowledged, %d recovered", round, len(acked), l.Size())
		l.Close()
	}
}

func crashChild() {
	dir := os.Getenv("PAYTRAIL_CRASH_CHILD")
	var mu sync.Mutex
	l, err := Open(context.Background(), Options{
		Dir:                dir,
		CheckpointInterval: 5 * time.Millisecond,
		Signer: func(origin string) (note.Signer, error) {
			skey, vkey, err := note.GenerateKey(rand.Reader, origin)
			if err != nil {
				return nil, err
			}
			fmt.Printf("vkey %s\n", vkey)
			return note.NewSigner(skey)
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				r := paymentRecord(fmt.Sprintf("pay_%d_%d", w, i%7), TypeCaptured, int64(i), time.Now().UTC())
				res, err := l.Append(context.Background(), r)
				if err != nil {
					os.Exit(1)
				}
				mu.Lock()
				fmt.Printf("%d %s\n", res.Seq, r.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestSignerRotationCosignsLatest: after the checkpoint key changes, reopening
// adds the new key's signature to the latest checkpoint, keeping the old one,
// so clients pinned to either key can verify it.
func TestSignerRotationCosignsLatest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var oldKeys testKeys
	l := openTest(t, dir, &oldKeys)
	if _, err := l.Append(ctx, adminRecord(1)); err != nil {
		t.Fatal(err)
	}
	origin := l.Origin()
	l.Close()
	newKeys := newTestKeys(t, origin)
	l = openTest(t, dir, &newKeys)
	defer l.Close()
	cp, err := l.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]testKeys{"old": oldKeys, "new": newKeys} {
		if _, err := note.Open(cp, k.verifiers(t)); err != nil {
			t.Errorf("latest checkpoint does not verify with the %s key: %v\n%s", name, err, cp)
		}
	}
	if _, err := l.Verify(ctx, note.VerifierList(mustVerifier(t, oldKeys.vkey), mustVerifier(t, newKeys.vkey)), nil); err != nil {
		t.Fatal(err)
	}
	// The co-signed checkpoint is listed as the handover, so that a
	// verifier pinned to the old key finds it later.
	hs, err := l.Handovers()
	if err != nil || len(hs) != 1 || hs[0] != 1 {
		t.Fatalf("handovers %v, %v; want [1]", hs, err)
	}
	// Online: the next checkpoint is signed by both keys, and listed.
	third := newTestKeys(t, origin)
	s3, _ := note.NewSigner(third.skey)
	if _, err := l.Append(ctx, adminRecord(2)); err != nil {
		t.Fatal(err)
	}
	if err := l.RotateSigner(s3); err != nil {
		t.Fatal(err)
	}
	if hs, err = l.Handovers(); err != nil || len(hs) != 2 || hs[1] != 2 {
		t.Fatalf("handovers after an online rotation %v, %v; want [1 2]", hs, err)
	}
}

// TestVerifyAllKinds appends one entry of every kind with realistic bodies
// and checks that verify accepts them.
func TestVerifyAllKinds(t *testing.T) {
	ctx := context.Background()
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	recs := []Record{
		paymentRecord("pay_1", TypeCaptured, 100, at),
		{Kind: KindAccess, ID: newID(), Time: at, Policy: 1, Body: AccessBody{ActorID: "p", Action: "transaction.read", Result: "success", Status: 200}},
		{Kind: KindSecurity, ID: newID(), Time: at, Policy: 1, Body: AdminBody{ActorID: "webhook:dev", Action: "webhook.idempotency_conflict"}},
		{Kind: KindSubjectRequest, ID: newID(), Time: at, Policy: 1, Body: SubjectRequestBody{Kind: "restrict", Reference: "r1"}, Unique: &Unique{Key: "subject-request/r1", Digest: []byte("d")}},
		{Kind: KindReconciliation, ID: newID(), Time: at, Policy: 1, Body: map[string]any{"status": 3, "summary": map[string]int{"matched": 1}}},
		adminRecord(1),
	}
	for _, r := range recs {
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := l.Verify(ctx, keys.verifiers(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != uint64(len(recs)) || rep.Transactions != 1 {
		t.Fatalf("report %+v", rep)
	}
}

// TestTransactionStateOutOfOrder: webhooks arrive in any order; the state
// takes the latest event's status and never lowers a cumulative amount.
func TestTransactionStateOutOfOrder(t *testing.T) {
	ctx := context.Background()
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, r := range []Record{
		paymentRecord("pay_1", TypeRefunded, 1000, t0.Add(3*time.Minute)), // second refund, cumulative 1000
		paymentRecord("pay_1", TypeCaptured, 2000, t0.Add(time.Minute)),
		paymentRecord("pay_1", TypeRefunded, 500, t0.Add(2*time.Minute)), // first refund, delivered late
	} {
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	s, err := l.Transaction("pay_1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Refunded != 1000 || s.Captured != 2000 || s.Status != "refunded" || !s.StatusAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("state %+v", s)
	}
	if _, err := l.Verify(ctx, keys.verifiers(t), nil); err != nil {
		t.Fatal(err)
	}
}

// A store of the pre-release key layout is refused with a plain reason,
// not silently given a second ledger id next to its old entries.
func TestOpenRefusesPreReleaseLayout(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(metaLegacyID, []byte("0123456789abcdef"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(context.Background(), Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "pre-release build") {
		t.Fatalf("Open = %v, want the pre-release layout refused", err)
	}
}

// buildVerifiable appends n entries, alternately payments and admin entries,
// and closes the ledger.
func buildVerifiable(t *testing.T, n int) (string, testKeys) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	var keys testKeys
	l := openTest(t, dir, &keys)
	for i := range n {
		r := adminRecord(i)
		if i%2 == 0 {
			r = paymentRecord(fmt.Sprintf("pay_%d", i/4), TypeCaptured, int64(100+i), t0.Add(time.Duration(i)*time.Second))
		}
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, keys
}

func editStore(t *testing.T, dir string, f func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// Rows planted after the last entry: verify still runs and names the first
// sequence number past the ledger; the server refuses to append to it.
func TestVerifyNamesRowsPastTheEnd(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(db *pebble.DB)
	}{
		{"checkpoint past the end", func(db *pebble.DB) {
			db.Set(checkpointKey(21), mustGet(t, db, checkpointKey(20)), pebble.Sync)
		}},
		{"entry past the end", func(db *pebble.DB) {
			db.Set(entryKey(25), mustGet(t, db, entryKey(19)), pebble.Sync)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, keys := buildVerifiable(t, 20)
			editStore(t, dir, tc.edit)
			if _, err := Open(ctx, Options{Dir: dir}); !errors.Is(err, ErrTampered) {
				t.Fatalf("writable Open = %v, want it refused as tampered", err)
			}
			l, err := Open(ctx, Options{Dir: dir, ReadOnly: true})
			if err != nil {
				t.Fatalf("read-only Open = %v; verify could not run", err)
			}
			defer l.Close()
			_, err = l.Verify(ctx, keys.verifiers(t), nil)
			var te *TamperedError
			if !errors.As(err, &te) || te.Seq != 20 {
				t.Fatalf("Verify = %v, want tampering at 20", err)
			}
		})
	}
}

// A tampered entry is reported even when an index row is wrong too, and
// the index pass finishes first.
func TestVerifyReportsTheEntryBeforeTheIndex(t *testing.T) {
	dir, keys := buildVerifiable(t, 3000)
	editStore(t, dir, func(db *pebble.DB) {
		v := []byte(strings.Replace(string(mustGet(t, db, txStateKey("pay_0"))), `"amount_captured":102`, `"amount_captured":1`, 1))
		db.Set(txStateKey("pay_0"), v, pebble.Sync)
		e := mustGet(t, db, entryKey(2901))
		e[len(e)-3] ^= 1
		db.Set(entryKey(2901), e, pebble.Sync)
	})
	l, err := Open(context.Background(), Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range 3 {
		_, err := l.Verify(context.Background(), keys.verifiers(t), nil)
		var te *TamperedError
		if !errors.As(err, &te) || te.Index || te.Seq != 2901 {
			t.Fatalf("Verify = %v, want the entry at 2901", err)
		}
	}
}

// Values that do not survive encoding unchanged (invalid UTF-8, a time
// offset with seconds) are stored as encoded, so an honest ledger verifies.
func TestNonCanonicalValuesStillVerify(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var keys testKeys
	l := openTest(t, dir, &keys)
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.FixedZone("LMT", 30))
	r := paymentRecord("pay_\xff1", TypeCaptured, 100, at)
	p := r.Body.(PaymentBody)
	p.MerchantID, p.Status, p.AltIDs = "m\xc3", "captured\xff", []string{"ch_\xfe"}
	p.Brand, p.DataKey = "visa\xff", "dk_\xfe<"
	p.Sealed = map[string][]byte{"last4": {0xff, '"'}, "bin": {}, "raw": {1}}
	r.Body = &p
	if _, err := l.Append(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Verify(ctx, keys.verifiers(t), nil); err != nil {
		t.Fatalf("honest ledger fails verify: %v", err)
	}
	s, err := l.Transaction("pay_\uFFFD1")
	if err != nil || s.MerchantID != "m\uFFFD" || !s.FirstSeen.Equal(at) || s.Card == nil || s.Card.Brand != "visa\uFFFD" {
		t.Fatalf("Transaction = %+v, %v", s, err)
	}
	if p.MerchantID != "m\xc3" {
		t.Fatal("Append changed the caller's body")
	}
	l.Close()
}

// A read-only open finds the newest stored checkpoint (the one Close signs).
func TestLatestCheckpointAfterReopen(t *testing.T) {
	dir, keys := buildVerifiable(t, 7)
	l, err := Open(context.Background(), Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	signed, err := l.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, keys.verifiers(t))
	if err != nil {
		t.Fatal(err)
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || cp.Size != 7 || cp.Size != l.Size() {
		t.Fatalf("latest checkpoint %+v (%v), want size 7", cp, err)
	}
}

// TestBlockCacheKeepsBlocks checks that a writable store's block cache
// holds the blocks that lookups read once the memtables have grown to full
// size. Pebble carves its memtables out of the block cache; when they took
// all of it, every lookup read its table's filter block from disk again.
func TestBlockCacheKeepsBlocks(t *testing.T) {
	o := storeOptions(false, PebbleLogger(discardLogger(), "test"))
	db, err := pebble.Open(t.TempDir(), o)
	o.Cache.Unref()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Enough to grow the memtables to memTableSize and flush twice.
	val := make([]byte, 1000)
	for i := range 3 * memTableSize / len(val) {
		if err := db.Set(txStateKey(fmt.Sprintf("tx%08d", i)), val, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	before := db.Metrics().BlockCache
	r := &filteredReader{db: db}
	for i := range 1000 {
		if _, _, err := r.Get(txStateKey(fmt.Sprintf("tx%08dx", i*29))); !errors.Is(err, pebble.ErrNotFound) {
			t.Fatalf("absent key: %v", err)
		}
	}
	r.it.Close()
	after := db.Metrics().BlockCache
	if misses := after.Misses - before.Misses; misses > 100 {
		t.Errorf("1000 lookups of absent keys missed the block cache %d times; want each table's blocks read once", misses)
	}
	if after.Count == 0 {
		t.Error("the block cache holds no blocks")
	}
}

// TestVerifyReportsCoverage checks VerifyReport.Covered: the entries a
// verified checkpoint vouches for. Close signs the last entries; entries
// appended with no signer are covered by nothing.
func TestVerifyReportsCoverage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var keys testKeys
	l := openTest(t, dir, &keys)
	appendAll(t, l, adminRecord(1), adminRecord(2), adminRecord(3))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := l.Verify(ctx, keys.verifiers(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 3 || rep.Covered != 3 {
		t.Fatalf("after Close: %d entries, %d covered; want 3 and 3", rep.Entries, rep.Covered)
	}
	appendAll(t, l, adminRecord(4), adminRecord(5))
	rep, err = l.Verify(ctx, keys.verifiers(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 5 || rep.Covered != 3 {
		t.Fatalf("after unsigned appends: %d entries, %d covered; want 5 and 3", rep.Entries, rep.Covered)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyOpenWritesNothing opens a copy of a ledger read-only, as
// verify does on an auditor's copy (without PAYTRAIL.LOCK, which no server
// of the copy ever held), and checks that no file is created, changed or
// touched.
func TestReadOnlyOpenWritesNothing(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	var keys testKeys
	l := openTest(t, src, &keys)
	appendAll(t, l, adminRecord(1), adminRecord(2))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "PAYTRAIL.LOCK")); err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string]string {
		files := map[string]string{}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files[e.Name()] = fmt.Sprintf("%s %d %x", fi.ModTime().Format(time.RFC3339Nano), fi.Size(), sha256.Sum256(b))
		}
		return files
	}
	before := snapshot()
	ro, err := Open(ctx, Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Verify(ctx, keys.verifiers(t), nil); err != nil {
		t.Fatal(err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after := snapshot()
	for name, was := range before {
		if after[name] != was {
			t.Errorf("%s changed: %s -> %s", name, was, after[name])
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s was created", name)
		}
	}
}

// TestRecordIDsNeverLookLikeCardNumbers checks that no record id holds a
// run of digits the card number redactor could take for a PAN (about one
// hex id in 25 has a 13-digit run, one in 250 a Luhn-valid one).
func TestRecordIDsNeverLookLikeCardNumbers(t *testing.T) {
	for range 20000 {
		if id := NewRecordID(); longestDigitRun(id) >= 13 || len(id) != 32 {
			t.Fatalf("record id %s", id)
		}
	}
	if longestDigitRun("ab1234567890123c") != 13 || longestDigitRun("abc") != 0 {
		t.Fatal("longestDigitRun miscounts")
	}
}

// TestLedgerWithoutCardCopies: a ledger written before card copies were
// kept (states without one, 'e' rows without a digest) verifies, and the
// states of its transactions gain a copy with their next card entry only,
// verifying still.
func TestLedgerWithoutCardCopies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var keys testKeys
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	l := openTest(t, dir, &keys)
	for i, tx := range []string{"pay_old1", "pay_old2"} {
		if _, err := l.Append(ctx, withCard(paymentRecord(tx, TypeAuthorized, 10, t0.Add(time.Duration(i)*time.Second)), i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Strip the copies and digests, as the earlier writer left them.
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for seq, tx := range []string{"pay_old1", "pay_old2"} {
		v := mustGet(t, db, txStateKey(tx))
		i := bytes.Index(v, cardMember)
		if i < 0 {
			t.Fatalf("state of %s has no card copy: %s", tx, v)
		}
		db.Set(txStateKey(tx), append(v[:i:i], '}'), pebble.Sync)
		k := txEntryKey(tx, uint64(seq))
		row := mustGet(t, db, k)
		row[1] &^= foldFlagDigest
		db.Set(k, row[:len(row)-cardDigestSize], pebble.Sync)
	}
	// ... and without the row that says from where copies are kept.
	db.Delete(metaCardCopiesFrom, pebble.Sync)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// A read-only open (verify of a copy) expects no copies and writes
	// nothing.
	ro, err := Open(ctx, Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Verify(ctx, keys.verifiers(t), nil); err != nil {
		t.Fatalf("read-only Verify of the old rows: %v", err)
	}
	ro.Close()

	l = openTest(t, dir, &keys)
	defer l.Close()
	verify := func(when string) {
		t.Helper()
		if _, err := l.Verify(ctx, keys.verifiers(t), nil); err != nil {
			t.Fatalf("Verify %s: %v", when, err)
		}
	}
	verify("of the old rows")
	for _, tx := range []string{"pay_old1", "pay_old2"} {
		if s, err := l.Transaction(tx); err != nil || s.Card != nil || s.CardSeq == nil {
			t.Fatalf("old %s: %+v, %v; want a card entry and no copy", tx, s, err)
		}
	}
	// A capture without a card keeps the state without a copy; a card
	// entry brings one.
	if _, err := l.Append(ctx, paymentRecord("pay_old1", TypeCaptured, 10, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	res, err := l.Append(ctx, withCard(paymentRecord("pay_old2", TypeCaptured, 10, t0.Add(time.Minute)), 7))
	if err != nil {
		t.Fatal(err)
	}
	verify("after new events")
	if s, err := l.Transaction("pay_old1"); err != nil || s.Card != nil {
		t.Fatalf("pay_old1 after a capture: %+v, %v; want no copy", s, err)
	}
	s, err := l.Transaction("pay_old2")
	if err != nil || s.Card == nil || *s.CardSeq != res.Seq || string(s.Card.Sealed.Last4) != "sealed-last4-7" || s.Card.DataKey != fmt.Sprintf("dk_%032x", 7) {
		t.Fatalf("pay_old2 after a card entry: %+v, %v; want its copy", s, err)
	}
}
