package worker

import (
	"bytes"
	"fmt"
	"net/http"
)

// imageSignatures are the file signatures of formats a face photo is
// stored in. Anything else never reaches the paid API.
var imageSignatures = []struct {
	offset int
	magic  []byte
}{
	{0, []byte{0xFF, 0xD8, 0xFF}},                    // JPEG
	{0, []byte("\x89PNG\r\n\x1a\n")},                 // PNG
	{0, []byte("GIF87a")},                            // GIF
	{0, []byte("GIF89a")},                            // GIF
	{0, []byte("BM")},                                // BMP
	{0, []byte("II*\x00")},                           // TIFF
	{0, []byte("MM\x00*")},                           // TIFF
	{8, []byte("WEBP")},                              // WebP (RIFF....WEBP)
	{4, []byte("ftypheic")}, {4, []byte("ftypheix")}, // HEIC
	{4, []byte("ftypmif1")}, {4, []byte("ftypavif")}, // HEIF, AVIF
}

// checkImage returns why b cannot be a face image, or "" when it may be.
// It never quotes the bytes.
func checkImage(b []byte) string {
	if len(b) == 0 {
		return "empty object"
	}
	for _, s := range imageSignatures {
		if len(b) >= s.offset+len(s.magic) && bytes.Equal(b[s.offset:s.offset+len(s.magic)], s.magic) {
			return ""
		}
	}
	return fmt.Sprintf("not an image: content looks like %s", http.DetectContentType(b))
}
