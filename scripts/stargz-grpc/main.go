// containerd-stargz-grpc for tests: Debian bookworm's stargz-snapshotter package ships only
// ctr-remote, but golang-github-containerd-stargz-snapshotter-dev ships the snapshotter's library
// (not its service package's CRI resolver, whose k8s dependency Debian lacks). This serves the
// lazy-pulling filesystem as a containerd proxy snapshotter plugin on a unix socket, resolving
// registries on 127.0.0.1 over plain HTTP and others over HTTPS, without credentials. A layer's
// registry and digest come from the snapshot labels `ctr-remote images rpull` sets
// (containerd.io/snapshot/remote/stargz.*) or, failing those, from the ones containerd's own clients
// set (containerd.io/snapshot/cri.*: the CRI plugin, and Docker Engine >= 24 with the containerd
// image store, whose pulls pass no stargz labels):
//
//	containerd-stargz-grpc --address SOCKET --root DIR [--config FILE.toml] [--log-level debug]
//	                       [--cpu-profile FILE.pprof] [--metrics FILE.prom]
//
// For the B9 bench's breakdown (bench/oci-layering.mjs --diagnose): --cpu-profile writes a Go CPU
// profile of the whole run (read it with `go tool pprof -top BINARY FILE`), --metrics the
// library's Prometheus metrics (per-operation counts and latencies: FUSE reads served, on-demand
// fetches, prefetch download/decompress) in text form, both when the process is stopped (SIGTERM);
// --log-level debug logs the library's per-layer latency lines (prefetch_download, ...) on stderr.
// Built by scripts/build-stargz-grpc.sh; used by packages/oci's eStargz lazy-pull test and bench.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
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
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/sirupsen/logrus"
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

// Snapshot labels containerd's clients (the CRI plugin, Docker's containerd image store) set on a
// layer's snapshot (containerd's pkg/snapshotters): the image reference, the layer's digest, and the
// image's layers (comma-separated digests).
const (
	imageRefLabel    = "containerd.io/snapshot/cri.image-ref"
	layerDigestLabel = "containerd.io/snapshot/cri.layer-digest"
	imageLayersLabel = "containerd.io/snapshot/cri.image-layers"
)

// fromImageLabels: the layer's source from the cri.* labels, the layer first among the image's
// layers (the library mounts the neighbouring ones in the background).
func fromImageLabels(labels map[string]string) ([]source.Source, error) {
	ref, err := reference.Parse(labels[imageRefLabel])
	if err != nil {
		return nil, fmt.Errorf("label %s: %w", imageRefLabel, err)
	}
	layer, err := digest.Parse(labels[layerDigestLabel])
	if err != nil {
		return nil, fmt.Errorf("label %s: %w", layerDigestLabel, err)
	}
	layers := []ocispec.Descriptor{{Digest: layer}}
	for _, d := range strings.Split(labels[imageLayersLabel], ",") {
		if other, err := digest.Parse(d); err == nil && other != layer {
			layers = append(layers, ocispec.Descriptor{Digest: other})
		}
	}
	return []source.Source{{Hosts: hosts, Name: ref, Target: layers[0], Manifest: ocispec.Manifest{Layers: layers}}}, nil
}

// sources: ctr-remote's stargz.* labels where a snapshot has them, else the cri.* ones.
func sources(labels map[string]string) ([]source.Source, error) {
	fromStargz, err := source.FromDefaultLabels(hosts)(labels)
	if err == nil {
		return fromStargz, nil
	}
	if _, ok := labels[imageRefLabel]; !ok {
		return nil, err
	}
	return fromImageLabels(labels)
}

func main() {
	address := flag.String("address", "", "unix socket to serve the snapshotter on")
	root := flag.String("root", "", "directory for the snapshotter's state")
	configFile := flag.String("config", "", "TOML config of the snapshotter (optional)")
	logLevel := flag.String("log-level", "info", "logrus level of the library's logs on stderr (debug: its latency lines)")
	cpuProfile := flag.String("cpu-profile", "", "write a Go CPU profile of the run to this file when stopped")
	metricsFile := flag.String("metrics", "", "write the library's Prometheus metrics to this file when stopped (needs no_prometheus = false)")
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
	level, err := logrus.ParseLevel(*logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "--log-level %s: %v\n", *logLevel, err)
		os.Exit(2)
	}
	logrus.SetLevel(level)
	stopProfile := startProfile(*cpuProfile)
	ctx := context.Background()
	fs, err := stargzfs.NewFilesystem(filepath.Join(*root, "stargz"), cfg, stargzfs.WithGetSources(sources))
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
		stopProfile()
		writeMetrics(*metricsFile)
		server.Stop()
		snapshotter.Close()
		os.Exit(0)
	}()
	if err := server.Serve(listener); err != nil {
		fmt.Fprintf(os.Stderr, "serving: %v\n", err)
		os.Exit(1)
	}
}

// startProfile starts a CPU profile written to path (none when path is empty); the returned function stops it.
func startProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "--cpu-profile %s: %v\n", path, err)
		os.Exit(2)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// writeMetrics writes the default Prometheus registry (where the library registers its metrics) to path in text form.
func writeMetrics(path string) {
	if path == "" {
		return
	}
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gathering metrics: %v\n", err)
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "--metrics %s: %v\n", path, err)
		return
	}
	defer f.Close()
	for _, family := range families {
		expfmt.MetricFamilyToText(f, family)
	}
}
