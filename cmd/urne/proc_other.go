//go:build !unix

package main

import (
	"errors"
	"os/exec"
	"syscall"
)

// Local clusters (`urne dev`, `urne demo`) manage processes with Unix signals.
var errNoProcessControl = errors.New("local clusters need a Unix system")

func detach(*exec.Cmd) {}

func processAlive(int) bool { return false }

func processRuns(int, string) bool { return false }

func signalProcess(int, syscall.Signal) error { return errNoProcessControl }
