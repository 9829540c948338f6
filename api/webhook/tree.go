package webhook

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
)

// The treeDecoder's errors; decodeObject turns them into its messages.
var (
	// errSyntax means the body is not one JSON value, exactly as
	// encoding/json.Valid would reject it.
	errSyntax = errors.New("invalid JSON syntax")
	// errTooDeep means nesting deeper than maxDepth.
	errTooDeep = errors.New("nested too deep")
)

// treeDecoder checks the syntax of a body and builds its tree in the same
// single pass, without reflection. It accepts what encoding/json.Valid
// accepts (RFC 8259) and nothing else, but leaves the UTF-8 check to its
// caller. It stops at the depth limit, and notes a repeated key without
// stopping, so that its caller can rank the errors. It leaves out of the
// tree every member that StripSAD would delete, after reading its value
// with the same checks as any other.
//
// Every key, unescaped string and number of the tree is a substring of src,
// the body converted once; a string with escapes is unescaped by
// encoding/json.
//
// Every read is bounds-checked: a truncated body is a syntax error, never a
// panic.
type treeDecoder struct {
	body []byte
	src  string // string(body)
	i    int    // offset of the next byte to read
	dup  bool   // an object repeats a key (after unescaping)
	// sadRemoved reports that a member whose key names sensitive
	// authentication data was read and left out of the tree.
	sadRemoved bool
}

// document reads the whole body: one value with only white space around it.
func (d *treeDecoder) document() (any, error) {
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.space(); d.i != len(d.body) {
		return nil, errSyntax
	}
	return v, nil
}

// peek returns the byte at d.i, or 0, which no JSON token starts with, at
// the end of the body.
func (d *treeDecoder) peek() byte {
	if d.i < len(d.body) {
		return d.body[d.i]
	}
	return 0
}

// value reads the value at d.i, which sits inside depth objects and arrays.
func (d *treeDecoder) value(depth int) (any, error) {
	d.space()
	switch c := d.peek(); {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || isDigit(c):
		return d.number()
	}
	return nil, errSyntax
}

// object reads the object at d.i, which starts with its '{'.
func (d *treeDecoder) object(depth int) (map[string]any, error) {
	if depth+1 > maxDepth {
		return nil, errTooDeep
	}
	d.i++
	m := map[string]any{}
	if d.space(); d.peek() == '}' {
		d.i++
		return m, nil
	}
	var sad keySet // the SAD keys of m, which m itself does not hold
	for {
		if d.space(); d.peek() != '"' {
			return nil, errSyntax
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		if d.space(); d.peek() != ':' {
			return nil, errSyntax
		}
		d.i++
		if isSADKey(k) {
			err = d.sadMember(&sad, k, depth)
		} else {
			err = d.member(m, k, depth)
		}
		if err != nil {
			return nil, err
		}
		if done, err := d.next('}'); done || err != nil {
			return m, err
		}
	}
}

// member reads the value of key k of m, which sits inside depth objects and
// arrays, into m.
func (d *treeDecoder) member(m map[string]any, k string, depth int) error {
	v, err := d.value(depth + 1)
	if err != nil {
		return err
	}
	n := len(m)
	if m[k] = v; len(m) == n {
		d.dup = true
	}
	return nil
}

// sadMember reads and drops the value of SAD key k of an object whose other
// SAD keys are sad. The value is checked like any other, and k can repeat
// only a key of sad: isSADKey tells the two kinds of keys apart.
func (d *treeDecoder) sadMember(sad *keySet, k string, depth int) error {
	if _, err := d.value(depth + 1); err != nil {
		return err
	}
	if !sad.add(k) {
		d.dup = true
	}
	d.sadRemoved = true
	return nil
}

// keySet is a set of object keys that allocates only from its second key:
// an object rarely has more than one SAD key.
type keySet struct {
	first string
	rest  []string
	used  bool // first is set
}

// add adds k and reports whether it was new.
func (s *keySet) add(k string) bool {
	switch {
	case !s.used:
		s.first, s.used = k, true
	case k == s.first || slices.Contains(s.rest, k):
		return false
	default:
		s.rest = append(s.rest, k)
	}
	return true
}

// array reads the array at d.i, which starts with its '['.
func (d *treeDecoder) array(depth int) ([]any, error) {
	if depth+1 > maxDepth {
		return nil, errTooDeep
	}
	d.i++
	a := []any{}
	if d.space(); d.peek() == ']' {
		d.i++
		return a, nil
	}
	for {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		if done, err := d.next(']'); done || err != nil {
			return a, err
		}
	}
}

// next reads what follows a member or element: a ',' before another one, or
// end, which closes the object or array.
func (d *treeDecoder) next(end byte) (done bool, err error) {
	d.space()
	switch d.peek() {
	case ',':
		d.i++
		return false, nil
	case end:
		d.i++
		return true, nil
	}
	return false, errSyntax
}

// str reads the string at d.i, which starts with its opening quote.
func (d *treeDecoder) str() (string, error) {
	start := d.i
	escaped := false
	for d.i++; d.i < len(d.body); d.i++ {
		switch c := d.body[d.i]; {
		case c == '"':
			d.i++
			if !escaped {
				return d.src[start+1 : d.i-1], nil
			}
			var s string
			err := json.Unmarshal(d.body[start:d.i], &s)
			return s, err
		case c == '\\':
			if !d.escape() {
				return "", errSyntax
			}
			escaped = true
		case c < 0x20:
			return "", errSyntax
		}
	}
	return "", errSyntax // no closing quote
}

// escape checks the escape sequence at d.i, which starts with its
// backslash, and leaves d.i on its last byte.
func (d *treeDecoder) escape() bool {
	d.i++
	switch d.peek() {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return true
	case 'u':
		if d.i+4 >= len(d.body) {
			return false
		}
		for _, c := range d.body[d.i+1 : d.i+5] {
			if !isHexDigit(c) {
				return false
			}
		}
		d.i += 4
		return true
	}
	return false
}

// number reads the number at d.i:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *treeDecoder) number() (json.Number, error) {
	start := d.i
	if d.peek() == '-' {
		d.i++
	}
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case '1' <= c && c <= '9':
		d.digits()
	default:
		return "", errSyntax
	}
	if d.peek() == '.' {
		d.i++
		if !d.digits() {
			return "", errSyntax
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if !d.digits() {
			return "", errSyntax
		}
	}
	return json.Number(d.src[start:d.i]), nil
}

// digits skips a run of decimal digits and reports whether it was not
// empty.
func (d *treeDecoder) digits() bool {
	start := d.i
	for d.i < len(d.body) && isDigit(d.body[d.i]) {
		d.i++
	}
	return d.i > start
}

// literal reads lit (true, false or null), spelled exactly.
func (d *treeDecoder) literal(lit string) error {
	if !strings.HasPrefix(d.src[d.i:], lit) {
		return errSyntax
	}
	d.i += len(lit)
	return nil
}

// space skips JSON white space.
func (d *treeDecoder) space() {
	for d.i < len(d.body) {
		switch d.body[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func isHexDigit(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}
