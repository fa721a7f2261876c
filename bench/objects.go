package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"reverify/liveness/fakeapi"
)

// seedImages writes n JPEG objects of size bytes straight into versitygw's
// posix root (bucket = directory, key = path), which is much faster than
// PUTting them; versitygw then serves them with an empty ETag. Each object
// is a small valid JPEG followed by random padding (decoders stop at the
// end-of-image marker) of at least 32 bytes, so every object differs and
// its size is exact.
func (e *env) seedImages(bucket, prefix string, n, size int) ([]string, error) {
	head := fakeapi.GenerateJPEG(1, 96, 96)
	size = max(size, len(head)+32) // identical images would be one paid call (dedupe)
	rng := rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), byte(size >> 16)})
	buf := make([]byte, size)
	copy(buf, head)
	keys := make([]string, n)
	for i := range n {
		key := fmt.Sprintf("%s%03d/%06d.jpg", prefix, i/1000, i)
		keys[i] = key
		path := filepath.Join(e.s3Root, bucket, filepath.FromSlash(key))
		if i%1000 == 0 {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return nil, fmt.Errorf("seed %s: %w", key, err)
			}
		}
		_, _ = rng.Read(buf[len(head):])
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			return nil, fmt.Errorf("seed %s: %w", key, err)
		}
	}
	return keys, nil
}

// writeManifest writes keys, one per line, to a new file in the scratch dir.
func (e *env) writeManifest(name string, keys func(yield func(string) bool)) (string, error) {
	path := filepath.Join(e.dir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for k := range keys {
		w.WriteString(k)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", fmt.Errorf("manifest: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	return path, nil
}

// syntheticKeys yields n keys that need not exist in S3 (enqueue never
// reads the objects).
func syntheticKeys(prefix string, n int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for i := range n {
			if !yield(fmt.Sprintf("%ssubject-%07d/selfie.jpg", prefix, i)) {
				return
			}
		}
	}
}

func sliceKeys(keys []string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, k := range keys {
			if !yield(k) {
				return
			}
		}
	}
}
