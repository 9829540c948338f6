package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paytrail/paytrail/ledger"
)

// NodeOptions configure [NewNode].
type NodeOptions struct {
	// Ledger is the node's own ledger, opened Sequenced with the cluster's
	// id and Conn.Agree. Required.
	Ledger *ledger.Ledger
	// Sealer seals and opens what links records to people. Required.
	Sealer Sealer
	// Forget drops a destroyed data key from the node's memory (after an
	// erasure). Required.
	Forget func(id string)
	// CutInterval is how often a checkpoint cut point is published while
	// the tree grows. The default value is one second.
	CutInterval time.Duration
	// HeartbeatInterval is how often the node records its state in the
	// nodes bucket. The default value is two seconds.
	HeartbeatInterval time.Duration
	// Decoders is how many records are decoded (their sealed parts
	// opened) at once ahead of the appender. The default value is 16.
	Decoders int
}

// Node is one paytrail node of a cluster. It is the write path's
// sequencer for the node's handlers (Append publishes a record to the
// stream and waits until this node applied it) and its applier (it feeds
// the stream, in order, into the node's ledger).
type Node struct {
	c    *Conn
	l    *ledger.Ledger
	opts NodeOptions
	ks   *KeyStore

	mu      sync.Mutex
	waiters map[string][]*waiter // by message id
	pos     uint64               // the last position whose result was dispatched

	streamEnd atomic.Uint64 // the stream's last position, as last seen
	cutSize   atomic.Uint64 // tree size at the last cut applied
	halted    atomic.Pointer[haltErr]
	haltCh    chan struct{} // closed when the node halts

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type haltErr struct{ err error }

type waiter struct {
	done  chan struct{}
	fired bool
	res   ledger.Result
	err   error
}

// NewNode returns the node; Start starts applying.
func NewNode(c *Conn, opts NodeOptions) (*Node, error) {
	if opts.Ledger == nil || opts.Sealer == nil || opts.Forget == nil {
		return nil, errors.New("cluster: NodeOptions.Ledger, Sealer and Forget are required")
	}
	if opts.CutInterval <= 0 {
		opts.CutInterval = time.Second
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 2 * time.Second
	}
	if opts.Decoders <= 0 {
		opts.Decoders = 16
	}
	n := &Node{c: c, l: opts.Ledger, opts: opts, ks: c.KeyStore(), waiters: map[string][]*waiter{}, haltCh: make(chan struct{})}
	n.pos = opts.Ledger.Applied()
	// Cut from the newest checkpoint on: a node that stopped before the
	// cut of its last entries applied cuts them after its restart.
	if size, _, _, found, err := opts.Ledger.LatestCheckpointRoot(); err == nil && found {
		n.cutSize.Store(size)
	}
	return n, nil
}

// Start starts applying the stream from the node's last applied position,
// cutting checkpoints and heartbeating, until Close.
func (n *Node) Start(ctx context.Context) error {
	end, err := n.c.LastSeq(ctx)
	if err != nil {
		return err
	}
	n.streamEnd.Store(end)
	if err := n.l.FinishCuts(); err != nil {
		n.halt(err)
	}
	if err := n.checkTree(ctx); err != nil {
		// Start anyway, halted: the node reports why until restarted.
		n.halt(err)
	}
	ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	slots := make(chan *slot, 4096)
	results := make(chan *slot, 4096)
	n.wg.Add(4)
	go func() { defer n.wg.Done(); n.receive(ctx, slots) }()
	go func() { defer n.wg.Done(); n.submit(ctx, slots, results) }()
	go func() { defer n.wg.Done(); n.dispatch(ctx, results) }()
	go func() { defer n.wg.Done(); n.tick(ctx) }()
	return nil
}

// checkTree checks, before the node applies anything, that its stored
// tree still has the root of its newest checkpoint, and that the cluster
// agrees on that root: a store altered while the node was down (or
// restored from a wrong copy) halts here instead of racing honest nodes
// to record roots.
func (n *Node) checkTree(ctx context.Context) error {
	size, stated, stored, found, err := n.l.LatestCheckpointRoot()
	if err != nil {
		return fmt.Errorf("%w: %w", ledger.ErrForked, err)
	}
	if !found || size == 0 {
		return nil
	}
	if !bytes.Equal(stated, stored) {
		return fmt.Errorf("%w: this node's stored tree has root %x at size %d, its own checkpoint says %x (the store was altered)", ledger.ErrForked, stored, size, stated)
	}
	return n.c.Agree(ctx, size, stored)
}

// Close stops applying. The ledger stays open (its owner closes it).
func (n *Node) Close() {
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, ws := range n.waiters {
		for _, w := range ws {
			if !w.fired {
				w.fired, w.err = true, ledger.ErrClosed
				close(w.done)
			}
		}
		delete(n.waiters, id)
	}
}

// slot is one stream record on its way through the node: decoded ahead
// of time, submitted in order, dispatched to its waiters once durable.
type slot struct {
	pos     uint64
	msgID   string
	decoded chan struct{}
	rec     ledger.Record
	err     error
	pending *ledger.Pending
}

// receive reads the stream in order and decodes records, several at once.
// An ordered consumer follows the stream across server failures; should
// its iterator fail, receive makes a new one from where it stopped.
func (n *Node) receive(ctx context.Context, slots chan<- *slot) {
	defer close(slots)
	sem := make(chan struct{}, n.opts.Decoders)
	last := n.l.Applied()
	for ctx.Err() == nil {
		err := n.consume(ctx, &last, sem, slots)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errStreamGap) {
			n.halt(err)
			return
		}
		n.c.cfg.Logger.Warn("reading the ledger stream failed; resuming", "from", last+1, "err", err)
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

var errStreamGap = errors.New("the ledger stream skipped records")

func (n *Node) consume(ctx context.Context, last *uint64, sem chan struct{}, slots chan<- *slot) error {
	cons, err := n.c.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   *last + 1,
	})
	if err != nil {
		return fmt.Errorf("failed to consume the ledger stream from %d: %w", *last+1, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		pos := meta.Sequence.Stream
		if pos <= *last {
			continue // a redelivery after the consumer was reset
		}
		if pos != *last+1 {
			return fmt.Errorf("%w: from %d to %d", errStreamGap, *last, pos)
		}
		*last = pos
		n.streamEnd.Store(pos + meta.NumPending)
		s := &slot{pos: pos, msgID: msg.Headers().Get(jetstream.MsgIDHeader), decoded: make(chan struct{})}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		data := msg.Data()
		go func() {
			defer func() { <-sem }()
			s.rec, s.err = n.decode(ctx, data)
			close(s.decoded)
		}()
		select {
		case slots <- s:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// decode opens a record, retrying while the key bucket cannot be read: a
// record this node cannot decode now it must not skip.
func (n *Node) decode(ctx context.Context, data []byte) (ledger.Record, error) {
	backoff := 50 * time.Millisecond
	for {
		rec, err := decodeRecord(ctx, n.opts.Sealer, data)
		if err == nil || ctx.Err() != nil || errors.Is(err, errMalformed) {
			return rec, err
		}
		n.c.cfg.Logger.Warn("cannot decode a stream record yet; retrying", "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return rec, ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// submit hands the decoded records to the ledger in stream order.
func (n *Node) submit(ctx context.Context, slots <-chan *slot, results chan<- *slot) {
	defer close(results)
	for s := range slots {
		if n.halted.Load() != nil {
			return
		}
		select {
		case <-s.decoded:
		case <-ctx.Done():
			return
		}
		if s.err != nil && !errors.Is(s.err, errMalformed) {
			return // the context ended
		}
		rec := s.rec
		if s.err != nil {
			n.c.cfg.Logger.Error("skipping a stream record no node can apply", "pos", s.pos, "err", s.err)
			rec = ledger.Record{}
		}
		p, err := n.l.Submit(rec, s.pos)
		if err != nil && !errors.Is(err, ledger.ErrClosed) {
			// The record does not encode: every node refuses it alike.
			n.c.cfg.Logger.Error("skipping a stream record no node can apply", "pos", s.pos, "err", err)
			s.err = err
			p, err = n.l.Submit(ledger.Record{}, s.pos)
		}
		if err != nil {
			n.halt(fmt.Errorf("failed to apply stream record %d: %w", s.pos, err))
			return
		}
		s.pending = p
		select {
		case results <- s:
		case <-ctx.Done():
			return
		}
	}
}

// dispatch waits for each submitted record to be durable, finishes what
// it asks of the node (an erasure's key destruction), and answers its
// waiters, in order.
func (n *Node) dispatch(ctx context.Context, results <-chan *slot) {
	for s := range results {
		select {
		case <-s.pending.Done():
		case <-ctx.Done():
			return
		}
		res, err := s.pending.Result()
		if s.err != nil {
			res, err = ledger.Result{}, s.err
		}
		if err != nil && (errors.Is(err, ledger.ErrForked) || errors.Is(err, ledger.ErrUnavailable) || errors.Is(err, ledger.ErrTampered)) {
			n.halt(fmt.Errorf("failed to apply stream record %d: %w", s.pos, err))
		}
		if err == nil && res.Shred != nil {
			if serr := n.shred(ctx, *res.Shred); serr != nil {
				return
			}
			res.Shred = nil
		}
		if err == nil && s.rec.Cut {
			n.cutSize.Store(res.Seq)
		}
		n.mu.Lock()
		for _, w := range n.waiters[s.msgID] {
			if !w.fired {
				w.fired, w.res, w.err = true, res, err
				close(w.done)
			}
		}
		n.pos = s.pos
		n.mu.Unlock()
	}
}

// shred destroys an erasure's data keys in the key bucket, drops them
// from memory and purges the erased rows from the ledger's files. Every
// node does it for every erasure it applies, so the erasure holds on all
// of them whichever node answered it. It retries until done: the node
// applies nothing after an erasure until the erasure is complete.
func (n *Node) shred(ctx context.Context, sh ledger.Shred) error {
	backoff := 100 * time.Millisecond
	for {
		err := n.ks.Destroy(ctx, sh.DataKeys)
		if err == nil {
			for _, id := range sh.DataKeys {
				n.opts.Forget(id)
			}
			err = n.l.FinishShred(ctx, sh)
		}
		if err == nil || ctx.Err() != nil {
			return err
		}
		n.c.cfg.Logger.Error("failed to finish an erasure; retrying", "erasure", sh.ID, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// tick publishes cut points while the tree grows, and heartbeats.
func (n *Node) tick(ctx context.Context) {
	cut := time.NewTicker(n.opts.CutInterval)
	defer cut.Stop()
	beat := time.NewTicker(n.opts.HeartbeatInterval)
	defer beat.Stop()
	n.beat(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-cut.C:
			size := n.l.Size()
			if size > n.cutSize.Load() && n.halted.Load() == nil {
				// Nodes at the same size publish the same message id, so
				// the stream keeps one of their cuts.
				msg := nats.NewMsg(n.c.subject)
				msg.Data, _ = encodeRecord(ctx, n.opts.Sealer, ledger.Record{Cut: true})
				msg.Header.Set(jetstream.MsgIDHeader, "cut/"+strconv.FormatUint(size, 10))
				if _, err := n.c.js.PublishMsgAsync(msg); err != nil {
					n.c.cfg.Logger.Warn("failed to publish a checkpoint cut point", "err", err)
				}
			}
		case <-beat.C:
			n.beat(ctx)
		}
	}
}

func (n *Node) beat(ctx context.Context) {
	st := n.Status()
	if err := n.c.heartbeat(ctx, st); err != nil && ctx.Err() == nil {
		n.c.cfg.Logger.Warn("failed to record this node's heartbeat", "err", err)
	}
}

func (n *Node) halt(err error) {
	n.l.Halt(err)
	if n.halted.CompareAndSwap(nil, &haltErr{err}) {
		n.c.cfg.Logger.Error("cluster node halted: it applies nothing more until restarted", "err", err)
		close(n.haltCh) // releases every Append waiting for its record
	}
}

// Status is this node's state as its heartbeat shows it.
func (n *Node) Status() NodeStatus {
	size := n.l.Size()
	root, _ := n.l.Root(size)
	applied := n.l.Applied()
	st := NodeStatus{
		Node: n.c.cfg.Node, Applied: applied, Size: size, Root: hex.EncodeToString(root),
		Lag: n.Lag(), Halted: n.Halted() != nil, Time: time.Now().UTC(),
	}
	return st
}

// Lag returns how many stream records this node has yet to apply, as far
// as it knows.
func (n *Node) Lag() uint64 {
	end, applied := n.streamEnd.Load(), n.l.Applied()
	if end <= applied {
		return 0
	}
	return end - applied
}

// Name returns this node's name.
func (n *Node) Name() string { return n.c.cfg.Node }

// MaxLag is the configured lag beyond which the node reports unready.
func (n *Node) MaxLag() uint64 { return n.c.cfg.MaxLag }

// Halted returns why the node stopped applying, or nil.
func (n *Node) Halted() error {
	if h := n.halted.Load(); h != nil {
		return h.err
	}
	if err := n.l.Healthy(); errors.Is(err, ledger.ErrForked) {
		return err
	}
	return nil
}

// Nodes lists the nodes' heartbeats.
func (n *Node) Nodes(ctx context.Context) ([]NodeStatus, error) { return n.c.Nodes(ctx) }

// msgIDOf is a record's message id, by which the stream drops a second
// copy published within its duplicate window: a record with an
// idempotency key is named by the key and its digest (so that a retry of
// one delivery, on any node, is one message, while a conflicting one is
// published and refused by the applier), others by their random id.
func msgIDOf(rec ledger.Record) string {
	if u := rec.Unique; u != nil {
		h := sha256.New()
		h.Write([]byte(u.Key))
		h.Write([]byte{0})
		h.Write(u.Digest)
		return "u/" + hex.EncodeToString(h.Sum(nil)[:16])
	}
	return "r/" + rec.ID
}

// Append publishes rec to the stream and waits until this node applied
// it: a nil error means a quorum of the stream's servers acknowledged it
// and it is durable in this node's ledger, so a read on this node sees
// it. If ctx ends first, Append returns its error, but the record may
// still be applied.
func (n *Node) Append(ctx context.Context, rec ledger.Record) (ledger.Result, error) {
	if err := n.Halted(); err != nil {
		return ledger.Result{}, fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
	}
	data, err := encodeRecord(ctx, n.opts.Sealer, rec)
	if err != nil {
		return ledger.Result{}, err
	}
	id := msgIDOf(rec)
	w := &waiter{done: make(chan struct{})}
	n.mu.Lock()
	n.waiters[id] = append(n.waiters[id], w)
	n.mu.Unlock()
	defer n.unregister(id, w)

	ack, err := n.publish(ctx, id, data)
	if err != nil {
		return ledger.Result{}, err
	}
	n.mu.Lock()
	missed := !w.fired && n.pos >= ack.Sequence
	n.mu.Unlock()
	if missed {
		// A copy published earlier (by another node, or before a retry)
		// was applied before this call began waiting for it.
		return n.lookup(rec)
	}
	// The record is in the stream: this node applies it soon, unless it
	// halted or cannot read the stream; then the caller hears so (and a
	// retry, on any node, is idempotent) rather than waiting for ever.
	applyWait := time.NewTimer(3 * n.c.cfg.Timeout)
	defer applyWait.Stop()
	select {
	case <-w.done:
	case <-ctx.Done():
		return ledger.Result{}, ctx.Err()
	case <-n.haltCh:
		return ledger.Result{}, fmt.Errorf("%w: %w", ledger.ErrUnavailable, n.Halted())
	case <-applyWait.C:
		return ledger.Result{}, fmt.Errorf("%w: the record is in the ledger stream but this node has not applied it in %s", ledger.ErrUnavailable, 3*n.c.cfg.Timeout)
	}
	res := w.res
	if ack.Duplicate && w.err == nil {
		res.Duplicate = true
	}
	return res, w.err
}

// publish publishes one record and waits for the stream's acknowledgement.
func (n *Node) publish(ctx context.Context, id string, data []byte) (*jetstream.PubAck, error) {
	tctx, cancel := context.WithTimeout(ctx, n.c.cfg.Timeout)
	defer cancel()
	for {
		msg := nats.NewMsg(n.c.subject)
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, id)
		f, err := n.c.js.PublishMsgAsync(msg)
		if err != nil {
			return nil, fmt.Errorf("%w: failed to publish to the ledger stream: %w", ledger.ErrUnavailable, err)
		}
		select {
		case ack := <-f.Ok():
			return ack, nil
		case err := <-f.Err():
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeDuplicateInProcess {
				// The same record is being stored for another node right
				// now; once it is, publishing again is a duplicate.
				select {
				case <-time.After(10 * time.Millisecond):
					continue
				case <-tctx.Done():
				}
			} else {
				return nil, fmt.Errorf("%w: the ledger stream did not acknowledge: %w", ledger.ErrUnavailable, err)
			}
		case <-tctx.Done():
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: the ledger stream did not acknowledge in %s", ledger.ErrUnavailable, n.c.cfg.Timeout)
	}
}

// errCodeDuplicateInProcess is JetStream's answer to a message whose id
// another publish of the same id is being stored under.
const errCodeDuplicateInProcess jetstream.ErrorCode = 10158

func (n *Node) unregister(id string, w *waiter) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ws := n.waiters[id]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(n.waiters, id)
	} else {
		n.waiters[id] = ws
	}
}

// lookup answers for a record whose stream copy was applied before Append
// waited for it.
func (n *Node) lookup(rec ledger.Record) (ledger.Result, error) {
	if u := rec.Unique; u != nil {
		seq, digest, found, err := n.l.UniqueSeq(u.Key)
		if err != nil {
			return ledger.Result{}, err
		}
		if found {
			if string(digest) != string(u.Digest) {
				return ledger.Result{Seq: seq}, ledger.ErrConflict
			}
			return ledger.Result{Seq: seq, Duplicate: true}, nil
		}
	}
	return ledger.Result{}, fmt.Errorf("%w: the record was applied but its result is gone; retry", ledger.ErrUnavailable)
}

// sanitize makes s usable in a consumer name.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
