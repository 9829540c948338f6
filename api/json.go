package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"
)

// maxJSONBody caps JSON request bodies of the read and admin API; webhook
// bodies have their own limit (Config.MaxBody).
const maxJSONBody = 64 << 10

// errJSONMediaType answers a JSON endpoint's body sent as another media
// type, as webhooks do.
var errJSONMediaType = newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
	"request bodies must be application/json")

// decodeJSON strictly decodes a JSON request body of at most maxJSONBody
// bytes into v: a Content-Type other than application/json is 415 (a
// missing one is accepted, as for webhooks); unknown fields, trailing data
// and wrong types are 400.
func decodeJSON(c *gin.Context, v any) error {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return errJSONMediaType
		}
	}
	d := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxJSONBody))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errBodyTooLarge
		}
		if isBodyTimeout(err) {
			return errBodyTimeout
		}
		return badRequest("invalid_json", "the body is not the expected JSON object")
	}
	if _, err := d.Token(); err != io.EOF {
		return badRequest("invalid_json", "unexpected data after the JSON object")
	}
	return nil
}
