// gobench: Go's channels in crossbeam-channel's benchmark shapes, for weft's
// side-by-side benchmarks. Same protocol as benches/c and benches/rust:
//
//	gobench KIND [--n N] [--threads T] [--cap C] [--chans K] [--rounds R]
//
// prints one JSON object with R samples of the "go" variant, each in ns per message
// (first goroutine started to last one done, / messages). Go has no unbounded channel.
// GOMAXPROCS is Go's default (the number of CPUs).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

type message = uintptr

func check(got uint64, per, senders int) {
	want := uint64(senders) * (uint64(per) * uint64(per-1) / 2)
	if got != want {
		fmt.Fprintf(os.Stderr, "gobench: received values add up to %d, want %d\n", got, want)
		os.Exit(1)
	}
}

func seq(n, capacity int) {
	c := make(chan message, capacity)
	for i := 0; i < n; i++ {
		c <- message(i)
	}
	var sum uint64
	for i := 0; i < n; i++ {
		sum += uint64(<-c)
	}
	check(sum, n, 1)
}

// fan: `producers` goroutines send n/producers each; `consumers` goroutines receive
// (or this goroutine receives everything when consumers == 0).
func fan(n, capacity, producers, consumers int) int {
	per := n / producers
	total := per * producers
	c := make(chan message, capacity)
	done := make(chan uint64)
	for t := 0; t < producers; t++ {
		go func() {
			for i := 0; i < per; i++ {
				c <- message(i)
			}
			done <- 0
		}()
	}
	var sum uint64
	if consumers == 0 {
		for i := 0; i < total; i++ {
			sum += uint64(<-c)
		}
	} else {
		for t := 0; t < consumers; t++ {
			go func() {
				var s uint64
				for i := 0; i < total/consumers; i++ {
					s += uint64(<-c)
				}
				done <- s
			}()
		}
	}
	for t := 0; t < producers+consumers; t++ {
		sum += <-done
	}
	check(sum, per, producers)
	return total
}

// selectRx: k channels, one producer goroutine per channel sending n/k; this goroutine
// receives them all with a select statement over the k channels (k = 2 or 16).
func selectRx(n, capacity, k int) int {
	per := n / k
	c := make([]chan message, k)
	for i := range c {
		c[i] = make(chan message, capacity)
	}
	done := make(chan bool)
	for i := 0; i < k; i++ {
		go func(ch chan message) {
			for j := 0; j < per; j++ {
				ch <- message(j)
			}
			done <- true
		}(c[i])
	}
	var sum uint64
	total := per * k
	switch k {
	case 2:
		for i := 0; i < total; i++ {
			select {
			case v := <-c[0]:
				sum += uint64(v)
			case v := <-c[1]:
				sum += uint64(v)
			}
		}
	case 16:
		for i := 0; i < total; i++ {
			select {
			case v := <-c[0]:
				sum += uint64(v)
			case v := <-c[1]:
				sum += uint64(v)
			case v := <-c[2]:
				sum += uint64(v)
			case v := <-c[3]:
				sum += uint64(v)
			case v := <-c[4]:
				sum += uint64(v)
			case v := <-c[5]:
				sum += uint64(v)
			case v := <-c[6]:
				sum += uint64(v)
			case v := <-c[7]:
				sum += uint64(v)
			case v := <-c[8]:
				sum += uint64(v)
			case v := <-c[9]:
				sum += uint64(v)
			case v := <-c[10]:
				sum += uint64(v)
			case v := <-c[11]:
				sum += uint64(v)
			case v := <-c[12]:
				sum += uint64(v)
			case v := <-c[13]:
				sum += uint64(v)
			case v := <-c[14]:
				sum += uint64(v)
			case v := <-c[15]:
				sum += uint64(v)
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "gobench: chan_select supports 2 or 16 channels")
		os.Exit(2)
	}
	for i := 0; i < k; i++ {
		<-done
	}
	check(sum, per, k)
	return total
}

// pingpong: two goroutines hand one message back and forth over two channels; the
// figure is per round trip.
func pingpong(n, capacity int) {
	ping, pong := make(chan message, capacity), make(chan message, capacity)
	go func() {
		for i := 0; i < n; i++ {
			pong <- <-ping
		}
	}()
	for i := 0; i < n; i++ {
		ping <- message(i)
		if <-pong != message(i) {
			fmt.Fprintln(os.Stderr, "gobench: ping-pong echo mismatch")
			os.Exit(1)
		}
	}
}

// spinFor: work that neither blocks nor yields, for d.
func spinFor(d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
	}
}

// pipeline: a producer computes 20 us per message and sends it; a consumer receives it
// and computes 20 us; the figure is per message (20,000 ns side by side, 40,000 one
// after the other).
func pipeline(n, capacity int) {
	c, done := make(chan message, capacity), make(chan int)
	go func() {
		k := 0
		for range c {
			spinFor(20 * time.Microsecond)
			k++
		}
		done <- k
	}()
	for i := 0; i < n; i++ {
		spinFor(20 * time.Microsecond)
		c <- message(i)
	}
	close(c)
	if <-done != n {
		fmt.Fprintln(os.Stderr, "gobench: pipeline lost messages")
		os.Exit(1)
	}
}

// spawnJoin: `go f(); <-done`, n times.
func spawnJoin(n int) {
	done := make(chan struct{})
	for i := 0; i < n; i++ {
		go func() { done <- struct{}{} }()
		<-done
	}
}

