// estargz-check reads a layer blob with the stargz snapshotter's own reader (Debian's
// github.com/containerd/stargz-snapshotter/estargz, the code containerd-stargz-grpc runs): footer,
// TOC, the TOC digest verified against the annotation, then every regular file and chunk read at
// its offset and checked against its digests, and the blob unpacked as the snapshotter's tools do.
// Prints what it found as JSON. Used by the oci package's tests (zstd-chunked.test.ts).
//
//	estargz-check <blob> <toc digest>
package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	digest "github.com/opencontainers/go-digest"
)

type report struct {
	TOCDigest string            `json:"tocDigest"`
	DiffID    string            `json:"diffId"`
	Files     map[string]string `json:"files"`
	Chunks    int               `json:"chunks"`
}

func main() {
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(path, tocDigest string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	sr := io.NewSectionReader(f, 0, info.Size())
	r, err := estargz.Open(sr, estargz.WithDecompressors(new(zstdchunked.Decompressor)))
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	verifier, err := r.VerifyTOC(digest.Digest(tocDigest))
	if err != nil {
		return fmt.Errorf("verify TOC: %w", err)
	}
	out := report{TOCDigest: r.TOCDigest().String(), Files: map[string]string{}}
	// Every chunk of every file, read at its offset and checked against its chunk digest.
	var walk func(name string, e *estargz.TOCEntry) error
	walk = func(name string, e *estargz.TOCEntry) error {
		// A hard link's child is its target's entry: checked once, under the target's name.
		if _, seen := out.Files[e.Name]; e.Type == "reg" && !seen {
			if err := checkFile(r, verifier, e.Name, e, &out); err != nil {
				return err
			}
		}
		var childErr error
		e.ForeachChild(func(base string, child *estargz.TOCEntry) bool {
			p := base
			if name != "" {
				p = name + "/" + base
			}
			childErr = walk(p, child)
			return childErr == nil
		})
		return childErr
	}
	root, ok := r.Lookup("")
	if !ok {
		return fmt.Errorf("no root")
	}
	if err := walk("", root); err != nil {
		return err
	}
	// The whole blob as the snapshotter's tools unpack it (the payload before the TOC).
	var d estargz.Decompressor = new(estargz.GzipDecompressor)
	if _, _, _, err := d.ParseFooter(lastBytes(sr, d.FooterSize())); err != nil {
		d = new(zstdchunked.Decompressor)
	}
	tar, err := estargz.Unpack(sr, d)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, tar); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	out.DiffID = fmt.Sprintf("sha256:%x", h.Sum(nil))
	return json.NewEncoder(os.Stdout).Encode(out)
}

func lastBytes(sr *io.SectionReader, n int64) []byte {
	b := make([]byte, n)
	sr.ReadAt(b, sr.Size()-n)
	return b
}

func checkFile(r *estargz.Reader, verifier estargz.TOCEntryVerifier, name string, e *estargz.TOCEntry, out *report) error {
	fr, err := r.OpenFile(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	whole := sha256.New()
	for off := int64(0); off < e.Size; {
		ce, ok := r.ChunkEntryForOffset(name, off)
		if !ok {
			return fmt.Errorf("%s: no chunk at %d", name, off)
		}
		buf := make([]byte, ce.ChunkSize)
		if _, err := fr.ReadAt(buf, ce.ChunkOffset); err != nil && err != io.EOF {
			return fmt.Errorf("%s at %d: %w", name, ce.ChunkOffset, err)
		}
		v, err := verifier.Verifier(ce)
		if err != nil {
			return fmt.Errorf("%s at %d: %w", name, ce.ChunkOffset, err)
		}
		v.Write(buf)
		if !v.Verified() {
			return fmt.Errorf("%s: chunk at %d does not match its digest", name, ce.ChunkOffset)
		}
		whole.Write(buf)
		out.Chunks++
		off += ce.ChunkSize
	}
	sum := fmt.Sprintf("sha256:%x", whole.Sum(nil))
	if e.Size > 0 && sum != e.Digest {
		return fmt.Errorf("%s: content %s, TOC says %s", name, sum, e.Digest)
	}
	out.Files[name] = sum
	return nil
}
