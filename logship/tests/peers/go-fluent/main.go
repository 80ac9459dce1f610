// A fluent-logger-golang v1.9.0 client configured the way Docker's fluentd log driver
// configures it (daemon/logger/fluentd/fluentd.go): the driver defaults, a
// map[string]string record with container_id/container_name/source/log, and
// PostWithTime. Used by logship's forward_peers test.
//
// Usage: go-fluent -addr 127.0.0.1:24224 -mode sync|async|subsecond|ack|async_ack_subsecond -n 10000
// Prints "sent N" after posting, then waits for a line on stdin before Close, so that async
// mode (ForceStopAsyncSend, as Docker sets it) does not discard queued records.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:24224", "host:port")
	mode := flag.String("mode", "sync", "sync|async|subsecond|ack|async_ack_subsecond")
	n := flag.Int("n", 10000, "events")
	tag := flag.String("tag", "docker.go", "tag")
	flag.Parse()

	host, portS, err := net.SplitHostPort(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	port, _ := strconv.Atoi(portS)
	async := *mode == "async" || *mode == "async_ack_subsecond"
	cfg := fluent.Config{
		FluentPort:         port,
		FluentHost:         host,
		FluentNetwork:      "tcp",
		BufferLimit:        1024 * 1024, // Docker: defaultBufferLimit
		RetryWait:          1000,        // Docker: defaultRetryWait (ms)
		MaxRetry:           math.MaxInt32,
		Async:              async,
		SubSecondPrecision: *mode == "subsecond" || *mode == "async_ack_subsecond",
		RequestAck:         *mode == "ack" || *mode == "async_ack_subsecond",
		ForceStopAsyncSend: async,
	}
	logger, err := fluent.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	cid := "7f3a9c1e5b2d4a6f8e0c1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a"
	for i := 0; i < *n; i++ {
		data := map[string]string{
			"container_id":   cid,
			"container_name": "/go-peer",
			"source":         "stdout",
			"log":            fmt.Sprintf("seq=%d line from %s", i, *mode),
			"seq":            strconv.Itoa(i),
		}
		if err := logger.PostWithTime(*tag, time.Now().UTC(), data); err != nil {
			fmt.Fprintln(os.Stderr, "post:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("sent %d\n", *n)
	bufio.NewReader(os.Stdin).ReadString('\n')
	if err := logger.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		os.Exit(1)
	}
}
