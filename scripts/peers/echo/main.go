// Command ssepeer-echo is the echo comparison peer for the sse-fanout benchmarks, written as
// echo's server-sent-events cookbook shows: the handler takes `c.Response()`, sets the
// `text/event-stream` headers, and writes and flushes each event itself until the request's
// context is done.
//
// Usage: ssepeer-echo [PORT [THREADS]]   (or env PORT, THREADS; defaults 8086 and all cores)
//
//	GET  /events           the event stream (`?topic=` is accepted and ignored: one stream)
//	POST /publish          the raw body becomes one event's data; replies 200
//	GET  /healthz          "ok"
//
// The cookbook's handler writes events from a ticker; the smallest broadcast that feeds it
// instead is a set of client channels under a mutex, which `POST /publish` sends to.
//
// A slow client misses events: its channel holds clientBuffer events, and a publish that finds
// it full skips that client (a `select` with `default`, the usual non-blocking send), so
// neither the publisher nor the other clients wait for it, and it stays connected.
package main

import (
	"io"
	"log"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// clientBuffer is how many events a client may have waiting before publishes skip it.
const clientBuffer = 64

// heartbeat is how often an idle stream gets a comment line, as our server does by default.
const heartbeat = 15 * time.Second

// broker is the set of open streams.
type broker struct {
	mu      sync.RWMutex
	clients map[chan []byte]struct{}
}

func (b *broker) add(ch chan []byte) {
	b.mu.Lock()
	b.clients[ch] = struct{}{}
	b.mu.Unlock()
}

func (b *broker) remove(ch chan []byte) {
	b.mu.Lock()
	delete(b.clients, ch)
	b.mu.Unlock()
}

// publish offers the event to every client; full channels are skipped.
func (b *broker) publish(frame []byte) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for ch := range b.clients {
		select {
		case ch <- frame:
		default:
		}
	}
}

// encode turns a body into one event: a `data:` line per line of the body.
func encode(body string) []byte {
	var s strings.Builder
	for _, line := range strings.Split(body, "\n") {
		s.WriteString("data: ")
		s.WriteString(strings.TrimSuffix(line, "\r"))
		s.WriteByte('\n')
	}
	s.WriteByte('\n')
	return []byte(s.String())
}

func main() {
	port := envOrArg(1, "PORT", "8086")
	threads, _ := strconv.Atoi(envOrArg(2, "THREADS", "0"))
	if threads > 0 {
		runtime.GOMAXPROCS(threads)
	}
	b := &broker{clients: make(map[chan []byte]struct{})}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true

	e.GET("/events", func(c echo.Context) error {
		ch := make(chan []byte, clientBuffer)
		b.add(ch)
		defer b.remove(ch)

		w := c.Response()
		w.Header().Set(echo.HeaderContentType, "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Connection", "keep-alive")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, ": ok\n\n")
		w.Flush()

		ticker := time.NewTicker(heartbeat)
		defer ticker.Stop()
		for {
			select {
			case <-c.Request().Context().Done():
				return nil
			case frame := <-ch:
				if _, err := w.Write(frame); err != nil {
					return nil
				}
				w.Flush()
			case <-ticker.C:
				if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
					return nil
				}
				w.Flush()
			}
		}
	})
	e.POST("/publish", func(c echo.Context) error {
		body, err := io.ReadAll(io.LimitReader(c.Request().Body, 1<<20))
		if err != nil {
			return c.String(http.StatusBadRequest, err.Error())
		}
		b.publish(encode(string(body)))
		return c.String(http.StatusOK, "ok\n")
	})
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })

	addr := "127.0.0.1:" + port
	log.Printf("echo peer: echo %s, listening on http://%s, GOMAXPROCS=%d", echo.Version, addr, runtime.GOMAXPROCS(0))
	log.Fatal(e.Start(addr))
}

func envOrArg(i int, env, def string) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	return def
}
