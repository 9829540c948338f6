package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/note"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/cluster/natstest"
	"github.com/paytrail/paytrail/ledger/keystore"
)

func TestMain(m *testing.M) {
	natstest.Main()
	os.Exit(m.Run())
}

// testCluster is NATS servers and paytrail nodes sharing one master key
// and keysets, as a real cluster's nodes do.
type testCluster struct {
	t     *testing.T
	nats  *natstest.Cluster
	keys  *crypto.Keysets
	nodes []*testNode
}

type testNode struct {
	name   string
	dir    string
	conn   *Conn
	ledger *ledger.Ledger
	dk     *crypto.DataKeys
	node   *Node
}

func newTestCluster(t *testing.T, servers int) *testCluster {
	t.Helper()
	return &testCluster{t: t, nats: natstest.Start(t, servers), keys: newTestKeysets(t, t.TempDir())}
}

// newTestKeysets makes a master key file and keysets in dir, as a
// cluster's first node would, and loads them.
func newTestKeysets(t testing.TB, dir string) *crypto.Keysets {
	t.Helper()
	ctx := context.Background()
	if err := crypto.CreateMasterFile(filepath.Join(dir, "master.key")); err != nil {
		t.Fatal(err)
	}
	m, err := crypto.OpenMaster(ctx, crypto.MasterConfig{URI: "file://" + filepath.Join(dir, "master.key")})
	if err != nil {
		t.Fatal(err)
	}
	if err := crypto.InitKeysets(ctx, filepath.Join(dir, "keysets"), m); err != nil {
		t.Fatal(err)
	}
	keys, err := crypto.LoadKeysets(ctx, filepath.Join(dir, "keysets"), m)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func (tc *testCluster) replicas() int {
	if len(tc.nats.URLs()) > 0 && bytes.Count([]byte(tc.nats.URLs()), []byte(",")) >= 2 {
		return 3
	}
	return 1
}

// startNode opens (or reopens) a node with its data in dir.
func (tc *testCluster) startNode(name, dir string) *testNode {
	t := tc.t
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("PAYTRAIL_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", name)
	}
	conn, err := Connect(ctx, Config{URLs: tc.nats.URLs(), Replicas: tc.replicas(), Node: name, Timeout: 5 * time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := conn.LedgerID(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ctx, ledger.Options{
		Dir: dir, ID: id, Sequenced: true, Agree: conn.Agree, Logger: logger,
		Signer: func(origin string) (note.Signer, error) { return tc.keys.NoteSigner(origin) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ks := conn.KeyStore()
	dk := crypto.NewDataKeys(tc.keys, ks, 0)
	node, err := NewNode(conn, NodeOptions{
		Ledger: l, Sealer: &DataKeySealer{LedgerID: id, DataKeys: dk, Store: ks}, Forget: dk.Forget,
		CutInterval: 50 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	n := &testNode{name: name, dir: dir, conn: conn, ledger: l, dk: dk, node: node}
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) stop() {
	if n.node == nil {
		return
	}
	n.node.Close()
	n.ledger.Close()
	n.conn.Close()
	n.node = nil
}

func (tc *testCluster) start(k int) {
	for i := range k {
		tc.nodes = append(tc.nodes, tc.startNode(fmt.Sprintf("p%d", i), tc.t.TempDir()))
	}
}

// payment is a sealed payment record as a handler makes it: a fresh data
// key from the cluster's key bucket, and the cardholder's subjects.
func (tc *testCluster) payment(t *testing.T, n *testNode, event, tx, email string) ledger.Record {
	t.Helper()
	return tc.paymentStored(t, n, n.conn.KeyStore(), event, tx, email)
}

// converge waits until every running node applied the whole stream and
// checks they hold byte-identical entries and checkpoints.
func (tc *testCluster) converge(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	var nodes []*testNode
	for _, n := range tc.nodes {
		if n.node != nil {
			nodes = append(nodes, n)
		}
	}
	// Done when every node applied the whole stream and it stayed still
	// for a few cut intervals (no cut point on its way to some node).
	var last uint64
	var still time.Time
	for {
		end, err := nodes[0].conn.LastSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := true
		for _, n := range nodes {
			if n.ledger.Applied() < end {
				done = false
			}
		}
		if end != last {
			last, still = end, time.Now()
		}
		if done && time.Since(still) > 200*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				t.Logf("%s applied %d of %d, halted: %v", n.name, n.ledger.Applied(), end, n.node.Halted())
			}
			t.Fatal("nodes did not converge")
		}
		time.Sleep(20 * time.Millisecond)
	}
	a := nodes[0].ledger
	for _, n := range nodes[1:] {
		b := n.ledger
		if a.Size() != b.Size() {
			t.Fatalf("sizes differ: %d and %d", a.Size(), b.Size())
		}
		for seq := range a.Size() {
			ea, err := a.Entry(seq)
			if err != nil {
				t.Fatal(err)
			}
			eb, err := b.Entry(seq)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ea.Bytes(), eb.Bytes()) {
				t.Fatalf("entry %d differs between %s and %s", seq, nodes[0].name, n.name)
			}
		}
		for size := uint64(1); size <= a.Size(); size++ {
			ca, erra := a.Checkpoint(size)
			cb, errb := b.Checkpoint(size)
			if (erra == nil) != (errb == nil) || !bytes.Equal(ca, cb) {
				t.Fatalf("checkpoint %d differs between %s and %s: %v %v", size, nodes[0].name, n.name, erra, errb)
			}
		}
	}
}

func TestNodesHoldIdenticalLedgers(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.start(3)
	ctx := context.Background()
	var mu sync.Mutex
	seqs := map[uint64]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				n := tc.nodes[rand.IntN(len(tc.nodes))]
				ev := fmt.Sprintf("evt_%d_%d", w, i)
				res, err := n.node.Append(ctx, tc.payment(t, n, ev, fmt.Sprintf("tx%d", i%5), fmt.Sprintf("c%d@example.org", i%3)))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if other, dup := seqs[res.Seq]; dup {
					t.Errorf("seq %d given to %s and %s", res.Seq, other, ev)
				}
				seqs[res.Seq] = ev
				mu.Unlock()
				// Read your writes on the answering node.
				if e, err := n.ledger.Entry(res.Seq); err != nil || e == nil {
					t.Errorf("%s answered seq %d but has no entry: %v", n.name, res.Seq, err)
				}
			}
		})
	}
	wg.Wait()
	tc.converge(t)
	if got := tc.nodes[0].ledger.Size(); got != 200 {
		t.Fatalf("size %d, want 200", got)
	}
	if _, err := tc.nodes[2].ledger.LatestCheckpoint(); err != nil {
		t.Fatal(err)
	}
	// Every node found the same search rows, from sealed subjects.
	for _, n := range tc.nodes {
		txs, err := n.ledger.SubjectTransactions(tc.keys.BlindIndex("email", "c1@example.org"))
		if err != nil || len(txs) != 5 {
			t.Fatalf("%s: transactions of c1: %v %v", n.name, txs, err)
		}
	}
	// Every node's heartbeat comes in (every 100ms here).
	deadline := time.Now().Add(20 * time.Second)
	for {
		sts, err := tc.nodes[0].node.Nodes(ctx)
		if err == nil && len(sts) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes: %+v %v", sts, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSameDeliveryOnEveryNode(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.start(3)
	ctx := context.Background()
	for round := range 5 {
		ev := fmt.Sprintf("evt_same_%d", round)
		var wg sync.WaitGroup
		results := make([]ledger.Result, 3)
		for i, n := range tc.nodes {
			rec := tc.payment(t, n, ev, "tx_same", "same@example.org")
			wg.Go(func() {
				var err error
				if results[i], err = n.node.Append(ctx, rec); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		created := 0
		for _, r := range results {
			if r.Seq != results[0].Seq {
				t.Fatalf("round %d: seqs %+v", round, results)
			}
			if !r.Duplicate {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("round %d: %d answers say created: %+v", round, created, results)
		}
	}
	tc.converge(t)
	if got := tc.nodes[1].ledger.Size(); got != 5 {
		t.Fatalf("size %d, want 5", got)
	}
	// A conflicting body under a known event id is refused by every
	// applier alike.
	rec := tc.payment(t, tc.nodes[0], "evt_same_0", "tx_same", "same@example.org")
	rec.Unique.Digest = []byte("another body")
	if _, err := tc.nodes[2].node.Append(ctx, rec); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("conflicting delivery: %v", err)
	}
}

func TestErasureHoldsOnEveryNodeAndAfterRebuild(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.start(2)
	ctx := context.Background()
	a, b := tc.nodes[0], tc.nodes[1]
	subject := tc.keys.BlindIndex("email", "gone@example.org")
	var keys []string
	for i := range 3 {
		rec := tc.payment(t, a, fmt.Sprintf("evt_e%d", i), "tx_e", "gone@example.org")
		keys = append(keys, rec.Link.DataKey)
		if _, err := a.node.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	keep := tc.payment(t, a, "evt_keep", "tx_keep", "kept@example.org")
	if _, err := a.node.Append(ctx, keep); err != nil {
		t.Fatal(err)
	}
	res, err := b.node.Append(ctx, ledger.Record{
		Kind: ledger.KindSubjectRequest, ID: ledger.NewRecordID(), Time: time.Now().UTC(), Policy: 1,
		Body:  map[string]string{"kind": "erase"},
		Erase: &ledger.Erasure{Transactions: []string{"tx_e"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Shred != nil {
		t.Fatal("the node left the erasure's shredding to its caller")
	}
	tc.converge(t)
	for _, n := range tc.nodes {
		if txs, _ := n.ledger.SubjectTransactions(subject); len(txs) != 0 {
			t.Fatalf("%s still finds the erased cardholder: %v", n.name, txs)
		}
		if pending, _ := n.ledger.PendingShreds(); len(pending) != 0 {
			t.Fatalf("%s has erasures pending: %v", n.name, pending)
		}
	}
	for _, id := range keys {
		if _, found, err := a.conn.KeyStore().Wrapped(ctx, id); err != nil || found {
			t.Fatalf("erased data key %s still in the bucket (%v)", id, err)
		}
	}
	// A node built from the stream afterwards derives nothing of the
	// erased cardholder, and the same of everyone else.
	c := tc.startNode("rebuilt", t.TempDir())
	tc.nodes = append(tc.nodes, c)
	tc.converge(t)
	if txs, _ := c.ledger.SubjectTransactions(subject); len(txs) != 0 {
		t.Fatalf("rebuilt node finds the erased cardholder: %v", txs)
	}
	if txs, _ := c.ledger.SubjectTransactions(tc.keys.BlindIndex("email", "kept@example.org")); len(txs) != 1 {
		t.Fatalf("rebuilt node lost another cardholder's rows: %v", txs)
	}
}

func TestRestartedNodeResumesAndRebuiltNodeReplays(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.start(2)
	ctx := context.Background()
	a, b := tc.nodes[0], tc.nodes[1]
	for i := range 30 {
		if _, err := a.node.Append(ctx, tc.payment(t, a, fmt.Sprintf("evt_r%d", i), fmt.Sprintf("tx%d", i%4), "r@example.org")); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			b.stop()
		}
	}
	time.Sleep(100 * time.Millisecond) // let a cut point land
	b2 := tc.startNode("p1", b.dir)
	tc.nodes[1] = b2
	tc.converge(t)
	// A wiped node rebuilt from the start signs every historical
	// checkpoint byte for byte (converge compares them all).
	tc.nodes = append(tc.nodes, tc.startNode("wiped", t.TempDir()))
	tc.converge(t)
}

func TestTamperedNodeHalts(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.start(2)
	ctx := context.Background()
	a, b := tc.nodes[0], tc.nodes[1]
	for i := range 5 {
		if _, err := a.node.Append(ctx, tc.payment(t, a, fmt.Sprintf("evt_t%d", i), "tx_t", "t@example.org")); err != nil {
			t.Fatal(err)
		}
	}
	tc.converge(t)
	// Once b signed the checkpoint of the whole tree, someone with access
	// to b's disk rewrites its history: b's tree now differs from
	// everyone's.
	deadline := time.Now().Add(30 * time.Second)
	for {
		cp, err := b.ledger.LatestCheckpoint()
		if err == nil && checkpointSize(t, cp) == b.ledger.Size() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint of the whole tree")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.stop()
	tamperLastLeaf(t, b.dir)
	b2 := tc.startNode("p1", b.dir)
	tc.nodes[1] = b2
	for i := range 5 {
		if _, err := a.node.Append(ctx, tc.payment(t, a, fmt.Sprintf("evt_t2_%d", i), "tx_t", "t@example.org")); err != nil {
			t.Fatal(err)
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	for b2.node.Halted() == nil {
		if time.Now().After(deadline) {
			t.Fatal("tampered node did not halt")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !errors.Is(b2.node.Halted(), ledger.ErrForked) {
		t.Fatalf("halted for %v", b2.node.Halted())
	}
	// It never stored a checkpoint the cluster disagrees with.
	cp, err := b2.ledger.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	cpa, err := a.ledger.Checkpoint(checkpointSize(t, cp))
	if err != nil || !bytes.Equal(cp, cpa) {
		t.Fatalf("tampered node serves a checkpoint the cluster does not hold: %v\n%s", err, cp)
	}
	if _, err := b2.node.Append(ctx, tc.payment(t, b2, "evt_after", "tx_t", "t@example.org")); !errors.Is(err, ledger.ErrUnavailable) {
		t.Fatalf("append on a halted node: %v", err)
	}
}

// tamperLastLeaf flips a bit of the stored hash of the ledger's last
// leaf (its row is 'e' seq 'h', the leaf hash first), as someone editing
// the node's files would.
func tamperLastLeaf(t *testing.T, dir string) {
	t.Helper()
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	size := l.Size()
	l.Close()
	if size%2 == 0 {
		t.Fatalf("size %d: the last leaf is no border node of the tree", size)
	}
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k := binary.BigEndian.AppendUint64([]byte{'e'}, size-1)
	k = append(k, 'h')
	v, closer, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	v = bytes.Clone(v)
	closer.Close()
	v[0] ^= 1
	if err := db.Set(k, v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func checkpointSize(t *testing.T, cp []byte) uint64 {
	t.Helper()
	lines := bytes.SplitN(cp, []byte("\n"), 3)
	if len(lines) < 3 {
		t.Fatalf("bad checkpoint %q", cp)
	}
	var size uint64
	if _, err := fmt.Sscan(string(lines[1]), &size); err != nil {
		t.Fatal(err)
	}
	return size
}

func TestSeedFromSingleNode(t *testing.T) {
	tc := newTestCluster(t, 1)
	ctx := context.Background()
	// A single node's data: its own ledger, key store and records.
	ksDir := t.TempDir()
	local, err := keystore.Open(ksDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	srcDir := t.TempDir()
	src, err := ledger.Open(ctx, ledger.Options{
		Dir: srcDir, CheckpointInterval: time.Hour,
		Signer: func(origin string) (note.Signer, error) { return tc.keys.NoteSigner(origin) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dk := crypto.NewDataKeys(tc.keys, local, 0)
	single := &testNode{ledger: src, dk: dk}
	for i := range 12 {
		rec := tc.paymentStored(t, single, local, fmt.Sprintf("evt_s%d", i), fmt.Sprintf("tx%d", i%3), fmt.Sprintf("s%d@example.org", i%2))
		if i == 5 {
			rec.State = []ledger.StateRow{{Table: ledger.TableRestricted, Key: ledger.RestrictionKey(rec.Link.Subjects[0], "*"), Value: []byte("1")}}
		}
		if _, err := src.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	src.Close() // signs the checkpoint of the whole tree
	src, err = ledger.Open(ctx, ledger.Options{Dir: srcDir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := Connect(ctx, Config{URLs: tc.nats.URLs(), Replicas: 1, Node: "seeder"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	files := map[string][]byte{"token": []byte("wrapped-token"), "blind": []byte("wrapped-blind")}
	res, err := Seed(ctx, conn, SeedSource{
		Ledger: src, Keysets: files, EachKey: local.Each,
		Sealer: &DataKeySealer{LedgerID: src.ID(), DataKeys: dk, Store: conn.KeyStore()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 12 || res.Checkpoints < 2 || res.DataKeys != 12 {
		t.Fatalf("seeded %+v", res)
	}
	// Seeding twice is refused.
	if _, err := Seed(ctx, conn, SeedSource{Ledger: src, Keysets: files, EachKey: local.Each}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("second seed: %v", err)
	}
	tc.start(2)
	tc.converge(t)
	n := tc.nodes[1].ledger
	if n.ID() != src.ID() || n.Size() != src.Size() {
		t.Fatalf("node %s size %d, source %s size %d", n.ID(), n.Size(), src.ID(), src.Size())
	}
	for size := range src.Size() + 1 {
		want, err := src.Checkpoint(size)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		got, err := n.Checkpoint(size)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("checkpoint %d: %v\n%s\n%s", size, err, got, want)
		}
	}
	subject := tc.keys.BlindIndex("email", "s1@example.org")
	want, _ := src.SubjectTransactions(subject)
	got, _ := n.SubjectTransactions(subject)
	if len(want) == 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("search rows: %v, source %v", got, want)
	}
	if r, err := n.Restricted([]string{tc.keys.BlindIndex("email", "s1@example.org")}, "m1"); err != nil || !r {
		t.Fatalf("restriction lost in the seed: %v %v", r, err)
	}
	// The cluster goes on from the seeded ledger.
	a := tc.nodes[0]
	if _, err := a.node.Append(ctx, tc.payment(t, a, "evt_after_seed", "tx1", "s1@example.org")); err != nil {
		t.Fatal(err)
	}
	tc.converge(t)
}

// paymentStored is payment for a single node: its data key goes to that
// node's own key store.
func (tc *testCluster) paymentStored(t *testing.T, n *testNode, ks interface {
	PutWrapped(context.Context, []ledger.WrappedKey) error
}, event, tx, email string) ledger.Record {
	t.Helper()
	k, wrapped, err := n.dk.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.PutWrapped(context.Background(), []ledger.WrappedKey{{ID: k.ID(), Wrapped: wrapped}}); err != nil {
		t.Fatal(err)
	}
	id := ledger.NewRecordID()
	ct, err := k.Seal(crypto.AD{Ledger: n.ledger.ID(), Entry: id, Field: "email"}, []byte(email))
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Record{
		Kind: ledger.KindPayment, ID: id, Time: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), Policy: 1,
		Unique: &ledger.Unique{Key: "webhook/dev/" + event, Digest: []byte(event)},
		Body: &ledger.PaymentBody{
			Source: "dev", EventID: event, Type: ledger.TypeCaptured, TransactionID: tx, MerchantID: "m1",
			Amount: 100, Currency: "EUR", Status: "captured", OccurredAt: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC),
			DataKey: k.ID(), Sealed: map[string][]byte{"email": ct},
		},
		Link: &ledger.SubjectLink{TransactionID: tx, DataKey: k.ID(), Subjects: []string{tc.keys.BlindIndex("email", email)}},
	}
}
