package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A cluster node's keysets and data keys live in the cluster's buckets:
// online backup and rotation, which work on one node's files, answer 409
// cluster_keys there instead of parting the node from the others.
func TestClusterNodeRefusesBackupAndRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS servers and a node")
	}
	_, nodes, token := startCluster(t, 1)
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/v1/admin/backup"},
		{http.MethodPost, "/v1/admin/keys/signer/rotate"},
		{http.MethodPost, "/v1/admin/keys/datakey/rotate"},
	} {
		r, err := http.NewRequest(req.method, nodes[0].url+req.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "cluster_keys") {
			t.Errorf("%s %s on a cluster node: %d %s", req.method, req.path, resp.StatusCode, body)
		}
	}
}
