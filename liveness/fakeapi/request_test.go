package fakeapi

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParseRequestMatchesJSON: the fast path for the exact body clients
// send answers as the generic JSON decoder does, for every body.
func TestParseRequestMatchesJSON(t *testing.T) {
	t.Parallel()
	img := base64.StdEncoding.EncodeToString(GeneratePNG(3, 64, 64))
	for _, body := range []string{
		`{"faceImage":"` + img + `"}`,
		`{"faceImage": "` + img + `"}`,
		`{"faceImage":"` + img + `"} `,
		`{"faceImage":"` + img[:10] + `\/` + img[10:] + `"}`,
		`{"faceImage":"` + img[:10] + `\n` + img[10:] + `"}`,
		`{"faceImage":"` + img[:10] + "\n" + img[10:] + `"}`,
		`{"faceImage":"` + img[:10] + "\r\n" + img[10:] + `"}`,
		`{"faceImage":"` + img[:10] + "-_" + img[12:] + `"}`,
		`{"faceImage":"` + img[:10] + "=" + img[11:] + `"}`,
		`{"faceImage":"QUJD"}`,
		`{"faceImage":"QUI="}`,
		`{"faceImage":"QUI"}`,
		`{"faceImage":""}`,
		`{"faceImage":"not base64!"}`,
		`{"faceImage":"` + img + "\x01" + `"}`,
		`{"faceImage":"` + img + "é" + `"}`,
		`{"faceImage":"` + img + `"`,
		`{"faceImage":"a"b"}`,
		`{"faceImage":12}`,
		`{"faceImage":null}`,
		`{}`,
		``,
	} {
		var want struct {
			FaceImage faceImage `json:"faceImage"`
		}
		wantErr := json.Unmarshal([]byte(body), &want)
		got, err := parseRequest([]byte(body))
		require.Equal(t, wantErr != nil, err != nil, "body %.40q: error %v, want %v", body, err, wantErr)
		if err == nil {
			require.Equal(t, want.FaceImage, got, "body %.40q", body)
		}
	}
}
