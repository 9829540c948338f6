package main

import (
	"context"
	"errors"
)

func verifyRemote(ctx context.Context, e env, url, cpFile, vkey, token string) error {
	return errors.New("verify --url: not implemented yet")
}
