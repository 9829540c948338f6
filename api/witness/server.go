package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// SizeContentType is the media type of a 409 answer's body: the size of
// the latest checkpoint the witness cosigned.
const SizeContentType = "text/x.tlog.size"

// ServerConfig configures [OpenServer].
type ServerConfig struct {
	// Dir is the witness's Pebble directory, where it records the latest
	// checkpoint it cosigned for each log. Required.
	Dir string
	// Signer makes the witness's cosignatures: a signer from
	// formats/note.NewSignerForCosignatureV1. Required.
	Signer note.Signer
	// Logs are the verifier keys of the logs it witnesses. A key's name
	// is its log's origin; a log may have several keys (a signer
	// rotation). Required.
	Logs []note.Verifier
	// Logger receives one line per refused checkpoint of a known log
	// (possible evidence of a misbehaving log). The default discards.
	Logger *slog.Logger
}

// Server is a tlog-witness: an http.Handler for
// POST /add-checkpoint and GET /<origin hash>/checkpoint.
type Server struct {
	db     *pebble.DB
	signer note.Signer
	logs   map[string][]note.Verifier // origin -> keys
	log    *slog.Logger

	// mu makes each add-checkpoint's check of the old size and the
	// recording of the new checkpoint one atomic step (tlog-witness's
	// rollback race).
	mu sync.Mutex
}

