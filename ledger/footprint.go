package ledger

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Footprint says where a store's bytes go: its live rows by class, with
// the clear size of their keys and values, what its sstables hold (data
// blocks after compression, index and filter blocks) and its blob files.
// It is for capacity planning (`paytrail bench bytes`), not for
// verification.
type Footprint struct {
	// Rows are the live rows by class, in key order of their first row.
	Rows []RowClass
	// Tables sums the properties of every sstable.
	Tables TableBytes
	// Blobs sums the blob files, where the entries' values are.
	Blobs BlobBytes
}

// BlobBytes sums the live blob files of a store.
type BlobBytes struct {
	Files    uint64
	Size     uint64 // file sizes
	RawValue uint64 // the values they hold, uncompressed
}

// RowClass counts the live rows of one class (a table tag and, where the
// table has them, its sub-table, as named in keys.go).
type RowClass struct {
	Name       string
	Rows       uint64
	KeyBytes   uint64
	ValueBytes uint64
}

// TableBytes sums sstable properties.
type TableBytes struct {
	Files    uint64
	Size     uint64 // file sizes
	Data     uint64 // data blocks, as stored (compressed)
	Index    uint64
	Filter   uint64
	RawKey   uint64 // keys of every point entry, uncompressed
	RawValue uint64 // values of every point entry, uncompressed
	Entries  uint64 // point entries, tombstones and shadowed versions included
}

// Footprint scans the ledger's rows and its sstables' properties.
func (l *Ledger) Footprint() (*Footprint, error) {
	release, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	return StoreFootprint(l.db, rowClass)
}

// StoreFootprint is [Ledger.Footprint] for any Pebble store, with class
// naming the class of a key.
func StoreFootprint(db *pebble.DB, class func(k []byte) string) (*Footprint, error) {
	f := &Footprint{}
	it, err := db.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("failed to scan store: %w", err)
	}
	byName := map[string]int{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, fmt.Errorf("failed to scan store: %w", err)
		}
		name := class(k)
		i, ok := byName[name]
		if !ok {
			i = len(f.Rows)
			byName[name] = i
			f.Rows = append(f.Rows, RowClass{Name: name})
		}
		r := &f.Rows[i]
		r.Rows++
		r.KeyBytes += uint64(len(k))
		r.ValueBytes += uint64(len(v))
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("failed to scan store: %w", err)
	}
	levels, err := db.SSTables(pebble.WithProperties())
	if err != nil {
		return nil, fmt.Errorf("failed to list store files: %w", err)
	}
	for _, level := range levels {
		for _, t := range level {
			f.Tables.Files++
			f.Tables.Size += t.Size
			if p := t.Properties; p != nil {
				f.Tables.Data += p.DataSize
				f.Tables.Index += p.IndexSize
				f.Tables.Filter += p.FilterSize
				f.Tables.RawKey += p.RawKeySize
				f.Tables.RawValue += p.RawValueSize
				f.Tables.Entries += p.NumEntries
			}
		}
	}
	b := db.Metrics().BlobFiles
	f.Blobs = BlobBytes{Files: b.LiveCount, Size: b.LiveSize, RawValue: b.ValueSize}
	return f, nil
}

// rowClass names the class of a ledger key (see keys.go and index.go).
func rowClass(k []byte) string {
	if len(k) == 0 {
		return "?"
	}
	switch k[0] {
	case tagEntry:
		switch {
		case len(k) == 9:
			return "e entry"
		case len(k) == 10 && k[9] == 'h':
			return "e hashes"
		case len(k) == 10 && k[9] == 'p':
			return "e checkpoint"
		}
	case tagMeta:
		if i := bytes.IndexByte(k, '/'); i > 0 {
			return "a " + string(k[1:i])
		}
		return "a " + string(k[1:])
	case tagWitness:
		return "w cosignature"
	case tagIndex, tagSubject, tagState:
		if i := bytes.IndexByte(k, 0); i > 1 {
			return string(k[:1]) + " " + string(k[1:i])
		}
	}
	return string(k[:1]) + " ?"
}
