// Command ssepeer is the Go comparison peer for the sse-fanout benchmarks: the pattern most
// SSE-with-Go articles teach. net/http serves each connection on its own goroutine; every
// subscriber owns a buffered `chan []byte`; one hub goroutine registers and unregisters
// subscribers and copies each published event into every subscriber's channel.
//
// Usage: ssepeer [PORT [THREADS]]   (or env PORT, THREADS; defaults 8081 and all cores)
//
//	GET  /events?topic=T   Server-Sent Events stream of topic T (default "default")
//	POST /publish?topic=T  the raw body becomes one event's data; replies 200
//
// A subscriber whose channel is full is disconnected (the usual `select { default: }` policy),
// so a slow reader costs it the stream rather than stalling everybody else.
package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"time"
)

// clientBuffer is how many events a subscriber may have queued before it is dropped.
const clientBuffer = 64

// heartbeat is how often an idle stream gets a comment line, as our server does by default.
const heartbeat = 15 * time.Second

// subscriber is one open stream: its topic and the channel its goroutine drains.
type subscriber struct {
	topic  string
	events chan []byte
}

// message is one published event, already encoded in SSE wire form.
type message struct {
	topic string
	frame []byte
	done  chan int // receives how many subscribers got the event
}

// hub owns the subscriber sets; only its own goroutine touches them.
type hub struct {
	register   chan *subscriber
	unregister chan *subscriber
	broadcast  chan message
}

func newHub() *hub {
	return &hub{
		register:   make(chan *subscriber),
		unregister: make(chan *subscriber),
		broadcast:  make(chan message, 256),
	}
}

func (h *hub) run() {
	topics := make(map[string]map[*subscriber]struct{})
	for {
		select {
		case s := <-h.register:
			set := topics[s.topic]
			if set == nil {
				set = make(map[*subscriber]struct{})
				topics[s.topic] = set
			}
			set[s] = struct{}{}
		case s := <-h.unregister:
			if set, ok := topics[s.topic]; ok {
				if _, ok := set[s]; ok {
					delete(set, s)
					close(s.events)
				}
			}
		case m := <-h.broadcast:
			delivered := 0
			for s := range topics[m.topic] {
				select {
				case s.events <- m.frame:
					delivered++
				default:
					// Too slow: drop the subscriber; its goroutine sees the closed channel.
					delete(topics[m.topic], s)
					close(s.events)
				}
			}
			if m.done != nil {
				m.done <- delivered
			}
		}
	}
}

func topicOf(r *http.Request) string {
	if t := r.URL.Query().Get("topic"); t != "" {
		return t
	}
	return "default"
}

// encode turns a body into one SSE event: one `data:` line per line of the body.
func encode(body []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(body, []byte("\n")) {
		b.WriteString("data: ")
		b.Write(bytes.TrimSuffix(line, []byte("\r")))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}

func (h *hub) serveEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	s := &subscriber{topic: topicOf(r), events: make(chan []byte, clientBuffer)}
	h.register <- s
	defer func() {
		// The hub may have dropped us already; unregistering twice is harmless.
		go func() { h.unregister <- s }()
	}()

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ": ok\n\n")
	flusher.Flush()

	ticker := time.NewTicker(heartbeat)
	defer ticker.Stop()
	for {
		select {
		case frame, open := <-s.events:
			if !open {
				return
			}
			if _, err := w.Write(frame); err != nil {
				return
			}
			flusher.Flush()
		case <-ticker.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case <-r.Context().Done():
			return
		}
	}
}

func (h *hub) servePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	done := make(chan int, 1)
	h.broadcast <- message{topic: topicOf(r), frame: encode(body), done: done}
	fmt.Fprintf(w, "%d\n", <-done)
}

func main() {
	port := envOrArg(1, "PORT", "8081")
	threads, _ := strconv.Atoi(envOrArg(2, "THREADS", "0"))
	if threads > 0 {
		runtime.GOMAXPROCS(threads)
	}
	h := newHub()
	go h.run()
	mux := http.NewServeMux()
	mux.HandleFunc("/events", h.serveEvents)
	mux.HandleFunc("/publish", h.servePublish)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	addr := "127.0.0.1:" + port
	log.Printf("go peer: listening on http://%s, GOMAXPROCS=%d", addr, runtime.GOMAXPROCS(0))
	log.Fatal(http.ListenAndServe(addr, mux))
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
