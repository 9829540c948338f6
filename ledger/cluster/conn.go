package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paytrail/paytrail/ledger"
)

// Config says which NATS servers hold the cluster and how this node is
// named (the `cluster:` block of the config file).
type Config struct {
	// URLs are the NATS servers, comma-separated. Required.
	URLs string
	// Name prefixes the stream and the buckets. The default is "paytrail".
	Name string
	// Replicas of the stream and buckets: 3, or 1 for one development
	// NATS server. The default is 3.
	Replicas int
	// Node names this node, unique in the cluster. The default is the
	// host name.
	Node string
	// CredsFile is a NATS credentials file (JWT and nkey seed), if the
	// servers require one.
	CredsFile string
	// CAFile is a PEM file of the CA that signs the servers' TLS
	// certificates, if not a system one (tls:// URLs).
	CAFile string
	// MaxLag is how many stream records a node may have left to apply
	// and still report ready. The default value is 10000.
	MaxLag uint64
	// Timeout bounds each request to NATS (publish acknowledgement, bucket
	// reads and writes). The default value is 10s.
	Timeout time.Duration
	// Logger receives operational messages, never record contents.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if strings.TrimSpace(c.URLs) == "" {
		return errors.New("cluster: nats_url is required")
	}
	if c.Name == "" {
		c.Name = "paytrail"
	}
	for _, r := range c.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("cluster: name %q may hold only letters, digits, '-' and '_'", c.Name)
		}
	}
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("cluster: replicas must be 1 to 5, not %d", c.Replicas)
	}
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("cluster: no node name and no host name: %w", err)
		}
		c.Node = h
	}
	if c.MaxLag == 0 {
		c.MaxLag = 10000
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Conn is a connection to the cluster's stream and buckets.
type Conn struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	// subject is the one subject of the ledger stream.
	subject string

	meta     jetstream.KeyValue // ledger id
	keysets  jetstream.KeyValue // wrapped keysets, one per name
	dataKeys jetstream.KeyValue // wrapped data keys
	roots    jetstream.KeyValue // checkpoint size -> root, the agreement records
	nodes    jetstream.KeyValue // node heartbeats

	ksOnce sync.Once
	ks     *KeyStore
}

