package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/paytrail/paytrail/api"
	"github.com/paytrail/paytrail/ledger/backup"
)

// cmdBackup downloads an online backup from a running server
// (GET /v1/admin/backup) into a file only its owner can read, and checks it
// before giving it its name.
func cmdBackup(ctx context.Context, e env) error {
	fs := newFlags("backup", "--url URL --token T --out FILE")
	url := fs.String("url", "", "the server's base URL, e.g. https://paytrail.internal:8443")
	token := fs.String("token", "", "an admin bearer token (env PAYTRAIL_TOKEN)")
	out := fs.String("out", "", "the backup file to write (mode 0600); must not exist")
	args, err := parseFlags(e, fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageError{fmt.Sprintf("backup takes no arguments, got %q", args[0]), ""}
	}
	tok := first(*token, e.getenv("PAYTRAIL_TOKEN"))
	if *url == "" || *out == "" || tok == "" {
		return usageError{"backup needs --url URL, --token T (or PAYTRAIL_TOKEN) and --out FILE", "the token must be an admin's"}
	}
	base, err := parseBaseURL(*url)
	if err != nil {
		return usageError{err.Error(), ""}
	}
	if base.Scheme == "http" && !isLoopback(base.Hostname()) {
		fmt.Fprintf(e.stderr, "paytrail: warning: the backup (wrapped keys, ciphertext) and the token cross plain http to %s\n", base.Host)
	}
	if _, err := os.Lstat(*out); err == nil {
		return usageError{fmt.Sprintf("%s exists", *out), "name a new file for each backup, e.g. with the date in it"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.JoinPath("/v1/admin/backup").String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("failed to reach %s: %w", base.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		err := fmt.Errorf("the server refused the backup: %d (%s)", resp.StatusCode, errorCode(body))
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return hinted{err, []string{"backups need an admin's token"}}
		}
		return err
	}
	partial := *out + ".partial"
	if err := os.Remove(partial); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// 0600 from the first byte: the file holds wrapped keysets and the
	// ciphertext of cardholder data.
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", partial, err)
	}
	done := false
	defer func() {
		f.Close()
		if !done {
			os.Remove(partial)
		}
	}()
	total, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	pw := &progressWriter{w: f, total: total, stderr: e.stderr, last: time.Now()}
	if _, err := io.Copy(pw, resp.Body); err != nil {
		return fmt.Errorf("the backup stream broke off after %d bytes: %w", pw.n, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("failed to sync %s: %w", partial, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	m, err := backup.Check(ctx, f)
	if err != nil {
		return fmt.Errorf("the downloaded backup does not check out, kept nothing: %w", err)
	}
	if err := os.Rename(partial, *out); err != nil {
		return fmt.Errorf("failed to name the backup %s: %w", *out, err)
	}
	done = true
	if err := syncParent(*out); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (mode 0600): ledger %s, %d entries, root %s, newest checkpoint size %d, %d files, %d bytes\n",
		*out, m.LedgerID, m.Size, m.Root, m.CheckpointSize, len(m.Files), pw.n)
	fmt.Fprintln(e.stdout, "it holds wrapped keysets and ciphertext, not the master key: store it apart from the master key")
	return nil
}

// parseBackupRate reads the config's backup_max_rate: a size per second,
// "unlimited" (-1), or empty for the server's default (0).
func parseBackupRate(v string) (int64, error) {
	if v == "unlimited" {
		return -1, nil
	}
	return parseSize("backup_max_rate", v)
}

// progressWriter counts bytes and reports progress on stderr every few
// seconds, so a large backup shows it is moving; a small one prints
// nothing.
type progressWriter struct {
	w      io.Writer
	n      int64
	total  int64
	stderr io.Writer
	last   time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if time.Since(p.last) >= 2*time.Second {
		p.last = time.Now()
		if p.total > 0 {
			fmt.Fprintf(p.stderr, "paytrail: backup: %d of %d MiB (%d%%)\n", p.n>>20, p.total>>20, p.n*100/p.total)
		} else {
			fmt.Fprintf(p.stderr, "paytrail: backup: %d MiB\n", p.n>>20)
		}
	}
	return n, err
}

func syncParent(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// cmdRestore writes a data dir from a backup file.
func cmdRestore(ctx context.Context, e env) error {
	fs := newFlags("restore", "--in FILE --data DIR")
	in := fs.String("in", "", "the backup file written by 'paytrail backup'")
	data := fs.String("data", "", "the data dir to create; must not exist or be empty")
	args, err := parseFlags(e, fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageError{fmt.Sprintf("restore takes no arguments, got %q", args[0]), ""}
	}
	if *in == "" || *data == "" {
		return usageError{"restore needs --in FILE and --data DIR", ""}
	}
	f, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("failed to open the backup: %w", err)
	}
	defer f.Close()
	m, origin, err := backup.Restore(ctx, f, *data, api.PolicyVersion)
	switch {
	case errors.Is(err, backup.ErrNotEmpty):
		return hinted{fmt.Errorf("%s is not empty: restore writes only a new data dir", *data),
			[]string{"restore into a new directory, then point the server at it"}}
	case errors.Is(err, backup.ErrDamaged):
		return hinted{fmt.Errorf("refusing %s: %w", *in, err), []string{"nothing was written; restore from another copy of the backup"}}
	case err != nil:
		return err
	}
	fmt.Fprintf(e.stdout, "restored %s into %s: ledger %s, %d entries, root %s\n", *in, *data, m.LedgerID, m.Size, m.Root)
	fmt.Fprintf(e.stdout, "the restored ledger signs under a new origin %s (it was %s), so it can never fork the original\n", origin, m.Origin)
	fmt.Fprintln(e.stdout, "next: set PAYTRAIL_MASTER_KEY to the master key the backup's keysets are wrapped by, run 'paytrail verify --data DIR', then serve")
	fmt.Fprintln(e.stdout, "auditors pin the new origin's key: GET /v1/ledger/public-key (docs/operations.md, restore)")
	return nil
}
