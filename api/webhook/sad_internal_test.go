package webhook

import "testing"

// FuzzIsSADKey checks isSADKey's allocation-free ASCII path against the
// definition: the key normalized by normalizeKey is one of sadKeys.
func FuzzIsSADKey(f *testing.F) {
	for k := range sadKeys {
		f.Add(k)
	}
	for _, k := range []string{"CVV_2", "Security-Code", "pin block", "TRAC\u212A", "cvc_check", "Ｃvv", "", "x"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		want := len(k) <= 32 && sadKeys[normalizeKey(k)]
		if got := isSADKey(k); got != want {
			t.Fatalf("isSADKey(%q) = %v, want %v", k, got, want)
		}
	})
}

func TestIsSADKeyAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { isSADKey("Card_Verification-Value") }); n != 0 {
		t.Errorf("isSADKey allocates %v times per call", n)
	}
}
