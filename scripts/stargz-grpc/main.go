// containerd-stargz-grpc for tests: Debian bookworm's stargz-snapshotter package ships only
// ctr-remote, but golang-github-containerd-stargz-snapshotter-dev ships the snapshotter's library
// (not its service package's CRI resolver, whose k8s dependency Debian lacks). This serves the
// lazy-pulling filesystem as a containerd proxy snapshotter plugin on a unix socket, resolving
// registries on 127.0.0.1 over plain HTTP and others over HTTPS, without credentials:
//
//	containerd-stargz-grpc --address SOCKET --root DIR [--config FILE.toml]
//
// Built by scripts/build-stargz-grpc.sh; used by packages/oci's eStargz lazy-pull test and bench.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"net/http"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/reference"
	"github.com/containerd/containerd/remotes/docker"
	stargzfs "github.com/containerd/stargz-snapshotter/fs"
	"github.com/containerd/stargz-snapshotter/fs/config"
	"github.com/containerd/stargz-snapshotter/fs/source"
	snbase "github.com/containerd/stargz-snapshotter/snapshot"
	"google.golang.org/grpc"
)

// hosts: the image's registry itself, plain HTTP on loopback.
func hosts(ref reference.Spec) ([]docker.RegistryHost, error) {
	host := ref.Hostname()
	scheme := "https"
	if strings.HasPrefix(host, "127.0.0.1:") || strings.HasPrefix(host, "localhost:") || host == "127.0.0.1" || host == "localhost" {
		scheme = "http"
	}
	return []docker.RegistryHost{{
		Client:       &http.Client{Transport: http.DefaultTransport},
		Host:         host,
		Scheme:       scheme,
		Path:         "/v2",
		Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve,
	}}, nil
}

func main() {
	address := flag.String("address", "", "unix socket to serve the snapshotter on")
	root := flag.String("root", "", "directory for the snapshotter's state")
	configFile := flag.String("config", "", "TOML config of the snapshotter (optional)")
	flag.String("log-level", "info", "ignored")
	flag.Parse()
	if *address == "" || *root == "" {
		fmt.Fprintln(os.Stderr, "usage: containerd-stargz-grpc --address SOCKET --root DIR [--config FILE]")
		os.Exit(2)
	}
	var cfg config.Config
	if *configFile != "" {
		if _, err := toml.DecodeFile(*configFile, &cfg); err != nil {
			fmt.Fprintf(os.Stderr, "reading %s: %v\n", *configFile, err)
			os.Exit(2)
		}
	}
	ctx := context.Background()
	fs, err := stargzfs.NewFilesystem(filepath.Join(*root, "stargz"), cfg, stargzfs.WithGetSources(source.FromDefaultLabels(hosts)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the filesystem: %v\n", err)
		os.Exit(1)
	}
	snapshotter, err := snbase.NewSnapshotter(ctx, filepath.Join(*root, "snapshotter"), fs, snbase.AsynchronousRemove)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the snapshotter: %v\n", err)
		os.Exit(1)
	}
	server := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(server, snapshotservice.FromSnapshotter(snapshotter))
	os.Remove(*address)
	listener, err := net.Listen("unix", *address)
	if err != nil {
		fmt.Fprintf(os.Stderr, "listening on %s: %v\n", *address, err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		server.Stop()
		snapshotter.Close()
		os.Exit(0)
	}()
	if err := server.Serve(listener); err != nil {
		fmt.Fprintf(os.Stderr, "serving: %v\n", err)
		os.Exit(1)
	}
}