// Connect connects to the NATS servers and creates the cluster's stream
// and buckets if they do not exist yet (or checks those that do).
func Connect(ctx context.Context, cfg Config) (*Conn, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	opts := []nats.Option{
		nats.Name("paytrail " + cfg.Node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(cfg.Timeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				cfg.Logger.Warn("disconnected from NATS; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			cfg.Logger.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	nc, err := nats.Connect(cfg.URLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to connect to NATS at %s: %w", cfg.URLs, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("failed to open JetStream: %w", err)
	}
	c := &Conn{cfg: cfg, nc: nc, js: js, subject: cfg.Name + ".ledger"}
	if err := c.retry(ctx, c.setup); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// streamConfig is the ledger stream: one subject, kept forever, nothing in
// it deletable, a full stream refusing new records rather than dropping
// old ones.
func (c *Conn) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.cfg.Name + "-ledger",
		Description: "paytrail ledger records, in order",
		Subjects:    []string{c.subject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		DenyDelete:  true,
		DenyPurge:   true,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
		Duplicates:  2 * time.Minute,
		MaxMsgSize:  8 << 20,
	}
}

func (c *Conn) setup(ctx context.Context) error {
	want := c.streamConfig()
	s, err := c.js.CreateStream(ctx, want)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = c.js.Stream(ctx, want.Name)
		if err == nil {
			got := s.CachedInfo().Config
			if !got.DenyDelete || !got.DenyPurge || got.Discard != jetstream.DiscardNew || got.MaxAge != 0 || got.MaxMsgs > 0 {
				return fmt.Errorf("stream %s exists with a configuration that could lose records (deny_delete, deny_purge, discard new and no limits are required)", want.Name)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("failed to create or open stream %s: %w", want.Name, err)
	}
	c.stream = s
	buckets := []struct {
		kv   *jetstream.KeyValue
		name string
		cfg  jetstream.KeyValueConfig
	}{
		{&c.meta, "meta", jetstream.KeyValueConfig{Description: "paytrail cluster identity"}},
		{&c.keysets, "keysets", jetstream.KeyValueConfig{Description: "paytrail keysets, wrapped by the master key"}},
		{&c.dataKeys, "datakeys", jetstream.KeyValueConfig{Description: "paytrail data keys, wrapped by the datakey keyset"}},
		{&c.roots, "roots", jetstream.KeyValueConfig{Description: "paytrail checkpoint roots agreed by the nodes"}},
		{&c.nodes, "nodes", jetstream.KeyValueConfig{Description: "paytrail node heartbeats", TTL: 10 * time.Minute, Storage: jetstream.MemoryStorage}},
	}
	for _, b := range buckets {
		b.cfg.Bucket = c.cfg.Name + "-" + b.name
		b.cfg.Replicas = c.cfg.Replicas
		b.cfg.History = 1
		if b.cfg.Storage == 0 {
			b.cfg.Storage = jetstream.FileStorage
		}
		kv, err := c.js.CreateKeyValue(ctx, b.cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = c.js.KeyValue(ctx, b.cfg.Bucket)
		}
		if err != nil {
			return fmt.Errorf("failed to create or open bucket %s: %w", b.cfg.Bucket, err)
		}
		if b.name != "nodes" {
			if kv, err = c.readFromLeader(ctx, kv); err != nil {
				return err
			}
		}
		*b.kv = kv
	}
	return nil
}

// readFromLeader makes the bucket's reads go to its stream's leader. A
// bucket allows direct reads from any replica by default, and a replica
// may not hold yet what was just acknowledged: a data key stored before
// the record that uses it would then read as destroyed on another node,
// and an agreed root as absent.
func (c *Conn) readFromLeader(ctx context.Context, kv jetstream.KeyValue) (jetstream.KeyValue, error) {
	name := "KV_" + kv.Bucket()
	s, err := c.js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("failed to open bucket stream %s: %w", name, err)
	}
	cfg := s.CachedInfo().Config
	if cfg.AllowDirect {
		cfg.AllowDirect = false
		if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("failed to make bucket %s read from its leader: %w", kv.Bucket(), err)
		}
	}
	return c.js.KeyValue(ctx, kv.Bucket())
}

// Close closes the connection, after the acknowledgements of what was
// published are in (or its timeout).
func (c *Conn) Close() {
	select {
	case <-c.js.PublishAsyncComplete():
	case <-time.After(c.cfg.Timeout):
	}
	c.nc.Close()
}

// Node returns this node's name.
func (c *Conn) Node() string { return c.cfg.Node }

// LedgerID returns the cluster's ledger id, making proposed the id if the
// cluster has none yet (created=true: this node founded the cluster).
func (c *Conn) LedgerID(ctx context.Context, proposed string) (id string, created bool, err error) {
	if proposed == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", false, err
		}
		proposed = hex.EncodeToString(b[:])
	}
	err = c.retry(ctx, func(ctx context.Context) error {
		if _, err := c.meta.Create(ctx, "ledger_id", []byte(proposed)); err == nil {
			id, created = proposed, true
			return nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("failed to record the cluster's ledger id: %w", err)
		}
		e, err := c.meta.Get(ctx, "ledger_id")
		if err != nil {
			return fmt.Errorf("failed to read the cluster's ledger id: %w", err)
		}
		id = string(e.Value())
		return nil
	})
	return id, created, err
}

