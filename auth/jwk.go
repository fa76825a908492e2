package auth

// Key material: PEM public keys and JSON Web Key Sets, and which key
// checks which token.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// ParsePublicKey reads one PEM public key (PKIX "PUBLIC KEY", PKCS #1 "RSA
// PUBLIC KEY", or the public key of a "CERTIFICATE") and returns it with
// the one algorithm it verifies: RS256 for RSA of 2048 bits or more, ES256
// for ECDSA on P-256, EdDSA for Ed25519.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, string, error) {
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, "", errors.New("no PEM block")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, "", errors.New("more than one PEM block: want exactly one public key")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, "", fmt.Errorf("PEM block %q: want PUBLIC KEY (a private key does not belong here)", block.Type)
	}
	if err != nil {
		return nil, "", err
	}
	return checkKey(key)
}

// checkKey accepts the keys rumor verifies with and names their algorithm.
func checkKey(key any) (crypto.PublicKey, string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, "", fmt.Errorf("RSA key of %d bits: want at least %d", k.N.BitLen(), minRSABits)
		}
		return k, jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("ECDSA key on %s: want P-256 (ES256)", k.Curve.Params().Name)
		}
		return k, jwt.SigningMethodES256.Alg(), nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, "", fmt.Errorf("Ed25519 key of %d bytes", len(k))
		}
		return k, jwt.SigningMethodEdDSA.Alg(), nil
	default:
		return nil, "", fmt.Errorf("%T: want an RSA, ECDSA P-256 or Ed25519 public key", key)
	}
}

// JWKS is a parsed JSON Web Key Set: verification keys by kid.
type JWKS struct {
	keys map[string]jwksKey
}

type jwksKey struct {
	key crypto.PublicKey
	alg string // RS256, ES256 or EdDSA
}

// Len returns how many keys the set holds.
func (s *JWKS) Len() int { return len(s.keys) }

// jwk is one key of a JWKS, as RFC 7517 and 7518 write it.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS parses a JSON Web Key Set. It keeps the signature keys it can
// verify with (RSA as RS256, EC P-256 as ES256, OKP Ed25519 as EdDSA) and
// skips encryption keys and other key types; symmetric ("oct") keys are
// never used, so a JWKS cannot turn an HS256 token into a valid one. Each
// kept key needs a distinct kid, unless it is the only one.
func ParseJWKS(b []byte) (*JWKS, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	s := &JWKS{keys: make(map[string]jwksKey)}
	for i, raw := range doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		key, alg, err := k.publicKey()
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, clip(k.Kid), err)
		}
		if key == nil {
			continue // a key type rumor does not verify with
		}
		if _, dup := s.keys[k.Kid]; dup {
			return nil, fmt.Errorf("key %d: kid %q appears twice", i, clip(k.Kid))
		}
		s.keys[k.Kid] = jwksKey{key: key, alg: alg}
	}
	switch {
	case len(s.keys) == 0:
		return nil, errors.New("no RSA, EC P-256 or Ed25519 signature key")
	case len(s.keys) > 1:
		if _, ok := s.keys[""]; ok {
			return nil, errors.New("a key without kid among several: every key needs a kid")
		}
	}
	return s, nil
}

// publicKey returns the key and its algorithm, or nil for a key type rumor
// skips.
func (k jwk) publicKey() (crypto.PublicKey, string, error) {
	switch k.Kty {
	case "RSA":
		if k.Alg != "" && k.Alg != "RS256" {
			return nil, "", nil // another RSA algorithm: not ours to accept
		}
		n, err := b64uint(k.N)
		if err != nil {
			return nil, "", fmt.Errorf("n: %w", err)
		}
		e, err := b64uint(k.E)
		if err != nil {
			return nil, "", fmt.Errorf("e: %w", err)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, "", errors.New("e: not a usable RSA exponent")
		}
		return checkKey(&rsa.PublicKey{N: n, E: int(e.Int64())})
	case "EC":
		if k.Crv != "P-256" || k.Alg != "" && k.Alg != "ES256" {
			return nil, "", nil
		}
		x, err := b64fixed(k.X, 32)
		if err != nil {
			return nil, "", fmt.Errorf("x: %w", err)
		}
		y, err := b64fixed(k.Y, 32)
		if err != nil {
			return nil, "", fmt.Errorf("y: %w", err)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, "", err
		}
		return checkKey(pub)
	case "OKP":
		if k.Crv != "Ed25519" || k.Alg != "" && k.Alg != "EdDSA" && k.Alg != "Ed25519" {
			return nil, "", nil
		}
		x, err := b64fixed(k.X, ed25519.PublicKeySize)
		if err != nil {
			return nil, "", fmt.Errorf("x: %w", err)
		}
		return checkKey(ed25519.PublicKey(x))
	default:
		return nil, "", nil // "oct" (symmetric) and others
	}
}

func b64uint(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) == 0 {
		return nil, errors.New("not base64url")
	}
	return new(big.Int).SetBytes(b), nil
}

func b64fixed(s string, n int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("want %d bytes of base64url", n)
	}
	return b, nil
}

// algorithms returns the algorithms of the set's keys, each once.
func (s *JWKS) algorithms() []string {
	var out []string
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		for _, k := range s.keys {
			if k.alg == alg {
				out = append(out, alg)
				break
			}
		}
	}
	return out
}

// keyError is a token whose kid or algorithm fits no key.
type keyError struct{ msg string }

func (e keyError) Error() string { return e.msg }

// lookup picks the key by the token's kid and insists that the token's
// algorithm is the key's own: an RSA key never checks an ES256 token.
func (s *JWKS) lookup(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, ok := s.keys[kid]
	if !ok {
		if kid == "" {
			return nil, keyError{"token has no kid"}
		}
		return nil, keyError{fmt.Sprintf("no key with kid %q", clip(kid))}
	}
	if t.Method.Alg() != k.alg {
		return nil, keyError{fmt.Sprintf("algorithm %s does not fit key %q (%s)", clip(t.Method.Alg()), clip(kid), k.alg)}
	}
	return k.key, nil
}
