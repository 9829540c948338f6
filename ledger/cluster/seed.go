package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paytrail/paytrail/ledger"
)

// SeedSource is the single-node data dir a new cluster starts from.
type SeedSource struct {
	Ledger *ledger.Ledger
	// Keysets are its wrapped keyset files (crypto.ReadKeysetFiles).
	Keysets map[string][]byte
	// EachKey calls fn for every wrapped data key of its key store.
	EachKey func(ctx context.Context, fn func(ledger.WrappedKey) error) error
	// Sealer seals the entries' subjects for the stream (its data keys).
	Sealer Sealer
	// Progress, if set, is called now and then with the entries published.
	Progress func(done, total uint64)
}

// SeedResult says what Seed published.
type SeedResult struct {
	Entries, Checkpoints, StateRows, DataKeys uint64
	Records                                   uint64
}

// ErrNotEmpty refuses to seed a cluster that already has a ledger.
var ErrNotEmpty = errors.New("the cluster already holds a ledger")

// Seed publishes a single-node ledger into the empty cluster of c, so that
// nodes applying the stream reach the original's entries, root and
// checkpoints, byte for byte: its ledger id becomes the cluster's, its
// keysets the cluster's, its data keys go to the key bucket, and then
// every entry (verbatim, with its sealed subjects), every checkpoint at
// its place, and the mutable state rows (principals, restrictions,
// corrections, transaction sources) are published in order.
//
// The source must not change meanwhile (its server stopped) and must have
// no erasure pending. If Seed fails part way, the stream holds a partial
// ledger: delete the stream and buckets (docs/cluster.md) and seed again.
func Seed(ctx context.Context, c *Conn, src SeedSource) (*SeedResult, error) {
	l := src.Ledger
	if pending, err := l.PendingShreds(); err != nil {
		return nil, err
	} else if len(pending) > 0 {
		return nil, errors.New("the source ledger has an erasure pending: start its server once to finish it, then seed")
	}
	last, err := c.LastSeq(ctx)
	if err != nil {
		return nil, err
	}
	if last != 0 {
		return nil, fmt.Errorf("%w: its stream has %d records", ErrNotEmpty, last)
	}
	if id, created, err := c.LedgerID(ctx, l.ID()); err != nil {
		return nil, err
	} else if !created {
		return nil, fmt.Errorf("%w: ledger %s", ErrNotEmpty, id)
	}
	res := &SeedResult{}
	theirs, err := c.SyncKeysets(ctx, src.Keysets)
	if err != nil {
		return nil, err
	}
	for name, b := range theirs {
		if string(b) != string(src.Keysets[name]) {
			return nil, fmt.Errorf("%w: its %s keyset is another's", ErrNotEmpty, name)
		}
	}
	ks := c.KeyStore()
	var batch []ledger.WrappedKey
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := ks.PutWrapped(ctx, batch)
		res.DataKeys += uint64(len(batch))
		batch = batch[:0]
		return err
	}
	if err := src.EachKey(ctx, func(w ledger.WrappedKey) error {
		batch = append(batch, w)
		if len(batch) == 256 {
			return flush()
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("failed to publish data keys: %w", err)
	}
	if err := flush(); err != nil {
		return nil, fmt.Errorf("failed to publish data keys: %w", err)
	}

	p := &seedPublisher{c: c, ctx: ctx}
	size := l.Size()
	if cp, err := l.Checkpoint(0); err == nil {
		if err := p.publish(ledger.Record{Checkpoint: cp}, src.Sealer); err != nil {
			return nil, err
		}
		res.Checkpoints++
	}
	for seq := range size {
		e, err := l.Entry(seq)
		if err != nil {
			return nil, err
		}
		rec := ledger.Record{Entry: e.Bytes()}
		if e.Kind == ledger.KindPayment {
			var body ledger.PaymentBody
			if err := e.DecodeBody(&body); err != nil {
				return nil, err
			}
			if body.TransactionID != "" && body.DataKey != "" {
				subjects, found, err := l.LinkSubjects(body.TransactionID, body.DataKey)
				if err != nil {
					return nil, err
				}
				if found {
					rec.Link = &ledger.SubjectLink{TransactionID: body.TransactionID, DataKey: body.DataKey, Subjects: subjects}
				}
			}
		}
		if err := p.publish(rec, src.Sealer); err != nil {
			return nil, err
		}
		res.Entries++
		if cp, err := l.Checkpoint(seq + 1); err == nil {
			if err := p.publish(ledger.Record{Checkpoint: cp}, src.Sealer); err != nil {
				return nil, err
			}
			res.Checkpoints++
		} else if !errors.Is(err, ledger.ErrNotFound) {
			return nil, err
		}
		if src.Progress != nil && (seq+1)%10000 == 0 {
			src.Progress(seq+1, size)
		}
	}
	var rows []ledger.StateRow
	if err := l.EachState(func(r ledger.StateRow) error {
		if r.Table == ledger.TableShred {
			return nil
		}
		rows = append(rows, r)
		res.StateRows++
		if len(rows) == 512 {
			err := p.publish(ledger.Record{State: rows}, src.Sealer)
			rows = nil
			return err
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if len(rows) > 0 {
		if err := p.publish(ledger.Record{State: rows}, src.Sealer); err != nil {
			return nil, err
		}
	}
	if err := p.wait(); err != nil {
		return nil, err
	}
	res.Records = p.n
	return res, nil
}

// seedPublisher publishes records in order, many in flight: JetStream
// stores one connection's messages to one subject in the order sent.
type seedPublisher struct {
	c       *Conn
	ctx     context.Context
	n       uint64
	futures []jetstream.PubAckFuture
}

func (p *seedPublisher) publish(rec ledger.Record, s Sealer) error {
	data, err := encodeRecord(p.ctx, s, rec)
	if err != nil {
		return err
	}
	p.n++
	msg := nats.NewMsg(p.c.subject)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, "seed/"+strconv.FormatUint(p.n, 10))
	f, err := p.c.js.PublishMsgAsync(msg)
	if err != nil {
		return fmt.Errorf("failed to publish seed record %d: %w", p.n, err)
	}
	p.futures = append(p.futures, f)
	if len(p.futures) >= 1024 {
		return p.wait()
	}
	return nil
}

func (p *seedPublisher) wait() error {
	for _, f := range p.futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				return fmt.Errorf("seed record stored twice: the stream was not empty")
			}
		case err := <-f.Err():
			return fmt.Errorf("failed to publish seed records: %w", err)
		case <-p.ctx.Done():
			return p.ctx.Err()
		}
	}
	p.futures = p.futures[:0]
	return nil
}
