package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
)

// maxJSONBody caps JSON request bodies of the read and admin API; webhook
// bodies have their own limit (Config.MaxBody).
const maxJSONBody = 64 << 10

// decodeJSON strictly decodes a JSON request body of at most maxJSONBody
// bytes into v: unknown fields, trailing data and wrong types are 400.
func decodeJSON(c *gin.Context, v any) error {
	d := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxJSONBody))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return newError(http.StatusRequestEntityTooLarge, "body_too_large", "the body exceeds the size limit")
		}
		return badRequest("invalid_json", "the body is not the expected JSON object")
	}
	if _, err := d.Token(); err != io.EOF {
		return badRequest("invalid_json", "unexpected data after the JSON object")
	}
	return nil
}
