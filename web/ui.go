package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// uiFiles is the browser UI: everything under web/ui, so that files added
// there are served without touching this code.
//
//go:embed ui
var uiFiles embed.FS

// uiHandler serves GET / and every other path no API route takes: the files
// under web/ui, index.html for a directory, JSON 404 for anything else.
func (h *Handler) uiHandler() http.HandlerFunc {
	root, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	etags := uiETags(root)
	return func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "."
		}
		info, err := fs.Stat(root, name)
		if err != nil {
			writeError(w, http.StatusNotFound, "not found")
			return
		}
		if info.IsDir() {
			if !strings.HasSuffix(r.URL.Path, "/") {
				// To the cleaned path, one leading slash: the raw one may
				// start with "//", which a browser reads as another host.
				dir := "/"
				if name != "." {
					dir = "/" + name + "/"
				}
				http.Redirect(w, r, dir, http.StatusMovedPermanently)
				return
			}
			name = path.Join(name, "index.html")
			if _, err := fs.Stat(root, name); err != nil {
				writeError(w, http.StatusNotFound, "not found")
				return
			}
		}
		// Embedded files carry no modification time: a content hash lets
		// browsers revalidate cheaply and never keep an older release's UI.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", etags[name])
		// No other site may frame the UI (clickjacking its console): a
		// <meta> policy cannot say frame-ancestors, so the header does, with
		// X-Frame-Options for browsers that predate it.
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.ServeFileFS(w, r, root, name)
	}
}

// uiETags hashes every UI file once, at start.
func uiETags(root fs.FS) map[string]string {
	etags := make(map[string]string)
	_ = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		etags[name] = `"` + hex.EncodeToString(sum[:16]) + `"`
		return nil
	})
	return etags
}

// uiPaths returns the URL path of every UI file, and of each directory
// holding an index.html.
func uiPaths() []string {
	var paths []string
	_ = fs.WalkDir(uiFiles, "ui", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		p := strings.TrimPrefix(name, "ui")
		paths = append(paths, p)
		if path.Base(p) == "index.html" {
			paths = append(paths, strings.TrimSuffix(p, "index.html"))
		}
		return nil
	})
	return paths
}
