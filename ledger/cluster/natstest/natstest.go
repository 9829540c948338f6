// Package natstest runs real NATS JetStream servers on 127.0.0.1 for tests,
// each in a child process (the test binary itself, re-executed), so that a
// test can kill one with SIGKILL and restart it on the same ports and
// store, as a crash would. A test package that uses it calls [Main] from
// its TestMain.
package natstest

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

const envServer = "PAYTRAIL_NATSTEST_SERVER"

// serverSpec is what a child needs to run one server.
type serverSpec struct {
	Name        string `json:"name"`
	Port        int    `json:"port"`
	ClusterPort int    `json:"cluster_port"`
	Routes      string `json:"routes"`
	StoreDir    string `json:"store_dir"`
}

// Main runs a NATS server and never returns when this process is a
// server child; otherwise it returns at once. Call it first in TestMain.
func Main() {
	spec := os.Getenv(envServer)
	if spec == "" {
		return
	}
	var s serverSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "natstest: bad spec:", err)
		os.Exit(2)
	}
	opts := &server.Options{
		ServerName: s.Name, Host: "127.0.0.1", Port: s.Port,
		JetStream: true, StoreDir: s.StoreDir,
		// What docs/cluster.md tells operators: an acknowledgement means
		// the record is fsynced on a quorum.
		SyncAlways: true,
		NoSigs:     true, NoLog: true,
	}
	if s.ClusterPort != 0 {
		opts.Cluster = server.ClusterOpts{Name: "paytrail-test", Host: "127.0.0.1", Port: s.ClusterPort}
		opts.Routes = server.RoutesFromStr(s.Routes)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natstest:", err)
		os.Exit(2)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		fmt.Fprintln(os.Stderr, "natstest: server not ready")
		os.Exit(2)
	}
	select {}
}

// Cluster is a set of NATS servers routed to each other.
type Cluster struct {
	t     testing.TB
	specs []serverSpec
	procs []*exec.Cmd
}

// Start starts n servers (n = 1: a single server, no cluster routes) and
// waits until JetStream answers on all of them.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i]))
	}
	c := &Cluster{t: t}
	base := t.TempDir()
	for i := range n {
		s := serverSpec{
			Name: fmt.Sprintf("n%d", i), Port: ports[i],
			StoreDir: filepath.Join(base, fmt.Sprintf("n%d", i)),
		}
		if n > 1 {
			s.ClusterPort = ports[n+i]
			s.Routes = strings.Join(routes, ",")
		}
		c.specs = append(c.specs, s)
		c.procs = append(c.procs, nil)
	}
	for i := range n {
		c.Restart(i)
	}
	c.waitJetStream()
	t.Cleanup(func() {
		for i := range c.procs {
			c.Kill(i)
		}
	})
	return c
}

// URL returns the client URL of server i.
func (c *Cluster) URL(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", c.specs[i].Port) }

// URLs returns every server's client URL, comma-separated.
func (c *Cluster) URLs() string {
	var out []string
	for i := range c.specs {
		out = append(out, c.URL(i))
	}
	return strings.Join(out, ",")
}

// StoreDir returns server i's JetStream store directory.
func (c *Cluster) StoreDir(i int) string { return c.specs[i].StoreDir }

// Kill kills server i with SIGKILL and waits for it to exit.
func (c *Cluster) Kill(i int) {
	p := c.procs[i]
	if p == nil {
		return
	}
	p.Process.Signal(syscall.SIGKILL)
	p.Wait()
	c.procs[i] = nil
}

// Restart starts server i again (after Kill) on its ports and store.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	spec, _ := json.Marshal(c.specs[i])
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServer+"="+string(spec))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("natstest: start server %d: %v", i, err)
	}
	c.procs[i] = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.specs[i].Port), time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("natstest: server %d did not listen: %v", i, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitJetStream waits until the servers elected a JetStream meta leader.
func (c *Cluster) waitJetStream() {
	c.t.Helper()
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		c.t.Fatalf("natstest: connect: %v", err)
	}
	defer nc.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		msg, err := nc.Request("$JS.API.INFO", nil, 2*time.Second)
		if err == nil && !strings.Contains(string(msg.Data), `"error"`) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("natstest: JetStream not ready: %v %s", err, msgData(msg))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func msgData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}
