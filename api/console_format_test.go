package api

import (
	"testing"
	"time"
)

func TestConsoleMoney(t *testing.T) {
	money := consoleFuncs["money"].(func(int64, string) string)
	for _, tc := range []struct {
		v    int64
		cur  string
		want string
	}{
		{0, "USD", "0.00 USD"},
		{4550, "USD", "45.50 USD"},
		{123456, "USD", "1,234.56 USD"},
		{-123456789, "EUR", "-1,234,567.89 EUR"},
		{1500, "JPY", "1,500 JPY"},
		{1234, "KWD", "1.234 KWD"},
		{100000, "KWD", "100.000 KWD"},
	} {
		if got := money(tc.v, tc.cur); got != tc.want {
			t.Errorf("money(%d, %s) = %q, want %q", tc.v, tc.cur, got, tc.want)
		}
	}
}

func TestConsoleWhen(t *testing.T) {
	got := string(consoleWhen(time.Date(2026, 11, 20, 15, 3, 11, 0, time.FixedZone("CET", 3600))))
	want := `<time datetime="2026-11-20T14:03:11Z" title="2026-11-20 14:03:11 UTC">2026-11-20 14:03:11 UTC</time>`
	if got != want {
		t.Errorf("consoleWhen = %s, want %s", got, want)
	}
	if consoleWhen(time.Time{}) != "" {
		t.Error("zero time rendered")
	}
}
