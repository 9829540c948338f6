package main

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// post URL TOKEN: POSTs an empty body with the bearer token and writes the
// body of a 200 answer to stdout.
func scriptPost(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "post")
	if len(args) != 2 {
		ts.Fatalf("usage: post URL TOKEN")
	}
	req, err := http.NewRequest(http.MethodPost, args[0], nil)
	ts.Check(err)
	req.Header.Set("Authorization", "Bearer "+args[1])
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	ts.Check(err)
	if resp.StatusCode != http.StatusOK {
		ts.Fatalf("POST %s: %s", args[0], fmt.Sprint(resp.Status, " ", string(b)))
	}
	ts.Stdout().Write(b)
}

// waitrewrap URL TOKEN: waits until the server's datakey re-wrap is done.
func scriptWaitRewrap(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "waitrewrap")
	if len(args) != 2 {
		ts.Fatalf("usage: waitrewrap URL TOKEN")
	}
	deadline := time.Now().Add(scriptTimeout)
	for {
		var st struct {
			Rewrap *struct{ Done bool } `json:"datakey_rewrap"`
		}
		ts.Check(getJSON(args[0]+"/v1/admin/keys", args[1], &st))
		if st.Rewrap != nil && st.Rewrap.Done {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("the re-wrap did not finish within %s", scriptTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
