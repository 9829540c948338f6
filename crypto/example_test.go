package crypto_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/paytrail/paytrail/crypto"
	"golang.org/x/mod/sumdb/note"
)

// mapStore stands in for the ledger's key store.
type mapStore map[string][]byte

func (s mapStore) Wrapped(_ context.Context, id string) ([]byte, bool, error) {
	w, ok := s[id]
	return w, ok, nil
}

// Example shows the life of one event's cardholder data: a development
// master key, keysets, a PAN token, a subject data key sealing a field,
// and a signed checkpoint.
func Example() {
	ctx := context.Background()
	dataDir, err := os.MkdirTemp("", "paytrail-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dataDir)

	masterPath := filepath.Join(dataDir, "master.key")
	if err := crypto.CreateMasterFile(masterPath); err != nil {
		log.Fatal(err)
	}
	master, err := crypto.OpenMaster(ctx, crypto.MasterConfig{URI: "file://" + masterPath})
	if err != nil {
		log.Fatal(err)
	}
	keysDir := filepath.Join(dataDir, "keysets")
	if err := crypto.InitKeysets(ctx, keysDir, master); err != nil {
		log.Fatal(err)
	}
	keys, err := crypto.LoadKeysets(ctx, keysDir, master)
	if err != nil {
		log.Fatal(err)
	}

	card, err := keys.Tokenize("4111 1111 1111 1111")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(card.BIN, card.Last4, strings.HasPrefix(card.Token, "tok_"))

	store := mapStore{}
	dataKeys := crypto.NewDataKeys(keys, store, 0)
	dk, wrapped, err := dataKeys.New()
	if err != nil {
		log.Fatal(err)
	}
	store[dk.ID()] = wrapped // the ledger persists this with the entry's batch
	ad := crypto.AD{Ledger: "ldg_1", Entry: "evt_1", Field: "email"}
	sealed, err := dk.Seal(ad, []byte("ann@example.com"))
	if err != nil {
		log.Fatal(err)
	}
	again, err := dataKeys.Get(ctx, dk.ID())
	if err != nil {
		log.Fatal(err)
	}
	email, err := again.Open(ad, sealed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(email))

	signer, err := keys.NoteSigner("paytrail/ldg_1")
	if err != nil {
		log.Fatal(err)
	}
	checkpoint, err := note.Sign(&note.Note{Text: "paytrail/ldg_1\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"}, signer)
	if err != nil {
		log.Fatal(err)
	}
	vkeys, err := keys.NoteVerifierKeys("paytrail/ldg_1")
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkeys[0])
	if err != nil {
		log.Fatal(err)
	}
	n, err := note.Open(checkpoint, note.VerifierList(verifier))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.SplitN(n.Text, "\n", 2)[0], len(n.Sigs))
	// Output:
	// 411111 1111 true
	// ann@example.com
	// paytrail/ldg_1 1
}
