// The loopback echo benchmark's Go side (benches/echo.py drives it):
//
//	echo server            a TCP echo server on 127.0.0.1 (port chosen by the kernel,
//	                       printed), one goroutine per connection: Go's netpoller
//	echo client PORT CONNS SECONDS SIZE
//	                       the load generator used against every server: CONNS
//	                       connections, each a goroutine that sends SIZE bytes, waits
//	                       for the echo, checks every byte and starts over, for SECONDS;
//	                       prints one JSON line (requests/s, round-trip percentiles)
//
// Standard library only. Only 127.0.0.1 is ever used.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
)

func serve() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("echo server (Go %s): listening on %s\n", "goroutine per connection", ln.Addr())
	os.Stdout.Sync()
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, 16384)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}(c)
	}
}

type result struct {
	Connections int     `json:"connections"`
	Failed      int     `json:"failed"`
	Requests    int     `json:"requests"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"req_per_s"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	MaxUs       float64 `json:"max_us"`
}

func client(port string, conns int, seconds float64, size int) {
	addr := "127.0.0.1:" + port
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	lat := make([][]int64, conns)
	failed := make([]bool, conns)
	var stopAt time.Time
	ready.Add(conns)
	done.Add(conns)
	for i := 0; i < conns; i++ {
		go func(i int) {
			defer done.Done()
			c, err := net.DialTimeout("tcp", addr, 30*time.Second)
			ready.Done()
			if err != nil {
				failed[i] = true
				fmt.Fprintln(os.Stderr, "dial:", err)
				return
			}
			defer c.Close()
			out := make([]byte, size)
			in := make([]byte, size)
			<-start
			for r := 0; time.Now().Before(stopAt); r++ {
				for k := range out {
					out[k] = byte(i*131 + r*31 + k*7)
				}
				t0 := time.Now()
				if _, err := c.Write(out); err != nil {
					failed[i] = true
					return
				}
				if _, err := io.ReadFull(c, in); err != nil {
					failed[i] = true
					return
				}
				lat[i] = append(lat[i], int64(time.Since(t0)))
				for k := range in {
					if in[k] != out[k] {
						failed[i] = true
						return
					}
				}
			}
		}(i)
	}
	ready.Wait()
	t0 := time.Now()
	stopAt = t0.Add(time.Duration(seconds * float64(time.Second)))
	close(start)
	done.Wait()
	elapsed := time.Since(t0).Seconds()
	var all []int64
	nfailed := 0
	for i := range lat {
		all = append(all, lat[i]...)
		if failed[i] {
			nfailed++
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(float64(len(all)-1)*p)]) / 1e3
	}
	res := result{conns, nfailed, len(all), elapsed, float64(len(all)) / elapsed, pct(0.50), pct(0.99), pct(1.0)}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if nfailed > 0 {
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "server" {
		serve()
		return
	}
	if len(os.Args) == 6 && os.Args[1] == "client" {
		conns, _ := strconv.Atoi(os.Args[3])
		seconds, _ := strconv.ParseFloat(os.Args[4], 64)
		size, _ := strconv.Atoi(os.Args[5])
		client(os.Args[2], conns, seconds, size)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: echo server | echo client PORT CONNS SECONDS SIZE")
	os.Exit(2)
}
