package api

import (
	"encoding/json"
	"io"
)

// encodeJSON writes v as one JSON line (the shape Decode reads).
func encodeJSON(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// Encode writes v as JSON to w.
func Encode(w io.Writer, v any) error { return encodeJSON(w, v) }
