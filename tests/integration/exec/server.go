// An HTTP server for preforkd's [exec], on go-systemd: the listener by name from
// LISTEN_FDS/LISTEN_FDNAMES (activation.ListenersWithNames), readiness and the
// watchdog through sd_notify (daemon.SdNotify), and a graceful stop on the stop
// signal that loses no keep-alive request: every response after it says
// `Connection: close`, connections still silent a second later are closed.
// Built by the tests (tests/integration/exec_programs.cpp) with Debian's
// golang-go and golang-github-coreos-go-systemd-dev, offline.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/activation"
	"github.com/coreos/go-systemd/daemon"
)

func main() {
	listeners, err := activation.ListenersWithNames()
	if err != nil || len(listeners["http"]) != 1 {
		fmt.Fprintf(os.Stderr, "no \"http\" socket from LISTEN_FDS (err %v, got %v)\n", err, listeners)
		os.Exit(1)
	}
	ln := listeners["http"][0]
	slot, generation, pid := os.Getenv("PREFORKD_SLOT"), os.Getenv("PREFORKD_GENERATION"), fmt.Sprint(os.Getpid())
	var stopping atomic.Bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("X-Slot", slot)
		h.Set("X-Generation", generation)
		h.Set("X-Pid", pid)
		if stopping.Load() {
			h.Set("Connection", "close")
		}
		if r.URL.Path == "/hello.txt" {
			fmt.Fprint(w, "hello from preforkd\n")
		} else {
			fmt.Fprint(w, "ok\n")
		}
	})}
	go srv.Serve(ln)

	if interval, err := daemon.SdWatchdogEnabled(false); err == nil && interval > 0 {
		go func() {
			for range time.Tick(interval / 2) {
				daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}()
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGUSR1)
	daemon.SdNotify(false, "READY=1\nSTATUS=serving on fd 3")
	for sig := range signals {
		if sig == syscall.SIGUSR1 {
			fmt.Fprintln(os.Stderr, "SIGUSR1: reopening logs")
			continue
		}
		daemon.SdNotify(false, "STOPPING=1\nSTATUS=draining")
		stopping.Store(true)
		ln.Close() // stop accepting; the slot's socket stays with preforkd and the successor
		time.Sleep(time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		srv.Shutdown(ctx)
		cancel()
		return
	}
}
