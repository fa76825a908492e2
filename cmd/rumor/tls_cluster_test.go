package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// With --tls-cert, a node reaches its peers' HTTP APIs over HTTPS (the UI's
// cluster view): both nodes answer, none shows an error.
func TestServeTLSClusterView(t *testing.T) {
	clusterScenario(t)
	cert, key := selfSigned(t)
	url, client := startTLSPair(t, cert, key, "localhost", "tls")
	waitTLSView(t, client, url, "")
}

// TestServePeerTLSServerName: a certificate that names the service, not
// the addresses peers are reached at (pod IPs in Kubernetes). The cluster
// view cannot verify the peer at its address; with --peer-tls-server-name
// it verifies that name instead, and both nodes answer.
func TestServePeerTLSServerName(t *testing.T) {
	clusterScenario(t)
	cert, key := selfSignedFor(t, []string{"rumor.streams.svc"}, nil)
	url, client := startTLSPair(t, cert, key, "rumor.streams.svc", "tls-noname")
	waitTLSView(t, client, url, "doesn't contain any IP SANs") // x509: the peer's address is not in it

	url, client = startTLSPair(t, cert, key, "rumor.streams.svc", "tls-name", "--peer-tls-server-name", "rumor.streams.svc")
	waitTLSView(t, client, url, "")
}

// startTLSPair starts two clustered nodes serving TLS with cert and key and
// returns the first one's URL and a client that trusts cert as serverName.
func startTLSPair(t *testing.T, cert, key, serverName, label string, extra ...string) (string, *http.Client) {
	t.Helper()
	gkey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{5}, 32))
	common := append([]string{"--tls-cert", cert, "--tls-key", key, "--gossip-key", gkey, "--cluster-label", label}, extra...)
	one, url := startServeWith(t, "https", append([]string{"--gossip-addr", "127.0.0.1:0", "--node-name", "one"}, common...)...)
	m, _ := logLine(one.out.String(), "listening")
	gossip, _ := m["gossip"].(string)
	if gossip == "" {
		t.Fatalf("no gossip address in %v", m)
	}
	startServeWith(t, "https", append([]string{"--gossip-addr", "127.0.0.1:0", "--join", gossip, "--node-name", "two"}, common...)...)

	pemCert, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName}}
	t.Cleanup(tr.CloseIdleConnections)
	return url, &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// waitTLSView waits until the first node's cluster view lists both nodes,
// both answering when wantErr is empty, else the peer failing with an
// error that contains wantErr.
func waitTLSView(t *testing.T, client *http.Client, url, wantErr string) {
	t.Helper()
	var view struct {
		Nodes []struct {
			Name  string `json:"name"`
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"nodes"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := do(t, client, http.MethodGet, url+"/cluster/channels", nil, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /cluster/channels = %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal([]byte(body), &view); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		ok, failed := 0, 0
		for _, n := range view.Nodes {
			switch {
			case n.OK && n.Error == "":
				ok++
			case wantErr != "" && strings.Contains(n.Error, wantErr):
				failed++
			}
		}
		if len(view.Nodes) == 2 && (wantErr == "" && ok == 2 || wantErr != "" && ok == 1 && failed == 1) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster view over TLS = %s, want two nodes, the peer failing with %q (none if empty)", body, wantErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
