package web

import (
	"net/http"

	"github.com/rumorhq/rumor/broker"
)

// channelList is the answer of GET /channels.
type channelList struct {
	Node     string               `json:"node"`
	Channels []broker.ChannelInfo `json:"channels"`
}

// handleChannels serves GET /channels: this node's active channels, those
// with subscribers or retained events, sorted by name.
func (h *Handler) handleChannels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, channelList{Node: h.nodeName(), Channels: h.hub.Channels()})
}
