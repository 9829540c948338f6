package main

import (
	"context"
	"errors"
)

func cmdReconcile(ctx context.Context, e env) error { return errors.New("reconcile: not implemented yet") }