// SyncKeysets makes local, the wrapped keyset files of this node (name ->
// file bytes), the cluster's: keysets the cluster lacks are published from
// local (create-if-absent, so the first node's win), and the cluster's are
// returned for the node to keep. They are wrapped by the master key, which
// every node shares and the buckets never see.
func (c *Conn) SyncKeysets(ctx context.Context, local map[string][]byte) (map[string][]byte, error) {
	out := make(map[string][]byte, len(local))
	err := c.retry(ctx, func(ctx context.Context) error {
		for name, b := range local {
			if _, ok := out[name]; ok {
				continue
			}
			if _, err := c.keysets.Create(ctx, name, b); err == nil {
				out[name] = b
				continue
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				return fmt.Errorf("failed to publish keyset %s: %w", name, err)
			}
			e, err := c.keysets.Get(ctx, name)
			if err != nil {
				return fmt.Errorf("failed to read keyset %s: %w", name, err)
			}
			out[name] = e.Value()
		}
		return nil
	})
	return out, err
}

// Agree records root as the root of checkpoint size, or checks it against
// the root another node recorded first. A disagreement is [ledger.ErrForked]:
// two nodes applied the same log and got different trees, so one of them
// (or its disk) is not to be trusted, and the one that finds out halts.
func (c *Conn) Agree(ctx context.Context, size uint64, root []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	k := strconv.FormatUint(size, 10)
	v := []byte(hex.EncodeToString(root))
	_, err := c.roots.Create(ctx, k, v)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("failed to record the root of checkpoint %d: %w", size, err)
	}
	// A read may reach a replica that has not the record yet.
	var e jetstream.KeyValueEntry
	for {
		e, err = c.roots.Get(ctx, k)
		if !errors.Is(err, jetstream.ErrKeyNotFound) || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("failed to read the agreed root of checkpoint %d: %w", size, err)
	}
	if !bytes.Equal(e.Value(), v) {
		return fmt.Errorf("%w: at size %d this node has root %s, the cluster %s", ledger.ErrForked, size, v, e.Value())
	}
	return nil
}

// NodeStatus is a node's heartbeat.
type NodeStatus struct {
	Node    string    `json:"node"`
	Applied uint64    `json:"applied"`
	Size    uint64    `json:"size"`
	Root    string    `json:"root"`
	Lag     uint64    `json:"lag"`
	Halted  bool      `json:"halted"`
	Time    time.Time `json:"time"`
}

func (c *Conn) heartbeat(ctx context.Context, st NodeStatus) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = c.nodes.Put(ctx, st.Node, b)
	return err
}

// Nodes lists the heartbeats of the nodes seen in the last ten minutes.
func (c *Conn) Nodes(ctx context.Context) ([]NodeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	lister, err := c.nodes.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to list nodes: %w", err)
	}
	var out []NodeStatus
	for k := range lister.Keys() {
		e, err := c.nodes.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failed to read node %s: %w", k, err)
		}
		var st NodeStatus
		if json.Unmarshal(e.Value(), &st) == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// LastSeq returns the stream's last sequence number.
func (c *Conn) LastSeq(ctx context.Context) (uint64, error) {
	var last uint64
	err := c.retry(ctx, func(ctx context.Context) error {
		info, err := c.stream.Info(ctx)
		if err != nil {
			return fmt.Errorf("failed to read the stream's state: %w", err)
		}
		last = info.State.LastSeq
		return nil
	})
	return last, err
}

// retry runs op, each try bounded by the request timeout, again while it
// fails as requests do while the servers elect leaders or one restarts
// (no responders, no answer in time), for up to six timeouts in all.
func (c *Conn) retry(ctx context.Context, op func(context.Context) error) error {
	deadline := time.Now().Add(6 * c.cfg.Timeout)
	backoff := 100 * time.Millisecond
	for {
		tctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		err := op(tctx)
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) || time.Now().After(deadline) {
			return err
		}
		c.cfg.Logger.Warn("NATS request failed; retrying", "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// transient reports whether err is one a retry may cure.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 || apiErr.Code == 408
	}
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrConnectionReconnecting)
}
