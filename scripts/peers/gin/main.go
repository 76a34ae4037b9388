// Command ssepeer-gin is the Gin comparison peer for the sse-fanout benchmarks, written as Gin's
// own server-sent-event example (github.com/gin-gonic/examples, server-sent-event/main.go) and
// the tutorials copied from it: one broker goroutine owns a map of client channels; each
// `GET /events` handler registers an unbuffered `chan string`, and `c.Stream` with `c.SSEvent`
// writes what arrives on it.
//
// Usage: ssepeer-gin [PORT [THREADS]]   (or env PORT, THREADS; defaults 8085 and all cores)
//
//	GET  /events           the event stream (`?topic=` is accepted and ignored: one stream)
//	POST /publish          the raw body becomes one event's data; replies 200
//	GET  /healthz          "ok"
//
// Added to the example for the benchmark: `POST /publish` instead of the example's ticker, a
// first comment so the response head goes out at once, and a keep-alive comment every 15 s.
//
// A slow client is neither dropped nor buffered for: the broker's send on the client's
// unbuffered channel waits until that client's handler has written the previous event, and a
// write waits while the client's socket buffer is full. So one stalled reader stalls the broker,
// every other client, and every publisher (as the example does).
package main

import (
	"io"
	"log"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// heartbeat is how often an idle stream gets a comment line, as our server does by default.
const heartbeat = 15 * time.Second

// ClientChan carries one client's events, as in the example.
type ClientChan chan string

// Event is the example's broker: its goroutine alone touches TotalClients.
type Event struct {
	// Message receives every published event.
	Message chan string
	// NewClients receives the channel of each new client.
	NewClients chan ClientChan
	// ClosedClients receives the channel of each client that went away.
	ClosedClients chan ClientChan
	// TotalClients is the set of open clients.
	TotalClients map[ClientChan]bool
}

func newServer() *Event {
	e := &Event{
		Message:       make(chan string),
		NewClients:    make(chan ClientChan),
		ClosedClients: make(chan ClientChan),
		TotalClients:  make(map[ClientChan]bool),
	}
	go e.listen()
	return e
}

// listen registers and removes clients and sends every message to every client, waiting on
// each in turn.
func (e *Event) listen() {
	for {
		select {
		case client := <-e.NewClients:
			e.TotalClients[client] = true
		case client := <-e.ClosedClients:
			delete(e.TotalClients, client)
			close(client)
		case msg := <-e.Message:
			for client := range e.TotalClients {
				client <- msg
			}
		}
	}
}

// serveHTTP is the example's middleware: it registers the client's channel for the handler.
func (e *Event) serveHTTP() gin.HandlerFunc {
	return func(c *gin.Context) {
		client := make(ClientChan)
		e.NewClients <- client
		defer func() {
			// As in the example: keep draining, so the broker never waits on a client that
			// is gone, until the broker has removed it and closed the channel.
			go func() {
				for range client {
				}
			}()
			e.ClosedClients <- client
		}()
		c.Set("clientChan", client)
		c.Next()
	}
}

func headersMiddleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Writer.Header().Set("Content-Type", "text/event-stream")
		c.Writer.Header().Set("Cache-Control", "no-cache")
		c.Writer.Header().Set("Connection", "keep-alive")
		c.Writer.Header().Set("Transfer-Encoding", "chunked")
		c.Next()
	}
}

func main() {
	port := envOrArg(1, "PORT", "8085")
	threads, _ := strconv.Atoi(envOrArg(2, "THREADS", "0"))
	if threads > 0 {
		runtime.GOMAXPROCS(threads)
	}
	gin.SetMode(gin.ReleaseMode)
	// gin.New without gin.Default's Logger: a log line per request would measure the logger.
	router := gin.New()
	router.Use(gin.Recovery())
	stream := newServer()

	router.GET("/events", headersMiddleware(), stream.serveHTTP(), func(c *gin.Context) {
		v, ok := c.Get("clientChan")
		if !ok {
			return
		}
		client := v.(ClientChan)
		ticker := time.NewTicker(heartbeat)
		defer ticker.Stop()
		io.WriteString(c.Writer, ": ok\n\n")
		c.Writer.Flush()
		c.Stream(func(w io.Writer) bool {
			select {
			case msg, ok := <-client:
				if !ok {
					return false
				}
				c.SSEvent("message", msg)
			case <-ticker.C:
				io.WriteString(w, ": keep-alive\n\n")
			}
			return true
		})
	})
	router.POST("/publish", func(c *gin.Context) {
		body, err := io.ReadAll(io.LimitReader(c.Request.Body, 1<<20))
		if err != nil {
			c.String(http.StatusBadRequest, err.Error())
			return
		}
		stream.Message <- string(body)
		c.String(http.StatusOK, "ok\n")
	})
	router.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })

	addr := "127.0.0.1:" + port
	log.Printf("gin peer: gin %s, listening on http://%s, GOMAXPROCS=%d", gin.Version, addr, runtime.GOMAXPROCS(0))
	log.Fatal(router.Run(addr))
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
