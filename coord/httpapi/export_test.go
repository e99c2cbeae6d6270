package httpapi

import "net/http"

// ActiveStreams reports how many streams are open on h, a handler returned
// by New.
func ActiveStreams(h http.Handler) int64 { return h.(*api).streams.Load() }
