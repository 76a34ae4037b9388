// Command pushpin-origin is the backend behind the Pushpin peer for the sse-fanout benchmarks,
// written as Pushpin's documentation shows for HTTP streaming: a subscription is answered at
// once with GRIP instructions (`Grip-Hold: stream`, `Grip-Channel`), which Pushpin turns into a
// held stream subscribed to that channel; a publish is one POST of the item to Pushpin's HTTP
// publish API (`/publish/` on the handler's push_in_http_port).
//
// Usage: pushpin-origin ORIGIN_PORT PUBLISH_URL
//
//	GET  /events?topic=T   GRIP hold on channel T (default "default"), first comment ": ok"
//	POST /publish?topic=T  the raw body, framed as one SSE event, published on channel T;
//	                       replies with the publish API's status
//	GET  /healthz          "ok"
//
// Both requests reach the origin through Pushpin (every route goes to it), as they would in a
// deployment where the application's own API receives what it publishes.
package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"
)

// item is one entry of the publish API's `items` list, with an http-stream format only.
type item struct {
	Channel string `json:"channel"`
	Formats struct {
		HTTPStream struct {
			Content string `json:"content"`
		} `json:"http-stream"`
	} `json:"formats"`
}

func topicOf(r *http.Request) string {
	if t := r.URL.Query().Get("topic"); t != "" {
		return t
	}
	return "default"
}

// encode turns a body into one SSE event: one `data:` line per line of the body.
func encode(body []byte) string {
	var b bytes.Buffer
	for _, line := range bytes.Split(body, []byte("\n")) {
		b.WriteString("data: ")
		b.Write(bytes.TrimSuffix(line, []byte("\r")))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.String()
}

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: pushpin-origin ORIGIN_PORT PUBLISH_URL")
	}
	addr, publishURL := "127.0.0.1:"+os.Args[1], os.Args[2]
	client := &http.Client{}

	http.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("Grip-Hold", "stream")
		h.Set("Grip-Channel", topicOf(r))
		// Pushpin sends this comment on an idle stream every 15 s, as our server does.
		h.Set("Grip-Keep-Alive", `: keep-alive\n\n; format=cstring; timeout=15`)
		io.WriteString(w, ": ok\n\n")
	})
	http.HandleFunc("/publish", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var it item
		it.Channel = topicOf(r)
		it.Formats.HTTPStream.Content = encode(body)
		doc, _ := json.Marshal(map[string][]item{"items": {it}})
		resp, err := client.Post(publishURL, "application/json", bytes.NewReader(doc))
		if err != nil {
			http.Error(w, "publish: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		reply, _ := io.ReadAll(resp.Body)
		w.WriteHeader(resp.StatusCode)
		w.Write(reply)
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	log.Printf("pushpin origin: listening on http://%s, publishing to %s", addr, publishURL)
	log.Fatal(http.ListenAndServe(addr, nil))
}
