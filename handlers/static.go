package handlers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/parley-chat/parley/views"
)

// Static serves the embedded files under content-hashed names
// (/static/app.3f2a9c1b.css), so browsers may keep them for a year: a changed
// file gets a new name. Embedded files have no modification time, so the
// hash is also the ETag.
func Static(files fs.FS) (http.Handler, views.Assets, error) {
	type entry struct {
		data      []byte
		etag      string
		ctype     string
		immutable bool
	}
	byName := map[string]entry{}
	urls := map[string]string{}
	err := fs.WalkDir(files, ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])[:12]
		ext := path.Ext(p)
		hashed := strings.TrimSuffix(p, ext) + "." + h + ext
		e := entry{data: data, etag: `"` + h + `"`, ctype: contentType(ext), immutable: true}
		byName[hashed] = e
		// The plain name stays reachable (source maps refer to it), but
		// must be revalidated.
		plain := e
		plain.immutable = false
		byName[p] = plain
		urls[p] = "/static/" + hashed
		return nil
	})
	if err != nil {
		return nil, views.Assets{}, fmt.Errorf("index static files: %w", err)
	}
	assets := views.Assets{CSS: urls["app.css"], CodeCSS: urls["chroma.css"], Datastar: urls["datastar-1.0.0-beta.11.js"],
		App: urls["app.js"], Icon: urls["favicon.svg"]}
	if assets.CSS == "" || assets.CodeCSS == "" || assets.Datastar == "" || assets.App == "" || assets.Icon == "" {
		return nil, views.Assets{}, fmt.Errorf("index static files: app.css, chroma.css, app.js, favicon.svg or the Datastar bundle is missing")
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, ok := byName[strings.TrimPrefix(r.URL.Path, "/static/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if e.immutable {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		w.Header().Set("ETag", e.etag)
		w.Header().Set("Content-Type", e.ctype)
		if r.Header.Get("If-None-Match") == e.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(e.data)
	})
	return h, assets, nil
}

func contentType(ext string) string {
	switch ext {
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".map", ".json":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	}
	return "text/plain; charset=utf-8"
}

// handleFavicon serves GET /favicon.ico, which browsers ask for by that name
// whatever the page links (a tab opened on a stream or an image, say): it
// points them at the content-hashed icon.
func handleFavicon(icon string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		http.Redirect(w, r, icon, http.StatusMovedPermanently)
	})
}
