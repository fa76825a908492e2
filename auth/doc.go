// Package auth authenticates publishers and subscribers with JSON Web
// Tokens and checks what their tokens grant. A token's "rumor" claim
// grants channel patterns:
//
//	{"sub": "checkout", "exp": 1767225600,
//	 "rumor": {"publish": ["orders.>"], "subscribe": ["orders.*", "news"]}}
//
// Publishing to a channel needs a publish grant that matches it; a stream
// may subscribe to a pattern only if one subscribe grant (or one public
// pattern) covers every channel the pattern can match.
//
// An Authenticator, built by New from a Config, finds a request's token
// (Authorization header, cookie, or ?token= when enabled), verifies it
// (algorithm, signature, exp, nbf, aud, iss, the grants' syntax) and
// answers CanPublish and CanSubscribe. Its keys come from one source: an
// HMAC secret, a PEM public key, a JWKS, or a file or URL holding one of
// them, which it follows for rotation on the path of the requests that
// verify tokens (keys.go), so that it starts no goroutine of its own.
//
// Revocations is the table of an admin's decisions: tokens refused before
// their exp (by jti, or a subject's issued before a time) and kicks of a
// subject's or a channel pattern's streams (revoke.go). Its Snapshot and
// Merge let the transport carry it to every node; the Authenticator given
// it refuses revoked tokens, and web ends the streams decisions cover.
//
// It does not answer HTTP requests, count refusals or decide what a
// refusal ends: the HTTP faces do (web, and any other face that takes
// tokens), and cmd/rumor builds the Authenticator from its flags.
// docs/AUTH.md is the user's guide.
package auth