// OpenServer opens (or creates) the witness's state in cfg.Dir.
func OpenServer(cfg ServerConfig) (*Server, error) {
	if cfg.Dir == "" || cfg.Signer == nil || len(cfg.Logs) == 0 {
		return nil, errors.New("witness: Dir, Signer and at least one log key are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{signer: cfg.Signer, logs: map[string][]note.Verifier{}, log: cfg.Logger}
	for _, v := range cfg.Logs {
		s.logs[v.Name()] = append(s.logs[v.Name()], v)
	}
	db, err := pebble.Open(cfg.Dir, &pebble.Options{Logger: quietLogger{cfg.Logger}})
	if err != nil {
		return nil, fmt.Errorf("failed to open witness state: %w", err)
	}
	s.db = db
	return s, nil
}

// Close closes the witness's state. Call it after the last request.
func (s *Server) Close() error { return s.db.Close() }

func stateKey(origin string) []byte { return append([]byte("c"), origin...) }

// Latest returns the latest checkpoint the witness cosigned for origin,
// with the log's signatures and its own cosignature, or nil if none.
func (s *Server) Latest(origin string) ([]byte, error) {
	v, closer, err := s.db.Get(stateKey(origin))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read witness state: %w", err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// ServeHTTP routes the two endpoints of tlog-witness.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/add-checkpoint":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s.addCheckpoint(w, r)
	case strings.HasSuffix(r.URL.Path, "/checkpoint") && r.Method == http.MethodGet:
		s.getCheckpoint(w, strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/checkpoint"))
	default:
		http.NotFound(w, r)
	}
}

// refusal is an add-checkpoint answer other than 200.
type refusal struct {
	status int
	msg    string
}

func (s *Server) addCheckpoint(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodySize+1))
	if err != nil {
		http.Error(w, "failed to read the request body", http.StatusBadRequest)
		return
	}
	if len(body) > MaxBodySize {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	sigs, ref := s.add(body)
	if ref != nil {
		if ref.status == http.StatusConflict {
			w.Header().Set("Content-Type", SizeContentType)
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, ref.msg)
			return
		}
		http.Error(w, ref.msg, ref.status)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(sigs)
}

// add checks and cosigns one add-checkpoint body, in the order of
// tlog-witness, and returns the cosignature lines.
func (s *Server) add(body []byte) ([]byte, *refusal) {
	req, err := ParseAddCheckpoint(body)
	if err != nil {
		return nil, &refusal{http.StatusBadRequest, "malformed add-checkpoint request"}
	}
	origin, _, ok := bytes.Cut(req.Checkpoint, []byte("\n"))
	if !ok || len(origin) == 0 {
		return nil, &refusal{http.StatusBadRequest, "malformed checkpoint"}
	}
	keys, ok := s.logs[string(origin)]
	if !ok {
		return nil, &refusal{http.StatusNotFound, "unknown log"}
	}
	n, err := note.Open(req.Checkpoint, note.VerifierList(keys...))
	var unverified *note.UnverifiedNoteError
	switch {
	case errors.As(err, &unverified):
		return nil, &refusal{http.StatusForbidden, "no signature by a key of this log"}
	case err != nil && wellFormed(req.Checkpoint):
		// A signature line of a known key that does not verify.
		return nil, &refusal{http.StatusForbidden, "a signature by a key of this log does not verify"}
	case err != nil:
		return nil, &refusal{http.StatusBadRequest, "malformed checkpoint note"}
	}
	// Extension lines, if any, are cosigned as they are; the cosignature
	// makes no statement about them (tlog-cosignature).
	var cp log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || len(cp.Hash) != hashSize || cp.Origin != string(origin) {
		return nil, &refusal{http.StatusBadRequest, "malformed checkpoint"}
	}
	if req.OldSize > cp.Size {
		return nil, &refusal{http.StatusBadRequest, "old size is larger than the checkpoint's"}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	prev, err := s.Latest(cp.Origin)
	if err != nil {
		s.log.Error("witness state unreadable", "err", err)
		return nil, &refusal{http.StatusInternalServerError, "internal error"}
	}
	var latest log.Checkpoint
	if prev != nil {
		text, _, _ := bytes.Cut(prev, []byte("\n\n"))
		if _, err := latest.Unmarshal(append(text, '\n')); err != nil {
			s.log.Error("witness state damaged", "origin", cp.Origin)
			return nil, &refusal{http.StatusInternalServerError, "internal error"}
		}
	}
	if req.OldSize != latest.Size {
		return nil, &refusal{http.StatusConflict, strconv.FormatUint(latest.Size, 10) + "\n"}
	}
	if cp.Size == 0 && !bytes.Equal(cp.Hash, rfc6962.DefaultHasher.EmptyRoot()) {
		return nil, s.inconsistent(cp, "a checkpoint of size 0 must have the empty tree's root")
	}
	switch {
	case req.OldSize == 0 && len(req.Proof) != 0:
		return nil, s.inconsistent(cp, "a proof from size 0 must be empty")
	case req.OldSize == 0:
	case req.OldSize == cp.Size && !bytes.Equal(cp.Hash, latest.Hash):
		return nil, s.inconsistent(cp, "a checkpoint of the size last cosigned has another root")
	default:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, req.OldSize, cp.Size, req.Proof, latest.Hash, cp.Hash); err != nil {
			return nil, s.inconsistent(cp, "the consistency proof does not verify")
		}
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, s.signer)
	if err != nil {
		s.log.Error("failed to cosign", "err", err)
		return nil, &refusal{http.StatusInternalServerError, "internal error"}
	}
	cosig := signed[len(n.Text)+1:]
	// The log's verified signatures and the cosignature: what the
	// monitoring endpoint serves.
	state := []byte(n.Text + "\n")
	for _, sig := range n.Sigs {
		state = append(state, "\u2014 "+sig.Name+" "+sig.Base64+"\n"...)
	}
	state = append(state, cosig...)
	// Durable before the answer: a witness that forgot what it cosigned
	// could be made to cosign a fork.
	if err := s.db.Set(stateKey(cp.Origin), state, pebble.Sync); err != nil {
		s.log.Error("failed to record cosigned checkpoint", "err", err)
		return nil, &refusal{http.StatusServiceUnavailable, "cannot record the checkpoint now"}
	}
	return cosig, nil
}

// wellFormed reports whether msg is a well-formed signed note, whoever
// signed it: opened with no known key, it is then merely unverified.
func wellFormed(msg []byte) bool {
	_, err := note.Open(msg, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	return errors.As(err, &unverified)
}

// inconsistent logs a refused checkpoint of a known log, validly signed:
// it may be evidence of a fork.
func (s *Server) inconsistent(cp log.Checkpoint, why string) *refusal {
	s.log.Warn("refused a signed checkpoint", "origin", cp.Origin, "size", cp.Size, "reason", why)
	return &refusal{http.StatusUnprocessableEntity, why}
}

// getCheckpoint serves the latest cosigned checkpoint of the log whose
// origin hashes (SHA-256, lower-case hex) to originHash.
func (s *Server) getCheckpoint(w http.ResponseWriter, originHash string) {
	for origin := range s.logs {
		sum := sha256.Sum256([]byte(origin))
		if hex.EncodeToString(sum[:]) != originHash {
			continue
		}
		cp, err := s.Latest(origin)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if cp == nil {
			break
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(cp)
		return
	}
	http.Error(w, "no checkpoint cosigned for this log", http.StatusNotFound)
}

// quietLogger sends Pebble's chatter to debug level.
type quietLogger struct{ l *slog.Logger }

func (q quietLogger) Infof(format string, args ...any) {
	q.l.Debug(fmt.Sprintf(format, args...), "component", "witness-store")
}
func (q quietLogger) Errorf(format string, args ...any) {
	q.l.Error(fmt.Sprintf(format, args...), "component", "witness-store")
}
func (q quietLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	q.l.Error(msg, "component", "witness-store")
	panic("witness-store: " + msg)
}