// group: n empty goroutines started, then waited for with a WaitGroup (errgroup's
// shape, without the error); ns per goroutine.
func group(n int) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
	}
	wg.Wait()
}

// memory: the process's resident memory and its page tables, in bytes
// (/proc/self/status), as the C program counts them for weft's tasks.
func memory() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gobench:", err)
		os.Exit(1)
	}
	var rssKB, pteKB int64 = -1, -1
	for _, line := range strings.Split(string(b), "\n") {
		fmt.Sscanf(line, "VmRSS: %d kB", &rssKB)
		fmt.Sscanf(line, "VmPTE: %d kB", &pteKB)
	}
	if rssKB < 0 || pteKB < 0 {
		fmt.Fprintln(os.Stderr, "gobench: no VmRSS or VmPTE in /proc/self/status")
		os.Exit(1)
	}
	return (rssKB + pteKB) * 1024
}

var rssBaseline int64 = -1

// parkedRSS: n goroutines parked in a receive at once; bytes of RSS and page tables
// per goroutine.
func parkedRSS(n int) float64 {
	if rssBaseline < 0 {
		rssBaseline = memory()
	}
	in, parked, done := make(chan message), make(chan struct{}, n), make(chan struct{}, n)
	for i := 0; i < n; i++ {
		go func() {
			parked <- struct{}{}
			<-in
			done <- struct{}{}
		}()
	}
	for i := 0; i < n; i++ {
		<-parked
	}
	during := memory()
	for i := 0; i < n; i++ {
		in <- 0
	}
	for i := 0; i < n; i++ {
		<-done
	}
	return float64(during-rssBaseline) / float64(n)
}

// skynet: the classic tree of goroutines (10 children each down to size-1 leaves that
// send their number); ms per tree.
func skynet(c chan int, num, size int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	sub := size / 10
	for i := 0; i < 10; i++ {
		go skynet(rc, num+i*sub, sub)
	}
	sum := 0
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	c <- sum
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gobench --list | KIND [--n N] [--threads T] [--cap C] [--chans K] [--rounds R]")
		os.Exit(2)
	}
	kinds := []string{"chan_seq", "chan_spsc", "chan_mpsc", "chan_mpmc", "chan_select", "chan_pingpong", "spawn_join",
		"parked_rss", "skynet", "group_spawn", "chan_pipeline"}
	units := map[string]string{
		"chan_pingpong": "ns per round trip",
		"spawn_join":    "ns per spawn+join of an empty task",
		"parked_rss":    "bytes of RSS and page tables per parked task",
		"skynet":        "ms per tree of tasks",
		"group_spawn":   "ns per task: a group of n empty tasks, spawned and waited for",
		"chan_pipeline": "ns per message",
	}
	if os.Args[1] == "--list" {
		fmt.Println(strings.Join(kinds, ": go\n") + ": go")
		return
	}
	kind := os.Args[1]
	fs := flag.NewFlagSet(kind, flag.ExitOnError)
	n := fs.Int("n", 1000000, "messages")
	threads := fs.Int("threads", 2, "producers (and consumers for mpmc)")
	capacity := fs.Int("cap", 1, "channel capacity")
	chans := fs.Int("chans", 2, "channels in the select")
	rounds := fs.Int("rounds", 5, "samples")
	fs.Parse(os.Args[2:])

	run := func(n int) float64 {
		start := time.Now()
		total := n
		switch kind {
		case "chan_seq":
			seq(n, *capacity)
		case "chan_spsc":
			total = fan(n, *capacity, 1, 0)
		case "chan_mpsc":
			total = fan(n, *capacity, *threads, 0)
		case "chan_mpmc":
			total = fan(n, *capacity, *threads, *threads)
		case "chan_select":
			total = selectRx(n, *capacity, *chans)
		case "chan_pingpong":
			pingpong(n, *capacity)
		case "chan_pipeline":
			pipeline(n, *capacity)
		case "spawn_join":
			spawnJoin(n)
		case "group_spawn":
			group(n)
		case "parked_rss":
			return parkedRSS(n)
		case "skynet":
			size := 1
			for size*10 <= n {
				size *= 10
			}
			c := make(chan int)
			go skynet(c, 0, size)
			if got := <-c; got != size*(size-1)/2 {
				fmt.Fprintf(os.Stderr, "gobench: skynet sum %d\n", got)
				os.Exit(1)
			}
			return float64(time.Since(start).Nanoseconds()) / 1e6
		default:
			fmt.Fprintf(os.Stderr, "gobench: unknown kind %s (see --list)\n", kind)
			os.Exit(2)
		}
		return float64(time.Since(start).Nanoseconds()) / float64(total)
	}
	warm := *n / 20
	if warm < 1 {
		warm = 1
	}
	run(warm)
	samples := make([]string, *rounds)
	for r := 0; r < *rounds; r++ {
		samples[r] = fmt.Sprintf("%.6g", run(*n))
	}
	unit, ok := units[kind]
	if !ok {
		unit = "ns per message (first goroutine started to last done, / messages)"
	}
	fmt.Printf("{\"kind\": \"%s\", \"unit\": \"%s\", \"better\": \"lower\", \"samples\": {\"go\": [%s]}}\n",
		kind, unit, strings.Join(samples, ", "))
}
