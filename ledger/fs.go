package ledger

import "github.com/cockroachdb/pebble/v2/vfs"

type pebbleFS = vfs.FS
