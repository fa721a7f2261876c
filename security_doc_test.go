package reverify

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSecurityDocNamesRealTests keeps docs/security.md honest: every test
// it cites as proof of a promise exists, in the file it names.
func TestSecurityDocNamesRealTests(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("docs/security.md")
	require.NoError(t, err)
	funcs := map[string]string{} // test name -> file
	re := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)\w+)\(`)
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			funcs[string(m[1])] = filepath.ToSlash(path)
		}
		return nil
	})
	require.NoError(t, err)

	cited := regexp.MustCompile("`((?:Test|Fuzz)\\w+)`").FindAllSubmatch(doc, -1)
	require.NotEmpty(t, cited)
	for _, m := range cited {
		_, ok := funcs[string(m[1])]
		require.True(t, ok, "docs/security.md cites %s, which does not exist", m[1])
	}
	for _, m := range regexp.MustCompile("`([\\w/]+_test\\.go)`").FindAllSubmatch(doc, -1) {
		require.FileExists(t, string(m[1]), "docs/security.md cites a missing file")
	}
	// A test cited right after its file lives in that file.
	for _, m := range regexp.MustCompile("`([\\w/]+_test\\.go)`\\s+`((?:Test|Fuzz)\\w+)`").FindAllSubmatch(doc, -1) {
		require.Equal(t, string(m[1]), funcs[string(m[2])], "docs/security.md puts %s in the wrong file", m[2])
	}
}
