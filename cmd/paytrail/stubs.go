package main

import (
	"context"
	"errors"
)

func cmdReconcile(ctx context.Context, e env) error {
	return errors.New("reconcile: not implemented yet")
}
func cmdBench(ctx context.Context, e env) error { return errors.New("bench: not implemented yet") }
func verifyRemote(ctx context.Context, e env, url, cpFile, vkey, token string) error {
	return errors.New("verify --url: not implemented yet")
}
