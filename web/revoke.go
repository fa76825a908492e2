package web

// The admin API of revocations and kicks, and what they do to the streams
// of this node. An admin (a token with the grant "admin": true, sent as
// Authorization: Bearer) posts a decision to any node; the node holds it in
// Options.Revocations, ends its own streams that it covers, and spreads it
// to every other node (Options.Spread) before it answers, so that the
// answer means every live member has it. Each node ends its streams when it
// learns a decision, whichever way it arrives. docs/AUTH.md is the guide.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rumorhq/rumor/auth"
)

// maxRevokeBody bounds a decision's request body.
const maxRevokeBody = 4 << 10

// spreadWait bounds how long a decision waits for the other nodes.
const spreadWait = 5 * time.Second

// revokeRequest is the body of POST /revocations.
type revokeRequest struct {
	Kind    string    `json:"kind"`
	JTI     string    `json:"jti"`
	Subject string    `json:"subject"`
	Channel string    `json:"channel"`
	At      time.Time `json:"at"`    // RevokeSubject: tokens issued before; default now
	Until   time.Time `json:"until"` // default 24 hours from now
}

// authorizeAdmin checks that the request carries an admin token in its
// Authorization header. A cookie never counts: a page on another site
// could make a browser send it.
func (h *Handler) authorizeAdmin(w http.ResponseWriter, r *http.Request) bool {
	if h.opts.Auth == nil || h.opts.Revocations == nil {
		writeError(w, http.StatusNotFound, "the admin API needs auth: start rumor with a key (--auth-*)")
		return false
	}
	p, aerr := h.opts.Auth.Authenticate(r)
	switch {
	case aerr != nil:
	case p == nil || p.Via != "header":
		aerr = &auth.Error{Status: http.StatusUnauthorized, Reason: auth.ReasonMissing, Msg: "an admin token is required: send Authorization: Bearer TOKEN"}
	case !p.Admin:
		aerr = &auth.Error{Status: http.StatusForbidden, Reason: auth.ReasonForbidden, Msg: `token does not grant admin ("rumor": {"admin": true})`}
	}
	if aerr != nil {
		skipBody(w, r)
		h.refuse(w, r, aerr)
		return false
	}
	return true
}

// handleRevocations serves GET /revocations: the decisions this node holds.
func (h *Handler) handleRevocations(w http.ResponseWriter, r *http.Request) {
	if !h.authorizeAdmin(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revocations": h.opts.Revocations.List()})
}

// handleRevoke serves POST /revocations: a new decision, held here, applied
// to this node's streams and spread to the other nodes.
func (h *Handler) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if !h.authorizeAdmin(w, r) {
		return
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRevokeBody))
	dec.DisallowUnknownFields()
	var req revokeRequest
	if err := dec.Decode(&req); err != nil {
		if isConnError(err) { // in rumor's words: the connection's error names internal addresses
			writeError(w, http.StatusBadRequest, "revocation: "+bodyError(err).Error())
			return
		}
		writeError(w, http.StatusBadRequest, "revocation: want a JSON object with kind (token, subject, kick-subject or kick-channel) and jti, subject or channel: "+err.Error())
		return
	}
	v, err := auth.NewRevocation(auth.Revocation{
		Kind: req.Kind, JTI: req.JTI, Subject: req.Subject, Channel: req.Channel,
		At: req.At, Until: req.Until, Node: h.nodeName(),
	}, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, "revocation: "+err.Error())
		return
	}
	if _, err := h.opts.Revocations.Add(v); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, auth.ErrFull) {
			status = http.StatusInsufficientStorage
		}
		writeError(w, status, err.Error())
		return
	}
	h.log.Info("revocation", "id", v.ID, "kind", v.Kind, "jti", v.JTI, "subject", v.Subject, "channel", v.Channel, "until", v.Until)
	if h.opts.Spread != nil {
		ctx, cancel := context.WithTimeout(r.Context(), spreadWait)
		h.opts.Spread(ctx, auth.Encode(v))
		cancel()
	}
	writeJSON(w, http.StatusOK, v)
}

// applyRevocations ends the streams that decisions just learned cover. It
// runs on the goroutine that added them (an admin request, or memberlist's
// for a peer's), and only signals the streams.
func (h *Handler) applyRevocations(added []auth.Revocation) {
	var skew time.Duration
	if h.opts.Auth != nil {
		skew = h.opts.Auth.Leeway()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.streams {
		for _, v := range added {
			if v.Ends(s.who, s.patterns, s.opened, skew) {
				reason := endRevoked
				if v.Kicks() && !v.Refuses(s.who) {
					reason = endKicked
				}
				select {
				case s.kick <- reason:
				default: // already told
				}
				break
			}
		}
	}
}

// registerRevocations registers rumor_revocations_held{kind}.
func registerRevocations(reg prometheus.Registerer, revs *auth.Revocations) error {
	for _, kind := range []string{auth.RevokeToken, auth.RevokeSubject, auth.KickSubject, auth.KickChannel} {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "rumor_revocations_held",
			Help:        "Admin decisions this node holds, by kind: token and subject revocations, kick-subject and kick-channel kicks.",
			ConstLabels: prometheus.Labels{"kind": kind},
		}, func() float64 { return float64(revs.Len()[kind]) })
		if err := reg.Register(g); err != nil {
			return err
		}
	}
	return nil
}
