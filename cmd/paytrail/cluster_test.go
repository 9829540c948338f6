package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/cluster/natstest"
)

// envAsMain makes the test binary run paytrail's main (scriptMain) with
// its arguments: the cluster tests start nodes as child processes, so
// that they can kill one with SIGKILL.
const envAsMain = "PAYTRAIL_TEST_AS_MAIN"

// clusterSecret signs the test source's webhooks (Standard Webhooks).
const clusterSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// paytrailNode is one `paytrail serve` child of a cluster test.
type paytrailNode struct {
	t      *testing.T
	name   string
	dir    string
	config string
	out    string // a copy of its stdout
	cmd    *exec.Cmd
	url    string
}

// newClusterNode writes a node's config: its own data dir, the shared
// master key and source, the cluster's NATS servers.
func newClusterNode(t *testing.T, name, masterKey, natsURLs string) *paytrailNode {
	t.Helper()
	base := t.TempDir()
	n := &paytrailNode{t: t, name: name, dir: filepath.Join(base, "data"), config: filepath.Join(base, "paytrail.yaml"), out: filepath.Join(base, "stdout")}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`data: %s
addr: %s
master_key: file://%s
sources:
  - name: acme
    scheme: standard
    secrets_env: ACME_SECRETS
    merchants: ["*"]
cluster:
  nats_url: %s
  replicas: 3
  node: %s
`, n.dir, addr, masterKey, natsURLs, name)
	if err := os.WriteFile(n.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

var (
	clusterListeningRe = regexp.MustCompile(`listening on (http://\S+)`)
	clusterAdminRe     = regexp.MustCompile(`admin token \(principal [^)]*\): (\S+)`)
)

// start starts the node and waits until it listens.
func (n *paytrailNode) start() {
	t := n.t
	t.Helper()
	os.Remove(n.out)
	cmd := exec.Command(os.Args[0], "serve", "--config", n.config)
	cmd.Env = append(os.Environ(), envAsMain+"=1", "PAYTRAIL_TEST_STDOUT_COPY="+n.out, "ACME_SECRETS="+clusterSecret)
	// The child writes its log straight into the file (a pipe would need
	// a reader for as long as the child lives).
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(n.dir), "stderr.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd = cmd
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(n.out)
		if m := clusterListeningRe.FindSubmatch(b); m != nil {
			n.url = string(m[1])
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start listening:\n%s", n.name, n.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *paytrailNode) logTail() string {
	log, _ := os.ReadFile(filepath.Join(filepath.Dir(n.dir), "stderr.log"))
	if len(log) > 3000 {
		log = log[len(log)-3000:]
	}
	return string(log)
}

func (n *paytrailNode) adminToken() string {
	b, _ := os.ReadFile(n.out)
	if m := clusterAdminRe.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

func (n *paytrailNode) kill() {
	if n.cmd != nil {
		n.cmd.Process.Signal(syscall.SIGKILL)
		n.cmd.Wait()
		n.cmd = nil
	}
}

func (n *paytrailNode) stop() {
	if n.cmd != nil {
		n.cmd.Process.Signal(syscall.SIGTERM)
		n.cmd.Wait()
		n.cmd = nil
	}
}

type readyz struct {
	Status  string `json:"status"`
	Entries uint64 `json:"entries"`
	Applied uint64 `json:"applied"`
	Lag     uint64 `json:"lag"`
}

func (n *paytrailNode) readyz() (readyz, error) {
	var r readyz
	resp, err := http.Get(n.url + "/readyz")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&r)
	return r, err
}

// startCluster starts NATS servers and paytrail nodes; the first node
// founds the cluster and prints its admin token.
func startCluster(t *testing.T, nodes int) (*natstest.Cluster, []*paytrailNode, string) {
	t.Helper()
	ns := natstest.Start(t, 3)
	master := filepath.Join(t.TempDir(), "master.key")
	if err := crypto.CreateMasterFile(master); err != nil {
		t.Fatal(err)
	}
	var out []*paytrailNode
	for i := range nodes {
		n := newClusterNode(t, fmt.Sprintf("node%d", i), master, ns.URLs())
		n.start()
		t.Cleanup(n.kill)
		out = append(out, n)
	}
	token := out[0].adminToken()
	if token == "" {
		t.Fatal("the founding node printed no admin token")
	}
	for _, n := range out[1:] {
		if n.adminToken() != "" {
			t.Fatalf("%s created a second bootstrap admin", n.name)
		}
	}
	return ns, out, token
}

// waitConverged waits until every node applied the whole stream, and the
// stream stayed still for longer than the nodes' cut interval (one
// second), so that no cut point is still on its way to some node.
func waitConverged(t *testing.T, nodes []*paytrailNode) uint64 {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var still time.Time
	var last uint64
	for {
		var rs []readyz
		ok := true
		for _, n := range nodes {
			r, err := n.readyz()
			if err != nil || r.Status != "ready" || r.Lag != 0 {
				ok = false
			}
			rs = append(rs, r)
		}
		if ok {
			same := true
			for _, r := range rs[1:] {
				same = same && r.Applied == rs[0].Applied && r.Entries == rs[0].Entries
			}
			if same && rs[0].Applied == last && time.Since(still) > 3*time.Second {
				return rs[0].Entries
			}
			if !same || rs[0].Applied != last {
				last, still = rs[0].Applied, time.Now()
			}
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				_, err := n.readyz()
				t.Logf("%s: readyz error %v; log tail:\n%s", n.name, err, n.logTail())
			}
			t.Fatalf("nodes did not converge: %+v", rs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// compareStores stops the nodes and checks their ledgers hold byte-
// identical entries and checkpoints, every payment event once.
func compareStores(t *testing.T, nodes []*paytrailNode, wantEvents int) {
	t.Helper()
	for _, n := range nodes {
		n.stop()
	}
	var ls []*ledger.Ledger
	for _, n := range nodes {
		l, err := ledger.Open(context.Background(), ledger.Options{Dir: filepath.Join(n.dir, "ledger"), ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ls = append(ls, l)
	}
	a := ls[0]
	events := map[string]int{}
	for seq := range a.Size() {
		ea, err := a.Entry(seq)
		if err != nil {
			t.Fatal(err)
		}
		if ea.Kind == ledger.KindPayment {
			events[ea.Unique.Key]++
		}
		for i, b := range ls[1:] {
			eb, err := b.Entry(seq)
			if err != nil || !bytes.Equal(ea.Bytes(), eb.Bytes()) {
				t.Fatalf("entry %d differs between %s and %s (%v)", seq, nodes[0].name, nodes[i+1].name, err)
			}
		}
	}
	for size := uint64(0); size <= a.Size(); size++ {
		ca, erra := a.Checkpoint(size)
		for i, b := range ls[1:] {
			cb, errb := b.Checkpoint(size)
			if (erra == nil) != (errb == nil) || !bytes.Equal(ca, cb) {
				t.Fatalf("checkpoint %d differs between %s and %s", size, nodes[0].name, nodes[i+1].name)
			}
		}
	}
	if len(events) != wantEvents {
		t.Fatalf("%d distinct payment events in the ledger, want %d", len(events), wantEvents)
	}
	for k, c := range events {
		if c != 1 {
			t.Fatalf("event %s appended %d times", k, c)
		}
	}
}

// TestClusterSurvivesKilledNodeAndServer posts events to every node of a
// three-node cluster on three NATS servers while one paytrail node and one
// NATS server are killed with SIGKILL and restarted, and the stream's
// leader steps down: clients retrying with the same event ids never create
// a duplicate, no acknowledged event is lost, and the nodes converge on
// byte-identical ledgers.
func TestClusterSurvivesKilledNodeAndServer(t *testing.T) {
	ns, nodes, _ := startCluster(t, 3)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url)
	}
	sign, err := newBenchSigner("standard", clusterSecret)
	if err != nil {
		t.Fatal(err)
	}
	const events = 600
	b := &bench{
		endpoints: nil, retries: 50, sign: sign, events: events, concurrency: 16, timeout: 5 * time.Second,
		gen:    newBenchGen(mrand.New(mrand.NewPCG(7, 8)), "clus", "standard", 3, 40, time.Now),
		stderr: io.Discard,
	}
	for _, u := range urls {
		ep, err := webhookEndpoint(u, "acme")
		if err != nil {
			t.Fatal(err)
		}
		b.endpoints = append(b.endpoints, ep)
	}
	done := make(chan *benchResult, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	go func() { done <- b.run(ctx) }()

	time.Sleep(700 * time.Millisecond)
	nodes[1].kill()
	ns.Kill(2)
	time.Sleep(700 * time.Millisecond)
	ns.Restart(2)
	nodes[1].start()
	stepDown(t, ns.URL(0))

	res := <-done
	if res.failed() != 0 || len(res.latencies) != events {
		var buf bytes.Buffer
		res.print(&buf)
		for _, n := range nodes {
			t.Logf("%s log tail:\n%s", n.name, n.logTail())
		}
		t.Fatalf("not every event was acknowledged:\n%s", buf.String())
	}
	t.Logf("%d events, %d retries, %d answered as duplicates", events, res.retries, res.duplicates)
	waitConverged(t, nodes)
	compareStores(t, nodes, events)
	// No card number, email or cardholder name in clear anywhere: not in
	// the stream or buckets on the NATS servers' disks, not in any node's
	// data dir or log.
	var secrets []string
	for _, c := range b.gen.cards {
		secrets = append(secrets, c.pan, c.email, c.name)
	}
	var dirs []string
	for i := range 3 {
		dirs = append(dirs, ns.StoreDir(i))
	}
	for _, n := range nodes {
		dirs = append(dirs, filepath.Dir(n.dir))
	}
	for _, d := range dirs {
		scanForSecrets(t, d, secrets)
	}
}

// scanForSecrets fails if any file under dir holds one of secrets.
func scanForSecrets(t *testing.T, dir string, secrets []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if s != "" && bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds cardholder data in clear", path)
				return nil
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// stepDown asks the ledger stream's leader to step down, under load.
func stepDown(t *testing.T, url string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msg, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.paytrail-ledger", nil, 2*time.Second)
		if err == nil && strings.Contains(string(msg.Data), `"success":true`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader stepdown: %v %s", err, msgBody(msg))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func msgBody(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

// TestClusterSameDeliveryOnEveryNode posts one delivery to all nodes at
// once: one entry, one seq in every answer.
func TestClusterSameDeliveryOnEveryNode(t *testing.T) {
	_, nodes, admin := startCluster(t, 3)
	sign, err := newBenchSigner("standard", clusterSecret)
	if err != nil {
		t.Fatal(err)
	}
	g := newBenchGen(mrand.New(mrand.NewPCG(1, 2)), "same", "standard", 1, 5, time.Now)
	for range 3 {
		ev := g.next()
		type answer struct {
			Seq       uint64 `json:"seq"`
			Duplicate bool   `json:"duplicate"`
			status    int
		}
		answers := make(chan answer, len(nodes))
		for _, n := range nodes {
			go func() {
				ep, _ := webhookEndpoint(n.url, "acme")
				req, _ := http.NewRequest(http.MethodPost, ep, bytes.NewReader(ev.body))
				req.Header.Set("Content-Type", "application/json")
				sign.sign(req.Header, ev.id, time.Now(), ev.body)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					answers <- answer{status: -1}
					return
				}
				defer resp.Body.Close()
				var a answer
				json.NewDecoder(resp.Body).Decode(&a)
				a.status = resp.StatusCode
				answers <- a
			}()
		}
		var got []answer
		for range nodes {
			got = append(got, <-answers)
		}
		created := 0
		for _, a := range got {
			if a.status/100 != 2 || a.Seq != got[0].Seq {
				t.Fatalf("answers %+v", got)
			}
			if !a.Duplicate {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("%d answers say created: %+v", created, got)
		}
	}
	size := waitConverged(t, nodes)
	// Every node lists the others, at the same size with the same root,
	// once their next heartbeats are in.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Nodes []struct {
				Node string `json:"node"`
				Size uint64 `json:"size"`
				Root string `json:"root"`
			} `json:"nodes"`
		}
		err := getJSON(nodes[2].url+"/v1/cluster", admin, &st)
		ok := err == nil && len(st.Nodes) == 3
		for _, n := range st.Nodes {
			ok = ok && n.Size == size && n.Root == st.Nodes[0].Root
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/cluster: %+v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	metrics, err := httpGet(nodes[1].url+"/metrics", "")
	if err != nil || !bytes.Contains(metrics, []byte("paytrail_cluster_lag 0")) {
		t.Fatalf("metrics: %v\n%s", err, metrics)
	}
	compareStores(t, nodes, 3)
	// Offline writes to a node's data dir would part it from the others.
	for _, args := range [][]string{
		{"principal", "add", "--config", nodes[0].config, "--name", "eve", "--role", "auditor", "--merchants", "*"},
		{"keys", "rotate", "--config", nodes[0].config, "--keyset", "signer"},
	} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), envAsMain+"=1", "ACME_SECRETS="+clusterSecret)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "belongs to a cluster node") {
			t.Fatalf("%v on a node's data dir: %v\n%s", args[:2], err, out)
		}
	}
}

// TestClusterSeededFromSingleNode moves a single node's ledger into a new
// cluster with 'paytrail cluster seed': the nodes reach the original's
// root and serve its checkpoints byte for byte.
func TestClusterSeededFromSingleNode(t *testing.T) {
	ns := natstest.Start(t, 3)
	master := filepath.Join(t.TempDir(), "master.key")
	if err := crypto.CreateMasterFile(master); err != nil {
		t.Fatal(err)
	}
	single := newClusterNode(t, "single", master, ns.URLs())
	// The same config without its cluster block is a single node.
	cfg, _ := os.ReadFile(single.config)
	singleCfg := filepath.Join(filepath.Dir(single.config), "single.yaml")
	plain, _, _ := strings.Cut(string(cfg), "cluster:")
	if err := os.WriteFile(singleCfg, []byte(plain), 0o600); err != nil {
		t.Fatal(err)
	}
	clusterCfg := single.config
	single.config = singleCfg
	single.start()
	t.Cleanup(single.kill)
	sign, _ := newBenchSigner("standard", clusterSecret)
	ep, _ := webhookEndpoint(single.url, "acme")
	b := &bench{endpoints: []string{ep}, sign: sign, events: 40, concurrency: 4, timeout: 5 * time.Second,
		gen: newBenchGen(mrand.New(mrand.NewPCG(3, 4)), "seed", "standard", 2, 10, time.Now), stderr: io.Discard}
	if res := b.run(context.Background()); res.failed() != 0 {
		t.Fatalf("%d events failed", res.failed())
	}
	single.stop()

	seed := exec.Command(os.Args[0], "cluster", "seed", "--config", clusterCfg)
	seed.Env = append(os.Environ(), envAsMain+"=1", "ACME_SECRETS="+clusterSecret)
	if out, err := seed.CombinedOutput(); err != nil {
		t.Fatalf("cluster seed: %v\n%s", err, out)
	}
	// Seeding again is refused.
	again := exec.Command(os.Args[0], "cluster", "seed", "--config", clusterCfg)
	again.Env = seed.Env
	if out, err := again.CombinedOutput(); err == nil || !strings.Contains(string(out), "already holds a ledger") {
		t.Fatalf("second seed: %v\n%s", err, out)
	}

	src, err := ledger.Open(context.Background(), ledger.Options{Dir: filepath.Join(single.dir, "ledger"), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var nodes []*paytrailNode
	for i := range 2 {
		n := newClusterNode(t, fmt.Sprintf("seeded%d", i), master, ns.URLs())
		n.start()
		t.Cleanup(n.kill)
		if n.adminToken() != "" {
			t.Fatal("a node of a seeded cluster created a bootstrap admin")
		}
		nodes = append(nodes, n)
	}
	if size := waitConverged(t, nodes); size < src.Size() {
		t.Fatalf("nodes reached %d entries, the seed has %d", size, src.Size())
	}
	for _, n := range nodes {
		n.stop()
		l, err := ledger.Open(context.Background(), ledger.Options{Dir: filepath.Join(n.dir, "ledger"), ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if l.Origin() != src.Origin() {
			t.Fatalf("origin %s, seed %s", l.Origin(), src.Origin())
		}
		want, _ := src.Root(src.Size())
		got, err := l.Root(src.Size())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: root at %d differs from the seed's", n.name, src.Size())
		}
		for size := uint64(0); size <= src.Size(); size++ {
			cs, err := src.Checkpoint(size)
			if err != nil {
				continue
			}
			cn, err := l.Checkpoint(size)
			if err != nil || !bytes.Equal(cs, cn) {
				t.Fatalf("%s: checkpoint %d differs from the seed's: %v", n.name, size, err)
			}
		}
	}
}

// postJSON sends a JSON request with a bearer token and decodes the
// answer into v (if not nil); it returns the status.
func postJSON(t *testing.T, url, token string, body, v any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		json.NewDecoder(resp.Body).Decode(v)
	}
	return resp.StatusCode
}

// TestClusterErasureOnOneNodeHoldsOnAll erases a cardholder through one
// node's API: every node, and a node built from the stream afterwards,
// answers 410 for the erased transaction's personal data and finds the
// cardholder no more.
func TestClusterErasureOnOneNodeHoldsOnAll(t *testing.T) {
	ns, nodes, admin := startCluster(t, 2)
	var officer struct {
		Token string `json:"token"`
	}
	if st := postJSON(t, nodes[0].url+"/v1/principals", admin, map[string]any{"name": "dpo", "role": "privacy", "merchants": []string{"*"}}, &officer); st != 201 {
		t.Fatalf("create privacy officer: %d", st)
	}
	var auditor struct {
		Token string `json:"token"`
	}
	if st := postJSON(t, nodes[0].url+"/v1/principals", admin, map[string]any{"name": "aud", "role": "auditor", "merchants": []string{"*"}}, &auditor); st != 201 {
		t.Fatalf("create auditor: %d", st)
	}
	sign, _ := newBenchSigner("standard", clusterSecret)
	g := newBenchGen(mrand.New(mrand.NewPCG(5, 6)), "erase", "standard", 1, 3, time.Now)
	var tx, email string
	for i := range 6 {
		ev := g.next()
		var body struct {
			TransactionID string `json:"transaction_id"`
			Cardholder    struct {
				Email string `json:"email"`
			} `json:"cardholder"`
		}
		json.Unmarshal(ev.body, &body)
		if i == 0 {
			tx, email = body.TransactionID, body.Cardholder.Email
		}
		ep, _ := webhookEndpoint(nodes[i%2].url, "acme")
		req, _ := http.NewRequest(http.MethodPost, ep, bytes.NewReader(ev.body))
		req.Header.Set("Content-Type", "application/json")
		sign.sign(req.Header, ev.id, time.Now(), ev.body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("post event: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	disclose := map[string]any{"purpose": "legal_obligation", "justification": "dispute 42"}
	waitConverged(t, nodes)
	if st := postJSON(t, nodes[1].url+"/v1/transactions/"+tx+"/disclose", auditor.Token, disclose, nil); st != 200 {
		t.Fatalf("disclose before the erasure: %d", st)
	}
	var erased struct {
		Transactions int `json:"transactions"`
	}
	if st := postJSON(t, nodes[0].url+"/v1/subject-requests", officer.Token, map[string]any{"kind": "erase", "email": email, "reference": "GDPR-1"}, &erased); st != 200 || erased.Transactions == 0 {
		t.Fatalf("erase: %d %+v", st, erased)
	}
	// A node that joins after the erasure, built from the stream.
	late := newClusterNode(t, "late", masterKeyOf(t, nodes[0]), ns.URLs())
	late.start()
	t.Cleanup(late.kill)
	all := append(nodes, late)
	waitConverged(t, all)
	for _, n := range all {
		if st := postJSON(t, n.url+"/v1/transactions/"+tx+"/disclose", auditor.Token, disclose, nil); st != http.StatusGone {
			t.Fatalf("%s: disclose after the erasure: %d, want 410", n.name, st)
		}
		if st := postJSON(t, n.url+"/v1/subject-requests", officer.Token, map[string]any{"kind": "restrict", "email": email, "reference": "GDPR-2-" + n.name}, nil); st != http.StatusNotFound {
			t.Fatalf("%s: the erased cardholder is still found: %d", n.name, st)
		}
	}
}

// masterKeyOf returns the master key file a node's config names.
func masterKeyOf(t *testing.T, n *paytrailNode) string {
	t.Helper()
	b, err := os.ReadFile(n.config)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`master_key: file://(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no master key in the config")
	}
	return string(m[1])
}
