// tests/e2e/what_if/whatif_libpq.go: Go crypto/tls connections through lib/pq.
// Usage: whatif_libpq DSN COUNT; one connection attempt each (no database/sql retries).
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/lib/pq"
)

func main() {
	n, _ := strconv.Atoi(os.Args[2])
	for i := 0; i < n; i++ {
		c, err := pq.NewConnector(os.Args[1])
		if err != nil {
			fmt.Println("fail", err)
			continue
		}
		conn, err := c.Connect(context.Background())
		if err != nil {
			fmt.Println("fail", err)
			continue
		}
		conn.Close()
		fmt.Println("ok")
	}
}
