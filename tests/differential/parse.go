// What Go's standard library hands to an application, for each request stored under the
// directory given (case/headers.json and case/body, as for parse.js): net/http's
// ParseMultipartForm ("go-multipart": field names and values, file names and contents),
// ParseForm ("go-form": PostForm names and values, url-encoded bodies only), encoding/json
// ("go-json": every string, keys too) and encoding/xml ("go-xml": each element's own character
// data, CDATA included, as a ",chardata" field gets it, and every attribute value). Prints one
// JSON object: { case: { parser: [base64 items] } }.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
)

// The header values were recorded as Latin-1 text: these are their bytes again.
func latin1(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return s
		}
		b = append(b, byte(r))
	}
	return string(b)
}

func request(headers map[string]string, body []byte) *http.Request {
	r, err := http.NewRequest("POST", "/", bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	for n, v := range headers {
		if n != "content-length" {
			r.Header.Set(n, latin1(v))
		}
	}
	return r
}

func goMultipart(headers map[string]string, body []byte) (items [][]byte) {
	r := request(headers, body)
	if err := r.ParseMultipartForm(100 << 20); err != nil || r.MultipartForm == nil {
		return nil
	}
	defer r.MultipartForm.RemoveAll()
	for name, values := range r.MultipartForm.Value {
		items = append(items, []byte(name))
		for _, v := range values {
			items = append(items, []byte(v))
		}
	}
	for name, files := range r.MultipartForm.File {
		items = append(items, []byte(name))
		for _, fh := range files {
			items = append(items, []byte(fh.Filename))
			f, err := fh.Open()
			if err != nil {
				continue
			}
			data, _ := io.ReadAll(f)
			f.Close()
			items = append(items, data)
		}
	}
	return items
}

func goForm(headers map[string]string, body []byte) (items [][]byte) {
	r := request(headers, body)
	// An error leaves the pairs parsed before it in PostForm, which r.FormValue hands over.
	r.ParseForm()
	for name, values := range r.PostForm {
		items = append(items, []byte(name))
		for _, v := range values {
			items = append(items, []byte(v))
		}
	}
	return items
}

func strings(v interface{}, into *[][]byte) {
	switch x := v.(type) {
	case string:
		*into = append(*into, []byte(x))
	case []interface{}:
		for _, e := range x {
			strings(e, into)
		}
	case map[string]interface{}:
		for k, e := range x {
			*into = append(*into, []byte(k))
			strings(e, into)
		}
	}
}

func goJSON(body []byte) (items [][]byte) {
	var v interface{}
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	strings(v, &items)
	return items
}

func goXML(body []byte) (items [][]byte) {
	d := xml.NewDecoder(bytes.NewReader(body))
	var open [][]byte
	for {
		t, err := d.Token()
		if err == io.EOF {
			if len(open) != 0 {
				return nil
			}
			return items
		}
		if err != nil {
			return nil // Unmarshal fails: the application gets nothing
		}
		switch x := t.(type) {
		case xml.StartElement:
			for _, a := range x.Attr {
				items = append(items, []byte(a.Value))
			}
			open = append(open, []byte{})
		case xml.CharData:
			if len(open) != 0 {
				open[len(open)-1] = append(open[len(open)-1], x...)
			}
		case xml.EndElement:
			if len(open[len(open)-1]) != 0 {
				items = append(items, open[len(open)-1])
			}
			open = open[:len(open)-1]
		}
	}
}

func encode(items [][]byte) []string {
	out := make([]string, 0, len(items))
	for _, b := range items {
		out = append(out, base64.StdEncoding.EncodeToString(b))
	}
	return out
}

func guard(f func() [][]byte) (items [][]byte) {
	defer func() {
		if recover() != nil {
			items = nil
		}
	}()
	return f()
}

func main() {
	root := os.Args[1]
	entries, err := os.ReadDir(root)
	if err != nil {
		panic(err)
	}
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	out := map[string]map[string][]string{}
	for _, name := range names {
		h, err := os.ReadFile(filepath.Join(root, name, "headers.json"))
		if err != nil {
			panic(err)
		}
		body, err := os.ReadFile(filepath.Join(root, name, "body"))
		if err != nil {
			panic(err)
		}
		headers := map[string]string{}
		if err := json.Unmarshal(h, &headers); err != nil {
			panic(err)
		}
		out[name] = map[string][]string{
			"go-multipart": encode(guard(func() [][]byte { return goMultipart(headers, body) })),
			"go-form":      encode(guard(func() [][]byte { return goForm(headers, body) })),
			"go-json":      encode(guard(func() [][]byte { return goJSON(body) })),
			"go-xml":       encode(guard(func() [][]byte { return goXML(body) })),
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		panic(err)
	}
}
