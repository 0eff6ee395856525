// demo: a small order-lookup service with two classic bugs, for `cargo xtask
// demo`. Every 200 ms a request asks a slow backend for a price with a 50 ms
// timeout; when the timeout wins, the backend goroutine is left blocked forever
// on its unbuffered result channel (one leaked goroutine per request). Meanwhile
// a few workers update a shared, mutex-protected stock map, contending on it.
//
// It prints "pid pid=N" and nothing else on stdout (the reader may stop
// reading after that line), then runs until killed.
package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"time"
)

type inventory struct {
	mu    sync.Mutex
	stock map[string]int
}

func (inv *inventory) adjust(item string, delta int) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.stock[item] += delta
	time.Sleep(200 * time.Microsecond) // pretend to write an audit record under the lock
}

var errTimeout = errors.New("backend timeout")

// priceFromBackend is slow: it takes 100 ms, twice the caller's patience.
func priceFromBackend(item string) int {
	time.Sleep(100 * time.Millisecond)
	return len(item) * 100
}

// lookupPrice has the leak: result is unbuffered, so when the caller times out
// the backend goroutine blocks forever on its send.
func lookupPrice(ctx context.Context, item string) (int, error) {
	result := make(chan int)
	go func() {
		result <- priceFromBackend(item)
	}()
	select {
	case p := <-result:
		return p, nil
	case <-ctx.Done():
		return 0, errTimeout
	}
}

var timeouts int

func handleRequest(item string) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := lookupPrice(ctx, item); errors.Is(err, errTimeout) {
		timeouts++ // a real service would log this; the demo keeps its output quiet
	}
}

var (
	items = []string{"apple", "pear", "plum", "fig"}
	inv   = &inventory{stock: make(map[string]int)}
)

func stockWorker() {
	for {
		item := items[rand.Intn(len(items))]
		inv.adjust(item, rand.Intn(3)-1)
		time.Sleep(time.Millisecond)
	}
}

func main() {
	fmt.Printf("pid pid=%d\n", os.Getpid())

	for i := 0; i < 4; i++ {
		go stockWorker()
	}

	requests := time.NewTicker(200 * time.Millisecond)
	defer requests.Stop()
	for n := 0; ; n++ {
		<-requests.C
		handleRequest(items[n%len(items)])
	}
}
