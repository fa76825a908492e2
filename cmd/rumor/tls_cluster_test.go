package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"
)

// With --tls-cert, a node reaches its peers' HTTP APIs over HTTPS (the UI's
// cluster view): both nodes answer, none shows an error.
func TestServeTLSClusterView(t *testing.T) {
	cert, key := selfSigned(t)
	gkey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{5}, 32))
	common := []string{"--tls-cert", cert, "--tls-key", key, "--gossip-key", gkey, "--cluster-label", "tls"}
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
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

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
		ok := 0
		for _, n := range view.Nodes {
			if n.OK && n.Error == "" {
				ok++
			}
		}
		if len(view.Nodes) == 2 && ok == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster view over TLS = %s, want two nodes answering", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
