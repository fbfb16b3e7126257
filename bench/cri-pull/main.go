// cri-pull: a containerd 1.6 image pull as the CRI plugin's PullImage makes it (what a Kubernetes
// node does), for bench B10: the containerd client's Pull with unpack, so that each layer is
// unpacked as soon as it is fetched while the next ones download (at most -max-concurrent-downloads
// at a time, the CRI plugin's default 3), where `ctr images pull` (1.6) fetches every layer first
// and unpacks them afterwards. -discard-unpacked-layers lets the garbage collector drop the layer
// blobs once unpacked (the CRI plugin's discard_unpacked_layers). Plain HTTP to every registry (the
// bench's are on 127.0.0.1); no credentials.
//
//	cri-pull -address SOCKET [-snapshotter overlayfs] [-max-concurrent-downloads 3] [-discard-unpacked-layers] REF
//
// Prints the pull's wall time in ms. Built by bench/oci-pull.mjs with Debian's Go and
// golang-github-containerd-containerd-dev (GOPATH mode, offline), as scripts/build-stargz-grpc.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/remotes/docker"
)

func main() {
	address := flag.String("address", "/run/containerd/containerd.sock", "containerd's socket")
	snapshotter := flag.String("snapshotter", "overlayfs", "snapshotter to unpack into")
	concurrent := flag.Int("max-concurrent-downloads", 3, "layers fetched at once (the CRI plugin's max_concurrent_downloads)")
	discard := flag.Bool("discard-unpacked-layers", false, "let GC remove layer blobs once unpacked (the CRI plugin's discard_unpacked_layers)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: cri-pull -address SOCKET [-snapshotter NAME] [-max-concurrent-downloads N] [-discard-unpacked-layers] REF")
		os.Exit(2)
	}
	client, err := containerd.New(*address)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-pull: connect:", err)
		os.Exit(1)
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(context.Background(), "default")
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchAllHosts))})
	opts := []containerd.RemoteOpt{
		containerd.WithResolver(resolver),
		containerd.WithPullSnapshotter(*snapshotter),
		containerd.WithPullUnpack,
		containerd.WithMaxConcurrentDownloads(*concurrent),
	}
	if *discard {
		opts = append(opts, containerd.WithChildLabelMap(images.ChildGCLabelsFilterLayers))
	}
	t0 := time.Now()
	if _, err := client.Pull(ctx, flag.Arg(0), opts...); err != nil {
		fmt.Fprintln(os.Stderr, "cri-pull:", err)
		os.Exit(1)
	}
	fmt.Println(time.Since(t0).Milliseconds())
}
