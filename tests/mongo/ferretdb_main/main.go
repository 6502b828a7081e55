// Command ferretdb runs FerretDB v1 with its SQLite backend as a MongoDB-wire server for flowstream's tests.
//
// Why our own main instead of `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`: FerretDB's own
// command panics at start-up unless `build/version/version.txt` was generated, which a module-proxy build
// never has. The embeddable package `github.com/FerretDB/FerretDB/ferretdb` skips that check, so a tiny
// program that imports it is the reproducible way to get a server from the Go module proxy alone.
//
// Protocol with the parent (tests/mongo/server.py):
//   - Once the TCP socket is bound, one line `FERRETDB READY <mongodb uri>` goes to stdout. The parent waits
//     on that line instead of polling the port.
//   - SIGTERM or SIGINT cancels the context: FerretDB closes its listener, waits for its connections, closes
//     the SQLite databases and the process exits 0.
//   - With -exit-on-stdin-eof the server also stops when its stdin reaches end of file, that is when the
//     parent dies without stopping it (for example a killed pytest), so no orphan keeps the port.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// readyPrefix starts the line the parent process waits for; keep it in step with server.py.
const readyPrefix = "FERRETDB READY "

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run() error {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 27017, "TCP port to listen on (0 picks a free one, reported in the ready line)")
	sqliteDir := flag.String("sqlite-dir", "", "directory holding one SQLite file per database (created if missing)")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	exitOnStdinEOF := flag.Bool("exit-on-stdin-eof", false, "stop when stdin reaches end of file")
	flag.Parse()

	if *sqliteDir == "" {
		return errors.New("-sqlite-dir is required")
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir, err := filepath.Abs(*sqliteDir)
	if err != nil {
		return err
	}

	// FerretDB requires an existing directory and a URI path ending with "/".
	if err = os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	sqliteURL := (&url.URL{Scheme: "file", Path: dir + "/", OmitHost: true}).String()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if *exitOnStdinEOF {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)

		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			logger.Warn("stdin closed: the parent is gone, stopping")
			cancel()
		}()
	}

	// New binds the listening socket, so the server accepts connections (queued by the kernel until Run's
	// accept loop picks them up) by the time it returns.
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: net.JoinHostPort(*host, strconv.Itoa(*port))},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return err
	}

	fmt.Println(readyPrefix + f.MongoDBURI())

	return f.Run(ctx)
}
