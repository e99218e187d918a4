// Command loadgen is the benchmarks' open-loop load generator in a compiled language.
//
// It sends GET -url at a fixed arrival rate, request i scheduled at t0 + i/rate, each
// with the bearer token of a reader drawn at random, and counts a latency from the
// request's scheduled time, so that a generator behind its schedule shows as latency.
// It writes every request's record (scheduled offset, latency, status) and its own
// figures to -records as JSON; bench/bench_feed.py summarizes them.
//
// Optionally, -flush-at seconds into the run it sends FLUSHDB to -redis-url, samples
// DBSIZE once a second from then on, and draws readers from -readers-after-file.
//
// It exists because the Python generator, on the same two cores as the systems it
// loads, fell 50-90 ms behind its schedule at twice Photogram's maximum rate.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type reader struct {
	Token string `json:"token"`
}

type record struct {
	offset  float64
	latency float64
	status  string
}

func (r record) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{r.offset, r.latency, r.status})
}

func loadReaders(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var readers []reader
	if err := json.Unmarshal(raw, &readers); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	headers := make([]string, 0, len(readers))
	for _, r := range readers {
		headers = append(headers, "Bearer "+r.Token)
	}
	if len(headers) == 0 {
		return nil, fmt.Errorf("%s: no readers", path)
	}
	return headers, nil
}

// classify names a failed request the way the Python generator does: "timeout" for the
// deadline, otherwise the kind of transport error.
func classify(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "ConnectionRefused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "ServerDisconnected"
	default:
		return "ClientError"
	}
}

// redisConn speaks just enough RESP for FLUSHDB and DBSIZE.
type redisConn struct {
	conn net.Conn
	in   *bufio.Reader
}

func dialRedis(raw string) (*redisConn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	r := &redisConn{conn: conn, in: bufio.NewReader(conn)}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" && db != "0" {
		if _, err := r.do("SELECT", db); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *redisConn) do(args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(r.conn, b.String()); err != nil {
		return "", err
	}
	line, err := r.in.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return "", errors.New(line[1:])
	}
	return line[1:], nil
}

func main() {
	target := flag.String("url", "", "the URL to GET")
	rate := flag.Float64("rate", 0, "requests per second")
	seconds := flag.Float64("seconds", 0, "length of the run")
	readersFile := flag.String("readers-file", "", "JSON list of readers with a token")
	readersAfterFile := flag.String("readers-after-file", "", "readers drawn from after -flush-at")
	timeout := flag.Float64("timeout", 5, "seconds a request may take")
	seed := flag.Int64("seed", 1, "seed of the reader draw")
	flushAt := flag.Float64("flush-at", -1, "FLUSHDB -redis-url this far into the run")
	redisURL := flag.String("redis-url", "", "the Redis to flush")
	out := flag.String("records", "", "where to write the records (JSON)")
	flag.Parse()
	if *target == "" || *rate <= 0 || *seconds <= 0 || *readersFile == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -url, -rate, -seconds, -readers-file and -records are required")
		os.Exit(2)
	}
	headers, err := loadReaders(*readersFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	afterHeaders := headers
	if *readersAfterFile != "" {
		if afterHeaders, err = loadReaders(*readersAfterFile); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	var flusher, sampler *redisConn
	if *flushAt >= 0 {
		if flusher, err = dialRedis(*redisURL); err == nil {
			sampler, err = dialRedis(*redisURL)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: redis:", err)
			os.Exit(1)
		}
	}

	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        5000,
		MaxIdleConnsPerHost: 5000,
		MaxConnsPerHost:     5000,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
	total := int(*rate * *seconds)
	records := make([]record, total)
	limit := time.Duration(*timeout * float64(time.Second))
	var itemsMu sync.Mutex
	items, itemsRuns := 0, 0
	var wg sync.WaitGroup
	rng := rand.New(rand.NewSource(*seed))
	t0 := time.Now().Add(300 * time.Millisecond)

	one := func(index int, scheduled time.Time, header string) {
		defer wg.Done()
		status := ""
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
		req.Header.Set("Authorization", header)
		resp, err := client.Do(req)
		if err == nil {
			var body []byte
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				status = strconv.Itoa(resp.StatusCode)
				if resp.StatusCode == 200 && index%25 == 0 {
					var page struct {
						Items []json.RawMessage `json:"items"`
					}
					if json.Unmarshal(body, &page) == nil {
						itemsMu.Lock()
						items += len(page.Items)
						itemsRuns++
						itemsMu.Unlock()
					}
				}
			}
		}
		if err != nil {
			status = classify(err)
		}
		records[index] = record{
			offset:  scheduled.Sub(t0).Seconds(),
			latency: time.Since(scheduled).Seconds(),
			status:  status,
		}
	}

	var late time.Duration
	hookAt := -1.0
	var samples [][2]float64
	var samplesMu sync.Mutex
	stopSampling := make(chan struct{})
	var hookDone sync.WaitGroup
	pool := headers
	for i := 0; i < total; i++ {
		scheduled := t0.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
		if delay := time.Until(scheduled); delay > 0 {
			time.Sleep(delay)
		} else if -delay > late {
			late = -delay
		}
		if flusher != nil && hookAt < 0 && float64(i) / *rate >= *flushAt {
			hookAt = time.Since(t0).Seconds()
			pool = afterHeaders
			hookDone.Add(1)
			go func() {
				defer hookDone.Done()
				if _, err := flusher.do("FLUSHDB"); err != nil {
					fmt.Fprintln(os.Stderr, "loadgen: FLUSHDB:", err)
				}
			}()
			hookDone.Add(1)
			go func() {
				defer hookDone.Done()
				ticker := time.NewTicker(time.Second)
				defer ticker.Stop()
				for {
					at := time.Since(t0).Seconds()
					if reply, err := sampler.do("DBSIZE"); err == nil {
						if n, err := strconv.ParseFloat(reply, 64); err == nil {
							samplesMu.Lock()
							samples = append(samples, [2]float64{float64(int(at*100)) / 100, n})
							samplesMu.Unlock()
						}
					}
					select {
					case <-stopSampling:
						return
					case <-ticker.C:
					}
				}
			}()
		}
		wg.Add(1)
		go one(i, scheduled, pool[rng.Intn(len(pool))])
	}
	wg.Wait()
	close(stopSampling)
	hookDone.Wait()

	result := map[string]any{
		"requests":                  records,
		"generator_max_lateness_ms": float64(late.Microseconds()/100) / 10,
		"generator_loop":            "go",
		"mean_items":                nil,
	}
	if itemsRuns > 0 {
		result["mean_items"] = float64(items*10/itemsRuns) / 10
	}
	if flusher != nil {
		result["hook_at_s"] = float64(int(hookAt*1000)) / 1000
		result["samples"] = samples
	}
	encoded, err := json.Marshal(result)
	if err == nil {
		err = os.WriteFile(*out, encoded, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
