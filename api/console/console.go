// Package console holds the web console's templates and static files,
// embedded in the binary: the console loads nothing from elsewhere, which
// its Content-Security-Policy enforces. The handlers are in package api.
package console

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"path"
	"strings"
)

//go:embed templates/*.html
var templates embed.FS

// Static is the console's CSS and script, served under /console/static/.
//
//go:embed static
var Static embed.FS

// Pages parses every page template with the shared layout; the result maps
// a page's name (its file name without .html) to a template whose
// "layout" renders the page.
func Pages(funcs template.FuncMap) (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templates, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("failed to parse the console layout: %w", err)
	}
	files, err := fs.Glob(templates, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(templates, f); err != nil {
			return nil, fmt.Errorf("failed to parse console page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}
