package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token is a verified token whose claims its face reads itself: the
// Mercure face's tokens carry a `mercure` claim or OAuth
// authorization_details, not rumor's grants.
type Token struct {
	Type      string          // the header's typ; "" without one
	Claims    json.RawMessage // the whole claims object, as signed
	Subject   string          // sub
	ID        string          // jti
	Issuer    string          // iss
	Audience  []string        // aud, a string or an array
	IssuedAt  time.Time       // iat; zero without one
	Expires   time.Time       // exp plus the leeway; zero without exp
	Principal *Principal      // for revocations, kicks and rate limits: no grants
}

// rawClaims are the registered claims, checked as Claims checks them, and
// the claims object itself.
type rawClaims struct {
	jwt.RegisteredClaims
	raw json.RawMessage
}

func (c *rawClaims) UnmarshalJSON(b []byte) error {
	var reg Claims // its UnmarshalJSON insists on NumericDates
	if err := json.Unmarshal(b, &reg); err != nil {
		return err
	}
	c.RegisteredClaims = reg.RegisteredClaims
	c.raw = append(json.RawMessage(nil), b...)
	return nil
}

// VerifyToken checks a raw token as Verify does (its size, algorithm
// against the keys', signature, nbf and exp when present, revocation), but
// leaves the claims to the caller: exp is required only with requireExp,
// and the Config's Audience and Issuer are not checked. The keys, their
// rotation and the refusal of "none" are Verify's.
func (a *Authenticator) VerifyToken(raw string, requireExp bool) (*Token, *Error) {
	if len(raw) > maxTokenLen {
		return nil, unauthorized(ReasonInvalid, "token longer than %d bytes", maxTokenLen)
	}
	a.keys.renew()
	keys := a.keys.current()
	var c rawClaims
	t, err := keys.lax.ParseWithClaims(raw, &c, keys.keyfunc)
	if err != nil {
		return nil, tokenError(t, err, a.keys.current().methods)
	}
	if requireExp && c.ExpiresAt == nil {
		return nil, unauthorized(ReasonInvalid, "token has no exp claim")
	}
	tok := &Token{Claims: c.raw, Subject: c.Subject, ID: c.ID, Issuer: c.Issuer, Audience: c.Audience}
	if typ, ok := t.Header["typ"].(string); ok {
		tok.Type = typ
	}
	if c.IssuedAt != nil {
		tok.IssuedAt = c.IssuedAt.Time
	}
	if c.ExpiresAt != nil {
		tok.Expires = c.ExpiresAt.Add(a.leeway)
	}
	p := &Principal{Subject: c.Subject, ID: c.ID, IssuedAt: tok.IssuedAt, Expires: tok.Expires}
	if err := a.revoked.Check(p); err != nil {
		return nil, err
	}
	if p.Subject != "" {
		p.LimitKey = "sub:" + p.Subject
	} else {
		sum := sha256.Sum256([]byte(raw))
		p.LimitKey = "tok:" + hex.EncodeToString(sum[:12])
	}
	tok.Principal = p
	return tok, nil
}
